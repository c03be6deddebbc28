#include "nn/linear.h"

#include <cmath>

#include "autograd/autocast.h"
#include "autograd/functions/dropout.h"
#include "autograd/functions/elementwise.h"
#include "autograd/functions/linalg.h"
#include "autograd/node.h"
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
  FOCUS_CHECK(!is_quantized(), "[Linear] reset_parameters: the layer is quantized to int8");
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
  if (is_quantized()) return forward_int8(x);
  check_input(x, options_, weight_);
  Tensor y = linear(x, weight_, bias_);
  if (lora_A_ != nullptr && !lora_merged_) {
    // PEFT's lora.Linear.forward, in its order: result + lora_B(lora_A(dropout(x))) * scaling.
    const Tensor h = lora_dropout_ > 0.0 && is_training() ? dropout(x, lora_dropout_, true) : x;
    y = y + lora_B_->forward(lora_A_->forward(h)) * lora_scaling_;
  }
  return y;
}

Tensor Linear::forward_gelu(const Tensor& x, std::string_view approximate) const {
  if (is_quantized()) return gelu(forward_int8(x), approximate);
  check_input(x, options_, weight_);
  // An unmerged adapter adds its term before the activation, so the fused epilogue can't be used.
  if (lora_A_ != nullptr && !lora_merged_) return gelu(forward(x), approximate);
  return linear_gelu(x, weight_, bias_, approximate);
}

std::string Linear::extra_repr() const {
  std::string s = fmt::format("in_features={}, out_features={}, bias={}", options_.in_features_,
                              options_.out_features_, py_bool(bias_.defined()));
  if (is_quantized()) s += ", dtype=qint8, qscheme=per_channel_symmetric";
  if (lora_A_ != nullptr)
    s += fmt::format(", lora_r={}, lora_scaling={}, lora_dropout={}{}", lora_A_->options().out_features_,
                     py_float(lora_scaling_), py_float(lora_dropout_), lora_merged_ ? ", merged=True" : "");
  return s;
}

// ---- LoRA -------------------------------------------------------------------------------

void Linear::add_lora(int64_t r, double scaling, double lora_dropout) {
  FOCUS_CHECK(lora_A_ == nullptr, "[lora] this Linear already has a LoRA adapter");
  FOCUS_CHECK(r > 0, "[lora] r must be a positive integer, got {}", r);
  FOCUS_CHECK(std::isfinite(scaling) && scaling > 0.0, "[lora] the scaling must be positive and finite, got {}",
              scaling);
  FOCUS_CHECK(lora_dropout >= 0.0 && lora_dropout < 1.0, "[lora] lora_dropout must be in [0, 1), got {}",
              lora_dropout);
  FOCUS_CHECK(weight_.is_floating_point(), "[lora] the Linear's weight must be floating point, got {}",
              weight_.dtype());
  // Linear(in, r, bias=false) draws kaiming_uniform_(a = sqrt(5)): PEFT's init of lora_A.
  auto a = std::make_shared<Linear>(LinearOptions(options_.in_features_, r).bias(false));
  auto b = std::make_shared<Linear>(LinearOptions(r, options_.out_features_).bias(false));
  {
    NoGradGuard no_grad;
    init::zeros_(b->weight());
  }
  for (auto& m : {a, b}) {
    m->to(weight_.dtype());
    m->to(weight_.device());
    m->train(is_training());
  }
  lora_A_ = register_module("lora_A", std::move(a));
  lora_B_ = register_module("lora_B", std::move(b));
  lora_scaling_ = scaling;
  lora_dropout_ = lora_dropout;
  lora_merged_ = false;
}

void Linear::remove_lora() {
  FOCUS_CHECK(lora_A_ != nullptr, "[lora] remove_lora: this Linear has no LoRA adapter");
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A_.reset();
  lora_B_.reset();
  lora_scaling_ = lora_dropout_ = 0.0;
  lora_merged_ = false;
}

// delta = scaling * B @ A : [out, r] x [r, in] -> [out, in], in the weight's dtype.
Tensor Linear::lora_delta() const {
  return matmul(lora_B_->weight(), lora_A_->weight()).to(weight_.dtype()) * lora_scaling_;
}

void Linear::merge_lora() {
  FOCUS_CHECK(lora_A_ != nullptr, "[lora] merge: this Linear has no LoRA adapter");
  FOCUS_CHECK(!lora_merged_, "[lora] merge: the adapter is merged already");
  NoGradGuard no_grad;
  weight_.add_(lora_delta());
  lora_merged_ = true;
}

void Linear::unmerge_lora() {
  FOCUS_CHECK(lora_A_ != nullptr, "[lora] unmerge: this Linear has no LoRA adapter");
  FOCUS_CHECK(lora_merged_, "[lora] unmerge: the adapter is not merged");
  NoGradGuard no_grad;
  weight_.sub_(lora_delta());
  lora_merged_ = false;
}

// ---- int8 -------------------------------------------------------------------------------

void Linear::quantize_int8() {
  FOCUS_CHECK(!is_quantized(), "[Linear] quantize_int8: the layer is quantized already");
  FOCUS_CHECK(lora_A_ == nullptr || lora_merged_,
              "[Linear] quantize_int8: the layer has an unmerged LoRA adapter; merge it first (merge_and_unload)");
  Int8Weight w = Int8Weight::quantize(weight_, "Linear");
  weight_ = replace_with_buffer("weight", w.values());
  register_buffer("weight_scale", w.scales());
  if (bias_.defined()) bias_ = replace_with_buffer("bias", Int8Weight::bias_buffer(bias_));
  int8_ = std::move(w);
}

Tensor Linear::forward_int8(const Tensor& x) const {
  FOCUS_CHECK(x.defined(), "[Linear] the input is undefined");
  FOCUS_CHECK(x.dim() >= 1 && x.size(-1) == options_.in_features_,
              "[Linear] expected input with last dimension {} (in_features), got shape {}", options_.in_features_,
              x.shape());
  return int8_.linear(x, bias_);
}

}  // namespace focus::nn
