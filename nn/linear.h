#pragma once
/// nn::Linear, as torch.nn.Linear: y = x W^T + b.
#include <memory>
#include <string>
#include <string_view>

#include "nn/module.h"

namespace focus::nn {

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  int64_t in_features_;
  int64_t out_features_;
  bool bias_ = true;
  LinearOptions& bias(bool b) { bias_ = b; return *this; }
};

/// Parameters "weight" [out_features, in_features] and "bias" [out_features] (if bias),
/// both U(-1/sqrt(in_features), 1/sqrt(in_features)) as PyTorch (kaiming_uniform_ with
/// a = sqrt(5) for the weight).
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Linear(int64_t in_features, int64_t out_features, bool bias = true)
      : Linear(LinearOptions(in_features, out_features).bias(bias)) {}
  /// x: [..., in_features] -> [..., out_features].
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  /// gelu(forward(x), approximate) as one op (focus::linear_gelu): the composition's numbers
  /// on the CPU, one fused GEMM epilogue on CUDA. x: [..., in_features] -> [..., out_features].
  Tensor forward_gelu(const Tensor& x, std::string_view approximate = "none") const;
  /// Re-draws the parameters with PyTorch's default initialization.
  void reset_parameters();
  std::string extra_repr() const override;
  const Tensor& weight() const { return weight_; }
  /// Undefined when built with bias(false).
  const Tensor& bias() const { return bias_; }
  const LinearOptions& options() const { return options_; }

 private:
  LinearOptions options_;
  Tensor weight_;
  Tensor bias_;
};

/// Identity: returns its input (a placeholder in Sequential, as torch.nn.Identity).
class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) const { return x; }
  Tensor operator()(const Tensor& x) const { return forward(x); }
};

}  // namespace focus::nn
