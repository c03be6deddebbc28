#include "core/tensor.h"

#include <limits>

#include "backends/backend.h"
#include "core/creation.h"
#include "core/ops/common.h"

namespace focus {

Storage::Storage(size_t n, Device d) : nbytes(n), device(d) {
  data = backend_for(d).allocate(n);
}

Storage::Storage(size_t n, Pinned) : nbytes(n), device(kCPU), pinned(true) {
  // Page-locked memory comes from the CUDA driver; device 0's backend hands it out (it is
  // usable by every GPU), or says why it cannot.
  data = backend_for(Device(DeviceType::CUDA, 0)).allocate_pinned(n);
}

Storage::~Storage() {
  if (!data) return;
  if (pinned) backend_for(Device(DeviceType::CUDA, 0)).deallocate_pinned(data, nbytes);
  else backend_for(device).deallocate(data, nbytes);
}

void Tensor::throw_undefined() { FOCUS_FAIL("[tensor] use of an undefined tensor"); }

int64_t Tensor::size(int64_t d) const { return shape()[static_cast<size_t>(wrap_dim(d, dim(), "size"))]; }
int64_t Tensor::stride(int64_t d) const {
  return strides()[static_cast<size_t>(wrap_dim(d, dim(), "stride"))];
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;
  const auto& s = shape();
  const auto& st = strides();
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (s[d] != 1 && st[d] != expected) return false;
    expected *= s[d];
  }
  return true;
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data) + impl().offset * static_cast<int64_t>(element_size());
}

void Tensor::check_dtype_access(DType t, const char* op) const {
  FOCUS_CHECK(dtype() == t, "[{}] tensor has dtype {}, requested {}", op, dtype(), t);
  FOCUS_CHECK(device().is_cpu(), "[{}] tensor is on {}; move it to the cpu first", op, device());
}

template <typename T> std::vector<T> Tensor::to_vector() const {
  if (!device().is_cpu())
    raw::backend_of(*this).fail_if_capturing("to_vector", "the host waits for the values, which a recorded "
                                                          "graph never produces");
  Tensor c = raw::to_contiguous(*this, dtype_of_v<T>, kCPU);
  const T* p = static_cast<const T*>(c.data_ptr());
  return std::vector<T>(p, p + c.numel());
}

template <typename T> T Tensor::item() const {
  FOCUS_CHECK(numel() == 1, "[item] a tensor with {} elements cannot be converted to a scalar (shape {})",
              numel(), shape());
  if (!device().is_cpu())
    raw::backend_of(*this).fail_if_capturing("item", "the host waits for the value, which a recorded graph "
                                                     "never produces");
  return to_vector<T>()[0];
}

#define FOCUS_INSTANTIATE(T)                            \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
FOCUS_INSTANTIATE(float)
FOCUS_INSTANTIATE(double)
FOCUS_INSTANTIATE(int64_t)
FOCUS_INSTANTIATE(int32_t)
FOCUS_INSTANTIATE(uint8_t)
FOCUS_INSTANTIATE(bool)
#undef FOCUS_INSTANTIATE

const Tensor& Tensor::set_name(std::string n) const {
  impl().name = std::move(n);
  return *this;
}

// ---- shape helpers ------------------------------------------------------------------------

int64_t checked_numel(const Shape& shape, const char* op) {
  // The strides of a contiguous tensor multiply max(size, 1), so a zero-element shape such as
  // [2^32, 0, 2^32] has no elements but strides that overflow: check that product (which
  // bounds the element count) rather than the element count alone, as PyTorch does.
  int64_t n = 1, span = 1;
  for (int64_t s : shape) {
    FOCUS_CHECK(s >= 0, "[{}] negative size in shape {}", op, shape);
    const int64_t m = std::max<int64_t>(s, 1);
    FOCUS_CHECK(span <= std::numeric_limits<int64_t>::max() / m,
                "[{}] shape {} is too large: its element count or strides overflow int64", op, shape);
    span *= m;
    n = s == 0 ? 0 : n * s;  // n <= span
  }
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  checked_numel(shape, "contiguous_strides");  // every caller's shape passed it already; this one is cheap
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t n = std::max<int64_t>(ndim, 1);  // 0-d tensors accept dim 0 and -1
  FOCUS_CHECK(dim >= -n && dim < n, "[{}] dim {} is out of range for a tensor with {} dims (expected {} to {})",
              op, dim, ndim, -n, n - 1);
  return dim < 0 ? dim + n : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t sa = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t sb = i < n - b.size() ? 1 : b[i - (n - b.size())];
    FOCUS_CHECK(sa == sb || sa == 1 || sb == 1,
                "[{}] shapes {} and {} cannot be broadcast together (dim {}: {} vs {})", op, a, b,
                static_cast<int64_t>(i) - static_cast<int64_t>(n), sa, sb);
    out[i] = sa == 1 ? sb : sa;
  }
  return out;
}

}  // namespace focus
