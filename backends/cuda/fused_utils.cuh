#pragma once
/// What the fused kernel pairs (softmax.cu, layer_norm.cu, loss.cu, dropout.cu) share: row
/// groups (a warp or a block per row, or one thread per row) with an all-reduce whose result
/// is bit-identical in every lane, a deterministic two-pass sum to a scalar (a fixed split
/// into blocks, a tree in each block, then one final block: no float atomics, the same bits
/// on every run), and the index-type choice of strided views (temporary device memory:
/// device_buffer.h).
/// Included by .cu files only; everything is in cuda_detail::fused (no clash with the
/// helpers of other kernel files).
#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <cstdint>

#include "backends/common/norm_math.h"
#include "backends/common/raw_op_util.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernel_utils.cuh"

namespace focus::cuda_detail::fused {

// ---- lane reductions ----------------------------------------------------------------------------

__device__ __forceinline__ float shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ double shfl_xor(double v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
template <typename A> __device__ __forceinline__ common::MaxSum<A> shfl_xor(common::MaxSum<A> v, int m) {
  return common::MaxSum<A>{shfl_xor(v.max, m), shfl_xor(v.sum, m)};
}
template <typename A> __device__ __forceinline__ common::Welford<A> shfl_xor(common::Welford<A> v, int m) {
  return common::Welford<A>{shfl_xor(v.count, m), shfl_xor(v.mean, m), shfl_xor(v.m2, m)};
}

/// Two sums carried together.
template <typename A> struct Pair {
  A a, b;
};
template <typename A> __device__ __forceinline__ Pair<A> shfl_xor(Pair<A> v, int m) {
  return Pair<A>{shfl_xor(v.a, m), shfl_xor(v.b, m)};
}

struct AddOp {
  template <typename V> __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};
struct PairAddOp {
  template <typename A> __device__ __forceinline__ Pair<A> operator()(Pair<A> x, Pair<A> y) const {
    return Pair<A>{x.a + y.a, x.b + y.b};
  }
};
struct MaxSumOp {
  template <typename A> __device__ __forceinline__ common::MaxSum<A> operator()(common::MaxSum<A> x,
                                                                                common::MaxSum<A> y) const {
    return common::maxsum_merge(x, y);
  }
};
struct WelfordOp {
  template <typename A> __device__ __forceinline__ common::Welford<A> operator()(common::Welford<A> x,
                                                                                 common::Welford<A> y) const {
    return common::welford_merge(x, y);
  }
};

/// Butterfly all-reduce over the 32 lanes of a warp. Each step merges (lower lane's value,
/// higher lane's value) in that order on both lanes, so a merge that is not exactly
/// commutative (Welford's) still leaves the same bits in every lane.
template <typename V, typename Op> __device__ __forceinline__ V warp_allreduce(V v, Op op) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) {
    const V other = shfl_xor(v, m);
    v = (lane & m) ? op(other, v) : op(v, other);
  }
  return v;
}

/// Threads per block of the row kernels: TPR threads per row (threadIdx.x the lane in the
/// row), kRowBlock / TPR rows per block (threadIdx.y).
inline constexpr int kRowBlock = 256;

/// All-reduce over the TPR lanes of one row: TPR = 1 (a thread per row: nothing to do), 32
/// (a warp per row) or a multiple of 32 up to kRowBlock (a block per row: warps, then every
/// thread merges the warps' results in warp order). Every lane of the row gets the same bits.
/// With TPR > 32 every thread of the block must call it (the block is one row).
template <int TPR, typename V, typename Op> __device__ __forceinline__ V row_allreduce(V v, Op op) {
  static_assert(TPR == 1 || (TPR % 32 == 0 && TPR <= kRowBlock), "TPR must be 1 or a multiple of 32");
  if constexpr (TPR == 1) {
    return v;
  } else {
    v = warp_allreduce(v, op);
    if constexpr (TPR > 32) {
      constexpr int kWarps = TPR / 32;
      __shared__ V warp_values[kWarps];
      __syncthreads();  // an earlier call's readers are done with warp_values
      if ((threadIdx.x & 31) == 0) warp_values[threadIdx.x / 32] = v;
      __syncthreads();
      v = warp_values[0];
#pragma unroll
      for (int k = 1; k < kWarps; ++k) v = op(v, warp_values[k]);
    }
    return v;
  }
}

/// Launch geometry of a row kernel over R rows with TPR lanes per row.
template <int TPR> dim3 row_block() { return dim3(TPR, kRowBlock / TPR); }
template <int TPR> unsigned row_grid(int64_t R) { return blocks_for(R, kRowBlock / TPR); }

/// Lanes per row for rows of D elements read along the row: a warp for short rows, a
/// block for long ones.
inline bool use_block_per_row(int64_t D) { return D > 1024; }

// ---- deterministic sums to a scalar ---------------------------------------------------------------

inline constexpr int kSumThreads = 256;
inline constexpr int64_t kMaxSumBlocks = 1024;

struct Double2Add {
  __device__ __forceinline__ double2 operator()(double2 a, double2 b) const {
    return make_double2(a.x + b.x, a.y + b.y);
  }
};

/// Block b sums f(i) for i in [b * chunk, min(n, (b + 1) * chunk)), in double.
template <typename F>
__global__ void __launch_bounds__(kSumThreads) sum2_partial_kernel(F f, int64_t n, int64_t chunk, double2* partials) {
  using Reduce = cub::BlockReduce<double2, kSumThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * chunk;
  const int64_t hi = lo + chunk < n ? lo + chunk : n;
  double2 acc = make_double2(0.0, 0.0);
  for (int64_t i = lo + threadIdx.x; i < hi; i += kSumThreads) {
    const double2 v = f(i);
    acc.x += v.x;
    acc.y += v.y;
  }
  const double2 total = Reduce(tmp).Reduce(acc, Double2Add{});
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

/// One block sums the partials and hands the total to fin (on thread 0).
template <typename Fin>
__global__ void __launch_bounds__(kSumThreads) sum2_final_kernel(const double2* partials, int nparts, Fin fin) {
  using Reduce = cub::BlockReduce<double2, kSumThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  double2 acc = make_double2(0.0, 0.0);
  for (int i = threadIdx.x; i < nparts; i += kSumThreads) {
    acc.x += partials[i].x;
    acc.y += partials[i].y;
  }
  const double2 total = Reduce(tmp).Reduce(acc, Double2Add{});
  if (threadIdx.x == 0) fin(total);
}

/// fin({sum f(i).x, sum f(i).y}) over i in [0, n), on the device (no host round trip). The
/// split into blocks depends on n alone, so the result has the same bits on every run and
/// every GPU. f and fin are trivially copyable functors with __device__ operator().
template <typename F, typename Fin>
void deterministic_sum2(int device, int64_t n, const F& f, const Fin& fin, const char* op) {
  const int64_t per_block = int64_t{kSumThreads} * 16;
  const int64_t blocks = std::clamp<int64_t>((n + per_block - 1) / per_block, 1, kMaxSumBlocks);
  const int64_t chunk = (n + blocks - 1) / blocks;
  DeviceBuffer partials(device, static_cast<size_t>(blocks) * sizeof(double2));
  const cudaStream_t stream = stream_of(device);
  sum2_partial_kernel<<<static_cast<unsigned>(blocks), kSumThreads, 0, stream>>>(f, n, chunk,
                                                                                 partials.as<double2>());
  FOCUS_CUDA_LAUNCH_CHECK(op);
  sum2_final_kernel<<<1, kSumThreads, 0, stream>>>(partials.as<double2>(), static_cast<int>(blocks), fin);
  FOCUS_CUDA_LAUNCH_CHECK(op);
}

// ---- strided views ------------------------------------------------------------------------------

/// Calls f(indexer) with 32-bit index arithmetic when the views allow it, else 64-bit.
template <int N, typename F> void with_indexer(const Coalesced<N>& c, F&& f) {
  if (fits_int32(c)) f(make_indexer<N, int32_t>(c));
  else f(make_indexer<N, int64_t>(c));
}

/// op(off) for every element of N views of one shape, off[k] the element's offset in view k
/// (row-major order; op is a functor with a `template <typename I> __device__ void
/// operator()(const I (&off)[N]) const`).
template <int N, typename I, typename Op>
__global__ void __launch_bounds__(kThreads, 1) strided_kernel(Indexer<N, I> ix, int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I off[N];
    ix.offsets(static_cast<I>(i), off);
    op(off);
  }
}

/// Runs op over the elements of views[0]'s shape (the other views have the same sizes, any
/// strides, stride 0 included) on the device's stream.
template <int N, typename Op>
void launch_strided(int device, const TensorView* const (&views)[N], const Op& op, const char* name) {
  const Coalesced<N> c = coalesce<N>(views);
  if (c.numel == 0) return;
  const cudaStream_t stream = stream_of(device);
  with_indexer(c, [&](auto ix) {
    strided_kernel<<<blocks_for(c.numel), kThreads, 0, stream>>>(ix, c.numel, op);
    FOCUS_CUDA_LAUNCH_CHECK(name);
  });
}

using common::Dims3;  // backends/common/raw_op_util.h
using common::split_at;

}  // namespace focus::cuda_detail::fused
