#pragma once
/// Host helpers that the CPU and CUDA backends' raw ops share (backends/cpu/*.cpp and
/// backends/cuda/*.cu include it; nothing here runs on the device).
#include <cstdint>

#include "backends/backend.h"
#include "core/error.h"

namespace focus::common {

/// Moving data needs only the element size, so the copying kernels serve every dtype (the
/// 16-bit floats included): calls f with an unsigned integer type of that size.
template <typename F> void dispatch_bytes(DType t, const char* op, F&& f) {
  switch (dtype_size(t)) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
    default: FOCUS_FAIL("[{}] unsupported element size for {}", op, t);
  }
}

/// A contiguous tensor seen as [outer, D, inner] around dim (a 0-d tensor is one element).
struct Dims3 {
  int64_t outer = 1, D = 1, inner = 1;
};
inline Dims3 split_at(const TensorView& v, int dim) {
  Dims3 r;
  if (v.ndim == 0) return r;
  for (int d = 0; d < dim; ++d) r.outer *= v.sizes[d];
  r.D = v.sizes[dim];
  for (int d = dim + 1; d < v.ndim; ++d) r.inner *= v.sizes[d];
  return r;
}

/// A reduction's name, as its errors give it.
inline const char* reduce_op_name(Backend::ReduceOp op) {
  using ReduceOp = Backend::ReduceOp;
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Prod: return "prod";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
    case ReduceOp::Norm: return "norm";
  }
  return "reduce";
}

}  // namespace focus::common
