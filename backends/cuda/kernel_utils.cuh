#pragma once
/// What every CUDA kernel file shares: dtype dispatch (with __half and __nv_bfloat16), the
/// strided indexer that turns a linear element number into offsets of several views at
/// once (dims coalesced on the host, 32-bit arithmetic when the views allow it), launch
/// sizes, and the accumulation type of each dtype. Included by .cu files only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <limits>

#include "backends/backend.h"
#include "backends/cuda/check.h"
#include "backends/cuda/context.h"
#include "core/error.h"

namespace focus::cuda_detail {

inline constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over n items (capped: each thread then loops).
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (int64_t{1} << 20) ? (int64_t{1} << 20) : b));
}

// ---- dtypes ------------------------------------------------------------------------------
/// The type arithmetic on T is done in: float for the 16-bit floats and float32, double for
/// float64, T itself for integers and bool.
template <typename T> struct AccType { using type = T; };
template <> struct AccType<__half> { using type = float; };
template <> struct AccType<__nv_bfloat16> { using type = float; };
template <typename T> using acc_t = typename AccType<T>::type;

/// Conversions through float for the 16-bit types (nvcc's own operators are ambiguous for
/// some integer types).
template <typename To, typename From> __host__ __device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, __half> || std::is_same_v<From, __nv_bfloat16>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else {
    return static_cast<To>(v);
  }
}

template <typename F> decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kFloat16: return f(__half{});
    case kBFloat16: return f(__nv_bfloat16{});
    default: FOCUS_FAIL("[{}] expected a floating tensor on cuda, got {}", op, t);
  }
}

template <typename F> decltype(auto) dispatch_all(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kFloat16: return f(__half{});
    case kBFloat16: return f(__nv_bfloat16{});
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    case kUInt8: return f(uint8_t{});
    case kBool: return f(bool{});
    case kInt8: break;  // a storage dtype (quantized weights): copy and fill only
  }
  FOCUS_FAIL("[{}] not implemented for {} tensors on cuda", op, t);
}

template <typename F> decltype(auto) dispatch_index(DType t, const char* op, F&& f) {
  switch (t) {
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    default: FOCUS_FAIL("[{}] indices must be int64 or int32, got {}", op, t);
  }
}

// ---- strided indexing ----------------------------------------------------------------------
/// Offsets (in elements) of N views of one shape, from a linear row-major element number.
template <int N, typename I> struct Indexer {
  int ndim = 0;
  I sizes[kMaxDims];
  I strides[N][kMaxDims];
  __device__ __forceinline__ void offsets(I linear, I (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const I s = sizes[d];
      const I i = linear % s;
      linear /= s;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
  }
};

/// The views' shared geometry with size-1 dims dropped and neighbouring dims merged where
/// every view allows it (views[0]'s sizes are the shape; the others must match).
template <int N> struct Coalesced {
  int ndim = 0;
  int64_t numel = 1;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];
};

template <int N> Coalesced<N> coalesce(const TensorView* const (&views)[N]) {
  Coalesced<N> c;
  const TensorView& shape = *views[0];
  c.numel = shape.numel;
  for (int d = 0; d < shape.ndim; ++d) {
    if (shape.sizes[d] == 1) continue;
    if (c.ndim > 0) {
      bool merge = true;
      for (int k = 0; k < N; ++k)
        merge = merge && c.strides[k][c.ndim - 1] == views[k]->strides[d] * shape.sizes[d];
      if (merge) {
        c.sizes[c.ndim - 1] *= shape.sizes[d];
        for (int k = 0; k < N; ++k) c.strides[k][c.ndim - 1] = views[k]->strides[d];
        continue;
      }
    }
    c.sizes[c.ndim] = shape.sizes[d];
    for (int k = 0; k < N; ++k) c.strides[k][c.ndim] = views[k]->strides[d];
    ++c.ndim;
  }
  return c;
}

/// True when every linear number and offset of the views fits 32-bit arithmetic.
template <int N> bool fits_int32(const Coalesced<N>& c) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  if (c.numel > kMax) return false;
  for (int k = 0; k < N; ++k) {
    int64_t hi = 0;
    for (int d = 0; d < c.ndim; ++d) {
      const int64_t s = c.strides[k][d] < 0 ? -c.strides[k][d] : c.strides[k][d];
      hi += (c.sizes[d] - 1) * s;
    }
    if (hi > kMax) return false;
  }
  return true;
}

template <int N, typename I> Indexer<N, I> make_indexer(const Coalesced<N>& c) {
  Indexer<N, I> ix;
  ix.ndim = c.ndim;
  for (int d = 0; d < c.ndim; ++d) {
    ix.sizes[d] = static_cast<I>(c.sizes[d]);
    for (int k = 0; k < N; ++k) ix.strides[k][d] = static_cast<I>(c.strides[k][d]);
  }
  return ix;
}

/// True when the coalesced views are all one contiguous run (stride 1, or a single element).
template <int N> bool all_contiguous(const Coalesced<N>& c) {
  if (c.ndim == 0) return true;
  if (c.ndim > 1) return false;
  for (int k = 0; k < N; ++k)
    if (c.strides[k][0] != 1) return false;
  return true;
}

/// The stream of the device whose backend runs the kernel (and makes that device current).
inline cudaStream_t stream_of(int device) { return context(device).stream(); }

}  // namespace focus::cuda_detail
