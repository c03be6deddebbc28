#include "nn/loss.h"

namespace focus::nn {

namespace {

// Registers t as a buffer when given (PyTorch registers None buffers, which never show).
// The buffer is a new handle on t's storage: to() converts the handle in place, which must
// not change the caller's tensor.
Tensor maybe_buffer(Module& m, const char* name, const Tensor& t) {
  return t.defined() ? m.register_buffer(name, t.detach()) : Tensor();
}

}  // namespace

CrossEntropyLoss::CrossEntropyLoss(const CrossEntropyLossOptions& options)
    : Module("CrossEntropyLoss"), options_(options) {
  FOCUS_CHECK(options.label_smoothing_ >= 0.0 && options.label_smoothing_ <= 1.0,
              "[CrossEntropyLoss] label_smoothing must be between 0.0 and 1.0, got {}", options.label_smoothing_);
  weight_ = maybe_buffer(*this, "weight", options.weight_);
  options_.weight_ = Tensor();  // the buffer is the weight from now on (it follows to())
}

Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target) const {
  return cross_entropy(input, target, CrossEntropyOptions(options_).weight(weight_));
}

NLLLoss::NLLLoss(const NLLLossOptions& options) : Module("NLLLoss"), options_(options) {
  weight_ = maybe_buffer(*this, "weight", options.weight_);
  options_.weight_ = Tensor();
}

Tensor NLLLoss::forward(const Tensor& input, const Tensor& target) const {
  return nll_loss(input, target, NLLLossOptions(options_).weight(weight_));
}

MSELoss::MSELoss(const MSELossOptions& options) : Module("MSELoss"), options_(options) {}

Tensor MSELoss::forward(const Tensor& input, const Tensor& target) const {
  return mse_loss(input, target, options_.reduction_);
}

L1Loss::L1Loss(const L1LossOptions& options) : Module("L1Loss"), options_(options) {}

Tensor L1Loss::forward(const Tensor& input, const Tensor& target) const {
  return l1_loss(input, target, options_.reduction_);
}

SmoothL1Loss::SmoothL1Loss(const SmoothL1LossOptions& options) : Module("SmoothL1Loss"), options_(options) {
  FOCUS_CHECK(options.beta_ >= 0, "[SmoothL1Loss] beta must be non-negative, got {}", options.beta_);
}

Tensor SmoothL1Loss::forward(const Tensor& input, const Tensor& target) const {
  return smooth_l1_loss(input, target, options_.reduction_, options_.beta_);
}

HuberLoss::HuberLoss(const HuberLossOptions& options) : Module("HuberLoss"), options_(options) {
  FOCUS_CHECK(options.delta_ > 0, "[HuberLoss] delta must be positive, got {}", options.delta_);
}

Tensor HuberLoss::forward(const Tensor& input, const Tensor& target) const {
  return huber_loss(input, target, options_.reduction_, options_.delta_);
}

BCEWithLogitsLoss::BCEWithLogitsLoss(const BCEWithLogitsLossOptions& options)
    : Module("BCEWithLogitsLoss"), options_(options) {
  weight_ = maybe_buffer(*this, "weight", options.weight_);
  pos_weight_ = maybe_buffer(*this, "pos_weight", options.pos_weight_);
  options_.weight_ = Tensor();
  options_.pos_weight_ = Tensor();
}

Tensor BCEWithLogitsLoss::forward(const Tensor& input, const Tensor& target) const {
  return binary_cross_entropy_with_logits(input, target,
                                          BCEWithLogitsOptions(options_).weight(weight_).pos_weight(pos_weight_));
}

BCELoss::BCELoss(const BCELossOptions& options) : Module("BCELoss"), options_(options) {
  weight_ = maybe_buffer(*this, "weight", options.weight_);
  options_.weight_ = Tensor();
}

Tensor BCELoss::forward(const Tensor& input, const Tensor& target) const {
  return binary_cross_entropy(input, target, weight_, options_.reduction_);
}

}  // namespace focus::nn
