// Tensor's autograd methods, in-place ops and method forms of the free functions. They
// live in autograd/ (not core/) because they record graph nodes.
#include <cmath>

#include "autograd/engine.h"
#include "autograd/functions/elementwise.h"
#include "autograd/functions/linalg.h"
#include "autograd/functions/reduce.h"
#include "autograd/functions/softmax.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/common.h"
#include "core/ops/elementwise.h"

namespace focus {

// ---- autograd ----------------------------------------------------------------------------

const Tensor& Tensor::requires_grad_(bool r) const {
  FOCUS_CHECK(!r || is_floating(dtype()),
              "[requires_grad_] only tensors of floating point dtype can require gradients, got {}", dtype());
  if (!r && !impl().autograd) return *this;
  AutogradMeta& m = impl().meta();
  FOCUS_CHECK(r || !m.grad_fn,
              "[requires_grad_] you can only change requires_grad flags of leaf variables; use detach() instead");
  m.requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& a = impl().autograd;
  return a && a->grad ? *a->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined()) {
    FOCUS_CHECK(g.shape() == shape(), "[grad] assigned grad has shape {} but the tensor has shape {}", g.shape(), shape());
    FOCUS_CHECK(g.dtype() == dtype(), "[grad] assigned grad has dtype {} but the tensor has dtype {}", g.dtype(), dtype());
    FOCUS_CHECK(g.device() == device(), "[grad] assigned grad is on {} but the tensor is on {}", g.device(), device());
  }
  impl().meta().grad = g.defined() ? std::make_shared<Tensor>(g) : nullptr;
}

std::shared_ptr<Node> Tensor::grad_fn() const {
  return impl_ && impl_->autograd ? impl_->autograd->grad_fn : nullptr;
}

void Tensor::retain_grad() const {
  FOCUS_CHECK(requires_grad(), "[retain_grad] can't retain_grad on a tensor that doesn't require gradient");
  auto fn = grad_fn();
  if (!fn) return;  // leaves always keep their grad
  AutogradMeta& m = impl().meta();
  if (m.retains_grad) return;
  m.retains_grad = true;
  fn->retained.emplace_back(m.output_nr, impl_);
}

RemovableHandle Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
  FOCUS_CHECK(defined(), "[register_post_accumulate_grad_hook] the tensor is undefined");
  FOCUS_CHECK(requires_grad(),
              "[register_post_accumulate_grad_hook] cannot register a hook on a tensor that doesn't require gradient");
  FOCUS_CHECK(is_leaf(), "[register_post_accumulate_grad_hook] post accumulate grad hooks cannot be registered on "
                         "non-leaf tensors");
  FOCUS_CHECK(static_cast<bool>(hook), "[register_post_accumulate_grad_hook] the hook is empty");
  AutogradMeta& m = impl().meta();
  if (!m.post_accumulate_hooks) m.post_accumulate_hooks = std::make_shared<PostAccumulateGradHooks>();
  const uint64_t id = m.post_accumulate_hooks->next_id++;
  m.post_accumulate_hooks->hooks.emplace_back(id, std::move(hook));
  return RemovableHandle(m.post_accumulate_hooks, id);
}

void RemovableHandle::remove() {
  auto h = hooks_.lock();
  if (!h) return;
  std::erase_if(h->hooks, [&](const auto& e) { return e.first == id_; });
  hooks_.reset();
}

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  autograd::backward({*this}, {gradient}, retain_graph, create_graph);
}

// ---- in-place ------------------------------------------------------------------------------

namespace {
// Gradient of an in-place op's "other" operand: broadcast back and converted to its dtype.
struct OtherInfo {
  Shape shape;
  DType dtype;
};
Tensor to_other(const Tensor& g, const OtherInfo& o) {
  Tensor r = sum_to(g, o.shape);
  return r.dtype() == o.dtype ? r : r.to(o.dtype);
}
}  // namespace

const Tensor& Tensor::copy_(const Tensor& src) const {
  raw::check_defined(src, "copy_", "src");
  const bool rec = needs_grad(*this, src);
  check_inplace(*this, "copy_", rec);
  // A source overlapping the destination in another layout (x.copy_(x.t())) would be
  // read after being partly overwritten: copy it out first.
  const bool overlaps = src.storage() == storage() &&
                        !(src.storage_offset() == storage_offset() && src.shape() == shape() && src.strides() == strides());
  raw::copy_(*this, overlaps ? raw::clone(src) : src);
  bump_version();
  if (rec) {
    OtherInfo o{src.shape(), src.dtype()};
    record("CopyBackwards", {*this, src}, {*this}, {}, [o](BackwardContext& c) {
      // self's old value is overwritten: no gradient; src gets the gradient
      return grads(c.needs_input_grad(0) ? zeros_like(c.grad(0)) : Tensor(),
                   c.needs_input_grad(1) ? to_other(c.grad(0), o) : Tensor());
    });
  }
  return *this;
}

const Tensor& Tensor::fill_(Scalar value) const {
  const bool rec = needs_grad(*this);
  check_inplace(*this, "fill_", rec);
  raw::fill_(*this, value);
  if (rec) record("FillBackward0", {*this}, {*this}, {}, [](BackwardContext& c) { return grads(zeros_like(c.grad(0))); });
  return *this;
}

const Tensor& Tensor::add_(const Tensor& other, Scalar alpha) const {
  const bool rec = needs_grad(*this, other);
  check_inplace(*this, "add_", rec);
  const bool unit = alpha.to_double() == 1.0;
  raw::binary_(BinaryOp::Add, *this, unit ? other : raw::binary(BinaryOp::Mul, other, alpha, "add_"), "add_");
  if (rec) {
    OtherInfo o{other.shape(), other.dtype()};
    record("AddBackward0", {*this, other}, {*this}, {}, [o, alpha, unit](BackwardContext& c) {
      const Tensor& g = c.grad(0);
      return grads(g, c.needs_input_grad(1) ? to_other(unit ? g : g * alpha, o) : Tensor());
    });
  }
  return *this;
}

const Tensor& Tensor::add_(Scalar other) const {
  const bool rec = needs_grad(*this);
  check_inplace(*this, "add_", rec);
  raw::binary_(BinaryOp::Add, *this, other, "add_");
  if (rec) record("AddBackward1", {*this}, {*this}, {}, [](BackwardContext& c) { return grads(c.grad(0)); });
  return *this;
}

const Tensor& Tensor::sub_(const Tensor& other, Scalar alpha) const {
  return add_(other, alpha.is_floating() ? Scalar(-alpha.to_double()) : Scalar(-alpha.to_int()));
}
const Tensor& Tensor::sub_(Scalar other) const {
  return add_(other.is_floating() ? Scalar(-other.to_double()) : Scalar(-other.to_int()));
}

const Tensor& Tensor::mul_(const Tensor& other) const {
  const bool rec = needs_grad(*this, other);
  check_inplace(*this, "mul_", rec);
  // grad_other needs self's value before the write.
  SavedTensor old = rec && needs_grad(other) ? save(raw::clone(*this)) : SavedTensor();
  SavedTensor oth = rec ? save(other) : SavedTensor();
  raw::binary_(BinaryOp::Mul, *this, other, "mul_");
  if (rec) {
    OtherInfo o{other.shape(), other.dtype()};
    record("MulBackward0", {*this, other}, {*this}, {std::move(old), std::move(oth)}, [o](BackwardContext& c) {
      const Tensor& g = c.grad(0);
      return grads(c.needs_input_grad(0) ? g * c.saved(1) : Tensor(),
                   c.needs_input_grad(1) ? to_other(g * c.saved(0), o) : Tensor());
    });
  }
  return *this;
}

const Tensor& Tensor::mul_(Scalar other) const {
  const bool rec = needs_grad(*this);
  check_inplace(*this, "mul_", rec);
  raw::binary_(BinaryOp::Mul, *this, other, "mul_");
  if (rec) record("MulBackward1", {*this}, {*this}, {}, [other](BackwardContext& c) { return grads(c.grad(0) * other); });
  return *this;
}

const Tensor& Tensor::div_(const Tensor& other) const {
  const bool rec = needs_grad(*this, other);
  check_inplace(*this, "div_", rec);
  SavedTensor oth = rec ? save(other) : SavedTensor();
  raw::binary_(BinaryOp::Div, *this, other, "div_");
  if (rec) {
    OtherInfo o{other.shape(), other.dtype()};
    // grad_self = grad / other; grad_other = -grad * result / other
    record("DivBackward0", {*this, other}, {*this}, {std::move(oth), needs_grad(other) ? save(*this, true) : SavedTensor()},
           [o](BackwardContext& c) {
             const Tensor& g = c.grad(0);
             Tensor b = c.saved(0);
             return grads(c.needs_input_grad(0) ? g / b : Tensor(),
                          c.needs_input_grad(1) ? to_other(-(g * c.saved(1)) / b, o) : Tensor());
           });
  }
  return *this;
}

const Tensor& Tensor::div_(Scalar other) const {
  const bool rec = needs_grad(*this);
  check_inplace(*this, "div_", rec);
  raw::binary_(BinaryOp::Div, *this, other, "div_");
  if (rec) record("DivBackward1", {*this}, {*this}, {}, [other](BackwardContext& c) { return grads(c.grad(0) / other); });
  return *this;
}

const Tensor& Tensor::clamp_(std::optional<Scalar> min, std::optional<Scalar> max) const {
  raw::check_defined(*this, "clamp_", "self");
  FOCUS_CHECK(min || max, "[clamp_] at least one of min and max must be given");
  FOCUS_CHECK(is_floating_point() || !((min && min->is_floating()) || (max && max->is_floating())),
              "[clamp_] result type {} can't be cast to the desired output type {}", default_float_dtype(), dtype());
  const bool rec = needs_grad(*this);
  check_inplace(*this, "clamp_", rec);
  Tensor pass;
  if (rec) {  // where the gradient passes, decided before the write
    NoGradGuard ng;
    pass = ones({}, TensorOptions(kBool));
    if (min) pass = logical_and(pass, ge(*this, *min));
    if (max) pass = logical_and(pass, le(*this, *max));
  }
  raw::unary_(UnaryOp::Clamp, *this, {min ? min->to_double() : -INFINITY, max ? max->to_double() : INFINITY}, "clamp_");
  if (rec) record("ClampBackward1", {*this}, {*this}, {save(pass)}, [](BackwardContext& c) {
    // grad_self = grad where min <= old self <= max, else 0
    return grads(c.grad(0) * c.saved(0).to(c.grad(0).dtype()));
  });
  return *this;
}

const Tensor& Tensor::masked_fill_(const Tensor& mask, Scalar value) const {
  const bool rec = needs_grad(*this);
  check_inplace(*this, "masked_fill_", rec);
  raw::masked_fill_(*this, mask, value);
  if (rec) record("MaskedFillBackward0", {*this}, {*this}, {save(mask)}, [](BackwardContext& c) {
    return grads(focus::masked_fill(c.grad(0), c.saved(0), 0));
  });
  return *this;
}

// ---- method forms -----------------------------------------------------------------------------

Tensor Tensor::sum() const { return focus::sum(*this); }
Tensor Tensor::sum(const DimList& dims, bool keepdim) const { return focus::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return focus::mean(*this); }
Tensor Tensor::mean(const DimList& dims, bool keepdim) const { return focus::mean(*this, dims, keepdim); }
Tensor Tensor::matmul(const Tensor& other) const { return focus::matmul(*this, other); }
Tensor Tensor::pow(Scalar e) const { return focus::pow(*this, e); }
Tensor Tensor::exp() const { return focus::exp(*this); }
Tensor Tensor::log() const { return focus::log(*this); }
Tensor Tensor::abs() const { return focus::abs(*this); }
Tensor Tensor::sqrt() const { return focus::sqrt(*this); }
Tensor Tensor::argmax(std::optional<int64_t> dim, bool keepdim) const { return focus::argmax(*this, dim, keepdim); }
Tensor Tensor::softmax(int64_t dim) const { return focus::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return focus::log_softmax(*this, dim); }
Tensor Tensor::masked_fill(const Tensor& mask, Scalar value) const { return focus::masked_fill(*this, mask, value); }

}  // namespace focus
