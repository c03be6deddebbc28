// CUDA kernel pairs for layer_norm and add_layer_norm (a residual add fused in front) over
// the rows of a contiguous [R, N] input, in the manner of llm.c's layernorm_forward /
// layernorm_backward:
//   forward: a warp (N <= 1024) or a block per row; Welford mean/variance in acc_t<T>
//     (backends/common/norm_math.h), then the normalized row; mean and rstd [R] saved.
//   add_layer_norm: the same kernels, the forward writing sum = x + residual as it reads
//     it, the backward adding the gradient that reached sum to dx;
//   backward: dx per row as the forward; dweight/dbias as column sums over the rows, in two
//     deterministic passes (no atomics): blocks of 32 columns x a fixed chunk of rows write
//     partial sums [chunks, 2, N], then one thread per column adds its chunks in order.
#include <algorithm>
#include <type_traits>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/fused_utils.cuh"

namespace focus::cuda_detail {

using namespace fused;

namespace {

using common::Welford;

// Res (add_layer_norm): the row of sum = x + res is computed (rounded to T, as the plain
// add), written, and normalized; each lane reads back only the elements it wrote itself.
template <typename T, int TPR, bool Res = false>
__global__ void __launch_bounds__(kRowBlock, 1)
    layer_norm_kernel(T* __restrict__ out, T* __restrict__ mean, T* __restrict__ rstd, const T* __restrict__ x,
                      const T* __restrict__ w, const T* __restrict__ b, int64_t R, int64_t N, acc_t<T> eps,
                      T* __restrict__ sum = nullptr, const T* __restrict__ res = nullptr) {
  using A = acc_t<T>;
  const int64_t lane = threadIdx.x;
  const int64_t rows_per_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < R; r += rows_per_step) {
    const T* xr = x + r * N;
    T* o = out + r * N;
    Welford<A> st = common::welford_empty<A>();
    if constexpr (Res) {
      const T* rr = res + r * N;
      T* sr = sum + r * N;
      for (int64_t i = lane; i < N; i += TPR) {
        const T v = convert<T>(convert<A>(xr[i]) + convert<A>(rr[i]));
        sr[i] = v;
        common::welford_add(st, convert<A>(v));
      }
      xr = sr;
    } else {
      for (int64_t i = lane; i < N; i += TPR) common::welford_add(st, convert<A>(xr[i]));
    }
    st = row_allreduce<TPR>(st, WelfordOp{});
    const A m = st.mean;
    const A rs = common::layer_norm_rstd(common::welford_var(st, A(0)), eps);
    for (int64_t i = lane; i < N; i += TPR) {
      A n = (convert<A>(xr[i]) - m) * rs;
      if (w) n = n * convert<A>(w[i]);
      if (b) n = n + convert<A>(b[i]);
      o[i] = convert<T>(n);
    }
    if (lane == 0) {
      mean[r] = convert<T>(m);
      rstd[r] = convert<T>(rs);
    }
  }
}

// dnorm = w * dout; dx = (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) * rstd
// (+ dsum for add_layer_norm_backward when dsum is given)
template <typename T, int TPR>
__global__ void __launch_bounds__(kRowBlock, 1)
    layer_norm_dx_kernel(T* __restrict__ dx, const T* __restrict__ dout, const T* __restrict__ x,
                         const T* __restrict__ mean, const T* __restrict__ rstd, const T* __restrict__ w, int64_t R,
                         int64_t N, const T* __restrict__ dsum = nullptr) {
  using A = acc_t<T>;
  const int64_t lane = threadIdx.x;
  const int64_t rows_per_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < R; r += rows_per_step) {
    const T* xr = x + r * N;
    const T* gr = dout + r * N;
    T* o = dx + r * N;
    const A m = convert<A>(mean[r]), rs = convert<A>(rstd[r]);
    Pair<A> s{A(0), A(0)};
    for (int64_t i = lane; i < N; i += TPR) {
      const A n = (convert<A>(xr[i]) - m) * rs;
      A dn = convert<A>(gr[i]);
      if (w) dn = dn * convert<A>(w[i]);
      s.a += dn;
      s.b += dn * n;
    }
    s = row_allreduce<TPR>(s, PairAddOp{});
    const A a = s.a / static_cast<A>(N), bsum = s.b / static_cast<A>(N);
    for (int64_t i = lane; i < N; i += TPR) {
      const A n = (convert<A>(xr[i]) - m) * rs;
      A dn = convert<A>(gr[i]);
      if (w) dn = dn * convert<A>(w[i]);
      if (dsum == nullptr) {
        o[i] = convert<T>(common::layer_norm_dx(dn, n, a, bsum, rs));
      } else if constexpr (std::is_same_v<T, A>) {
        o[i] = common::add_layer_norm_dx(dn, n, a, bsum, rs, convert<A>(dsum[r * N + i]));
      } else {
        // 16-bit: the norm's gradient rounded to T first, then the add in A, as the composed ops
        const A d = convert<A>(convert<T>(common::layer_norm_dx(dn, n, a, bsum, rs)));
        o[i] = convert<T>(d + convert<A>(dsum[r * N + i]));
      }
    }
  }
}

// Partial column sums: block (column tile, chunk) sums rows [chunk * rows_per_chunk, ...) of
// 32 columns, 8 row lanes per column, then adds the 8 lanes in order.
constexpr int kColTile = 32;
constexpr int kRowLanes = 8;

template <typename T>
__global__ void __launch_bounds__(kColTile* kRowLanes, 1)
    layer_norm_param_partial_kernel(acc_t<T>* __restrict__ part, const T* __restrict__ dout,
                                    const T* __restrict__ x, const T* __restrict__ mean,
                                    const T* __restrict__ rstd, int64_t R, int64_t N, int64_t rows_per_chunk) {
  using A = acc_t<T>;
  __shared__ A sw[kRowLanes][kColTile + 1];
  __shared__ A sb[kRowLanes][kColTile + 1];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < R ? r0 + rows_per_chunk : R;
  A aw = 0, ab = 0;
  if (col < N) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) {
      const A g = convert<A>(dout[r * N + col]);
      const A n = (convert<A>(x[r * N + col]) - convert<A>(mean[r])) * convert<A>(rstd[r]);
      aw += n * g;
      ab += g;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && col < N) {
    A tw = sw[0][threadIdx.x], tb = sb[0][threadIdx.x];
#pragma unroll
    for (int k = 1; k < kRowLanes; ++k) {
      tw += sw[k][threadIdx.x];
      tb += sb[k][threadIdx.x];
    }
    part[(chunk * 2) * N + col] = tw;
    part[(chunk * 2 + 1) * N + col] = tb;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 1)
    layer_norm_param_final_kernel(T* __restrict__ dw, T* __restrict__ db, const acc_t<T>* __restrict__ part,
                                  int64_t chunks, int64_t N) {
  using A = acc_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; col < N; col += stride) {
    A tw = 0, tb = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      tw += part[(c * 2) * N + col];
      tb += part[(c * 2 + 1) * N + col];
    }
    if (dw) dw[col] = convert<T>(tw);
    if (db) db[col] = convert<T>(tb);
  }
}

// Rows per partial sum: chunks of at least 32 rows, at most 1024 chunks; depends on R
// alone, so the sums have the same bits on every run.
constexpr int64_t kMinChunkRows = 32;
constexpr int64_t kMaxChunks = 1024;

}  // namespace

void CudaBackend::layer_norm(const TensorView& out, const TensorView& mean, const TensorView& rstd,
                             const TensorView& in, const TensorView& weight, const TensorView& bias, double eps) {
  const int64_t R = mean.numel, N = R > 0 ? in.numel / R : 0;
  if (in.numel == 0) return;
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(in.dtype, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    const T* b = bias.data ? bias.ptr<T>() : nullptr;
    if (use_block_per_row(N)) {
      layer_norm_kernel<T, kRowBlock><<<row_grid<kRowBlock>(R), row_block<kRowBlock>(), 0, stream>>>(
          out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), in.ptr<T>(), w, b, R, N, static_cast<A>(eps));
    } else {
      layer_norm_kernel<T, 32><<<row_grid<32>(R), row_block<32>(), 0, stream>>>(
          out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), in.ptr<T>(), w, b, R, N, static_cast<A>(eps));
    }
    FOCUS_CUDA_LAUNCH_CHECK("layer_norm");
  });
}

void CudaBackend::add_layer_norm(const TensorView& sum, const TensorView& out, const TensorView& mean,
                                 const TensorView& rstd, const TensorView& x, const TensorView& residual,
                                 const TensorView& weight, const TensorView& bias, double eps) {
  const int64_t R = mean.numel, N = R > 0 ? x.numel / R : 0;
  if (x.numel == 0) return;
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(x.dtype, "add_layer_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    const T* b = bias.data ? bias.ptr<T>() : nullptr;
    if (use_block_per_row(N)) {
      layer_norm_kernel<T, kRowBlock, true><<<row_grid<kRowBlock>(R), row_block<kRowBlock>(), 0, stream>>>(
          out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), x.ptr<T>(), w, b, R, N, static_cast<A>(eps), sum.ptr<T>(),
          residual.ptr<T>());
    } else {
      layer_norm_kernel<T, 32, true><<<row_grid<32>(R), row_block<32>(), 0, stream>>>(
          out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), x.ptr<T>(), w, b, R, N, static_cast<A>(eps), sum.ptr<T>(),
          residual.ptr<T>());
    }
    FOCUS_CUDA_LAUNCH_CHECK("add_layer_norm");
  });
}

namespace {

// layer_norm_backward, and add_layer_norm_backward when dsum is given (data not null).
void layer_norm_backward_impl(int index, const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                              const TensorView& dout, const TensorView& dsum, const TensorView& in,
                              const TensorView& mean, const TensorView& rstd, const TensorView& weight,
                              const char* op) {
  const int64_t R = mean.numel;
  const int64_t N = R > 0 ? in.numel / R : (dweight.data ? dweight.numel : dbias.numel);
  const cudaStream_t stream = stream_of(index);
  dispatch_float(in.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    T* dw = dweight.data ? dweight.ptr<T>() : nullptr;
    T* db = dbias.data ? dbias.ptr<T>() : nullptr;
    if (R == 0) {  // no rows: the parameter gradients are zero sums (all-zero bits are +0)
      if (dw && dweight.numel > 0)
        FOCUS_CUDA_CHECK(cudaMemsetAsync(dw, 0, static_cast<size_t>(dweight.numel) * sizeof(T), stream));
      if (db && dbias.numel > 0)
        FOCUS_CUDA_CHECK(cudaMemsetAsync(db, 0, static_cast<size_t>(dbias.numel) * sizeof(T), stream));
      return;
    }
    if (N == 0) return;  // rows of no elements: nothing to write
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    const T* ds = dsum.data ? dsum.ptr<T>() : nullptr;
    if (dx.data) {
      if (use_block_per_row(N)) {
        layer_norm_dx_kernel<T, kRowBlock><<<row_grid<kRowBlock>(R), row_block<kRowBlock>(), 0, stream>>>(
            dx.ptr<T>(), dout.ptr<T>(), in.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), w, R, N, ds);
      } else {
        layer_norm_dx_kernel<T, 32><<<row_grid<32>(R), row_block<32>(), 0, stream>>>(
            dx.ptr<T>(), dout.ptr<T>(), in.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), w, R, N, ds);
      }
      FOCUS_CUDA_LAUNCH_CHECK(op);
    }
    if (!dw && !db) return;
    const int64_t chunks = std::clamp<int64_t>((R + kMinChunkRows - 1) / kMinChunkRows, 1, kMaxChunks);
    const int64_t rows_per_chunk = (R + chunks - 1) / chunks;
    DeviceBuffer part(index, static_cast<size_t>(chunks * 2 * N) * sizeof(A));
    const int64_t col_tiles = (N + kColTile - 1) / kColTile;
    FOCUS_CHECK(col_tiles <= std::numeric_limits<int32_t>::max(), "[{}] rows of {} elements are too long", op, N);
    const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(chunks));
    layer_norm_param_partial_kernel<T><<<grid, dim3(kColTile, kRowLanes), 0, stream>>>(
        part.as<A>(), dout.ptr<T>(), in.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), R, N, rows_per_chunk);
    FOCUS_CUDA_LAUNCH_CHECK(op);
    layer_norm_param_final_kernel<T><<<blocks_for(N), kThreads, 0, stream>>>(dw, db, part.as<A>(), chunks, N);
    FOCUS_CUDA_LAUNCH_CHECK(op);
  });
}

}  // namespace

void CudaBackend::layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                                      const TensorView& dout, const TensorView& in, const TensorView& mean,
                                      const TensorView& rstd, const TensorView& weight) {
  layer_norm_backward_impl(index_, dx, dweight, dbias, dout, TensorView(), in, mean, rstd, weight,
                           "layer_norm_backward");
}

void CudaBackend::add_layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                                          const TensorView& dout, const TensorView& dsum, const TensorView& in,
                                          const TensorView& mean, const TensorView& rstd, const TensorView& weight) {
  layer_norm_backward_impl(index_, dx, dweight, dbias, dout, dsum, in, mean, rstd, weight,
                           "add_layer_norm_backward");
}

}  // namespace focus::cuda_detail
