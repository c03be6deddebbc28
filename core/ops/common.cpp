#include "core/ops/common.h"

#include <cstring>
#include <string>

#include "core/ops/view.h"

namespace focus::raw {

TensorView make_view(const Tensor& t) {
  TensorView v;
  FOCUS_CHECK(t.dim() <= kMaxDims, "[tensor] tensors with more than {} dims are not supported (got {})",
              kMaxDims, t.dim());
  v.data = t.data_ptr();
  v.dtype = t.dtype();
  v.ndim = static_cast<int>(t.dim());
  v.numel = t.numel();
  for (int d = 0; d < v.ndim; ++d) {
    v.sizes[d] = t.shape()[d];
    v.strides[d] = t.strides()[d];
  }
  return v;
}

TensorView make_view(const Tensor& t, const Shape& shape) {
  FOCUS_CHECK(static_cast<int64_t>(shape.size()) <= kMaxDims,
              "[tensor] tensors with more than {} dims are not supported (got {})", kMaxDims, shape.size());
  TensorView v;
  v.data = t.data_ptr();
  v.dtype = t.dtype();
  v.ndim = static_cast<int>(shape.size());
  v.numel = 1;
  const int64_t lead = static_cast<int64_t>(shape.size()) - t.dim();
  for (int d = 0; d < v.ndim; ++d) {
    v.sizes[d] = shape[d];
    v.numel *= shape[d];
    const int64_t sd = d - lead;
    v.strides[d] = (sd < 0 || t.shape()[sd] == 1) ? 0 : t.strides()[sd];
  }
  return v;
}

Tensor empty(const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->numel = checked_numel(shape, "empty");
  FOCUS_CHECK(static_cast<int64_t>(shape.size()) <= kMaxDims,
              "[empty] tensors with more than {} dims are not supported (got {})", kMaxDims, shape.size());
  const size_t es = dtype_size(dtype);
  FOCUS_CHECK(impl->numel <= static_cast<int64_t>(std::numeric_limits<int64_t>::max() / static_cast<int64_t>(es)),
              "[empty] shape {} is too large", shape);
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(impl->numel) * es, device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor as_strided(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = t.dtype();
  impl->numel = checked_numel(shape, "view");
  return Tensor(std::move(impl));
}

void copy_(const Tensor& dst, const Tensor& src, bool non_blocking) {
  check_defined(dst, "copy_", "self");
  check_defined(src, "copy_", "src");
  FOCUS_CHECK(broadcast_shapes(dst.shape(), src.shape(), "copy_") == dst.shape(),
              "[copy_] source of shape {} cannot be broadcast to destination shape {}", src.shape(), dst.shape());
  if (dst.numel() == 0) return;
  if (dst.device() == src.device()) {
    backend_of(dst).copy(make_view(dst), make_view(src, dst.shape()));
    return;
  }
  // From pinned memory, as it is, to a GPU: queue the copy and return. The source's storage
  // is kept alive until the copy has finished.
  if (non_blocking && src.is_pinned() && !dst.device().is_cpu() && src.shape() == dst.shape() &&
      src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    backend_of(dst).copy_from_host_async(dst.data_ptr(), src.data_ptr(),
                                         static_cast<size_t>(src.numel()) * src.element_size(), src.storage());
    return;
  }
  // From a GPU into pinned memory: queue the copy and return; the values are there after the
  // next synchronisation of that GPU (torch's non_blocking semantics).
  if (non_blocking && dst.is_pinned() && !src.device().is_cpu() && src.shape() == dst.shape() &&
      src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    backend_of(src).copy_to_host_async(dst.data_ptr(), src.data_ptr(),
                                       static_cast<size_t>(src.numel()) * src.element_size(), dst.storage());
    return;
  }
  // Across devices: make a contiguous copy of src in dst's dtype on src's device, move the
  // bytes, then copy into dst's layout. Between two GPUs the bytes pass through the host.
  if (!src.device().is_cpu() && !dst.device().is_cpu()) {
    copy_(dst, to_contiguous(src, src.dtype(), kCPU));
    return;
  }
  Tensor s = to_contiguous(expand(src, dst.shape()), dst.dtype(), src.device());
  Tensor staged = dst.is_contiguous() ? dst : empty(dst.shape(), dst.dtype(), dst.device());
  const size_t nbytes = static_cast<size_t>(s.numel()) * s.element_size();
  if (src.device().is_cpu()) {
    backend_of(staged).copy_from_host(staged.data_ptr(), s.data_ptr(), nbytes);
  } else {
    backend_of(s).copy_to_host(staged.data_ptr(), s.data_ptr(), nbytes);
  }
  if (!staged.is_same(dst)) backend_of(dst).copy(make_view(dst), make_view(staged));
}

Tensor to_contiguous(const Tensor& t, DType dtype, Device device, bool non_blocking) {
  check_defined(t, "to", "input");
  if (t.dtype() == dtype && t.device() == device && t.is_contiguous()) return t;
  // A non-blocking move from a GPU lands in pinned memory, so the copy can be queued.
  Tensor out = non_blocking && device.is_cpu() && !t.device().is_cpu() && t.dtype() == dtype && t.is_contiguous()
                   ? empty_pinned(t.shape(), dtype)
                   : empty(t.shape(), dtype, device);
  copy_(out, t, non_blocking);
  return out;
}

Tensor pin_memory(const Tensor& t) {
  check_defined(t, "pin_memory", "input");
  FOCUS_CHECK(t.device().is_cpu(), "[pin_memory] only CPU tensors can be pinned, got a tensor on {}", t.device());
  if (t.is_pinned() && t.is_contiguous()) return t;
  Tensor out = empty_pinned(t.shape(), t.dtype());
  copy_(out, t);
  return out;
}

Tensor empty_pinned(const Shape& shape, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->numel = checked_numel(shape, "pin_memory");
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(impl->numel) * dtype_size(dtype), Storage::Pinned{});
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor clone(const Tensor& t) {
  check_defined(t, "clone", "input");
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

void check_defined(const Tensor& t, const char* op, const char* arg) {
  FOCUS_CHECK(t.defined(), "[{}] argument '{}' is an undefined tensor", op, arg);
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  FOCUS_CHECK(a.device() == b.device(), "[{}] expected all tensors on one device, got {} and {}", op, a.device(),
              b.device());
}

void check_device(Device d, const char* op) {
  if (d.is_cpu()) return;
  try {
    (void)backend_for(d);
  } catch (const Error& e) {
    // The backend's message starts with its own "[cuda] " tag: replace it with the op's.
    std::string why = e.what();
    if (!why.empty() && why[0] == '[') {
      const size_t close = why.find("] ");
      if (close != std::string::npos) why = why.substr(close + 2);
    }
    FOCUS_FAIL("[{}] cannot use device {}: {}", op, d, why);
  }
}

void check_floating(const Tensor& t, const char* op, const char* arg) {
  FOCUS_CHECK(t.is_floating_point(), "[{}] expected a floating point '{}', got {}", op, arg, t.dtype());
}

}  // namespace focus::raw
