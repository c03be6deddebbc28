#pragma once
/// Differentiable losses with PyTorch 2.x semantics (torch.nn.functional names, arguments
/// and defaults). Class-index cross entropy and nll are fused forward/backward kernel
/// pairs; the others are short compositions or nodes with PyTorch's backward formulas.
/// Every bad input (shapes, dtypes, target values, weights) is a focus::Error naming the loss.
#include <cstdint>
#include <string_view>

#include "core/tensor.h"

namespace focus {

/// How a loss reduces its per-element values: none (keep them), mean or sum.
enum class Reduction { None, Mean, Sum };

/// "none", "mean" or "sum" (PyTorch's strings) -> Reduction; errors on anything else,
/// naming op.
Reduction reduction_from_string(std::string_view s, std::string_view op = "loss");
/// "none", "mean" or "sum".
std::string_view to_string(Reduction r);

struct CrossEntropyOptions {
  Tensor weight_;  // class weights [C], the input's dtype; undefined = all ones
  int64_t ignore_index_ = -100;
  double label_smoothing_ = 0.0;
  Reduction reduction_ = Reduction::Mean;
  CrossEntropyOptions& weight(const Tensor& w) { weight_ = w; return *this; }
  CrossEntropyOptions& ignore_index(int64_t v) { ignore_index_ = v; return *this; }
  CrossEntropyOptions& label_smoothing(double v) { label_smoothing_ = v; return *this; }
  CrossEntropyOptions& reduction(Reduction r) { reduction_ = r; return *this; }
  CrossEntropyOptions& reduction(std::string_view r) { reduction_ = reduction_from_string(r, "cross_entropy"); return *this; }
};

/// Cross entropy from logits, as torch.nn.functional.cross_entropy. Classes are on dim 1 of
/// input [N, C, d1, ...] (dim 0 of an unbatched [C]). Target is either
/// - class indices (int64) of shape [N, d1, ...] (0-d for unbatched input), each in [0, C)
///   or ignore_index: loss = (1 - eps) w[t] (lse - x[t]) + eps / C * sum_c w[c] (lse - x[c]),
///   0 where ignored; Mean divides the sum by the sum of w[t] over non-ignored targets (nan
///   when there are none); or
/// - class probabilities: the input's shape and floating dtype; loss = -sum_c w[c] x'[c]
///   log_softmax(x)[c] with x' = (1 - eps) target + eps / C; Mean divides by N * d1 * ...;
///   ignore_index must be negative (unused). Differentiable in the target too.
/// Output: target's (class-index) or input-minus-class-dim shape for None, else 0-d.
Tensor cross_entropy(const Tensor& input, const Tensor& target, const CrossEntropyOptions& options = {});

struct NLLLossOptions {
  Tensor weight_;  // class weights [C], the input's dtype; undefined = all ones
  int64_t ignore_index_ = -100;
  Reduction reduction_ = Reduction::Mean;
  NLLLossOptions& weight(const Tensor& w) { weight_ = w; return *this; }
  NLLLossOptions& ignore_index(int64_t v) { ignore_index_ = v; return *this; }
  NLLLossOptions& reduction(Reduction r) { reduction_ = r; return *this; }
  NLLLossOptions& reduction(std::string_view r) { reduction_ = reduction_from_string(r, "nll_loss"); return *this; }
};

/// Negative log likelihood from log-probabilities, shapes as class-index cross_entropy:
/// loss = -w[t] input[t], 0 where t == ignore_index; Mean divides by the sum of w[t].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& options);
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index = -100,
                Reduction reduction = Reduction::Mean);

/// Mean squared error (input - target)^2; input and target (one dtype) broadcast together.
/// Differentiable in both.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
/// Mean absolute error |input - target|; the gradient at input == target is 0.
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
/// Smooth L1: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target;
/// beta >= 0; beta = 0 is L1, with L1's gradient 0 at d = 0 where PyTorch 1.13's
/// smooth_l1 kernel gives -1).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
                      double beta = 1.0);
/// Huber: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta); delta > 0.
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
                  double delta = 1.0);

struct BCEWithLogitsOptions {
  Tensor weight_;      // rescales each element; broadcast to the input's shape
  Tensor pos_weight_;  // weight of positive examples, broadcast to the input's shape (usually [C])
  Reduction reduction_ = Reduction::Mean;
  BCEWithLogitsOptions& weight(const Tensor& w) { weight_ = w; return *this; }
  BCEWithLogitsOptions& pos_weight(const Tensor& w) { pos_weight_ = w; return *this; }
  BCEWithLogitsOptions& reduction(Reduction r) { reduction_ = r; return *this; }
  BCEWithLogitsOptions& reduction(std::string_view r) {
    reduction_ = reduction_from_string(r, "binary_cross_entropy_with_logits");
    return *this;
  }
};

/// Binary cross entropy on logits x with targets t in [0, 1] (same shape and dtype),
/// numerically stable for any x: loss = w [(1 - t) x + (1 + (pw - 1) t) softplus(-x)].
/// Differentiable in input and target (not in weight or pos_weight).
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const BCEWithLogitsOptions& options = {});
/// Binary cross entropy on probabilities x in [0, 1]: loss = -w [t log x + (1 - t) log(1 - x)]
/// with each log clamped to >= -100, as PyTorch. weight broadcasts to the input's shape.
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                            Reduction reduction = Reduction::Mean);

}  // namespace focus
