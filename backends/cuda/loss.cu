// CUDA kernels for the losses: cross entropy, nll and mse, forward/backward pairs, with the
// CPU's formulas (backends/common/loss_math.h) and reductions.
//   Class-indexed losses see input [N, C, D] (any strides) and int64 targets [N, D]: a row
//   is (n, d). Cross entropy's forward takes a warp or a block per row when D == 1 (the
//   classes are the row) and a thread per row otherwise (neighbouring threads then read
//   neighbouring d). The backwards write every element of the contiguous [N, C, D]
//   gradient from its row's saved values, one thread per element.
//   Reductions to a scalar are deterministic: per-row losses (and the weights of the Mean
//   divisor) are summed in double by deterministic_sum2 (a fixed split into blocks, a tree
//   in each, one final block); the Mean divisor of a backward is summed the same way on the
//   device, so nothing waits for the host.
//   Targets were checked by the raw op (check_indices, reported at the next
//   synchronisation); a target outside [0, C) that is not ignore_index is treated as
//   ignored here, so that it never reads or writes out of bounds.
#include "backends/common/loss_math.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/fused_utils.cuh"

namespace focus::cuda_detail {

using namespace fused;

namespace {

using Red = Backend::LossReduction;
using common::MaxSum;

// Geometry of a class-indexed loss: input [N, C, D] with its strides, targets [N, D].
struct ClassGeom {
  int64_t N, C, D;
  int64_t sn, sc, sd;  // input strides
  int64_t tn, td;      // target strides
  int64_t ignore_index;
  __device__ __forceinline__ int64_t target(const int64_t* t, int64_t n, int64_t d) const {
    return t[n * tn + d * td];
  }
  // A target that contributes: not ignored, and in range (the defensive part).
  __device__ __forceinline__ bool counts(int64_t v) const { return v != ignore_index && v >= 0 && v < C; }
};

ClassGeom geom_of(const TensorView& in, const TensorView& target, int64_t ignore_index) {
  ClassGeom g;
  g.N = in.sizes[0];
  g.C = in.sizes[1];
  g.D = in.sizes[2];
  g.sn = in.strides[0];
  g.sc = in.strides[1];
  g.sd = in.strides[2];
  g.tn = target.strides[0];
  g.td = target.strides[1];
  g.ignore_index = ignore_index;
  return g;
}

// The per-row loss of a row kernel: written as it is (None), or summed with its weight.
struct RowsSum {
  const double* loss;
  const double* weight;
  __device__ double2 operator()(int64_t r) const { return make_double2(loss[r], weight[r]); }
};

// Writes the reduced loss: the sum, or the sum over the summed weights for Mean (0 / 0 =
// nan over no counted target, as in PyTorch).
template <typename T> struct FinishLoss {
  T* out;
  bool mean;
  __device__ void operator()(double2 total) const { *out = convert<T>(mean ? total.x / total.y : total.x); }
};

// Row r's gradient scale, as the CPU's GradScale: grad[n, d] for None, else the 0-d grad
// times 1 / (the Mean divisor) or 1, in double, rounded to T.
template <typename T> struct GradScale {
  const T* g;
  int64_t gn, gd;
  Red reduction;
  const double* divisor;  // device scalar, Mean only
  __device__ __forceinline__ T at(int64_t n, int64_t d) const {
    if (reduction == Red::None) return g[n * gn + d * gd];
    const double factor = reduction == Red::Mean ? 1.0 / *divisor : 1.0;
    return convert<T>(static_cast<double>(convert<acc_t<T>>(g[0])) * factor);
  }
};

template <typename T>
GradScale<T> grad_scale_of(const TensorView& grad, Red reduction, const double* divisor) {
  GradScale<T> s;
  s.g = grad.ptr<T>();
  s.reduction = reduction;
  s.divisor = divisor;
  s.gn = reduction == Red::None ? grad.strides[0] : 0;
  s.gd = reduction == Red::None ? grad.strides[1] : 0;
  return s;
}

// ---- cross entropy forward ------------------------------------------------------------------

template <typename T> struct CeForward {
  const T* x;
  const int64_t* t;
  const T* w;       // [C] or null
  T* lse;           // [N, D]
  T* out;           // [N, D] for None, else null
  double* row_loss;  // [N, D] when reducing
  double* row_w;
  ClassGeom g;
  double eps;
};

template <typename T, int TPR>
__global__ void __launch_bounds__(kRowBlock, 1) cross_entropy_forward_kernel(CeForward<T> a) {
  using A = acc_t<T>;
  const ClassGeom& g = a.g;
  const int64_t lane = threadIdx.x;
  const int64_t R = g.N * g.D;
  const bool smooth = a.eps > 0;
  const bool plain_sum = smooth && !a.w;
  const int64_t rows_per_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; r < R; r += rows_per_step) {
    const int64_t n = r / g.D, d = r - n * g.D;
    const T* xr = a.x + n * g.sn + d * g.sd;
    const int64_t tv = g.target(a.t, n, d);
    const bool counts = g.counts(tv);
    MaxSum<A> st = common::maxsum_empty<A>();
    A sum = 0;
    for (int64_t c = lane; c < g.C; c += TPR) {
      const A v = convert<A>(xr[c * g.sc]);
      st = common::maxsum_push(st, v);
      if (plain_sum) sum += v;
    }
    st = row_allreduce<TPR>(st, MaxSumOp{});
    if (plain_sum) sum = row_allreduce<TPR>(sum, AddOp{});
    const A l = common::maxsum_lse(st);
    const double ld = static_cast<double>(l);
    double acc = 0;
    if (smooth && a.w && counts) {  // the same for every lane of the row
      for (int64_t c = lane; c < g.C; c += TPR)
        acc += static_cast<double>(convert<A>(a.w[c])) * (ld - static_cast<double>(convert<A>(xr[c * g.sc])));
      acc = row_allreduce<TPR>(acc, AddOp{});
    }
    if (lane == 0) {
      a.lse[r] = convert<T>(l);
      double v = 0, wt = 0;
      if (counts) {
        const double xt = static_cast<double>(convert<A>(xr[tv * g.sc]));
        if (!a.w) {
          wt = 1;
          v = common::cross_entropy_row(ld, xt, a.eps, g.C, static_cast<double>(sum));
        } else {
          wt = static_cast<double>(convert<A>(a.w[tv]));
          v = common::cross_entropy_row_weighted(ld, xt, wt, a.eps, g.C, acc);
        }
      }
      if (a.out) {
        a.out[r] = convert<T>(v);
      } else {
        a.row_loss[r] = v;
        a.row_w[r] = wt;
      }
    }
  }
}

// ---- cross entropy and nll backward ---------------------------------------------------------

// The Mean divisor (.x: sum of w[t], or the count, over counted rows) and the sum of the class
// weights (.y), over i in [0, max(rows, C)).
template <typename T> struct DivisorAndWeightSum {
  const int64_t* t;
  const T* w;
  ClassGeom g;
  __device__ double2 operator()(int64_t i) const {
    double div = 0, wsum = 0;
    if (i < g.N * g.D) {
      const int64_t n = i / g.D, d = i - n * g.D;
      const int64_t tv = g.target(t, n, d);
      if (g.counts(tv)) div = w ? static_cast<double>(convert<acc_t<T>>(w[tv])) : 1.0;
    }
    if (w && i < g.C) wsum = static_cast<double>(convert<acc_t<T>>(w[i]));
    return make_double2(div, wsum);
  }
};

struct StoreStats {
  double* dst;
  __device__ void operator()(double2 total) const {
    dst[0] = total.x;
    dst[1] = total.y;
  }
};

// stats[0] = Mean divisor, stats[1] = sum of the class weights, computed on the device.
template <typename T>
void loss_stats(int device, double* stats, const TensorView& target, const T* w, const ClassGeom& g,
                const char* op) {
  const int64_t n = std::max(g.N * g.D, w ? g.C : int64_t{0});
  deterministic_sum2(device, n, DivisorAndWeightSum<T>{target.ptr<int64_t>(), w, g}, StoreStats{stats}, op);
}

// The grid-stride walk of the backward kernels over a contiguous [N, C, D] gradient:
// f(e, n, c, d, tv) for each element e at (n, c, d), tv the target of its (n, d).
template <typename F>
__device__ __forceinline__ void for_each_class_grad(const ClassGeom& g, const int64_t* t, const F& f) {
  const int64_t total = g.N * g.C * g.D;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t q = e / g.D, d = e - q * g.D;
    const int64_t n = q / g.C, c = q - n * g.C;
    f(e, n, c, d, g.target(t, n, d));
  }
}

template <typename T> struct CeBackward {
  T* gx;  // contiguous [N, C, D]
  const T* x;
  const T* lse;  // contiguous [N, D]
  const int64_t* t;
  const T* w;
  const double* stats;  // [divisor, weight sum] or null
  GradScale<T> scale;
  ClassGeom g;
  double eps;
};

// gx may be x itself (raw::cross_entropy_backward writes the gradient over the logits when
// nothing else holds them): each thread reads its element's logit and then writes that same
// element's gradient, and x is not __restrict__ (no read-only cache loads of written data).
template <typename T> __global__ void __launch_bounds__(kThreads, 1) cross_entropy_backward_kernel(CeBackward<T> a) {
  using A = acc_t<T>;
  const ClassGeom& g = a.g;
  const A off = convert<A>(convert<T>(a.eps / static_cast<double>(g.C)));
  const A on = convert<A>(convert<T>(1 - a.eps));
  for_each_class_grad(g, a.t, [&](int64_t e, int64_t n, int64_t c, int64_t d, int64_t tv) {
    if (!g.counts(tv)) {
      a.gx[e] = convert<T>(0.0f);
      return;
    }
    const A s = convert<A>(a.scale.at(n, d));
    const A p = common::hd_exp(convert<A>(a.x[n * g.sn + c * g.sc + d * g.sd]) - convert<A>(a.lse[n * g.D + d]));
    A v;
    if (!a.w) {
      v = common::cross_entropy_grad<A>(p, off, on, s, c == tv);
    } else {
      const A wt = convert<A>(a.w[tv]);
      const A coef = convert<A>(convert<T>(common::cross_entropy_grad_coef(static_cast<double>(wt), a.eps, g.C, a.stats[1])));
      v = common::cross_entropy_grad_weighted<A>(p, coef * s, off * s, convert<A>(a.w[c]), on, wt, s, c == tv);
    }
    a.gx[e] = convert<T>(v);
  });
}

template <typename T> struct NllBackward {
  T* gx;  // contiguous [N, C, D]
  const int64_t* t;
  const T* w;
  GradScale<T> scale;
  ClassGeom g;
};

// -w[t] g at the target class, 0 elsewhere.
template <typename T> __global__ void __launch_bounds__(kThreads, 1) nll_loss_backward_kernel(NllBackward<T> a) {
  using A = acc_t<T>;
  const ClassGeom& g = a.g;
  for_each_class_grad(g, a.t, [&](int64_t e, int64_t n, int64_t c, int64_t d, int64_t tv) {
    if (!g.counts(tv) || c != tv) {
      a.gx[e] = convert<T>(0.0f);
      return;
    }
    const A v = -convert<A>(a.scale.at(n, d));
    a.gx[e] = a.w ? convert<T>(convert<A>(a.w[tv]) * convert<A>(convert<T>(v))) : convert<T>(v);
  });
}

// ---- nll forward ----------------------------------------------------------------------------

// Row r's loss -w[t] x[n, t, d] (.x) and weight (.y).
template <typename T> struct NllRow {
  const T* x;
  const int64_t* t;
  const T* w;
  ClassGeom g;
  __device__ double2 operator()(int64_t r) const {
    const int64_t n = r / g.D, d = r - n * g.D;
    const int64_t tv = g.target(t, n, d);
    if (!g.counts(tv)) return make_double2(0.0, 0.0);
    const double v = -static_cast<double>(convert<acc_t<T>>(x[n * g.sn + tv * g.sc + d * g.sd]));
    if (!w) return make_double2(v, 1.0);
    const double wt = static_cast<double>(convert<acc_t<T>>(w[tv]));
    return make_double2(wt * v, wt);
  }
};

template <typename T, typename F>
__global__ void __launch_bounds__(kThreads, 1) rows_to_out_kernel(T* __restrict__ out, F f, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = convert<T>(f(i).x);
}

// ---- mse ------------------------------------------------------------------------------------

template <typename T> struct MseNone {
  T* out;
  const T* a;
  const T* b;
  template <typename I> __device__ void operator()(const I (&off)[3]) const {
    using A = acc_t<T>;
    const A d = convert<A>(a[off[1]]) - convert<A>(b[off[2]]);
    out[off[0]] = convert<T>(d * d);
  }
};

template <typename T, typename I> struct MseSquare {
  Indexer<2, I> ix;
  const T* a;
  const T* b;
  __device__ double2 operator()(int64_t i) const {
    using A = acc_t<T>;
    I off[2];
    ix.offsets(static_cast<I>(i), off);
    const A d = convert<A>(a[off[0]]) - convert<A>(b[off[1]]);
    return make_double2(static_cast<double>(d * d), 0.0);
  }
};

template <typename T> struct FinishMse {
  T* out;
  bool mean;
  double numel;
  __device__ void operator()(double2 total) const { *out = convert<T>(mean ? total.x / numel : total.x); }
};

// grad_input = f (a - b) g, f = 2 (/ numel for Mean) rounded to T.
template <typename T> struct MseBackward {
  T* gx;
  const T* g;
  const T* a;
  const T* b;
  acc_t<T> f;
  template <typename I> __device__ void operator()(const I (&off)[4]) const {
    using A = acc_t<T>;
    gx[off[0]] = convert<T>(f * (convert<A>(a[off[2]]) - convert<A>(b[off[3]])) * convert<A>(g[off[1]]));
  }
};

}  // namespace

// ---- cross entropy ---------------------------------------------------------------------------

void CudaBackend::cross_entropy_forward(const TensorView& out, const TensorView& lse, const TensorView& logits,
                                        const TensorView& target, const TensorView& weight, int64_t ignore_index,
                                        double label_smoothing, LossReduction reduction) {
  const ClassGeom g = geom_of(logits, target, ignore_index);
  const int64_t R = g.N * g.D;
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(logits.dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    CeForward<T> a;
    a.x = logits.ptr<T>();
    a.t = target.ptr<int64_t>();
    a.w = weight.data ? weight.ptr<T>() : nullptr;
    a.lse = lse.ptr<T>();
    a.out = reduction == Red::None ? out.ptr<T>() : nullptr;
    a.g = g;
    a.eps = label_smoothing;
    const bool reduce = reduction != Red::None;
    DeviceBuffer rows(index_, reduce ? static_cast<size_t>(2 * R) * sizeof(double) : 0);
    a.row_loss = reduce ? rows.as<double>() : nullptr;
    a.row_w = reduce ? rows.as<double>() + R : nullptr;
    if (R > 0) {
      if (g.D != 1) {
        cross_entropy_forward_kernel<T, 1><<<row_grid<1>(R), row_block<1>(), 0, stream>>>(a);
      } else if (use_block_per_row(g.C)) {
        cross_entropy_forward_kernel<T, kRowBlock><<<row_grid<kRowBlock>(R), row_block<kRowBlock>(), 0, stream>>>(a);
      } else {
        cross_entropy_forward_kernel<T, 32><<<row_grid<32>(R), row_block<32>(), 0, stream>>>(a);
      }
      FOCUS_CUDA_LAUNCH_CHECK("cross_entropy");
    }
    if (reduce)
      deterministic_sum2(index_, R, RowsSum{a.row_loss, a.row_w}, FinishLoss<T>{out.ptr<T>(), reduction == Red::Mean},
                         "cross_entropy");
  });
}

void CudaBackend::cross_entropy_backward(const TensorView& grad_logits, const TensorView& grad,
                                         const TensorView& logits, const TensorView& lse, const TensorView& target,
                                         const TensorView& weight, int64_t ignore_index, double label_smoothing,
                                         LossReduction reduction) {
  const ClassGeom g = geom_of(logits, target, ignore_index);
  const int64_t total = g.N * g.C * g.D;
  if (total == 0) return;
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(logits.dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    const bool need_stats = reduction == Red::Mean || w;
    DeviceBuffer stats(index_, need_stats ? 2 * sizeof(double) : 0);
    if (need_stats) loss_stats<T>(index_, stats.as<double>(), target, w, g, "cross_entropy_backward");
    CeBackward<T> a;
    a.gx = grad_logits.ptr<T>();
    a.x = logits.ptr<T>();
    a.lse = lse.ptr<T>();
    a.t = target.ptr<int64_t>();
    a.w = w;
    a.stats = need_stats ? stats.as<double>() : nullptr;
    a.scale = grad_scale_of<T>(grad, reduction, a.stats);
    a.g = g;
    a.eps = label_smoothing;
    cross_entropy_backward_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(a);
    FOCUS_CUDA_LAUNCH_CHECK("cross_entropy_backward");
  });
}

// ---- nll ------------------------------------------------------------------------------------

void CudaBackend::nll_loss_forward(const TensorView& out, const TensorView& log_probs, const TensorView& target,
                                   const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
  const ClassGeom g = geom_of(log_probs, target, ignore_index);
  const int64_t R = g.N * g.D;
  dispatch_float(log_probs.dtype, "nll_loss", [&](auto tag) {
    using T = decltype(tag);
    const NllRow<T> f{log_probs.ptr<T>(), target.ptr<int64_t>(), weight.data ? weight.ptr<T>() : nullptr, g};
    if (reduction == Red::None) {
      if (R == 0) return;
      rows_to_out_kernel<T><<<blocks_for(R), kThreads, 0, stream_of(index_)>>>(out.ptr<T>(), f, R);
      FOCUS_CUDA_LAUNCH_CHECK("nll_loss");
      return;
    }
    deterministic_sum2(index_, R, f, FinishLoss<T>{out.ptr<T>(), reduction == Red::Mean}, "nll_loss");
  });
}

void CudaBackend::nll_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& target,
                                    const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
  // The geometry of grad_input (contiguous [N, C, D]).
  const ClassGeom g = geom_of(grad_input, target, ignore_index);
  const int64_t total = g.N * g.C * g.D;
  if (total == 0) return;
  dispatch_float(grad_input.dtype, "nll_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    const bool need_stats = reduction == Red::Mean;
    DeviceBuffer stats(index_, need_stats ? 2 * sizeof(double) : 0);
    if (need_stats) loss_stats<T>(index_, stats.as<double>(), target, w, g, "nll_loss_backward");
    NllBackward<T> a;
    a.gx = grad_input.ptr<T>();
    a.t = target.ptr<int64_t>();
    a.w = w;
    a.scale = grad_scale_of<T>(grad, reduction, need_stats ? stats.as<double>() : nullptr);
    a.g = g;
    nll_loss_backward_kernel<T><<<blocks_for(total), kThreads, 0, stream_of(index_)>>>(a);
    FOCUS_CUDA_LAUNCH_CHECK("nll_loss_backward");
  });
}

// ---- mse ------------------------------------------------------------------------------------

void CudaBackend::mse_loss_forward(const TensorView& out, const TensorView& input, const TensorView& target,
                                   LossReduction reduction) {
  dispatch_float(input.dtype, "mse_loss", [&](auto tag) {
    using T = decltype(tag);
    if (reduction == Red::None) {
      launch_strided<3>(index_, {&out, &input, &target}, MseNone<T>{out.ptr<T>(), input.ptr<T>(), target.ptr<T>()},
                        "mse_loss");
      return;
    }
    const Coalesced<2> c = coalesce<2>({&input, &target});
    const FinishMse<T> fin{out.ptr<T>(), reduction == Red::Mean, static_cast<double>(input.numel)};
    with_indexer(c, [&](auto ix) {
      using I = std::remove_reference_t<decltype(ix.sizes[0])>;
      deterministic_sum2(index_, input.numel, MseSquare<T, I>{ix, input.ptr<T>(), target.ptr<T>()}, fin, "mse_loss");
    });
  });
}

void CudaBackend::mse_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& input,
                                    const TensorView& target, LossReduction reduction) {
  dispatch_float(grad_input.dtype, "mse_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const double f = reduction == Red::Mean ? 2.0 / static_cast<double>(grad_input.numel) : 2.0;
    launch_strided<4>(index_, {&grad_input, &grad, &input, &target},
                      MseBackward<T>{grad_input.ptr<T>(), grad.ptr<T>(), input.ptr<T>(), target.ptr<T>(),
                                     convert<A>(convert<T>(f))},
                      "mse_loss_backward");
  });
}

}  // namespace focus::cuda_detail
