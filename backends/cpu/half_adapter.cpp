#include "backends/cpu/half_adapter.h"

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"

namespace focus::cpu {

Float32Scope::~Float32Scope() {
  for (const Temp& t : temps_) backend_.deallocate(t.data, t.nbytes);
}

TensorView Float32Scope::widen(const TensorView& v, DType dtype, bool read, bool write) {
  if (!is_16bit(v.dtype)) return v;
  TensorView t = v;
  t.dtype = dtype;
  if (!v.data) return t;  // an absent view stays absent, now of the kernel's dtype
  // The caller's view and the temporary with every broadcast dim (stride 0) collapsed to one
  // element: the temporary holds each distinct element once, contiguous in row-major order.
  TensorView compact = v;
  TensorView tmp = t;
  int64_t n = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.strides[d] == 0 && v.sizes[d] > 1) {
      compact.sizes[d] = 1;
      t.strides[d] = 0;
    } else {
      t.strides[d] = n;
      n *= v.sizes[d];
    }
    tmp.sizes[d] = compact.sizes[d];
    tmp.strides[d] = t.strides[d];
  }
  compact.numel = tmp.numel = n;
  // Never null (null means absent), even for an empty view.
  const size_t nbytes = static_cast<size_t>(n > 0 ? n : 1) * dtype_size(dtype);
  void* data = backend_.allocate(nbytes);
  temps_.push_back({data, nbytes});
  t.data = tmp.data = data;
  if (read) backend_.copy(tmp, compact);  // exact: float32 holds every 16-bit value
  if (write) writes_.push_back({compact, tmp});
  return t;
}

void Float32Scope::commit() {
  // copy() rounds to nearest even (common/half.h), into the caller's strides.
  for (const WriteBack& w : writes_) backend_.copy(w.dst, w.src);
  writes_.clear();
}

}  // namespace focus::cpu
