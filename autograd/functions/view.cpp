// Differentiable views and copies: the Tensor methods view, reshape, permute, ..., to.
// Each wraps a raw op from core/ops/view.h and records how to send the gradient back.
#include <functional>
#include <numeric>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/reduce.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/common.h"
#include "core/ops/view.h"

namespace focus {

namespace {

// Flags out as a view of in when it shares in's storage (reshape may have copied), so
// check_inplace can refuse an in-place op that would record history on the view alone:
// the viewed tensor would never see it and its gradients would be silently wrong.
void mark_view(const Tensor& out, const Tensor& in) {
  if (out.storage() == in.storage()) out.unsafe_impl()->meta().is_view = true;
}

// Records a view whose gradient is the incoming gradient reshaped to the input's shape.
Tensor reshape_like_view(Tensor out, const Tensor& in, const char* node) {
  if (needs_grad(in)) {
    Shape shape = in.shape();
    record(node, {in}, {out}, {}, [shape](BackwardContext& c) { return grads(c.grad(0).reshape(shape)); });
  }
  mark_view(out, in);
  return out;
}

// A function that applies one view (narrow, slice, select) to a tensor.
using ViewFn = std::function<Tensor(const Tensor&)>;

// The gradient of a view that picks some elements: zeros of the input's shape with the
// gradient written into the same view. Recorded itself so double backward works.
Tensor scatter_into_zeros(const Tensor& g, const Shape& shape, const ViewFn& fn) {
  Tensor out = zeros(shape, TensorOptions(g.dtype()).device(g.device()));
  raw::copy_(fn(out), g);
  if (needs_grad(g)) record("ViewScatterBackward", {g}, {out}, {}, [fn](BackwardContext& c) { return grads(fn(c.grad(0))); });
  return out;
}

Tensor picking_view(Tensor out, const Tensor& in, const char* node, ViewFn fn) {
  if (needs_grad(in)) {
    Shape shape = in.shape();
    record(node, {in}, {out}, {}, [shape, fn](BackwardContext& c) { return grads(scatter_into_zeros(c.grad(0), shape, fn)); });
  }
  mark_view(out, in);
  return out;
}

}  // namespace

Tensor Tensor::view(const Shape& s) const { return reshape_like_view(raw::view(*this, s), *this, "ViewBackward0"); }

Tensor Tensor::reshape(const Shape& s) const {
  Tensor out = raw::reshape(*this, s);
  if (out.storage() == storage() || !needs_grad(*this)) return reshape_like_view(out, *this, "ReshapeAliasBackward0");
  // A copy (the input's strides do not allow a view): recomputable from the input, so a
  // consumer that saves it (a Linear after merging attention heads) keeps no second copy;
  // the input is usually kept anyway (attention saves its output).
  const Shape in_shape = shape();
  record_recomputable("ReshapeAliasBackward0", {*this}, {out}, {save(*this)},
                      [in_shape](BackwardContext& c) { return grads(c.grad(0).reshape(in_shape)); },
                      [s](BackwardContext& c) { return raw::reshape(c.saved(0), s); });
  return out;
}

Tensor Tensor::permute(const DimList& dims) const {
  Tensor out = raw::permute(*this, dims);
  if (needs_grad(*this)) {
    DimList inv(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) inv[static_cast<size_t>(wrap_dim(dims[i], dim(), "permute"))] = static_cast<int64_t>(i);
    record("PermuteBackward0", {*this}, {out}, {}, [inv](BackwardContext& c) { return grads(c.grad(0).permute(inv)); });
  }
  mark_view(out, *this);
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  Tensor out = raw::transpose(*this, d0, d1);
  if (needs_grad(*this)) {
    record("TransposeBackward0", {*this}, {out}, {},
           [d0, d1](BackwardContext& c) { return grads(c.grad(0).transpose(d0, d1)); });
  }
  mark_view(out, *this);
  return out;
}

Tensor Tensor::t() const {
  FOCUS_CHECK(dim() <= 2, "[t] expects a tensor with <= 2 dims, but self is {}-D (shape {})", dim(), shape());
  return dim() < 2 ? transpose(0, 0) : transpose(0, 1);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  Tensor out = raw::narrow(*this, d, start, length);
  return picking_view(out, *this, "NarrowBackward0",
                      [d, start, length](const Tensor& t) { return raw::narrow(t, d, start, length); });
}

Tensor Tensor::slice(int64_t d, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step) const {
  Tensor out = raw::slice(*this, d, start, end, step);
  return picking_view(out, *this, "SliceBackward0",
                      [d, start, end, step](const Tensor& t) { return raw::slice(t, d, start, end, step); });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  Tensor out = raw::select(*this, d, index);
  return picking_view(out, *this, "SelectBackward0", [d, index](const Tensor& t) { return raw::select(t, d, index); });
}

Tensor Tensor::expand(const Shape& s) const {
  Tensor out = raw::expand(*this, s);
  if (needs_grad(*this)) {
    Shape shape = this->shape();
    record("ExpandBackward0", {*this}, {out}, {}, [shape](BackwardContext& c) { return grads(sum_to(c.grad(0), shape)); });
  }
  mark_view(out, *this);
  return out;
}

Tensor Tensor::squeeze() const { return reshape_like_view(raw::squeeze(*this, std::nullopt), *this, "SqueezeBackward0"); }
Tensor Tensor::squeeze(int64_t d) const { return reshape_like_view(raw::squeeze(*this, d), *this, "SqueezeBackward1"); }
Tensor Tensor::unsqueeze(int64_t d) const { return reshape_like_view(raw::unsqueeze(*this, d), *this, "UnsqueezeBackward0"); }
Tensor Tensor::flatten(int64_t s, int64_t e) const { return reshape_like_view(raw::flatten(*this, s, e), *this, "FlattenBackward0"); }
Tensor Tensor::unflatten(int64_t d, const Shape& sizes) const {
  return reshape_like_view(raw::unflatten(*this, d, sizes), *this, "UnflattenBackward0");
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = raw::clone(*this);
  if (needs_grad(*this)) record("CloneBackward0", {*this}, {out}, {}, [](BackwardContext& c) { return grads(c.grad(0)); });
  return out;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = raw::to_contiguous(*this, dt, device());
  if (needs_grad(*this) && is_floating(dt)) {
    const DType back = dtype();
    record("ToCopyBackward0", {*this}, {out}, {}, [back](BackwardContext& c) { return grads(c.grad(0).to(back)); });
  }
  return out;
}

Tensor Tensor::to(Device d, bool non_blocking) const {
  if (d == device()) return *this;
  raw::check_device(d, "to");
  Tensor out = raw::to_contiguous(*this, dtype(), d, non_blocking);
  if (needs_grad(*this)) {
    const Device back = device();
    record("ToCopyBackward0", {*this}, {out}, {}, [back](BackwardContext& c) { return grads(c.grad(0).to(back)); });
  }
  return out;
}

Tensor Tensor::pin_memory() const {
  // Differentiable like a copy (PyTorch records it as a copy too).
  Tensor out = raw::pin_memory(*this);
  if (!out.is_same(*this) && needs_grad(*this))
    record("PinMemoryBackward0", {*this}, {out}, {}, [](BackwardContext& c) { return grads(c.grad(0)); });
  return out;
}

Tensor Tensor::detach() const {
  raw::check_defined(*this, "detach", "input");
  return raw::as_strided(*this, shape(), strides(), storage_offset());
}

const Tensor& Tensor::detach_() const {
  if (impl().autograd) {
    impl().autograd->grad_fn.reset();
    impl().autograd->requires_grad = false;
    impl().autograd->is_view = false;
  }
  return *this;
}

}  // namespace focus
