#include "nn/linear.h"

#include <cmath>

#include "autograd/autocast.h"
#include "autograd/functions/linalg.h"
#include "core/creation.h"
#include "nn/init.h"

namespace focus::nn {

Linear::Linear(const LinearOptions& options) : Module("Linear"), options_(options) {
  FOCUS_CHECK(options.in_features_ >= 0 && options.out_features_ >= 0,
              "[Linear] in_features and out_features must be non-negative, got {} and {}", options.in_features_,
              options.out_features_);
  weight_ = register_parameter("weight", empty({options.out_features_, options.in_features_}));
  bias_ = register_parameter("bias", options.bias_ ? empty({options.out_features_}) : Tensor());
  reset_parameters();
}

void Linear::reset_parameters() {
  init::kaiming_uniform_(weight_, std::sqrt(5.0));
  if (bias_.defined()) {
    const int64_t fan_in = options_.in_features_;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias_, -bound, bound);
  }
}

namespace {

void check_input(const Tensor& x, const LinearOptions& o, const Tensor& weight) {
  FOCUS_CHECK(x.defined(), "[Linear] the input is undefined");
  FOCUS_CHECK(x.dim() >= 1 && x.size(-1) == o.in_features_,
              "[Linear] expected input with last dimension {} (in_features), got shape {}", o.in_features_, x.shape());
  // Under autocast the product casts both to its 16-bit dtype, as PyTorch's Linear does.
  const bool autocast = autocast::active() && is_autocast_enabled(x.device().type) && x.is_floating_point() &&
                        x.dtype() != kFloat64 && weight.dtype() != kFloat64;
  FOCUS_CHECK(autocast || x.dtype() == weight.dtype(), "[Linear] input dtype {} does not match the weight dtype {}",
              x.dtype(), weight.dtype());
}

}  // namespace

Tensor Linear::forward(const Tensor& x) const {
  check_input(x, options_, weight_);
  return linear(x, weight_, bias_);
}

Tensor Linear::forward_gelu(const Tensor& x, std::string_view approximate) const {
  check_input(x, options_, weight_);
  return linear_gelu(x, weight_, bias_, approximate);
}

std::string Linear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}", options_.in_features_, options_.out_features_,
                     py_bool(bias_.defined()));
}

}  // namespace focus::nn
