#pragma once
/// Normalization layers: nn::LayerNorm and nn::RMSNorm (PyTorch 2.x).
#include <optional>
#include <string>
#include <tuple>

#include "nn/module.h"

namespace focus::nn {

struct LayerNormOptions {
  LayerNormOptions(Shape normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}
  LayerNormOptions(int64_t normalized_size) : normalized_shape_{normalized_size} {}
  Shape normalized_shape_;
  double eps_ = 1e-5;
  bool elementwise_affine_ = true;
  bool bias_ = true;
  LayerNormOptions& eps(double e) { eps_ = e; return *this; }
  LayerNormOptions& elementwise_affine(bool a) { elementwise_affine_ = a; return *this; }
  /// Only with elementwise_affine: whether to learn an additive bias.
  LayerNormOptions& bias(bool b) { bias_ = b; return *this; }
};

/// Normalizes over the trailing dims normalized_shape; parameters "weight" (ones) and
/// "bias" (zeros), both of shape normalized_shape, when elementwise_affine.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(const LayerNormOptions& options);
  /// x: [..., *normalized_shape] -> same shape.
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  /// The residual add of a transformer block and this norm in one fused op
  /// (add_layer_norm): returns {x + residual, forward(x + residual)}, the same values as
  /// the two steps. x, residual: [..., *normalized_shape] (other shapes or dtypes that
  /// broadcast or promote take the composed path).
  std::tuple<Tensor, Tensor> forward_add(const Tensor& x, const Tensor& residual) const;
  void reset_parameters();
  std::string extra_repr() const override;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const LayerNormOptions& options() const { return options_; }

 private:
  LayerNormOptions options_;
  Tensor weight_;
  Tensor bias_;
};

struct RMSNormOptions {
  RMSNormOptions(Shape normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}
  RMSNormOptions(int64_t normalized_size) : normalized_shape_{normalized_size} {}
  Shape normalized_shape_;
  std::optional<double> eps_;  // unset: the machine epsilon of the input's dtype
  bool elementwise_affine_ = true;
  RMSNormOptions& eps(std::optional<double> e) { eps_ = e; return *this; }
  RMSNormOptions& elementwise_affine(bool a) { elementwise_affine_ = a; return *this; }
};

/// y = x / sqrt(mean(x^2 over normalized_shape) + eps) * weight, as torch.nn.RMSNorm
/// (2.x); parameter "weight" (ones) when elementwise_affine.
class RMSNorm : public Module {
 public:
  explicit RMSNorm(const RMSNormOptions& options);
  /// x: [..., *normalized_shape] -> same shape.
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  void reset_parameters();
  std::string extra_repr() const override;
  const Tensor& weight() const { return weight_; }
  const RMSNormOptions& options() const { return options_; }

 private:
  RMSNormOptions options_;
  Tensor weight_;
};

}  // namespace focus::nn
