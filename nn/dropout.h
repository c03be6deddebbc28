#pragma once
/// nn::Dropout, as torch.nn.Dropout.
#include <string>

#include "nn/module.h"

namespace focus::nn {

struct DropoutOptions {
  DropoutOptions(double p = 0.5) : p_(p) {}
  double p_;
  bool inplace_ = false;
  /// Kept for PyTorch's signature and printing; the result is always a new tensor.
  DropoutOptions& inplace(bool i) { inplace_ = i; return *this; }
};

/// In training, zeroes each element with probability p and scales the rest by 1/(1-p)
/// (default generator); the identity in eval mode or when p = 0.
class Dropout : public Module {
 public:
  explicit Dropout(const DropoutOptions& options = {});
  explicit Dropout(double p) : Dropout(DropoutOptions(p)) {}
  /// x: any shape -> same shape.
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  std::string extra_repr() const override;
  double p() const { return options_.p_; }

 private:
  DropoutOptions options_;
};

}  // namespace focus::nn
