// CUDA kernels for indexing: index scans and deferred checks, index_select / index_add,
// gather / scatter_add, tril / triu, one_hot, matching backends/cpu/indexing.cpp (and the
// CPU's check_range in backends/cpu/loss.cpp).
//
// The raw ops check every index with scan_indices() (which returns to the host) before the
// other kernels run, so those assume indices in range. check_indices and check_range never
// wait for the device: they record the first bad flat position in a slot of the device
// context (DeviceContext::reserve_check), and the next synchronisation reports it.
//
// index_select, index_add, gather and scatter_add share one kernel: three views walked over
// one shape (the target, the source and the index), the index supplying the offset along
// `dim` of the view that is indexed (whose stride along dim is 0 in the walk). Copies move
// raw bytes, so they serve every dtype; additions are atomic, since indices may repeat.
#include <cub/block/block_reduce.cuh>

#include <climits>
#include <type_traits>

#include "backends/common/index_math.h"
#include "backends/common/raw_op_util.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernel_utils.cuh"

namespace focus::cuda_detail {

namespace {

// ---- helpers ---------------------------------------------------------------------------------

using common::dispatch_bytes;

// The dtypes additions support (the CPU's dispatch_numeric plus the 16-bit floats).
template <typename F> void dispatch_add(DType t, const char* op, F&& f) {
  if (t == kBool) FOCUS_FAIL("[{}] not implemented for {} tensors on cuda", op, t);
  dispatch_all(t, op, [&](auto tag) {
    if constexpr (!std::is_same_v<decltype(tag), bool>) f(tag);
  });
}

// One view's offsets over its own sizes, and whether it is one contiguous run.
struct Walk {
  common::StridedOffsets<1> offsets;
  bool contiguous;
  int64_t numel;
};

Walk make_walk(const TensorView& v) {
  const Coalesced<1> c = coalesce<1>({&v});
  return Walk{common::make_strided_offsets<1>(c.ndim, c.sizes, c.strides), all_contiguous(c), v.numel};
}

__device__ __forceinline__ int64_t walk_offset(const Walk& w, int64_t i) {
  if (w.contiguous) return i;
  int64_t off[1];
  w.offsets.offsets(static_cast<uint64_t>(i), off);
  return off[0];
}

constexpr unsigned long long kNoBad = ULLONG_MAX;

// ---- atomic addition -----------------------------------------------------------------------

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(__half* p, __half v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(__nv_bfloat16* p, __nv_bfloat16 v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  // Two's complement: the unsigned sum has the bits of the signed one.
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}
__device__ __forceinline__ void atomic_add(uint8_t* p, uint8_t v) {
  // No byte atomics: compare-and-swap the aligned word holding the byte (allocations are
  // 256-byte aligned and padded, so the word lies inside the tensor's allocation).
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  unsigned int* word = reinterpret_cast<unsigned int*>(addr & ~uintptr_t{3});
  const unsigned int shift = static_cast<unsigned int>(addr & 3) * 8;
  unsigned int old = *word, assumed;
  do {
    assumed = old;
    const unsigned int byte = ((assumed >> shift) + v) & 0xffu;
    old = atomicCAS(word, assumed, (assumed & ~(0xffu << shift)) | (byte << shift));
  } while (assumed != old);
}

// ---- index scans and checks ----------------------------------------------------------------

struct ScanResult {
  long long min;
  long long max;
  unsigned long long first_bad;
  long long value;
};

__global__ void scan_init_kernel(ScanResult* r) {
  r->min = LLONG_MAX;
  r->max = LLONG_MIN;
  r->first_bad = kNoBad;
  r->value = 0;
}

struct MinOp {
  template <typename T> __device__ __forceinline__ T operator()(const T& a, const T& b) const { return b < a ? b : a; }
};
struct MaxOp {
  template <typename T> __device__ __forceinline__ T operator()(const T& a, const T& b) const { return b > a ? b : a; }
};

template <typename I>
__global__ void __launch_bounds__(kThreads) scan_kernel(const I* __restrict__ idx, const Walk w, int64_t lo,
                                                        int64_t hi, ScanResult* r) {
  long long mn = LLONG_MAX, mx = LLONG_MIN;
  unsigned long long bad = kNoBad;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < w.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const long long x = static_cast<long long>(idx[walk_offset(w, i)]);
    mn = x < mn ? x : mn;
    mx = x > mx ? x : mx;
    // A thread's positions increase, so its first bad one is its smallest.
    if (bad == kNoBad && (x < lo || x >= hi)) bad = static_cast<unsigned long long>(i);
  }
  using Reduce = cub::BlockReduce<long long, kThreads>;
  using ReduceU = cub::BlockReduce<unsigned long long, kThreads>;
  __shared__ union {
    typename Reduce::TempStorage s;
    typename ReduceU::TempStorage u;
  } storage;
  mn = Reduce(storage.s).Reduce(mn, MinOp{});
  __syncthreads();
  mx = Reduce(storage.s).Reduce(mx, MaxOp{});
  __syncthreads();
  bad = ReduceU(storage.u).Reduce(bad, MinOp{});
  if (threadIdx.x == 0) {
    atomicMin(&r->min, mn);
    atomicMax(&r->max, mx);
    if (bad != kNoBad) atomicMin(&r->first_bad, bad);
  }
}

// A thread per element; the first failing position goes to *first_bad (atomicMin).
template <typename I>
__global__ void __launch_bounds__(kThreads) check_indices_kernel(const I* __restrict__ idx, const Walk w, int64_t lo,
                                                                 int64_t hi, int64_t skip,
                                                                 unsigned long long* first_bad) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < w.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (!common::index_ok(static_cast<int64_t>(idx[walk_offset(w, i)]), lo, hi, skip)) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
      return;  // this thread's later positions are larger
    }
  }
}

template <typename T, typename A>
__global__ void __launch_bounds__(kThreads) check_range_kernel(const T* __restrict__ x, const Walk w, A lo, A hi,
                                                               unsigned long long* first_bad) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < w.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (!common::value_in_range(convert<A>(x[walk_offset(w, i)]), lo, hi)) {  // NaN fails too
      atomicMin(first_bad, static_cast<unsigned long long>(i));
      return;
    }
  }
}

// One thread: the value at the first bad position (when there is one) into *value: the
// index itself, or the bits of the value as a double (range checks).
template <typename T, bool AsDouble>
__global__ void fetch_bad_kernel(const T* __restrict__ x, const Walk w, const unsigned long long* first_bad,
                                 long long* value) {
  const unsigned long long pos = *first_bad;
  if (pos == kNoBad) return;
  const T v = x[walk_offset(w, static_cast<int64_t>(pos))];
  if constexpr (AsDouble) *value = __double_as_longlong(convert<double>(v));
  else *value = static_cast<long long>(v);
}

// ---- gather / scatter ------------------------------------------------------------------------

// Over one shape of numel elements, views 0 (target), 1 (source) and 2 (index): the index
// value j at view 2's offset moves the indexed view (source for a copy, target for an
// addition) by j * dim_stride. Add: target += source atomically, skipping j == skip.
template <typename T, typename I, bool Add>
__global__ void __launch_bounds__(kThreads) indexed_kernel(T* __restrict__ target, const T* __restrict__ source,
                                                           const I* __restrict__ index,
                                                           const common::StridedOffsets<3> walk, int64_t numel,
                                                           int64_t dim_stride, int64_t skip) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[3];
    walk.offsets(static_cast<uint64_t>(i), off);
    const int64_t j = static_cast<int64_t>(index[off[2]]);
    if constexpr (Add) {
      if (j == skip) continue;
      atomic_add(target + off[0] + j * dim_stride, source[off[1]]);
    } else {
      target[off[0]] = source[off[1] + j * dim_stride];
    }
  }
}

// v's strides over `shape`'s sizes (v no smaller in any dim), with stride 0 along zero_dim
// (-1: none).
TensorView walk_view(const TensorView& v, const TensorView& shape, int zero_dim) {
  TensorView r = v;
  r.ndim = shape.ndim;
  r.numel = shape.numel;
  for (int d = 0; d < shape.ndim; ++d) {
    r.sizes[d] = shape.sizes[d];
    if (d == zero_dim) r.strides[d] = 0;
  }
  return r;
}

// The 1-d index broadcast over `shape`: its stride along dim, 0 elsewhere.
TensorView index_walk_view(const TensorView& index, const TensorView& shape, int dim) {
  TensorView r = walk_view(shape, shape, -1);
  r.data = index.data;
  r.dtype = index.dtype;
  for (int d = 0; d < shape.ndim; ++d) r.strides[d] = d == dim && index.ndim ? index.strides[0] : 0;
  return r;
}

// Runs indexed_kernel over the shape of `target` (views already built over one shape).
template <bool Add>
void launch_indexed(const TensorView& target, const TensorView& source, const TensorView& index, int64_t dim_stride,
                    int64_t skip, int device, const char* op) {
  const int64_t n = target.numel;
  if (n == 0) return;
  const Coalesced<3> c = coalesce<3>({&target, &source, &index});
  const common::StridedOffsets<3> walk = common::make_strided_offsets<3>(c.ndim, c.sizes, c.strides);
  const cudaStream_t stream = stream_of(device);
  dispatch_index(index.dtype, op, [&](auto itag) {
    using I = decltype(itag);
    const I* idx = static_cast<const I*>(index.data);
    auto run = [&](auto tag) {
      using T = decltype(tag);
      indexed_kernel<T, I, Add><<<blocks_for(n), kThreads, 0, stream>>>(
          static_cast<T*>(target.data), static_cast<const T*>(source.data), idx, walk, n, dim_stride, skip);
      FOCUS_CUDA_LAUNCH_CHECK(op);
    };
    if constexpr (Add) dispatch_add(target.dtype, op, run);
    else dispatch_bytes(target.dtype, op, run);
  });
}

// ---- tril / triu, one_hot ------------------------------------------------------------------

template <typename T>
__global__ void __launch_bounds__(kThreads) trilu_kernel(T* __restrict__ out, const T* __restrict__ x,
                                                         const common::StridedOffsets<2> walk, int64_t numel,
                                                         const common::FastDivider cols,
                                                         const common::FastDivider rows, int64_t k, bool lower) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t line = cols.div(static_cast<uint64_t>(i));  // row of the flattened [.., R, C]
    const int64_t col = i - static_cast<int64_t>(line * cols.d);
    const int64_t row = static_cast<int64_t>(line - rows.div(line) * rows.d);
    int64_t off[2];
    walk.offsets(static_cast<uint64_t>(i), off);
    out[off[0]] = common::trilu_keeps(row, col, k, lower) ? x[off[1]] : T(0);
  }
}

template <typename I>
__global__ void __launch_bounds__(kThreads) one_hot_kernel(int64_t* __restrict__ out, const I* __restrict__ index,
                                                           int64_t numel, const common::FastDivider classes) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t n = classes.div(static_cast<uint64_t>(i));
    const int64_t c = i - static_cast<int64_t>(n * classes.d);
    out[i] = static_cast<int64_t>(index[n]) == c ? 1 : 0;
  }
}

}  // namespace

// ---- index scans and checks ------------------------------------------------------------------

Backend::IndexScan CudaBackend::scan_indices(const TensorView& index, int64_t lo, int64_t hi) {
  IndexScan res;
  if (index.numel == 0) return res;
  DeviceContext& ctx = context(index_);
  ctx.fail_if_capturing("index bounds scan", "the host reads the indices' range, which a recorded graph never "
                                              "produces");
  const cudaStream_t stream = ctx.stream();
  DeviceBuffer buf(index_, sizeof(ScanResult));
  ScanResult* r = static_cast<ScanResult*>(buf.get());
  const Walk w = make_walk(index);
  dispatch_index(index.dtype, "index", [&](auto tag) {
    using I = decltype(tag);
    const I* idx = static_cast<const I*>(index.data);
    scan_init_kernel<<<1, 1, 0, stream>>>(r);
    FOCUS_CUDA_LAUNCH_CHECK("index");
    scan_kernel<I><<<blocks_for(index.numel), kThreads, 0, stream>>>(idx, w, lo, hi, r);
    FOCUS_CUDA_LAUNCH_CHECK("index");
    fetch_bad_kernel<I, false><<<1, 1, 0, stream>>>(idx, w, &r->first_bad, &r->value);
    FOCUS_CUDA_LAUNCH_CHECK("index");
  });
  ScanResult host{};
  FOCUS_CUDA_CHECK(cudaMemcpyAsync(&host, r, sizeof(host), cudaMemcpyDeviceToHost, stream));
  // The result goes to the host, so this is a synchronisation point (it also reports the
  // checks recorded before it).
  ctx.synchronize();
  res.first_bad = host.first_bad == kNoBad ? -1 : static_cast<int64_t>(host.first_bad);
  res.bad_value = res.first_bad < 0 ? 0 : host.value;
  res.min = host.min;
  res.max = host.max;
  return res;
}

void CudaBackend::check_indices(const TensorView& index, int64_t lo, int64_t hi, int64_t skip, const char* op,
                                const char* what) {
  if (index.numel == 0) return;
  DeviceContext& ctx = context(index_);
  const Walk w = make_walk(index);
  dispatch_index(index.dtype, op, [&](auto tag) {
    using I = decltype(tag);
    const I* idx = static_cast<const I*>(index.data);
    CheckSlot* slot = ctx.reserve_check(PendingCheck{op, what, lo, hi, CheckKind::Index});
    const cudaStream_t stream = ctx.stream();
    check_indices_kernel<I><<<blocks_for(index.numel), kThreads, 0, stream>>>(idx, w, lo, hi, skip, &slot->first_bad);
    FOCUS_CUDA_LAUNCH_CHECK(op);
    fetch_bad_kernel<I, false><<<1, 1, 0, stream>>>(idx, w, &slot->first_bad, &slot->value);
    FOCUS_CUDA_LAUNCH_CHECK(op);
  });
}

void CudaBackend::check_range(const TensorView& x, double lo, double hi, const char* op, const char* what) {
  if (x.numel == 0) return;
  DeviceContext& ctx = context(index_);
  const Walk w = make_walk(x);
  dispatch_float(x.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    // The bounds in the element type first, as the CPU (static_cast<T>(lo)).
    const A tlo = convert<A>(convert<T>(lo)), thi = convert<A>(convert<T>(hi));
    const T* data = static_cast<const T*>(x.data);
    CheckSlot* slot = ctx.reserve_check(PendingCheck{op, what, 0, 0, CheckKind::Range});
    const cudaStream_t stream = ctx.stream();
    check_range_kernel<T, A><<<blocks_for(x.numel), kThreads, 0, stream>>>(data, w, tlo, thi, &slot->first_bad);
    FOCUS_CUDA_LAUNCH_CHECK(op);
    fetch_bad_kernel<T, true><<<1, 1, 0, stream>>>(data, w, &slot->first_bad, &slot->value);
    FOCUS_CUDA_LAUNCH_CHECK(op);
  });
}

// ---- index_select, index_add, gather, scatter_add ----------------------------------------------

void CudaBackend::index_select(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
  if (out.numel == 0 || index.numel == 0) return;
  launch_indexed<false>(out, walk_view(x, out, dim), index_walk_view(index, out, dim), x.strides[dim], -1, index_,
                        "index_select");
}

void CudaBackend::index_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src,
                            int64_t skip) {
  if (src.numel == 0 || index.numel == 0) return;
  // skip < 0 never matches an index (indices are in range), so it skips nothing.
  launch_indexed<true>(walk_view(out, src, dim), src, index_walk_view(index, src, dim), out.strides[dim], skip, index_,
                       "index_add");
}

void CudaBackend::gather(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
  if (out.numel == 0) return;
  launch_indexed<false>(out, walk_view(x, index, dim), index, x.strides[dim], -1, index_, "gather");
}

void CudaBackend::scatter_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src) {
  if (index.numel == 0) return;
  launch_indexed<true>(walk_view(out, index, dim), walk_view(src, index, -1), index, out.strides[dim], -1, index_,
                       "scatter_add");
}

// ---- tril / triu, one_hot ----------------------------------------------------------------------

void CudaBackend::trilu(const TensorView& out, const TensorView& x, int64_t k, bool lower) {
  if (out.numel == 0) return;
  const int nd = out.ndim;
  const Coalesced<2> c = coalesce<2>({&out, &x});
  const common::StridedOffsets<2> walk = common::make_strided_offsets<2>(c.ndim, c.sizes, c.strides);
  const common::FastDivider cols = common::make_fast_divider(static_cast<uint64_t>(out.sizes[nd - 1]));
  const common::FastDivider rows = common::make_fast_divider(static_cast<uint64_t>(out.sizes[nd - 2]));
  const cudaStream_t stream = stream_of(index_);
  dispatch_bytes(out.dtype, lower ? "tril" : "triu", [&](auto tag) {
    using T = decltype(tag);
    trilu_kernel<T><<<blocks_for(out.numel), kThreads, 0, stream>>>(
        static_cast<T*>(out.data), static_cast<const T*>(x.data), walk, out.numel, cols, rows, k, lower);
    FOCUS_CUDA_LAUNCH_CHECK(lower ? "tril" : "triu");
  });
}

void CudaBackend::one_hot(const TensorView& out, const TensorView& index) {
  const int64_t N = index.numel, C = out.ndim ? out.sizes[out.ndim - 1] : 1;
  if (N == 0 || C == 0) return;
  const common::FastDivider classes = common::make_fast_divider(static_cast<uint64_t>(C));
  const cudaStream_t stream = stream_of(index_);
  dispatch_index(index.dtype, "one_hot", [&](auto tag) {
    using I = decltype(tag);
    // out [N, C] and index [N] are contiguous (the raw op makes them so).
    one_hot_kernel<I><<<blocks_for(N * C), kThreads, 0, stream>>>(out.ptr<int64_t>(), static_cast<const I*>(index.data),
                                                                  N * C, classes);
    FOCUS_CUDA_LAUNCH_CHECK("one_hot");
  });
}

}  // namespace focus::cuda_detail
