// CUDA kernels for the optimizers: fused elementwise Adam/AdamW and SGD updates, one
// parameter per kernel (adam_step, sgd_step) or many per kernel (adam_step_multi,
// sgd_step_multi: PyTorch's multi_tensor_apply, chunks of 64K elements, one block each),
// with the per-element math of backends/common/optim_math.h (the CPU loops use the same
// header, so float32 and float64 updates have the same bits on both devices and on both
// paths). The 16-bit types are updated in float (loaded, updated, rounded back: PyTorch's
// fused kernels do the same), their state tensors staying in the parameter's dtype.
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/common/optim_math.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernel_utils.cuh"

namespace focus::cuda_detail {

namespace {

template <typename T, bool kL2, bool kDecoupled, bool kAmsgrad>
__global__ void __launch_bounds__(kThreads, 1)
    adam_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                T* __restrict__ vmax, int64_t n, common::AdamScalars<acc_t<T>> s) {
  using A = acc_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const A old_vmax = kAmsgrad ? convert<A>(vmax[i]) : A(0);
    const common::AdamElement<A> r = common::adam_update<A, kL2, kDecoupled, kAmsgrad>(
        s, convert<A>(p[i]), convert<A>(g[i]), convert<A>(m[i]), convert<A>(v[i]), old_vmax);
    p[i] = convert<T>(r.param);
    m[i] = convert<T>(r.exp_avg);
    v[i] = convert<T>(r.exp_avg_sq);
    if constexpr (kAmsgrad) vmax[i] = convert<T>(r.max_exp_avg_sq);
  }
}

template <typename T, bool kL2, bool kMomentum, bool kNesterov>
__global__ void __launch_bounds__(kThreads, 1)
    sgd_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf, int64_t n,
               common::SgdScalars<acc_t<T>> s, bool first_step) {
  using A = acc_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // The first step never reads the (uninitialized) buffer.
    const A old_buf = (kMomentum && !first_step) ? convert<A>(buf[i]) : A(0);
    const common::SgdElement<A> r =
        common::sgd_update<A, kL2, kMomentum, kNesterov>(s, first_step, convert<A>(p[i]), convert<A>(g[i]), old_buf);
    p[i] = convert<T>(r.param);
    if constexpr (kMomentum) buf[i] = convert<T>(r.momentum_buffer);
  }
}

// Calls f(std::bool_constant<b>{}) for a runtime flag b.
template <typename F> void with_flag(bool b, F&& f) {
  if (b) f(std::true_type{});
  else f(std::false_type{});
}

// ---- multi-tensor steps ----------------------------------------------------------------------
// The tensors of one launch, their chunk table and per-tensor scalars travel in the kernel's
// arguments (a __grid_constant__ struct, read in place from the parameter bank), so a step
// needs no host-to-device copy. Each tensor lies whole in one launch; a block finds its
// tensor by binary search over the tensors' first chunks.

constexpr int kChunk = 65536;  // elements per block
constexpr int kIlp = 4;        // elements each thread loads before it computes (loads in flight)
// Under the 4 KiB kernel-parameter limit that every CUDA version and GPU accepts.
constexpr size_t kMaxArgBytes = 4000;
// Blocks of one launch (the grid's x limit is 2^31 - 1).
constexpr int64_t kMaxChunksPerLaunch = int64_t{1} << 30;

/// Which chunks (blocks) of a launch belong to which of its N tensors.
template <int N> struct ChunkTable {
  int count;               // tensors in this launch
  int first_chunk[N + 1];  // tensor t owns blocks [first_chunk[t], first_chunk[t + 1])
  int64_t numel[N];
};

/// The block's tensor t and its chunk's element range [base, base + n) in that tensor.
struct ChunkOf {
  int t;
  int n;
  int64_t base;
};

template <int N> __device__ __forceinline__ ChunkOf chunk_of_block(const ChunkTable<N>& c) {
  const int b = static_cast<int>(blockIdx.x);
  int lo = 0, hi = c.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (c.first_chunk[mid] <= b) lo = mid;
    else hi = mid - 1;
  }
  const int64_t base = static_cast<int64_t>(b - c.first_chunk[lo]) * kChunk;
  const int64_t left = c.numel[lo] - base;
  return ChunkOf{lo, left < kChunk ? static_cast<int>(left) : kChunk, base};
}

/// Fills the launches of one dtype: add(args, slot, ref) for each non-empty ref in order,
/// launch(args) whenever the table is full and once at the end.
template <int N, typename Args, typename NumelOf, typename Add, typename Launch>
void pack_launches(const std::vector<size_t>& members, Args& args, NumelOf numel_of, Add add, Launch launch,
                   const char* op) {
  ChunkTable<N>& c = args.chunks;
  c.count = 0;
  c.first_chunk[0] = 0;
  for (const size_t i : members) {
    const int64_t n = numel_of(i);
    if (n == 0) continue;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    FOCUS_CHECK(chunks <= kMaxChunksPerLaunch, "[{}] a tensor of {} elements is too large", op, n);
    if (c.count == N || c.first_chunk[c.count] + chunks > kMaxChunksPerLaunch) {
      launch(args);
      c.count = 0;
    }
    const int slot = c.count;
    c.numel[slot] = n;
    c.first_chunk[slot + 1] = c.first_chunk[slot] + static_cast<int>(chunks);
    add(args, slot, i);
    c.count = slot + 1;
  }
  if (c.count > 0) launch(args);
}

/// The refs' dtypes in order of first appearance, each with the indices of its refs.
template <typename Ref> std::vector<std::pair<DType, std::vector<size_t>>> by_dtype(const Ref* refs, size_t count) {
  std::vector<std::pair<DType, std::vector<size_t>>> groups;
  for (size_t i = 0; i < count; ++i) {
    const DType dt = refs[i].param.dtype;
    size_t g = 0;
    while (g < groups.size() && groups[g].first != dt) ++g;
    if (g == groups.size()) groups.emplace_back(dt, std::vector<size_t>{});
    groups[g].second.push_back(i);
  }
  return groups;
}

// 56 tensors (about 3.9 KB with float64) per Adam launch.
constexpr int kAdamTensors = 56;

template <typename T> struct AdamMultiArgs {
  using A = acc_t<T>;
  ChunkTable<kAdamTensors> chunks;
  common::AdamScalars<A> s;  // shared; neg_step_size and bias_correction2_sqrt per tensor
  T* p[kAdamTensors];
  const T* g[kAdamTensors];
  T* m[kAdamTensors];
  T* v[kAdamTensors];
  T* vmax[kAdamTensors];
  A neg_step_size[kAdamTensors];
  A bias_correction2_sqrt[kAdamTensors];
};
static_assert(sizeof(AdamMultiArgs<double>) <= kMaxArgBytes && sizeof(AdamMultiArgs<float>) <= kMaxArgBytes);

/// capturable (PyTorch's capturable=True): as AdamMultiArgs, but each tensor's step count is
/// read from the device (step_increment_kernel has added one to it), and its step_size and
/// bias_correction2_sqrt are derived there, so a captured CUDA graph steps correctly on every
/// replay. lr, betas and the rest stay the values of the capture.
template <typename T> struct AdamCapturableArgs {
  using A = acc_t<T>;
  ChunkTable<kAdamTensors> chunks;
  common::AdamScalars<A> s;  // shared; neg_step_size and bias_correction2_sqrt from *step
  double lr, beta1, beta2;
  T* p[kAdamTensors];
  const T* g[kAdamTensors];
  T* m[kAdamTensors];
  T* v[kAdamTensors];
  T* vmax[kAdamTensors];
  const float* step[kAdamTensors];
};
static_assert(sizeof(AdamCapturableArgs<double>) <= kMaxArgBytes &&
              sizeof(AdamCapturableArgs<float>) <= kMaxArgBytes);

template <typename T>
__device__ __forceinline__ void tensor_scalars(const AdamMultiArgs<T>& a, int t, common::AdamScalars<acc_t<T>>& s) {
  s.neg_step_size = a.neg_step_size[t];
  s.bias_correction2_sqrt = a.bias_correction2_sqrt[t];
}

template <typename T>
__device__ __forceinline__ void tensor_scalars(const AdamCapturableArgs<T>& a, int t,
                                               common::AdamScalars<acc_t<T>>& s) {
  using A = acc_t<T>;
  // Adam::step's host arithmetic (double), then make_adam_scalars' conversions.
  const double step = static_cast<double>(*a.step[t]);
  const double step_size = a.lr / (1 - pow(a.beta1, step));
  s.neg_step_size = static_cast<A>(-step_size);
  s.bias_correction2_sqrt = static_cast<A>(sqrt(1 - pow(a.beta2, step)));
}

// Step counts of one capturable step: each gets one added, before the update kernels run.
constexpr int kStepPointers = 480;
struct StepIncrementArgs {
  int count;
  float* step[kStepPointers];
};
static_assert(sizeof(StepIncrementArgs) <= kMaxArgBytes);

__global__ void step_increment_kernel(const __grid_constant__ StepIncrementArgs a) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < a.count) *a.step[i] += 1.0f;
}

template <typename T, bool kL2, bool kDecoupled, bool kAmsgrad, typename Args>
__global__ void __launch_bounds__(kThreads, 1) adam_multi_kernel(const __grid_constant__ Args a) {
  using A = acc_t<T>;
  const ChunkOf c = chunk_of_block(a.chunks);
  T* __restrict__ p = a.p[c.t] + c.base;
  const T* __restrict__ g = a.g[c.t] + c.base;
  T* __restrict__ m = a.m[c.t] + c.base;
  T* __restrict__ v = a.v[c.t] + c.base;
  T* __restrict__ vmax = kAmsgrad ? a.vmax[c.t] + c.base : nullptr;
  common::AdamScalars<A> s = a.s;
  tensor_scalars<T>(a, c.t, s);
  for (int i0 = threadIdx.x; i0 < c.n; i0 += kThreads * kIlp) {
    A rp[kIlp], rg[kIlp], rm[kIlp], rv[kIlp], rvmax[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int i = i0 + k * kThreads;
      const bool in = i < c.n;
      rp[k] = in ? convert<A>(p[i]) : A(0);
      rg[k] = in ? convert<A>(g[i]) : A(0);
      rm[k] = in ? convert<A>(m[i]) : A(0);
      rv[k] = in ? convert<A>(v[i]) : A(0);
      rvmax[k] = (kAmsgrad && in) ? convert<A>(vmax[i]) : A(0);
    }
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int i = i0 + k * kThreads;
      if (i < c.n) {
        const common::AdamElement<A> r =
            common::adam_update<A, kL2, kDecoupled, kAmsgrad>(s, rp[k], rg[k], rm[k], rv[k], rvmax[k]);
        p[i] = convert<T>(r.param);
        m[i] = convert<T>(r.exp_avg);
        v[i] = convert<T>(r.exp_avg_sq);
        if constexpr (kAmsgrad) vmax[i] = convert<T>(r.max_exp_avg_sq);
      }
    }
  }
}

// 100 tensors (about 3.8 KB) per SGD launch.
constexpr int kSgdTensors = 100;

template <typename T> struct SgdMultiArgs {
  using A = acc_t<T>;
  ChunkTable<kSgdTensors> chunks;
  common::SgdScalars<A> s;
  T* p[kSgdTensors];
  const T* g[kSgdTensors];
  T* buf[kSgdTensors];
  bool first_step[kSgdTensors];
};
static_assert(sizeof(SgdMultiArgs<double>) <= kMaxArgBytes && sizeof(SgdMultiArgs<float>) <= kMaxArgBytes);

template <typename T, bool kL2, bool kMomentum, bool kNesterov>
__global__ void __launch_bounds__(kThreads, 1) sgd_multi_kernel(const __grid_constant__ SgdMultiArgs<T> a) {
  using A = acc_t<T>;
  const ChunkOf c = chunk_of_block(a.chunks);
  T* __restrict__ p = a.p[c.t] + c.base;
  const T* __restrict__ g = a.g[c.t] + c.base;
  T* __restrict__ buf = kMomentum ? a.buf[c.t] + c.base : nullptr;
  const bool first_step = a.first_step[c.t];
  for (int i0 = threadIdx.x; i0 < c.n; i0 += kThreads * kIlp) {
    A rp[kIlp], rg[kIlp], rbuf[kIlp];
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int i = i0 + k * kThreads;
      const bool in = i < c.n;
      rp[k] = in ? convert<A>(p[i]) : A(0);
      rg[k] = in ? convert<A>(g[i]) : A(0);
      // The first step never reads the (uninitialized) buffer.
      rbuf[k] = (kMomentum && in && !first_step) ? convert<A>(buf[i]) : A(0);
    }
#pragma unroll
    for (int k = 0; k < kIlp; ++k) {
      const int i = i0 + k * kThreads;
      if (i < c.n) {
        const common::SgdElement<A> r =
            common::sgd_update<A, kL2, kMomentum, kNesterov>(a.s, first_step, rp[k], rg[k], rbuf[k]);
        p[i] = convert<T>(r.param);
        if constexpr (kMomentum) buf[i] = convert<T>(r.momentum_buffer);
      }
    }
  }
}

}  // namespace

void CudaBackend::adam_step(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                            const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq, const AdamStepParams& p) {
  const int64_t n = param.numel;
  if (n == 0) return;
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(param.dtype, "adam_step", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const common::AdamScalars<A> s = common::make_adam_scalars<A>(
        p.beta1, p.beta2, p.eps, p.weight_decay, p.param_scale, p.step_size, p.bias_correction2_sqrt, p.maximize);
    T* vmax = p.amsgrad ? max_exp_avg_sq.ptr<T>() : nullptr;
    with_flag(p.weight_decay != 0, [&](auto l2) {
      with_flag(p.param_scale != 1, [&](auto decoupled) {
        with_flag(p.amsgrad, [&](auto amsgrad) {
          adam_kernel<T, decltype(l2)::value, decltype(decoupled)::value, decltype(amsgrad)::value>
              <<<blocks_for(n), kThreads, 0, stream>>>(param.ptr<T>(), grad.ptr<T>(), exp_avg.ptr<T>(),
                                                       exp_avg_sq.ptr<T>(), vmax, n, s);
          FOCUS_CUDA_LAUNCH_CHECK("adam_step");
        });
      });
    });
  });
}

void CudaBackend::sgd_step(const TensorView& param, const TensorView& grad, const TensorView& momentum_buffer,
                           const SgdStepParams& p) {
  const int64_t n = param.numel;
  if (n == 0) return;
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(param.dtype, "sgd_step", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const common::SgdScalars<A> s =
        common::make_sgd_scalars<A>(p.lr, p.momentum, p.dampening, p.weight_decay, p.maximize);
    T* buf = p.momentum != 0 ? momentum_buffer.ptr<T>() : nullptr;
    auto launch = [&](auto l2, auto momentum, auto nesterov) {
      sgd_kernel<T, decltype(l2)::value, decltype(momentum)::value, decltype(nesterov)::value>
          <<<blocks_for(n), kThreads, 0, stream>>>(param.ptr<T>(), grad.ptr<T>(), buf, n, s, p.first_step);
      FOCUS_CUDA_LAUNCH_CHECK("sgd_step");
    };
    with_flag(p.weight_decay != 0, [&](auto l2) {
      if (p.momentum == 0) launch(l2, std::false_type{}, std::false_type{});
      else if (p.nesterov) launch(l2, std::true_type{}, std::true_type{});
      else launch(l2, std::true_type{}, std::false_type{});
    });
  });
}

void CudaBackend::adam_step_multi(const AdamTensorRef* refs, size_t count, const AdamStepParams& p) {
  constexpr const char* op = "adam_step_multi";
  const cudaStream_t stream = stream_of(index_);
  if (p.capturable) {
    // One added to every step count first (stream order puts it before the updates).
    StepIncrementArgs inc{};
    auto flush = [&] {
      if (inc.count == 0) return;
      step_increment_kernel<<<(inc.count + kThreads - 1) / kThreads, kThreads, 0, stream>>>(inc);
      FOCUS_CUDA_LAUNCH_CHECK(op);
      inc.count = 0;
    };
    for (size_t i = 0; i < count; ++i) {
      if (refs[i].param.numel == 0) continue;
      FOCUS_CHECK(refs[i].step != nullptr, "[{}] capturable: refs[{}] has no step count", op, i);
      inc.step[inc.count++] = refs[i].step;
      if (inc.count == kStepPointers) flush();
    }
    flush();
  }
  for (const auto& [dtype, members] : by_dtype(refs, count)) {
    dispatch_float(dtype, op, [&, &members = members](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      auto numel_of = [&](size_t i) { return refs[i].param.numel; };
      auto run = [&](auto& args, auto add_own) {
        using Args = std::remove_reference_t<decltype(args)>;
        args.s = common::make_adam_scalars<A>(p.beta1, p.beta2, p.eps, p.weight_decay, p.param_scale, p.step_size,
                                              p.bias_correction2_sqrt, p.maximize);
        auto add = [&](Args& a, int slot, size_t i) {
          const AdamTensorRef& r = refs[i];
          a.p[slot] = r.param.ptr<T>();
          a.g[slot] = r.grad.ptr<T>();
          a.m[slot] = r.exp_avg.ptr<T>();
          a.v[slot] = r.exp_avg_sq.ptr<T>();
          a.vmax[slot] = p.amsgrad ? r.max_exp_avg_sq.ptr<T>() : nullptr;
          add_own(a, slot, r);
        };
        with_flag(p.weight_decay != 0, [&](auto l2) {
          with_flag(p.param_scale != 1, [&](auto decoupled) {
            with_flag(p.amsgrad, [&](auto amsgrad) {
              auto launch = [&](const Args& a) {
                adam_multi_kernel<T, decltype(l2)::value, decltype(decoupled)::value, decltype(amsgrad)::value, Args>
                    <<<static_cast<unsigned>(a.chunks.first_chunk[a.chunks.count]), kThreads, 0, stream>>>(a);
                FOCUS_CUDA_LAUNCH_CHECK(op);
              };
              pack_launches<kAdamTensors>(members, args, numel_of, add, launch, op);
            });
          });
        });
      };
      if (p.capturable) {
        AdamCapturableArgs<T> args{};
        args.lr = p.lr;
        args.beta1 = p.beta1;
        args.beta2 = p.beta2;
        run(args, [](AdamCapturableArgs<T>& a, int slot, const AdamTensorRef& r) { a.step[slot] = r.step; });
      } else {
        AdamMultiArgs<T> args{};
        run(args, [&](AdamMultiArgs<T>& a, int slot, const AdamTensorRef& r) {
          // The same conversions as adam_step's scalars, so the same bits.
          const common::AdamScalars<A> own =
              common::make_adam_scalars<A>(p.beta1, p.beta2, p.eps, p.weight_decay, p.param_scale, r.step_size,
                                           r.bias_correction2_sqrt, p.maximize);
          a.neg_step_size[slot] = own.neg_step_size;
          a.bias_correction2_sqrt[slot] = own.bias_correction2_sqrt;
        });
      }
    });
  }
}

void CudaBackend::sgd_step_multi(const SgdTensorRef* refs, size_t count, const SgdStepParams& p) {
  constexpr const char* op = "sgd_step_multi";
  const cudaStream_t stream = stream_of(index_);
  const bool momentum = p.momentum != 0;
  for (const auto& [dtype, members] : by_dtype(refs, count)) {
    dispatch_float(dtype, op, [&, &members = members](auto tag) {
      using T = decltype(tag);
      using A = acc_t<T>;
      SgdMultiArgs<T> args{};
      args.s = common::make_sgd_scalars<A>(p.lr, p.momentum, p.dampening, p.weight_decay, p.maximize);
      auto numel_of = [&](size_t i) { return refs[i].param.numel; };
      auto add = [&](SgdMultiArgs<T>& a, int slot, size_t i) {
        const SgdTensorRef& r = refs[i];
        a.p[slot] = r.param.ptr<T>();
        a.g[slot] = r.grad.ptr<T>();
        a.buf[slot] = momentum ? r.momentum_buffer.ptr<T>() : nullptr;
        a.first_step[slot] = r.first_step;
      };
      auto run = [&](auto l2, auto mom, auto nesterov) {
        auto launch = [&](const SgdMultiArgs<T>& a) {
          sgd_multi_kernel<T, decltype(l2)::value, decltype(mom)::value, decltype(nesterov)::value>
              <<<static_cast<unsigned>(a.chunks.first_chunk[a.chunks.count]), kThreads, 0, stream>>>(a);
          FOCUS_CUDA_LAUNCH_CHECK(op);
        };
        pack_launches<kSgdTensors>(members, args, numel_of, add, launch, op);
      };
      with_flag(p.weight_decay != 0, [&](auto l2) {
        if (!momentum) run(l2, std::false_type{}, std::false_type{});
        else if (p.nesterov) run(l2, std::true_type{}, std::true_type{});
        else run(l2, std::true_type{}, std::false_type{});
      });
    });
  }
}

}  // namespace focus::cuda_detail
