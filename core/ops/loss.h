#pragma once
/// Raw loss ops: validate, allocate, dispatch to the fused kernels (no autograd). The
/// differentiable versions are focus::cross_entropy, nll_loss and mse_loss
/// (autograd/functions/loss.cpp).
#include <tuple>

#include "backends/backend.h"
#include "core/tensor.h"

namespace focus::raw {

using LossReduction = Backend::LossReduction;

/// Cross entropy from logits [N, C, d1, ...] (or unbatched [C]) and int64 class indices
/// [N, d1, ...] (or 0-d), with optional class weights [C] (undefined = none; logits' dtype).
/// Returns (loss, lse): loss of the target's shape for None, else 0-d; lse [N, prod(d)]
/// (the per-row log-sum-exp the backward needs). Mean divides by the sum of the weights of
/// the non-ignored targets. A target outside [0, C) that is not ignore_index is a
/// focus::Error "[cross_entropy] target <t> is out of bounds for [0, C) (at position <i>)"
/// (Backend::check_indices: at once on the CPU, at the next synchronisation on CUDA).
std::tuple<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                         int64_t ignore_index, double label_smoothing, LossReduction reduction);
/// grad_logits (logits' shape, contiguous) from the loss gradient grad. reuse_logits: the
/// caller holds the only handle on logits and will not read them again; when no other
/// tensor shares their memory either (one handle, one storage user, contiguous, the whole
/// storage), the gradient is written over the logits in place instead of into a new
/// [N, C, D] buffer (llm.c's fused classifier).
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target, const Tensor& lse,
                              const Tensor& weight, int64_t ignore_index, double label_smoothing,
                              LossReduction reduction, bool reuse_logits = false);

/// Negative log likelihood from log-probabilities, with optional class weights; shapes and
/// the target check as cross_entropy ("[nll_loss] target ...").
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                LossReduction reduction);
/// grad_input (input_shape, contiguous, dtype of grad).
Tensor nll_loss_backward(const Tensor& grad, const Shape& input_shape, const Tensor& target, const Tensor& weight,
                         int64_t ignore_index, LossReduction reduction);

/// Errors unless weight is undefined or a 1-D tensor of C elements of input's dtype and
/// device; op names the loss.
void check_class_weight(const Tensor& weight, const Tensor& input, int64_t C, const char* op);

/// Errors (naming op, then what: "[op] <what>, got <v> (at position <i>)") unless every
/// element of the floating tensor x lies in [lo, hi] (NaN does not). Reads nothing back to
/// the host: the CPU throws at once, CUDA at the next synchronisation
/// (Backend::check_range). op and what must be string literals.
void check_range(const Tensor& x, double lo, double hi, const char* op, const char* what);

/// (input - target)^2 with broadcasting; the broadcast shape for None, else 0-d.
Tensor mse_loss(const Tensor& input, const Tensor& target, LossReduction reduction);
/// d loss / d input at the broadcast shape of input and target.
Tensor mse_loss_backward(const Tensor& grad, const Tensor& input, const Tensor& target, LossReduction reduction);

}  // namespace focus::raw
