// CPU kernels for reductions: sum, mean, prod, max, min, p-norms (reduce) and max/min
// with indices (arg_reduce).
//
// The raw op hands over a view whose trailing nreduce dims are the reduced ones. Each op is
// a policy (map a value, combine two partial results, finish) run by one of three loops:
//   - rows:     each output reduces its own block; contiguous blocks use several
//               independent lanes in small blocks, so the compiler vectorizes them and
//               float32 sums stay accurate (lanes in float, blocks added in double);
//   - columns:  when the kept dims are the contiguous ones (sum over the batch dim of a
//               [B, N] matrix), whole rows are accumulated into a vector of partials;
//   - split:    one (or a few) big reductions are cut into fixed-size chunks reduced in
//               parallel and merged in order, so the result does not depend on the
//               number of threads.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "backends/common/raw_op_util.h"
#include "backends/common/welford.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/parallel.h"

namespace focus::cpu {

namespace {

using ReduceOp = Backend::ReduceOp;

// Dims without size-1 entries, merged where the memory layout allows; outermost first.
struct Dims {
  int n = 0;
  int64_t numel = 1;
  int64_t size[kMaxDims];
  int64_t stride[kMaxDims];
};

Dims coalesce(const int64_t* sizes, const int64_t* strides, int ndim) {
  Dims d;
  for (int i = 0; i < ndim; ++i) {
    d.numel *= sizes[i];
    if (sizes[i] == 1) continue;
    if (d.n > 0 && d.stride[d.n - 1] == strides[i] * sizes[i]) {
      d.size[d.n - 1] *= sizes[i];
      d.stride[d.n - 1] = strides[i];
    } else {
      d.size[d.n] = sizes[i];
      d.stride[d.n] = strides[i];
      ++d.n;
    }
  }
  return d;
}

// Walks the element offsets of Dims in row-major order from a starting flat index.
struct OffsetIter {
  const Dims& d;
  int64_t idx[kMaxDims] = {};
  int64_t offset = 0;
  OffsetIter(const Dims& dims, int64_t flat) : d(dims) {
    for (int i = d.n - 1; i >= 0; --i) {
      idx[i] = flat % d.size[i];
      flat /= d.size[i];
      offset += idx[i] * d.stride[i];
    }
  }
  void next() {
    for (int i = d.n - 1; i >= 0; --i) {
      offset += d.stride[i];
      if (++idx[i] < d.size[i]) return;
      offset -= idx[i] * d.stride[i];
      idx[i] = 0;
    }
  }
};

template <typename T> bool is_nan(T v) { return common::is_nan_value(v); }

// max/min that propagate NaN (once a is NaN it stays NaN); the GPU merges with the same.
template <typename T> void max_into(T& a, T b) { a = common::max_propagate_nan(a, b); }
template <typename T> void min_into(T& a, T b) { a = common::min_propagate_nan(a, b); }

template <typename T> using SumAcc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
template <typename T> using SumLane = std::conditional_t<std::is_floating_point_v<T>, T, int64_t>;

// ---- policies -------------------------------------------------------------------------
// M: the mapped value and lane type; Acc: the running result; Out: the output element.

template <typename T, bool Mean> struct SumPolicy {
  using M = SumLane<T>;
  using Acc = SumAcc<T>;
  using Out = std::conditional_t<std::is_floating_point_v<T>, T, int64_t>;
  static M lane_ident() { return M(0); }
  static Acc ident() { return Acc(0); }
  M map(T x) const { return static_cast<M>(x); }
  static void lane(M& a, M b) { a += b; }
  static void acc(Acc& a, M b) { a += b; }
  static void merge(Acc& a, Acc b) { a += b; }
  Out finish(Acc a, int64_t n) const {
    if constexpr (Mean) return static_cast<Out>(a / static_cast<Acc>(n));
    else return static_cast<Out>(a);
  }
};

template <typename T> struct ProdPolicy {
  using M = SumAcc<T>;  // products in the wide type: float lanes would overflow early
  using Acc = SumAcc<T>;
  using Out = std::conditional_t<std::is_floating_point_v<T>, T, int64_t>;
  static M lane_ident() { return M(1); }
  static Acc ident() { return Acc(1); }
  M map(T x) const { return static_cast<M>(x); }
  static void lane(M& a, M b) { a *= b; }
  static void acc(Acc& a, M b) { a *= b; }
  static void merge(Acc& a, Acc b) { a *= b; }
  Out finish(Acc a, int64_t) const { return static_cast<Out>(a); }
};

// Max/min of x (Abs = false) or of |x| (Abs = true, the +-inf norms).
template <typename T, bool IsMax, bool Abs> struct ExtremumPolicy {
  using M = T;
  using Acc = T;
  using Out = T;
  static T worst() {
    if constexpr (std::is_same_v<T, bool>) return !IsMax;
    else if constexpr (std::is_floating_point_v<T>)
      return IsMax ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    else return IsMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  }
  static M lane_ident() { return worst(); }
  static Acc ident() { return worst(); }
  M map(T x) const {
    if constexpr (Abs) return common::abs_value(x);
    else return x;
  }
  static void lane(M& a, M b) {
    if constexpr (IsMax) max_into(a, b);
    else min_into(a, b);
  }
  static void acc(Acc& a, M b) { lane(a, b); }
  static void merge(Acc& a, Acc b) { lane(a, b); }
  Out finish(Acc a, int64_t) const { return a; }
};

// sum of |x|^p, then ^(1/p). Kind: 0 counts nonzeros, 1 sums |x|, 2 sums squares, else general.
template <typename T, int Kind> struct NormPolicy {
  using M = T;
  using Acc = double;
  using Out = T;
  T p;
  static M lane_ident() { return M(0); }
  static Acc ident() { return 0; }
  M map(T x) const { return common::norm_term<Kind>(x, p); }
  static void lane(M& a, M b) { a += b; }
  static void acc(Acc& a, M b) { a += b; }
  static void merge(Acc& a, Acc b) { a += b; }
  Out finish(Acc a, int64_t) const {
    if constexpr (Kind == 0 || Kind == 1) return static_cast<T>(a);
    else if constexpr (Kind == 2) return static_cast<T>(std::sqrt(a));
    else return static_cast<T>(std::pow(a, 1.0 / static_cast<double>(p)));
  }
};

// ---- loops ----------------------------------------------------------------------------

constexpr int kLanes = 16;
constexpr int64_t kBlock = 256;           // elements per lane block (multiple of kLanes)
constexpr int64_t kSplitChunk = 1 << 16;  // elements per chunk when one reduction is split
constexpr int64_t kColumns = 256;         // outputs per task in the column loop

// acc op= x[0..n) for a contiguous run.
template <typename P, typename T> void reduce_contiguous(const P& pol, const T* __restrict x, int64_t n,
                                                          typename P::Acc& acc) {
  using M = typename P::M;
  int64_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    M lane[kLanes];
    for (int k = 0; k < kLanes; ++k) lane[k] = P::lane_ident();
    for (int64_t j = 0; j < kBlock; j += kLanes)
      for (int k = 0; k < kLanes; ++k) P::lane(lane[k], pol.map(x[i + j + k]));
    for (int w = kLanes / 2; w > 0; w /= 2)
      for (int k = 0; k < w; ++k) P::lane(lane[k], lane[k + w]);
    P::acc(acc, lane[0]);
  }
  for (; i < n; ++i) P::acc(acc, pol.map(x[i]));
}

// acc op= the elements [begin, end) (row-major) of the block at base with geometry in.
template <typename P, typename T> void reduce_range(const P& pol, const T* base, const Dims& in, int64_t begin,
                                                     int64_t end, typename P::Acc& acc) {
  const int last = in.n - 1;
  int64_t idx[kMaxDims];
  int64_t rem = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % in.size[d];
    rem /= in.size[d];
  }
  const int64_t s = in.stride[last];
  int64_t pos = begin;
  while (pos < end) {
    const T* p = base;
    for (int d = 0; d < last; ++d) p += idx[d] * in.stride[d];
    p += idx[last] * s;
    const int64_t n = std::min(in.size[last] - idx[last], end - pos);
    if (s == 1) {
      reduce_contiguous(pol, p, n, acc);
    } else {
      for (int64_t i = 0; i < n; ++i) P::acc(acc, pol.map(p[i * s]));
    }
    pos += n;
    idx[last] += n;
    for (int d = last; d > 0 && idx[d] >= in.size[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

template <typename P, typename T>
void run_policy(const P& pol, const TensorView& out, const TensorView& in, int nreduce) {
  using Out = typename P::Out;
  using Acc = typename P::Acc;
  Out* o = out.ptr<Out>();
  const T* x = in.ptr<T>();
  const int nouter = in.ndim - nreduce;
  Dims outer = coalesce(in.sizes, in.strides, nouter);
  Dims inner = coalesce(in.sizes + nouter, in.strides + nouter, nreduce);
  const int64_t O = outer.numel, N = inner.numel;
  if (O == 0) return;
  if (N == 0) {
    const Out v = pol.finish(P::ident(), 0);
    for (int64_t i = 0; i < O; ++i) o[i] = v;
    return;
  }
  if (inner.n == 0) {  // a single element per output: a one-element "run"
    inner.n = 1;
    inner.size[0] = 1;
    inner.stride[0] = 1;
  }

  // Columns: the innermost kept dim is contiguous and the reduced dims are not, so whole
  // rows of outputs are accumulated at once.
  if (outer.n >= 1 && outer.stride[outer.n - 1] == 1 && inner.stride[inner.n - 1] != 1) {
    const int64_t W = outer.size[outer.n - 1];
    Dims prefix = outer;
    prefix.n -= 1;
    prefix.numel = O / W;
    const int64_t chunks = (W + kColumns - 1) / kColumns;
    const int64_t tasks = prefix.numel * chunks;
    const int64_t grain = std::max<int64_t>(1, kGrain / (std::min(W, kColumns) * N));
    parallel_for(0, tasks, grain, [&](int64_t b, int64_t e) {
      Acc acc[kColumns];
      for (int64_t t = b; t < e; ++t) {
        const int64_t row = t / chunks, c0 = (t % chunks) * kColumns, w = std::min(kColumns, W - c0);
        const T* base = x + OffsetIter(prefix, row).offset + c0;
        for (int64_t j = 0; j < w; ++j) acc[j] = P::ident();
        OffsetIter it(inner, 0);
        for (int64_t r = 0; r < N; ++r, it.next()) {
          const T* __restrict p = base + it.offset;
          for (int64_t j = 0; j < w; ++j) P::acc(acc[j], pol.map(p[j]));
        }
        Out* dst = o + row * W + c0;
        for (int64_t j = 0; j < w; ++j) dst[j] = pol.finish(acc[j], N);
      }
    });
    return;
  }

  // Split: fewer outputs than threads but big blocks.
  if (O < get_num_threads() && N >= 2 * kSplitChunk) {
    const int64_t chunks = (N + kSplitChunk - 1) / kSplitChunk;
    std::vector<Acc> part(static_cast<size_t>(chunks));
    OffsetIter it(outer, 0);
    for (int64_t i = 0; i < O; ++i, it.next()) {
      const T* base = x + it.offset;
      parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          Acc a = P::ident();
          reduce_range(pol, base, inner, c * kSplitChunk, std::min(N, (c + 1) * kSplitChunk), a);
          part[static_cast<size_t>(c)] = a;
        }
      });
      Acc a = part[0];
      for (int64_t c = 1; c < chunks; ++c) P::merge(a, part[static_cast<size_t>(c)]);
      o[i] = pol.finish(a, N);
    }
    return;
  }

  // Rows: each output reduces its own block.
  parallel_for(0, O, std::max<int64_t>(1, kGrain / N), [&](int64_t b, int64_t e) {
    OffsetIter it(outer, b);
    for (int64_t i = b; i < e; ++i, it.next()) {
      Acc a = P::ident();
      reduce_range(pol, x + it.offset, inner, 0, N, a);
      o[i] = pol.finish(a, N);
    }
  });
}

template <typename T, bool IsMax>
void arg_kernel(const TensorView& values, const TensorView& indices, const TensorView& in) {
  const int nouter = in.ndim - 1;
  Dims outer = coalesce(in.sizes, in.strides, nouter);
  const int64_t K = in.sizes[nouter], s = in.strides[nouter];
  const T* x = in.ptr<T>();
  T* vo = values.data ? values.ptr<T>() : nullptr;
  int64_t* io = indices.ptr<int64_t>();
  parallel_for(0, outer.numel, std::max<int64_t>(1, kGrain / K), [&](int64_t b, int64_t e) {
    OffsetIter it(outer, b);
    for (int64_t i = b; i < e; ++i, it.next()) {
      const T* p = x + it.offset;
      T best = p[0];
      int64_t bi = 0;
      for (int64_t k = 1; k < K && !is_nan(best); ++k) {
        const T v = p[k * s];
        if ((IsMax ? v > best : v < best) || is_nan(v)) {
          best = v;
          bi = k;
        }
      }
      if (vo) vo[i] = best;
      io[i] = bi;
    }
  });
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const TensorView& out, const TensorView& in, int nreduce, double p) {
  if (any_16bit(out, in)) [[unlikely]] {  // accumulated in float32, rounded once
    Float32Scope f(*this);
    reduce(op, f.out(out), f.in(in), nreduce, p);
    return f.commit();
  }
  const char* name = common::reduce_op_name(op);
  switch (op) {
    case ReduceOp::Sum:
      return dispatch_all(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        run_policy<SumPolicy<T, false>, T>({}, out, in, nreduce);
      });
    case ReduceOp::Mean:
      return dispatch_float(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        run_policy<SumPolicy<T, true>, T>({}, out, in, nreduce);
      });
    case ReduceOp::Prod:
      return dispatch_all(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        run_policy<ProdPolicy<T>, T>({}, out, in, nreduce);
      });
    case ReduceOp::Max:
      return dispatch_all(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        run_policy<ExtremumPolicy<T, true, false>, T>({}, out, in, nreduce);
      });
    case ReduceOp::Min:
      return dispatch_all(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        run_policy<ExtremumPolicy<T, false, false>, T>({}, out, in, nreduce);
      });
    case ReduceOp::Norm:
      return dispatch_float(in.dtype, name, [&](auto tag) {
        using T = decltype(tag);
        int64_t n = 1;
        for (int d = in.ndim - nreduce; d < in.ndim; ++d) n *= in.sizes[d];
        if (n == 0) {  // every norm of nothing is 0 (also for p = -inf, as PyTorch)
          run_policy<NormPolicy<T, 1>, T>({}, out, in, nreduce);
        } else if (std::isinf(p)) {
          if (p > 0) run_policy<ExtremumPolicy<T, true, true>, T>({}, out, in, nreduce);
          else run_policy<ExtremumPolicy<T, false, true>, T>({}, out, in, nreduce);
        } else if (p == 0) {
          run_policy<NormPolicy<T, 0>, T>({}, out, in, nreduce);
        } else if (p == 1) {
          run_policy<NormPolicy<T, 1>, T>({}, out, in, nreduce);
        } else if (p == 2) {
          run_policy<NormPolicy<T, 2>, T>({}, out, in, nreduce);
        } else {
          run_policy<NormPolicy<T, 3>, T>({static_cast<T>(p)}, out, in, nreduce);
        }
      });
  }
}

void CpuBackend::arg_reduce(bool is_max, const TensorView& values, const TensorView& indices, const TensorView& in) {
  if (any_16bit(values, in)) [[unlikely]] {
    Float32Scope f(*this);
    arg_reduce(is_max, f.out(values), indices, f.in(in));
    return f.commit();
  }
  dispatch_all(in.dtype, is_max ? "max" : "min", [&](auto tag) {
    using T = decltype(tag);
    if (is_max) arg_kernel<T, true>(values, indices, in);
    else arg_kernel<T, false>(values, indices, in);
  });
}

}  // namespace focus::cpu
