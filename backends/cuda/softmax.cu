// CUDA kernel pair for softmax and log_softmax along any dim of a contiguous tensor, seen as
// [outer, D, inner]. inner == 1 (the dim is the last one that is not 1): a warp (D <= 1024)
// or a block per row, one pass for the online max/sum (backends/common/norm_math.h) and one
// to write. inner > 1: a thread per (outer, inner) column, walking D with stride inner, so
// the threads of a warp read neighbouring elements. Arithmetic in acc_t<T> (float for the
// 16-bit types).
#include <type_traits>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/fused_utils.cuh"

namespace focus::cuda_detail {

using namespace fused;

namespace {

using common::MaxSum;

// ---- forward ----------------------------------------------------------------------------------

template <typename T, int TPR>
__global__ void __launch_bounds__(kRowBlock, 1) softmax_rows_kernel(T* __restrict__ y, const T* __restrict__ x,
                                                                 int64_t R, int64_t D, bool log) {
  using A = acc_t<T>;
  const int64_t lane = threadIdx.x;
  const int64_t rows_per_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < R; r += rows_per_step) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    MaxSum<A> st = common::maxsum_empty<A>();
    for (int64_t i = lane; i < D; i += TPR) st = common::maxsum_push(st, convert<A>(xr[i]));
    st = row_allreduce<TPR>(st, MaxSumOp{});
    if (!log) {
      const A inv = A(1) / st.sum;
      for (int64_t i = lane; i < D; i += TPR) yr[i] = convert<T>(common::softmax_value(convert<A>(xr[i]), st.max, inv));
    } else {
      const A ls = common::hd_log(st.sum);
      for (int64_t i = lane; i < D; i += TPR)
        yr[i] = convert<T>(common::log_softmax_value(convert<A>(xr[i]), st.max, ls));
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 1) softmax_cols_kernel(T* __restrict__ y, const T* __restrict__ x,
                                                                int64_t outer, int64_t D, int64_t inner, bool log) {
  using A = acc_t<T>;
  const int64_t columns = outer * inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; col < columns; col += stride) {
    const int64_t o = col / inner, j = col - o * inner;
    const T* xc = x + o * D * inner + j;
    T* yc = y + o * D * inner + j;
    MaxSum<A> st = common::maxsum_empty<A>();
    for (int64_t d = 0; d < D; ++d) st = common::maxsum_push(st, convert<A>(xc[d * inner]));
    if (!log) {
      const A inv = A(1) / st.sum;
      for (int64_t d = 0; d < D; ++d)
        yc[d * inner] = convert<T>(common::softmax_value(convert<A>(xc[d * inner]), st.max, inv));
    } else {
      const A ls = common::hd_log(st.sum);
      for (int64_t d = 0; d < D; ++d)
        yc[d * inner] = convert<T>(common::log_softmax_value(convert<A>(xc[d * inner]), st.max, ls));
    }
  }
}

// ---- backward ---------------------------------------------------------------------------------
// softmax:     gx = y * (g - sum(g * y))
// log_softmax: gx = g - exp(y) * sum(g)

template <typename T, int TPR>
__global__ void __launch_bounds__(kRowBlock, 1) softmax_bw_rows_kernel(T* __restrict__ gx, const T* __restrict__ g,
                                                                    const T* __restrict__ y, int64_t R, int64_t D,
                                                                    bool log) {
  using A = acc_t<T>;
  const int64_t lane = threadIdx.x;
  const int64_t rows_per_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < R; r += rows_per_step) {
    const T* gr = g + r * D;
    const T* yr = y + r * D;
    T* o = gx + r * D;
    A s = 0;
    if (!log) {
      for (int64_t i = lane; i < D; i += TPR) s += convert<A>(gr[i]) * convert<A>(yr[i]);
    } else {
      for (int64_t i = lane; i < D; i += TPR) s += convert<A>(gr[i]);
    }
    s = row_allreduce<TPR>(s, AddOp{});
    if (!log) {
      for (int64_t i = lane; i < D; i += TPR) o[i] = convert<T>(convert<A>(yr[i]) * (convert<A>(gr[i]) - s));
    } else {
      for (int64_t i = lane; i < D; i += TPR)
        o[i] = convert<T>(convert<A>(gr[i]) - common::hd_exp(convert<A>(yr[i])) * s);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 1) softmax_bw_cols_kernel(T* __restrict__ gx, const T* __restrict__ g,
                                                                   const T* __restrict__ y, int64_t outer, int64_t D,
                                                                   int64_t inner, bool log) {
  using A = acc_t<T>;
  const int64_t columns = outer * inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; col < columns; col += stride) {
    const int64_t o = col / inner, j = col - o * inner;
    const int64_t base = o * D * inner + j;
    A s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = base + d * inner;
      s += log ? convert<A>(g[k]) : convert<A>(g[k]) * convert<A>(y[k]);
    }
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = base + d * inner;
      const A gv = convert<A>(g[k]), yv = convert<A>(y[k]);
      gx[k] = convert<T>(log ? gv - common::hd_exp(yv) * s : yv * (gv - s));
    }
  }
}

// Launches one kernel of the pair over s: rows(tpr) when the rows are contiguous (inner 1),
// with tpr (an std::integral_constant) threads per row, a block for long rows and a warp
// otherwise; cols() (a thread per column) when they are strided.
template <typename Rows, typename Cols> void launch_pair(const Dims3& s, const Rows& rows, const Cols& cols) {
  if (s.inner != 1) return cols();
  if (use_block_per_row(s.D)) return rows(std::integral_constant<int, kRowBlock>{});
  rows(std::integral_constant<int, 32>{});
}

}  // namespace

void CudaBackend::softmax(const TensorView& out, const TensorView& in, int dim, bool log) {
  if (out.numel == 0) return;
  const char* name = log ? "log_softmax" : "softmax";
  const Dims3 s = split_at(in, dim);
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(in.dtype, name, [&](auto tag) {
    using T = decltype(tag);
    T* y = out.ptr<T>();
    const T* x = in.ptr<T>();
    launch_pair(
        s,
        [&](auto tpr) {
          constexpr int TPR = decltype(tpr)::value;
          softmax_rows_kernel<T, TPR><<<row_grid<TPR>(s.outer), row_block<TPR>(), 0, stream>>>(y, x, s.outer, s.D, log);
        },
        [&] {
          softmax_cols_kernel<T>
              <<<blocks_for(s.outer * s.inner), kThreads, 0, stream>>>(y, x, s.outer, s.D, s.inner, log);
        });
    FOCUS_CUDA_LAUNCH_CHECK(name);
  });
}

void CudaBackend::softmax_backward(const TensorView& grad_in, const TensorView& grad_out, const TensorView& out,
                                   int dim, bool log) {
  if (grad_in.numel == 0) return;
  const char* name = log ? "log_softmax_backward" : "softmax_backward";
  const Dims3 s = split_at(out, dim);
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(out.dtype, name, [&](auto tag) {
    using T = decltype(tag);
    T* gx = grad_in.ptr<T>();
    const T* g = grad_out.ptr<T>();
    const T* y = out.ptr<T>();
    launch_pair(
        s,
        [&](auto tpr) {
          constexpr int TPR = decltype(tpr)::value;
          softmax_bw_rows_kernel<T, TPR>
              <<<row_grid<TPR>(s.outer), row_block<TPR>(), 0, stream>>>(gx, g, y, s.outer, s.D, log);
        },
        [&] {
          softmax_bw_cols_kernel<T>
              <<<blocks_for(s.outer * s.inner), kThreads, 0, stream>>>(gx, g, y, s.outer, s.D, s.inner, log);
        });
    FOCUS_CUDA_LAUNCH_CHECK(name);
  });
}

}  // namespace focus::cuda_detail
