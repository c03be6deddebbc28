// CUDA kernels for reductions: sum, mean, prod, max, min, p-norms (reduce) and max/min with
// indices (arg_reduce), matching backends/cpu/reduce.cpp in dtypes and edge cases.
//
// Each op is a policy (identity, map an element, combine two partial results, write the
// result of one output), run by one of three kernels chosen by the layout:
//   - rows:     a group of X threads (a warp, or a block of 256 for long blocks) reduces one
//               output's block, the threads striding over it (coalesced when the reduced
//               block is contiguous), then a CUB warp/block reduction;
//   - columns:  when the kept dims are the contiguous ones (sum over the batch dim of a
//               [B, N] matrix), or the blocks are tiny, each thread owns one output and
//               neighbouring threads read neighbouring elements; blockDim.y threads split
//               each block and are merged in shared memory in a fixed order;
//   - split:    when there are too few outputs to fill the GPU, each block is cut into G
//               chunks reduced by separate groups into a buffer of partial results, which a
//               second kernel merges per output (a warp each).
// The split depends only on the shape and the device's SM count, and every merge runs in
// a fixed order, so a result is the same from run to run.
//
// Accumulation: float16/bfloat16/float32 in float, float64 in double (prod of floats in
// double, as the CPU: products overflow early); integer and bool sums and products in
// int64 (wrapping, as the CPU's two's complement arithmetic); max/min in the element's own
// type (16-bit floats widened to float, 8-bit types and bool to int).
#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>

#include "backends/common/index_math.h"
#include "backends/common/raw_op_util.h"
#include "backends/common/welford.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernel_utils.cuh"

namespace focus::cuda_detail {

namespace {

using ReduceOp = Backend::ReduceOp;

// ---- types ---------------------------------------------------------------------------------

template <typename T>
inline constexpr bool kFloating =
    std::is_floating_point_v<T> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

template <typename T> using SumAcc = std::conditional_t<kFloating<T>, acc_t<T>, int64_t>;
template <typename T> using ProdAcc = std::conditional_t<kFloating<T>, double, int64_t>;
template <typename T> using SumOut = std::conditional_t<kFloating<T>, T, int64_t>;
// Max/min values: floats widened, 1-byte types to int (CUB shuffles whole words).
template <typename T>
using ExtAcc = std::conditional_t<kFloating<T>, acc_t<T>, std::conditional_t<(sizeof(T) < 4), int32_t, T>>;

// The smallest and largest value of T, in the accumulation type A (+-inf for floats).
template <typename T, typename A> __device__ __forceinline__ A lowest_of() {
  if constexpr (kFloating<T>) return -std::numeric_limits<A>::infinity();
  else return static_cast<A>(std::numeric_limits<T>::lowest());
}
template <typename T, typename A> __device__ __forceinline__ A highest_of() {
  if constexpr (kFloating<T>) return std::numeric_limits<A>::infinity();
  else return static_cast<A>(std::numeric_limits<T>::max());
}

// Integer sums and products wrap (as two's complement), without signed overflow.
template <typename A> __device__ __forceinline__ A add_wrap(A a, A b) {
  if constexpr (std::is_integral_v<A>)
    return static_cast<A>(static_cast<unsigned long long>(a) + static_cast<unsigned long long>(b));
  else return a + b;
}
template <typename A> __device__ __forceinline__ A mul_wrap(A a, A b) {
  if constexpr (std::is_integral_v<A>)
    return static_cast<A>(static_cast<unsigned long long>(a) * static_cast<unsigned long long>(b));
  else return a * b;
}

template <typename A> __device__ __forceinline__ A sqrt_of(A x) {
  if constexpr (std::is_same_v<A, float>) return sqrtf(x);
  else return sqrt(x);
}

// ---- policies ----------------------------------------------------------------------------
// In: the element type; Acc: a partial result. ident() is the result of no elements; map
// turns element number k of a block into a partial result; combine merges two; write stores
// the result of one output whose block has n elements at element offsets o0 (and o1) of the
// policy's outputs.

template <typename T> struct SumPolicy {  // Sum and Mean
  using In = T;
  using Acc = SumAcc<T>;
  using Out = SumOut<T>;
  Out* out;
  bool mean;
  __device__ __forceinline__ Acc ident() const { return Acc(0); }
  __device__ __forceinline__ Acc map(T x, int64_t) const { return convert<Acc>(x); }
  __device__ __forceinline__ Acc combine(Acc a, Acc b) const { return add_wrap(a, b); }
  __device__ __forceinline__ void write(int64_t o0, int64_t, Acc a, int64_t n) const {
    if constexpr (kFloating<T>) {
      if (mean) a = a / static_cast<Acc>(n);  // 0 / 0: nan over an empty block
    }
    out[o0] = convert<Out>(a);
  }
};

template <typename T> struct ProdPolicy {
  using In = T;
  using Acc = ProdAcc<T>;
  using Out = SumOut<T>;
  Out* out;
  __device__ __forceinline__ Acc ident() const { return Acc(1); }
  __device__ __forceinline__ Acc map(T x, int64_t) const { return convert<Acc>(x); }
  __device__ __forceinline__ Acc combine(Acc a, Acc b) const { return mul_wrap(a, b); }
  __device__ __forceinline__ void write(int64_t o0, int64_t, Acc a, int64_t) const { out[o0] = convert<Out>(a); }
};

// Max or min of x, or of |x| (the +-inf norms); NaN propagates.
template <typename T> struct ExtremumPolicy {
  using In = T;
  using Acc = ExtAcc<T>;
  T* out;
  bool is_max;
  bool abs;
  __device__ __forceinline__ Acc ident() const { return is_max ? lowest_of<T, Acc>() : highest_of<T, Acc>(); }
  __device__ __forceinline__ Acc map(T x, int64_t) const {
    Acc v = convert<Acc>(x);
    if constexpr (kFloating<T>) {
      if (abs) v = common::abs_value(v);
    }
    return v;
  }
  __device__ __forceinline__ Acc combine(Acc a, Acc b) const {
    return is_max ? common::max_propagate_nan(a, b) : common::min_propagate_nan(a, b);
  }
  __device__ __forceinline__ void write(int64_t o0, int64_t, Acc a, int64_t) const { out[o0] = convert<T>(a); }
};

// (sum_k term(x_k))^(1/p) for the finite orders (common::norm_term's kinds).
template <typename T> struct NormPolicy {
  using In = T;
  using Acc = acc_t<T>;
  T* out;
  int kind;
  Acc p;
  __device__ __forceinline__ Acc ident() const { return Acc(0); }
  __device__ __forceinline__ Acc map(T x, int64_t) const {
    const Acc v = convert<Acc>(x);
    switch (kind) {
      case 0: return common::norm_term<0>(v, p);
      case 1: return common::norm_term<1>(v, p);
      case 2: return common::norm_term<2>(v, p);
      default: return common::norm_term<3>(v, p);
    }
  }
  __device__ __forceinline__ Acc combine(Acc a, Acc b) const { return a + b; }
  __device__ __forceinline__ void write(int64_t o0, int64_t, Acc a, int64_t) const {
    Acc r = a;
    if (kind == 2) r = sqrt_of(a);
    else if (kind == 3) r = common::pow_value(a, Acc(1) / p);
    out[o0] = convert<T>(r);
  }
};

template <typename V> struct ArgAcc {
  V v;
  int64_t i;
};

// Max/min with its index: common::arg_better is a total order, so the partial results merge
// in any order and give the first occurrence (the first NaN when there is one).
template <typename T> struct ArgPolicy {
  using In = T;
  using V = ExtAcc<T>;
  using Acc = ArgAcc<V>;
  T* values;  // null: not wanted
  int64_t* indices;
  bool is_max;
  __device__ __forceinline__ Acc ident() const {
    return Acc{is_max ? lowest_of<T, V>() : highest_of<T, V>(), std::numeric_limits<int64_t>::max()};
  }
  __device__ __forceinline__ Acc map(T x, int64_t k) const { return Acc{convert<V>(x), k}; }
  __device__ __forceinline__ Acc combine(const Acc& a, const Acc& b) const {
    const bool take = is_max ? common::arg_better<true>(b.v, b.i, a.v, a.i) : common::arg_better<false>(b.v, b.i, a.v, a.i);
    return take ? b : a;
  }
  __device__ __forceinline__ void write(int64_t o0, int64_t o1, const Acc& a, int64_t) const {
    if (values) values[o0] = convert<T>(a.v);
    indices[o1] = a.i;
  }
};

template <typename P> struct Combine {
  const P& pol;
  __device__ __forceinline__ typename P::Acc operator()(const typename P::Acc& a, const typename P::Acc& b) const {
    return pol.combine(a, b);
  }
};

// ---- kernels -----------------------------------------------------------------------------

enum InnerKind : int {
  kInnerContiguous = 0,  // element k of a block at offset k
  kInnerStrided = 1,     // at k * inner_stride
  kInnerGeneral = 2,     // through the inner indexer
};

// Index arithmetic divides through common::FastDivider (no 64-bit divide instruction, whose
// subroutine calls would spill registers).
struct Geometry {
  common::StridedOffsets<3> outer;  // output o -> offsets of its block in `in` and of its outputs
  common::StridedOffsets<1> inner;  // element k -> offset within a block (kInnerGeneral)
  common::FastDivider chunks;       // divides by G
  int64_t O, N;                     // outputs, elements per block
  int64_t G, chunk;                 // chunks per block, elements per chunk (the last may be shorter)
  int64_t inner_stride;             // kInnerStrided
  int inner_kind;
};

// a combined with the elements k, k + step, ... < end of the block at base.
template <typename P>
__device__ __forceinline__ typename P::Acc accumulate(const P& pol, const typename P::In* __restrict__ base,
                                                      const Geometry& g, int64_t k, int64_t end, int step,
                                                      typename P::Acc a) {
  if (g.inner_kind == kInnerContiguous) {
#pragma unroll 4
    for (; k < end; k += step) a = pol.combine(a, pol.map(base[k], k));
  } else if (g.inner_kind == kInnerStrided) {
    const int64_t s = g.inner_stride;
#pragma unroll 4
    for (; k < end; k += step) a = pol.combine(a, pol.map(base[k * s], k));
  } else {
    for (; k < end; k += step) {
      int64_t off[1];
      g.inner.offsets(static_cast<uint64_t>(k), off);
      a = pol.combine(a, pol.map(base[off[0]], k));
    }
  }
  return a;
}

// Stores the result of chunk c of output o (row = o * G + c): the output itself when the
// block is not split, else its slot of the partial results.
template <typename P>
__device__ __forceinline__ void emit(const P& pol, const Geometry& g, const int64_t (&off)[3], int64_t row,
                                     const typename P::Acc& a, typename P::Acc* partial) {
  if (g.G == 1) pol.write(off[1], off[2], a, g.N);
  else partial[row] = a;
}

// Rows: a group of X threads (blockDim = (X, kThreads / X)) per (output, chunk).
template <typename P, int X>
__global__ void __launch_bounds__(kThreads) reduce_rows_kernel(const typename P::In* __restrict__ in, const P pol,
                                                               const Geometry g, typename P::Acc* partial) {
  using Acc = typename P::Acc;
  constexpr int Y = kThreads / X;
  static_assert(X == 32 || X == kThreads, "a group is a warp or the whole block");
  using Reduce = std::conditional_t<X == 32, cub::WarpReduce<Acc>, cub::BlockReduce<Acc, kThreads>>;
  __shared__ typename Reduce::TempStorage storage[Y];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t rows = g.O * g.G;
  // The loop bounds are uniform over a group, so whole groups take part in each reduction.
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * Y + ty; row < rows; row += static_cast<int64_t>(gridDim.x) * Y) {
    const int64_t o = static_cast<int64_t>(g.chunks.div(static_cast<uint64_t>(row))), c = row - o * g.G;
    const int64_t begin = c * g.chunk, end = begin + g.chunk < g.N ? begin + g.chunk : g.N;
    int64_t off[3];
    g.outer.offsets(static_cast<uint64_t>(o), off);
    Acc a = accumulate(pol, in + off[0], g, begin + tx, end, X, pol.ident());
    a = Reduce(storage[ty]).Reduce(a, Combine<P>{pol});
    if (tx == 0) emit(pol, g, off, row, a, partial);
    if constexpr (X == 32) __syncwarp();
    else __syncthreads();
  }
}

constexpr int kColumns = 32;  // outputs per block in the column kernel
constexpr int kColumnSplit = 8;  // most threads sharing one output's block there

// Columns: thread x of a (kColumns, blockDim.y) block owns output tile * kColumns + x;
// blockIdx.y is the chunk.
template <typename P>
__global__ void __launch_bounds__(kColumns* kColumnSplit) reduce_cols_kernel(const typename P::In* __restrict__ in,
                                                                             const P pol, const Geometry g,
                                                                             typename P::Acc* partial) {
  using Acc = typename P::Acc;
  __shared__ Acc shared[kColumnSplit][kColumns + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, ny = blockDim.y;
  const int64_t c = blockIdx.y;
  const int64_t begin = c * g.chunk, end = begin + g.chunk < g.N ? begin + g.chunk : g.N;
  const int64_t tiles = (g.O + kColumns - 1) / kColumns;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t o = tile * kColumns + tx;
    int64_t off[3] = {0, 0, 0};
    Acc a = pol.ident();
    if (o < g.O) {
      g.outer.offsets(static_cast<uint64_t>(o), off);
      a = accumulate(pol, in + off[0], g, begin + ty, end, ny, a);
    }
    if (ny == 1) {
      if (o < g.O) emit(pol, g, off, o * g.G + c, a, partial);
      continue;
    }
    shared[ty][tx] = a;
    __syncthreads();
    if (ty == 0 && o < g.O) {
      for (int y = 1; y < ny; ++y) a = pol.combine(a, shared[y][tx]);
      emit(pol, g, off, o * g.G + c, a, partial);
    }
    __syncthreads();
  }
}

// Merges the G partial results of each output (a warp per output) and writes it; with G = 0
// it writes the result of an empty block.
template <typename P>
__global__ void __launch_bounds__(kThreads) reduce_partials_kernel(const P pol, const common::StridedOffsets<3> outer,
                                                                   int64_t O, int64_t G, int64_t N,
                                                                   const typename P::Acc* __restrict__ partial) {
  using Acc = typename P::Acc;
  using Reduce = cub::WarpReduce<Acc>;
  constexpr int W = kThreads / 32;
  __shared__ typename Reduce::TempStorage storage[W];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * W + warp; o < O; o += static_cast<int64_t>(gridDim.x) * W) {
    Acc a = pol.ident();
    for (int64_t c = lane; c < G; c += 32) a = pol.combine(a, partial[o * G + c]);
    a = Reduce(storage[warp]).Reduce(a, Combine<P>{pol});
    if (lane == 0) {
      int64_t off[3];
      outer.offsets(static_cast<uint64_t>(o), off);
      pol.write(off[1], off[2], a, N);
    }
    __syncwarp();
  }
}

// ---- launch --------------------------------------------------------------------------------

int sm_count(int device) {
  static std::array<std::atomic<int>, 64> cache{};
  const size_t d = static_cast<size_t>(device);
  int n = d < cache.size() ? cache[d].load(std::memory_order_relaxed) : 0;
  if (n == 0) {
    FOCUS_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    if (n < 1) n = 1;
    if (d < cache.size()) cache[d].store(n, std::memory_order_relaxed);
  }
  return n;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs policy pol over in's trailing nreduce dims; out0 and out1 (in's leading dims, any
// strides) are where the policy writes output o's results (out1 = out0 when there is one).
template <typename P>
void run_reduce(const P& pol, const TensorView& in, const TensorView& out0, const TensorView& out1, int nreduce,
                int device, const char* name) {
  const int nouter = in.ndim - nreduce;
  TensorView outer_in, outer_o0, outer_o1, inner_in;
  outer_in.ndim = outer_o0.ndim = outer_o1.ndim = nouter;
  int64_t O = 1, N = 1;
  for (int d = 0; d < nouter; ++d) {
    outer_in.sizes[d] = outer_o0.sizes[d] = outer_o1.sizes[d] = in.sizes[d];
    outer_in.strides[d] = in.strides[d];
    outer_o0.strides[d] = out0.strides[d];
    outer_o1.strides[d] = out1.strides[d];
    O *= in.sizes[d];
  }
  inner_in.ndim = nreduce;
  for (int d = 0; d < nreduce; ++d) {
    inner_in.sizes[d] = in.sizes[nouter + d];
    inner_in.strides[d] = in.strides[nouter + d];
    N *= inner_in.sizes[d];
  }
  outer_in.numel = O;
  inner_in.numel = N;
  if (O == 0) return;
  const Coalesced<3> oc = coalesce<3>({&outer_in, &outer_o0, &outer_o1});
  const Coalesced<1> ic = coalesce<1>({&inner_in});
  const common::StridedOffsets<3> outer = common::make_strided_offsets<3>(oc.ndim, oc.sizes, oc.strides);
  using Acc = typename P::Acc;
  const cudaStream_t stream = stream_of(device);

  if (N == 0) {  // every output is the result of an empty block
    reduce_partials_kernel<P><<<blocks_for(O * 32), kThreads, 0, stream>>>(pol, outer, O, 0, 0, nullptr);
    FOCUS_CUDA_LAUNCH_CHECK(name);
    return;
  }

  const bool inner_unit = ic.ndim == 0 || ic.strides[0][ic.ndim - 1] == 1;
  const bool outer_unit = oc.ndim >= 1 && oc.strides[0][oc.ndim - 1] == 1;
  // Tiny blocks (each thread takes a whole one) or kept dims that are the contiguous ones.
  const bool column = N <= 16 || (outer_unit && !inner_unit);
  const int ny = column ? (N >= 32 ? kColumnSplit : 1) : 0;
  const int X = N >= 2048 ? kThreads : 32;
  const int64_t lanes = column ? ny : X;  // threads per (output, chunk)

  // Split the blocks when the outputs alone leave the device idle, keeping >= 32 elements
  // per thread.
  const int64_t want = int64_t{sm_count(device)} * 2048;
  const int64_t threads = (column ? ceil_div(O, kColumns) * kColumns : O) * lanes;
  int64_t G = 1;
  if (threads < want) {
    G = std::min<int64_t>({ceil_div(want, threads), ceil_div(N, lanes * 32), 1024});
    if (G < 1) G = 1;
  }
  const int64_t chunk = ceil_div(N, G);
  G = ceil_div(N, chunk);

  Geometry g;
  g.outer = outer;
  g.inner = common::make_strided_offsets<1>(ic.ndim, ic.sizes, ic.strides);
  g.chunks = common::make_fast_divider(static_cast<uint64_t>(G));
  g.O = O;
  g.N = N;
  g.G = G;
  g.chunk = chunk;
  g.inner_stride = ic.ndim == 1 ? ic.strides[0][0] : 1;
  g.inner_kind = ic.ndim == 0 || (ic.ndim == 1 && ic.strides[0][0] == 1) ? kInnerContiguous
                 : ic.ndim == 1                                           ? kInnerStrided
                                                                          : kInnerGeneral;
  std::unique_ptr<DeviceBuffer> scratch;
  Acc* partial = nullptr;
  if (G > 1) {
    scratch = std::make_unique<DeviceBuffer>(device, static_cast<size_t>(O * G) * sizeof(Acc));
    partial = static_cast<Acc*>(scratch->get());
  }
  const auto* x = static_cast<const typename P::In*>(in.data);
  constexpr int64_t kMaxGrid = int64_t{1} << 20;  // blocks; the kernels loop beyond
  if (column) {
    const dim3 grid(static_cast<unsigned>(std::min(ceil_div(O, kColumns), kMaxGrid)), static_cast<unsigned>(G));
    reduce_cols_kernel<P><<<grid, dim3(kColumns, ny), 0, stream>>>(x, pol, g, partial);
  } else if (X == 32) {
    const unsigned grid = static_cast<unsigned>(std::min(ceil_div(O * G, kThreads / 32), kMaxGrid));
    reduce_rows_kernel<P, 32><<<grid, dim3(32, kThreads / 32), 0, stream>>>(x, pol, g, partial);
  } else {
    const unsigned grid = static_cast<unsigned>(std::min(O * G, kMaxGrid));
    reduce_rows_kernel<P, kThreads><<<grid, dim3(kThreads, 1), 0, stream>>>(x, pol, g, partial);
  }
  FOCUS_CUDA_LAUNCH_CHECK(name);
  if (G > 1) {
    reduce_partials_kernel<P><<<blocks_for(O * 32), kThreads, 0, stream>>>(pol, outer, O, G, N, partial);
    FOCUS_CUDA_LAUNCH_CHECK(name);
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const TensorView& out, const TensorView& in, int nreduce, double p) {
  const char* name = common::reduce_op_name(op);
  const int dev = index_;
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean: {
      const bool mean = op == ReduceOp::Mean;
      auto body = [&](auto tag) {
        using T = decltype(tag);
        run_reduce(SumPolicy<T>{out.ptr<SumOut<T>>(), mean}, in, out, out, nreduce, dev, name);
      };
      if (mean) dispatch_float(in.dtype, name, body);
      else dispatch_all(in.dtype, name, body);
      return;
    }
    case ReduceOp::Prod:
      return dispatch_all(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        run_reduce(ProdPolicy<T>{out.ptr<SumOut<T>>()}, in, out, out, nreduce, dev, name);
      });
    case ReduceOp::Max:
    case ReduceOp::Min:
      return dispatch_all(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        run_reduce(ExtremumPolicy<T>{out.ptr<T>(), op == ReduceOp::Max, false}, in, out, out, nreduce, dev, name);
      });
    case ReduceOp::Norm:
      return dispatch_float(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        using A = acc_t<T>;
        int64_t n = 1;
        for (int d = in.ndim - nreduce; d < in.ndim; ++d) n *= in.sizes[d];
        if (n == 0) {  // every norm of nothing is 0 (also for p = -inf, as PyTorch)
          run_reduce(NormPolicy<T>{out.ptr<T>(), 1, A(1)}, in, out, out, nreduce, dev, name);
        } else if (std::isinf(p)) {
          run_reduce(ExtremumPolicy<T>{out.ptr<T>(), p > 0, true}, in, out, out, nreduce, dev, name);
        } else {
          // The order in the element type first, as the CPU (static_cast<T>(p)).
          const A pa = convert<A>(convert<T>(p));
          run_reduce(NormPolicy<T>{out.ptr<T>(), common::norm_kind(p), pa}, in, out, out, nreduce, dev, name);
        }
      });
  }
}

void CudaBackend::arg_reduce(bool is_max, const TensorView& values, const TensorView& indices, const TensorView& in) {
  const char* name = is_max ? "max" : "min";
  dispatch_all(in.dtype, name, [&](auto tag) {
    using T = decltype(tag);
    const ArgPolicy<T> pol{values.data ? values.ptr<T>() : nullptr, indices.ptr<int64_t>(), is_max};
    // Without values the values view is empty: the indices' geometry stands in for it.
    run_reduce(pol, in, values.data ? values : indices, indices, 1, index_, name);
  });
}

}  // namespace focus::cuda_detail
