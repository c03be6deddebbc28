#include "nn/normalization.h"

#include <limits>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/layer_norm.h"
#include "autograd/functions/reduce.h"
#include "core/creation.h"
#include "nn/init.h"

namespace focus::nn {

namespace {
void check_shape(const Shape& s, const char* op) {
  FOCUS_CHECK(!s.empty(), "[{}] normalized_shape must have at least one dim", op);
  for (int64_t d : s) FOCUS_CHECK(d >= 0, "[{}] normalized_shape must be non-negative, got {}", op, s);
}

void check_input(const Tensor& x, const Shape& s, const char* op) {
  FOCUS_CHECK(x.defined(), "[{}] the input is undefined", op);
  const int64_t n = static_cast<int64_t>(s.size());
  bool ok = x.dim() >= n;
  for (int64_t i = 0; ok && i < n; ++i) ok = x.size(x.dim() - n + i) == s[static_cast<size_t>(i)];
  FOCUS_CHECK(ok, "[{}] expected input with trailing shape {} (normalized_shape), got shape {}", op, s, x.shape());
  FOCUS_CHECK(x.is_floating_point(), "[{}] expected a floating input, got {}", op, x.dtype());
}
}  // namespace

LayerNorm::LayerNorm(const LayerNormOptions& options) : Module("LayerNorm"), options_(options) {
  check_shape(options_.normalized_shape_, "LayerNorm");
  const bool affine = options_.elementwise_affine_;
  weight_ = register_parameter("weight", affine ? empty(options_.normalized_shape_) : Tensor());
  bias_ = register_parameter("bias", affine && options_.bias_ ? empty(options_.normalized_shape_) : Tensor());
  reset_parameters();
}

void LayerNorm::reset_parameters() {
  if (weight_.defined()) init::ones_(weight_);
  if (bias_.defined()) init::zeros_(bias_);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  check_input(x, options_.normalized_shape_, "LayerNorm");
  return layer_norm(x, options_.normalized_shape_, weight_, bias_, options_.eps_);
}

std::tuple<Tensor, Tensor> LayerNorm::forward_add(const Tensor& x, const Tensor& residual) const {
  check_input(x, options_.normalized_shape_, "LayerNorm");
  FOCUS_CHECK(residual.defined(), "[LayerNorm] the residual is undefined");
  if (x.shape() != residual.shape() || x.device() != residual.device() || !x.is_floating_point() ||
      !residual.is_floating_point()) {
    Tensor sum = x + residual;
    return {sum, forward(sum)};
  }
  // Mixed dtypes (a bfloat16 block output on a float32 residual stream under autocast): the
  // add's own promotion first, which widens exactly, then the fused op.
  const DType t = promote_types(x.dtype(), residual.dtype());
  return add_layer_norm(x.to(t), residual.to(t), options_.normalized_shape_, weight_, bias_, options_.eps_);
}

std::string LayerNorm::extra_repr() const {
  return fmt::format("{}, eps={}, elementwise_affine={}", py_tuple(options_.normalized_shape_), py_float(options_.eps_),
                     py_bool(options_.elementwise_affine_));
}

RMSNorm::RMSNorm(const RMSNormOptions& options) : Module("RMSNorm"), options_(options) {
  check_shape(options_.normalized_shape_, "RMSNorm");
  weight_ = register_parameter("weight", options_.elementwise_affine_ ? empty(options_.normalized_shape_) : Tensor());
  reset_parameters();
}

void RMSNorm::reset_parameters() {
  if (weight_.defined()) init::ones_(weight_);
}

Tensor RMSNorm::forward(const Tensor& x) const {
  check_input(x, options_.normalized_shape_, "RMSNorm");
  const double eps = options_.eps_.value_or(x.dtype() == kFloat64 ? std::numeric_limits<double>::epsilon()
                                                                  : std::numeric_limits<float>::epsilon());
  DimList dims;
  for (int64_t i = 0; i < static_cast<int64_t>(options_.normalized_shape_.size()); ++i) dims.push_back(-1 - i);
  Tensor y = x * rsqrt(mean(x * x, dims, /*keepdim=*/true) + eps);
  return weight_.defined() ? y * weight_ : y;
}

std::string RMSNorm::extra_repr() const {
  return fmt::format("{}, eps={}, elementwise_affine={}", py_tuple(options_.normalized_shape_),
                     options_.eps_ ? py_float(*options_.eps_) : std::string("None"),
                     py_bool(options_.elementwise_affine_));
}

}  // namespace focus::nn
