// Differentiable losses. Class-index cross entropy, nll and mse call a fused forward kernel
// and record a node whose backward calls the matching backward kernel; the other losses are
// compositions, or nodes whose backward is PyTorch's formula written with differentiable ops
// (so create_graph works through them).
#include <cmath>
#include <limits>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/loss.h"
#include "autograd/functions/no_double_backward.h"
#include "autograd/functions/reduce.h"
#include "autograd/functions/softmax.h"
#include "autograd/autocast.h"
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

// The per-element losses reduced as asked (mean of no elements is nan, as in PyTorch).
Tensor reduce_loss(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::None: return loss;
    case Reduction::Sum: return sum(loss);
    default: return mean(loss);
  }
}

// Shared checks of the elementwise losses: both defined, floating, one dtype and device.
void check_pair(const Tensor& input, const Tensor& target, const char* op) {
  raw::check_defined(input, op, "input");
  raw::check_defined(target, op, "target");
  raw::check_floating(input, op, "input");
  raw::check_same_device(input, target, op);
  FOCUS_CHECK(input.dtype() == target.dtype(), "[{}] expected input and target of one dtype, got {} and {}", op,
              input.dtype(), target.dtype());
}

// For losses that need target of the input's exact shape (the binary cross entropies).
void check_same_shape(const Tensor& input, const Tensor& target, const char* op) {
  FOCUS_CHECK(input.shape() == target.shape(),
              "[{}] target size ({}) must be the same as input size ({})", op, target.shape(), input.shape());
}

// An optional elementwise weight: broadcastable to the input's shape, same dtype and device.
void check_elementwise_weight(const Tensor& w, const Tensor& input, const char* op, const char* arg) {
  if (!w.defined()) return;
  raw::check_same_device(input, w, op);
  FOCUS_CHECK(w.dtype() == input.dtype(), "[{}] expected {} of dtype {} (the input's), got {}", op, arg,
              input.dtype(), w.dtype());
  bool ok = w.dim() <= input.dim();
  for (int64_t d = 0; ok && d < w.dim(); ++d) {
    const int64_t ws = w.size(w.dim() - 1 - d), is = input.size(input.dim() - 1 - d);
    ok = ws == is || ws == 1;
  }
  FOCUS_CHECK(ok, "[{}] {} of shape {} does not broadcast to the input's shape {}", op, arg, w.shape(),
              input.shape());
}

// -log(sigmoid(z)) = softplus(-z) = max(-z, 0) + log1p(exp(-|z|)), stable for any z.
Tensor neg_log_sigmoid(const Tensor& z) { return relu(-z) + log1p(exp(-abs(z))); }

// The incoming gradient of a reduced loss, spread over n elements: g / n for Mean.
Tensor spread_grad(const Tensor& g, Reduction r, int64_t n) {
  return r == Reduction::Mean ? g / static_cast<double>(n) : g;
}

}  // namespace

Reduction reduction_from_string(std::string_view s, std::string_view op) {
  if (s == "mean") return Reduction::Mean;
  if (s == "sum") return Reduction::Sum;
  if (s == "none") return Reduction::None;
  FOCUS_CHECK(false, "[{}] {} is not a valid value for reduction (expected \"none\", \"mean\" or \"sum\")", op, s);
  return Reduction::Mean;
}

std::string_view to_string(Reduction r) {
  switch (r) {
    case Reduction::None: return "none";
    case Reduction::Sum: return "sum";
    default: return "mean";
  }
}

// ---- cross entropy and nll --------------------------------------------------------------------

namespace {

// Cross entropy against class probabilities (target of the input's shape), composed as
// PyTorch's cross_entropy_loss_prob_target: -(log_softmax(x) * t' * w).sum over classes.
Tensor cross_entropy_probs(const Tensor& input, const Tensor& target, const CrossEntropyOptions& o) {
  const char* op = "cross_entropy";
  raw::check_floating(input, op, "input");
  raw::check_same_device(input, target, op);
  FOCUS_CHECK(is_floating(target.dtype()),
              "[{}] expected a floating point target with class probabilities (target of the input's shape {}), "
              "got {}",
              op, input.shape(), target.dtype());
  FOCUS_CHECK(target.dtype() == input.dtype(),
              "[{}] expected class-probability target of the input's dtype {}, got {}", op, input.dtype(),
              target.dtype());
  FOCUS_CHECK(o.ignore_index_ < 0,
              "[{}] ignore_index is not supported with class-probability targets (got ignore_index {})", op,
              o.ignore_index_);
  const double eps = o.label_smoothing_;
  FOCUS_CHECK(eps >= 0.0 && eps <= 1.0, "[{}] label_smoothing must be between 0.0 and 1.0, got {}", op, eps);
  const int64_t class_dim = input.dim() == 1 ? 0 : 1;
  const int64_t C = input.size(class_dim);
  raw::check_class_weight(o.weight_, input, C, op);
  const Tensor logp = log_softmax(input, class_dim);
  const Tensor t = eps > 0 ? target * (1 - eps) + eps / static_cast<double>(C) : target;
  Tensor prod = logp * t;
  if (o.weight_.defined()) {
    Shape bshape(static_cast<size_t>(input.dim()), 1);
    bshape[static_cast<size_t>(class_dim)] = C;
    prod = prod * o.weight_.reshape(bshape);
  }
  switch (o.reduction_) {
    case Reduction::None: return -sum(prod, {class_dim});
    case Reduction::Sum: return -sum(prod);
    default: {
      // Mean over the positions (N * d1 * ...), nan when there are none.
      const int64_t positions = C > 0 ? input.numel() / C : 0;
      if (input.numel() == 0) return -sum(prod) * std::numeric_limits<double>::quiet_NaN();
      return -sum(prod) / static_cast<double>(positions);
    }
  }
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  if (autocast::active()) {
    CrossEntropyOptions oc = o;
    oc.weight_ = autocast::cast(o.weight_, autocast::Policy::Float32);
    return autocast::run(autocast::Policy::Float32, [&oc](const Tensor& l, const Tensor& t) { return cross_entropy(l, t, oc); }, logits,
                         target);
  }
  raw::check_defined(logits, "cross_entropy", "input");
  raw::check_defined(target, "cross_entropy", "target");
  if (logits.dim() >= 1 && target.shape() == logits.shape()) return cross_entropy_probs(logits, target, o);
  FOCUS_CHECK(!is_floating(target.dtype()),
              "[cross_entropy] a floating point target holds class probabilities and must have the input's shape "
              "{}, got {}",
              logits.shape(), target.shape());
  const auto red = to_raw(o.reduction_);
  auto [loss, lse] = raw::cross_entropy(logits, target, o.weight_, o.ignore_index_, o.label_smoothing_, red);
  if (needs_grad(logits)) {
    const int64_t ignore = o.ignore_index_;
    const double eps = o.label_smoothing_;
    record("CrossEntropyLossBackward0", {logits}, {loss}, {save(logits), save(target), save(lse), save(o.weight_)},
           [ignore, eps, red](BackwardContext& c) {
             // grad_logits[j] = (p_j ((1-eps) w_t + eps/C sum(w)) - (1-eps) w_t [j == t] - eps/C w_j) * grad
             //   (/ sum of w_t for mean) : [N, C, d...], 0 on ignored rows (w = 1 when absent)
             detail::no_double_backward("CrossEntropyLossBackward0");
             // The logits are taken over: when nothing else holds them (a language model's
             // head output the caller let go of), the gradient is written over them
             // instead of into a second [N, C] buffer (raw::cross_entropy_backward).
             const Tensor target = c.saved(1), lse = c.saved(2), weight = c.saved(3);
             const Tensor& g = c.grad(0);
             const Tensor logits = c.take_saved(0);
             return grads(raw::cross_entropy_backward(g, logits, target, lse, weight, ignore, eps, red, true));
           });
  }
  return loss;
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const NLLLossOptions& o) {
  if (autocast::active()) {
    NLLLossOptions oc = o;
    oc.weight_ = autocast::cast(o.weight_, autocast::Policy::Float32);
    return autocast::run(autocast::Policy::Float32, [&oc](const Tensor& l, const Tensor& t) { return nll_loss(l, t, oc); }, log_probs,
                         target);
  }
  const auto red = to_raw(o.reduction_);
  Tensor loss = raw::nll_loss(log_probs, target, o.weight_, o.ignore_index_, red);
  if (needs_grad(log_probs)) {
    const Shape shape = log_probs.shape();
    const int64_t ignore = o.ignore_index_;
    record("NllLossBackward0", {log_probs}, {loss}, {save(target), save(o.weight_)},
           [shape, ignore, red](BackwardContext& c) {
             // grad_input[n, target[n], d...] = -w[t] grad (/ sum of w_t for mean), 0 elsewhere : [N, C, d...]
             detail::no_double_backward("NllLossBackward0");
             return grads(raw::nll_loss_backward(c.grad(0), shape, c.saved(0), c.saved(1), ignore, red));
           });
  }
  return loss;
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, int64_t ignore_index, Reduction reduction) {
  return nll_loss(log_probs, target, NLLLossOptions().ignore_index(ignore_index).reduction(reduction));
}

// ---- regression losses ------------------------------------------------------------------------

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return mse_loss(t...); }, input, target, reduction);
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

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pair(input, target, "l1_loss");
  broadcast_shapes(input.shape(), target.shape(), "l1_loss");
  return reduce_loss(abs(input - target), reduction);
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction, double beta) {
  check_pair(input, target, "smooth_l1_loss");
  FOCUS_CHECK(beta >= 0, "[smooth_l1_loss] beta must be non-negative, got {}", beta);
  broadcast_shapes(input.shape(), target.shape(), "smooth_l1_loss");
  const Tensor d = input - target;
  const Tensor z = abs(d);
  if (beta == 0) return reduce_loss(z, reduction);
  // 0.5 d^2 / beta inside the band, |d| - beta / 2 outside (gradient d / beta, sign(d))
  return reduce_loss(where(lt(z, beta), d * d * (0.5 / beta), z - 0.5 * beta), reduction);
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction, double delta) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return huber_loss(t...); }, input, target, reduction, delta);
  check_pair(input, target, "huber_loss");
  FOCUS_CHECK(delta > 0, "[huber_loss] delta must be positive, got {}", delta);
  broadcast_shapes(input.shape(), target.shape(), "huber_loss");
  const Tensor d = input - target;
  const Tensor z = abs(d);
  // 0.5 d^2 inside the band, delta (|d| - delta / 2) outside (gradient d, delta sign(d))
  return reduce_loss(where(lt(z, delta), d * d * 0.5, (z - 0.5 * delta) * delta), reduction);
}

// ---- binary cross entropy ---------------------------------------------------------------------

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, const BCEWithLogitsOptions& o) {
  if (autocast::active()) {
    BCEWithLogitsOptions oc = o;
    oc.weight_ = autocast::cast(o.weight_, autocast::Policy::Float32);
    oc.pos_weight_ = autocast::cast(o.pos_weight_, autocast::Policy::Float32);
    return autocast::run(autocast::Policy::Float32, [&oc](const Tensor& i, const Tensor& t) {
      return binary_cross_entropy_with_logits(i, t, oc);
    }, input, target);
  }
  const char* op = "binary_cross_entropy_with_logits";
  check_pair(input, target, op);
  check_same_shape(input, target, op);
  check_elementwise_weight(o.weight_, input, op, "weight");
  check_elementwise_weight(o.pos_weight_, input, op, "pos_weight");
  const Reduction red = o.reduction_;
  Tensor out;
  {
    NoGradGuard no_grad;
    // (1 - t) x + (1 + (pw - 1) t) softplus(-x), times w
    const Tensor sp = neg_log_sigmoid(input);
    Tensor loss = (1.0 - target) * input + (o.pos_weight_.defined() ? ((o.pos_weight_ - 1.0) * target + 1.0) * sp : sp);
    if (o.weight_.defined()) loss = loss * o.weight_;
    out = reduce_loss(loss, red);
  }
  if (needs_grad(input, target)) {
    const int64_t n = input.numel();
    record("BinaryCrossEntropyWithLogitsBackward0", {input, target}, {out},
           {save(input), save(target), save(o.weight_), save(o.pos_weight_)}, [red, n](BackwardContext& c) {
             // grad_input = ((pw t + 1 - t) sigmoid(x) - pw t) w grad (/ numel for mean) : input's shape
             // grad_target = (pw softplus(-x) - softplus(x)) w grad (= -x w grad without pos_weight)
             const Tensor x = c.saved(0), t = c.saved(1), w = c.saved(2), pw = c.saved(3);
             const Tensor g = spread_grad(c.grad(0), red, n);
             Tensor gx, gt;
             if (c.needs_input_grad(0)) {
               if (pw.defined()) {
                 const Tensor pt = pw * t;
                 gx = ((pt + 1.0 - t) * sigmoid(x) - pt) * g;
               } else {
                 gx = (sigmoid(x) - t) * g;
               }
               if (w.defined()) gx = gx * w;
             }
             if (c.needs_input_grad(1)) {
               gt = pw.defined() ? (neg_log_sigmoid(x) * pw - neg_log_sigmoid(-x)) * g : -x * g;
               if (w.defined()) gt = gt * w;
             }
             return grads(gx, gt);
           });
  }
  return out;
}

Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight, Reduction reduction) {
  // PyTorch refuses it under autocast: its gradient is unsafe in float16.
  if (autocast::active() && input.defined())
    FOCUS_CHECK(!is_autocast_enabled(input.device().type), "[binary_cross_entropy] is unsafe to autocast: its input comes from a sigmoid that may saturate in "
              "16 bits; use binary_cross_entropy_with_logits (nn::BCEWithLogitsLoss), which is safe, or turn "
                "autocast off around it");
  const char* op = "binary_cross_entropy";
  check_pair(input, target, op);
  check_same_shape(input, target, op);
  check_elementwise_weight(weight, input, op, "weight");
  Tensor out;
  {
    NoGradGuard no_grad;
    // A check on the device, without reading input back to the host (PyTorch's CUDA kernel
    // asserts on the device too): the CPU throws here, CUDA at the next synchronisation.
    raw::check_range(input, 0.0, 1.0, "binary_cross_entropy", "all elements of input should be between 0 and 1");
    // (t - 1) max(log(1 - x), -100) - t max(log x, -100), times w
    Tensor loss = (target - 1.0) * clamp(log1p(-input), -100.0, std::nullopt) -
                  target * clamp(log(input), -100.0, std::nullopt);
    if (weight.defined()) loss = loss * weight;
    out = reduce_loss(loss, reduction);
  }
  if (needs_grad(input, target)) {
    const int64_t n = input.numel();
    record("BinaryCrossEntropyBackward0", {input, target}, {out}, {save(input), save(target), save(weight)},
           [reduction, n](BackwardContext& c) {
             // grad_input = (x - t) / max((1 - x) x, 1e-12) w grad (/ numel for mean) : input's shape
             // grad_target = (max(log(1 - x), -100) - max(log x, -100)) w grad
             const Tensor x = c.saved(0), t = c.saved(1), w = c.saved(2);
             const Tensor g = spread_grad(c.grad(0), reduction, n);
             Tensor gx, gt;
             if (c.needs_input_grad(0)) {
               gx = (x - t) / clamp((1.0 - x) * x, 1e-12, std::nullopt) * g;
               if (w.defined()) gx = gx * w;
             }
             if (c.needs_input_grad(1)) {
               gt = (clamp(log1p(-x), -100.0, std::nullopt) - clamp(log(x), -100.0, std::nullopt)) * g;
               if (w.defined()) gt = gt * w;
             }
             return grads(gx, gt);
           });
  }
  return out;
}

}  // namespace focus
