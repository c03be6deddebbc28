#include "core/ops/loss.h"

#include "core/ops/common.h"
#include "core/ops/view.h"

namespace focus::raw {

namespace {

// Class-indexed losses see input [N, C, D] and target [N, D] (D = product of the extra dims);
// unbatched input [C] with a 0-d target is N = D = 1.
struct ClassShapes {
  int64_t N = 1, C = 0, D = 1;
  Shape out_shape;  // the per-element loss shape (the target's)
};

ClassShapes class_shapes(const Tensor& input, const Tensor& target, const char* op) {
  check_defined(input, op, "input");
  check_defined(target, op, "target");
  check_floating(input, op, "input");
  check_same_device(input, target, op);
  FOCUS_CHECK(target.dtype() == kInt64, "[{}] expected target of dtype int64 (class indices), got {}", op,
              target.dtype());
  FOCUS_CHECK(input.dim() >= 1, "[{}] expected input with at least 1 dim (the classes), got a 0-d tensor", op);
  ClassShapes s;
  s.C = input.size(1 % input.dim());
  if (input.dim() == 1) {
    FOCUS_CHECK(target.dim() == 0,
                "[{}] expected a 0-d target for unbatched input of shape {}, got a target of shape {}", op,
                input.shape(), target.shape());
    return s;
  }
  Shape expected = input.shape();
  expected.erase(expected.begin() + 1);
  FOCUS_CHECK(target.shape() == expected, "[{}] expected target of shape {} for input of shape {}, got {}", op,
              expected, input.shape(), target.shape());
  s.N = input.size(0);
  for (int64_t d = 2; d < input.dim(); ++d) s.D *= input.size(d);
  s.out_shape = expected;
  return s;
}

Tensor in_dtype(const Tensor& t, DType dt) { return t.dtype() == dt ? t : to_contiguous(t, dt, t.device()); }

// The kernels' view of an optional (already contiguous) class weight; data null when absent.
TensorView weight_view(const Tensor& w) { return w.defined() ? make_view(w) : TensorView{}; }

// Every target in [0, C) or equal to ignore_index, checked once here for every backend (the
// kernels trust them): t is the [N, D] target.
void check_targets(const Tensor& t, int64_t C, int64_t ignore_index, const char* op) {
  if (t.numel() > 0) backend_of(t).check_indices(make_view(t), 0, C, ignore_index, op, "target");
}

}  // namespace

void check_class_weight(const Tensor& weight, const Tensor& input, int64_t C, const char* op) {
  if (!weight.defined()) return;
  FOCUS_CHECK(weight.dim() == 1 && weight.numel() == C,
              "[{}] weight tensor should be defined either for all {} classes or no classes but got weight tensor "
              "of shape {}",
              op, C, weight.shape());
  FOCUS_CHECK(weight.dtype() == input.dtype(), "[{}] expected weight of dtype {} (the input's), got {}", op,
              input.dtype(), weight.dtype());
  check_same_device(input, weight, op);
}

std::tuple<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                         int64_t ignore_index, double label_smoothing, LossReduction reduction) {
  const ClassShapes s = class_shapes(logits, target, "cross_entropy");
  check_class_weight(weight, logits, s.C, "cross_entropy");
  FOCUS_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
              "[cross_entropy] label_smoothing must be between 0.0 and 1.0, got {}", label_smoothing);
  Tensor x = reshape(logits, {s.N, s.C, s.D});
  Tensor t = reshape(target, {s.N, s.D});
  check_targets(t, s.C, ignore_index, "cross_entropy");
  Tensor lse = empty({s.N, s.D}, logits.dtype(), logits.device());
  Tensor loss = empty(reduction == LossReduction::None ? s.out_shape : Shape{}, logits.dtype(), logits.device());
  const Tensor w = weight.defined() ? to_contiguous(weight, weight.dtype(), weight.device()) : Tensor();
  backend_of(logits).cross_entropy_forward(make_view(loss), make_view(lse), make_view(x), make_view(t),
                                           weight_view(w), ignore_index, label_smoothing, reduction);
  return {loss, lse};
}

Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logits, const Tensor& target, const Tensor& lse,
                              const Tensor& weight, int64_t ignore_index, double label_smoothing,
                              LossReduction reduction, bool reuse_logits) {
  const ClassShapes s = class_shapes(logits, target, "cross_entropy_backward");
  // Checked before the reshape below adds a second user of the storage. The kernels read
  // each logit before they write its gradient, element by element, so they may alias.
  const bool in_place = reuse_logits && logits.impl_ptr().use_count() == 1 && logits.storage().use_count() == 1 &&
                        logits.storage_offset() == 0 && logits.is_contiguous() &&
                        static_cast<size_t>(logits.numel()) * logits.element_size() == logits.storage()->nbytes;
  Tensor x = reshape(logits, {s.N, s.C, s.D});
  Tensor t = reshape(target, {s.N, s.D});
  Tensor g = in_dtype(grad, logits.dtype());
  if (reduction == LossReduction::None) g = reshape(g, {s.N, s.D});
  Tensor gx = in_place ? x : empty({s.N, s.C, s.D}, logits.dtype(), logits.device());
  const Tensor w = weight.defined() ? to_contiguous(weight, weight.dtype(), weight.device()) : Tensor();
  backend_of(logits).cross_entropy_backward(make_view(gx), make_view(g), make_view(x), make_view(lse), make_view(t),
                                            weight_view(w), ignore_index, label_smoothing, reduction);
  return view(gx, logits.shape());
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                LossReduction reduction) {
  const ClassShapes s = class_shapes(log_probs, target, "nll_loss");
  check_class_weight(weight, log_probs, s.C, "nll_loss");
  Tensor x = reshape(log_probs, {s.N, s.C, s.D});
  Tensor t = reshape(target, {s.N, s.D});
  check_targets(t, s.C, ignore_index, "nll_loss");
  Tensor loss = empty(reduction == LossReduction::None ? s.out_shape : Shape{}, log_probs.dtype(),
                      log_probs.device());
  const Tensor w = weight.defined() ? to_contiguous(weight, weight.dtype(), weight.device()) : Tensor();
  backend_of(log_probs).nll_loss_forward(make_view(loss), make_view(x), make_view(t), weight_view(w), ignore_index,
                                         reduction);
  return loss;
}

Tensor nll_loss_backward(const Tensor& grad, const Shape& input_shape, const Tensor& target, const Tensor& weight,
                         int64_t ignore_index, LossReduction reduction) {
  // The shapes were validated by the forward; rebuild N, C, D from input_shape.
  const int64_t nd = static_cast<int64_t>(input_shape.size());
  const int64_t N = nd == 1 ? 1 : input_shape[0], C = input_shape[nd == 1 ? 0 : 1];
  int64_t D = 1;
  for (int64_t d = 2; d < nd; ++d) D *= input_shape[d];
  Tensor t = reshape(target, {N, D});
  Tensor g = reduction == LossReduction::None ? reshape(grad, {N, D}) : grad;
  Tensor gx = empty({N, C, D}, grad.dtype(), grad.device());
  const Tensor w = weight.defined() ? to_contiguous(weight, grad.dtype(), weight.device()) : Tensor();
  backend_of(grad).nll_loss_backward(make_view(gx), make_view(g), make_view(t), weight_view(w), ignore_index,
                                     reduction);
  return view(gx, input_shape);
}

void check_range(const Tensor& x, double lo, double hi, const char* op, const char* what) {
  check_defined(x, op, "input");
  check_floating(x, op, "input");
  if (x.numel() > 0) backend_of(x).check_range(make_view(x), lo, hi, op, what);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, LossReduction reduction) {
  check_defined(input, "mse_loss", "input");
  check_defined(target, "mse_loss", "target");
  check_floating(input, "mse_loss", "input");
  check_same_device(input, target, "mse_loss");
  FOCUS_CHECK(input.dtype() == target.dtype(), "[mse_loss] expected input and target of one dtype, got {} and {}",
              input.dtype(), target.dtype());
  const Shape shape = broadcast_shapes(input.shape(), target.shape(), "mse_loss");
  Tensor out = empty(reduction == LossReduction::None ? shape : Shape{}, input.dtype(), input.device());
  if (out.numel() == 0) return out;
  backend_of(input).mse_loss_forward(make_view(out), make_view(input, shape), make_view(target, shape), reduction);
  return out;
}

Tensor mse_loss_backward(const Tensor& grad, const Tensor& input, const Tensor& target, LossReduction reduction) {
  const Shape shape = broadcast_shapes(input.shape(), target.shape(), "mse_loss_backward");
  Tensor gx = empty(shape, input.dtype(), input.device());
  if (gx.numel() == 0) return gx;
  backend_of(input).mse_loss_backward(make_view(gx), make_view(in_dtype(grad, input.dtype()), shape),
                                      make_view(input, shape), make_view(target, shape), reduction);
  return gx;
}

}  // namespace focus::raw
