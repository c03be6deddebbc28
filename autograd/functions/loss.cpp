// Differentiable losses and dropout: each calls a fused forward kernel and records a node
// whose backward calls the matching backward kernel.
#include "autograd/functions/elementwise.h"
#include "autograd/functions/nn.h"
#include "autograd/node.h"
#include "core/ops/common.h"
#include "core/ops/loss.h"

namespace focus {

namespace {

raw::LossReduction to_raw(Reduction r) {
  switch (r) {
    case Reduction::None: return raw::LossReduction::None;
    case Reduction::Sum: return raw::LossReduction::Sum;
    default: return raw::LossReduction::Mean;
  }
}

void no_double_backward(const char* name) {
  FOCUS_CHECK(!GradMode::is_enabled(), "[backward] double backward (create_graph=true) through {} is not supported",
              name);
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  const auto red = to_raw(o.reduction_);
  auto [loss, lse] = raw::cross_entropy(logits, target, o.ignore_index_, o.label_smoothing_, red);
  if (needs_grad(logits)) {
    const int64_t ignore = o.ignore_index_;
    const double eps = o.label_smoothing_;
    record("CrossEntropyLossBackward0", {logits}, {loss}, {save(logits), save(target), save(lse)},
           [ignore, eps, red](BackwardContext& c) {
             // grad_logits = (softmax(logits) - ((1-eps) onehot(target) + eps/C)) * grad (/ count for mean)
             //   : [N, C, d...], 0 on ignored rows
             no_double_backward("CrossEntropyLossBackward0");
             return grads(raw::cross_entropy_backward(c.grad(0), c.saved(0), c.saved(1), c.saved(2), ignore, eps,
                                                      red));
           });
  }
  return loss;
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index, Reduction reduction) {
  const auto red = to_raw(reduction);
  Tensor loss = raw::nll_loss(log_probs, target, ignore_index, red);
  if (needs_grad(log_probs)) {
    const Shape shape = log_probs.shape();
    record("NllLossBackward0", {log_probs}, {loss}, {save(target)}, [shape, ignore_index, red](BackwardContext& c) {
      // grad_input[n, target[n], d...] = -grad (/ count for mean), 0 elsewhere : [N, C, d...]
      no_double_backward("NllLossBackward0");
      return grads(raw::nll_loss_backward(c.grad(0), shape, c.saved(0), ignore_index, red));
    });
  }
  return loss;
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  const auto red = to_raw(reduction);
  Tensor loss = raw::mse_loss(input, target, red);
  if (needs_grad(input, target)) {
    const Shape in_shape = input.shape(), tg_shape = target.shape();
    record("MseLossBackward0", {input, target}, {loss}, {save(input), save(target)},
           [in_shape, tg_shape, red](BackwardContext& c) {
             // grad_input = 2 (input - target) grad (/ numel for mean) : broadcast shape -> input's;
             // grad_target = -grad_input -> target's shape
             Tensor x = c.saved(0), y = c.saved(1);
             Tensor gx;
             if (GradMode::is_enabled()) {  // create_graph: the same formula in differentiable ops
               const int64_t n = red == raw::LossReduction::Mean
                                     ? checked_numel(broadcast_shapes(x.shape(), y.shape(), "mse_loss"), "mse_loss")
                                     : 1;
               gx = (x - y) * c.grad(0) * (2.0 / static_cast<double>(n));
             } else {
               gx = raw::mse_loss_backward(c.grad(0), x, y, red);
             }
             return grads(c.needs_input_grad(0) ? sum_to(gx, in_shape) : Tensor(),
                          c.needs_input_grad(1) ? sum_to(-gx, tg_shape) : Tensor());
           });
  }
  return loss;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  raw::check_defined(x, "dropout", "input");
  FOCUS_CHECK(p >= 0.0 && p <= 1.0, "[dropout] dropout probability has to be between 0 and 1, but got {}", p);
  // Like PyTorch: evaluation mode, p == 0 and empty inputs return the input itself.
  if (!training || p == 0.0 || x.numel() == 0) return x;
  Generator& g = gen ? *gen : default_generator();
  auto [out, mask] = raw::dropout(x, p, g.next(static_cast<uint64_t>(x.numel())));
  if (needs_grad(x)) {
    record("NativeDropoutBackward0", {x}, {out}, {save(mask)}, [p](BackwardContext& c) {
      // grad_x = grad * mask / (1 - p) : x's shape
      Tensor m = c.saved(0);
      if (GradMode::is_enabled()) return grads(c.grad(0) * m.to(c.grad(0).dtype()) * (p < 1 ? 1.0 / (1.0 - p) : 0.0));
      return grads(raw::dropout_backward(c.grad(0), m, p));
    });
  }
  return out;
}

}  // namespace focus
