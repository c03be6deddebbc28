// CUDA kernels for the optimizers: one fused elementwise Adam/AdamW or SGD update per
// parameter, with the per-element math of backends/common/optim_math.h (the CPU loops use
// the same header, so float32 and float64 updates have the same bits on both devices). The
// 16-bit types are updated in float (loaded, updated, rounded back: PyTorch's fused
// kernels do the same), their state tensors staying in the parameter's dtype.
#include <type_traits>

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

}  // namespace focus::cuda_detail
