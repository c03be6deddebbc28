// CPU kernels for the optimizers: one fused Adam/AdamW loop per parameter.
#include <cmath>
#include <type_traits>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/parallel.h"

namespace focus::cpu {

namespace {

// PyTorch's vectorized `a.add_(b, alpha=s)` is one fused multiply-add (vec::fmadd), so the
// add-with-alpha steps use std::fma; the other steps are separate ops there and are kept
// separate (and rounded in T) here.
template <typename T, bool kL2, bool kDecoupled, bool kAmsgrad>
void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
               int64_t n, const Backend::AdamStepParams& s) {
  const T sign = s.maximize ? T(-1) : T(1);
  const T wd = static_cast<T>(s.weight_decay);
  const T scale = static_cast<T>(s.param_scale);
  const T b1 = static_cast<T>(s.beta1), one_minus_b1 = static_cast<T>(1 - s.beta1);
  const T b2 = static_cast<T>(s.beta2), one_minus_b2 = static_cast<T>(1 - s.beta2);
  const T bc2 = static_cast<T>(s.bias_correction2_sqrt);
  const T eps = static_cast<T>(s.eps);
  const T neg_step = static_cast<T>(-s.step_size);
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      T gi = g[i] * sign;
      T pi = p[i];
      if constexpr (kL2) gi = std::fma(pi, wd, gi);        // grad.add(param, alpha=wd)
      if constexpr (kDecoupled) pi = pi * scale;           // param.mul_(1 - lr * wd)
      const T mi = std::fma(gi, one_minus_b1, m[i] * b1);  // exp_avg.mul_(b1).add_(g, alpha=1-b1)
      const T gg = one_minus_b2 * gi;
      const T vi = std::fma(gg, gi, v[i] * b2);            // exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
      m[i] = mi;
      v[i] = vi;
      T vd = vi;
      if constexpr (kAmsgrad) {
        const T old = vmax[i];
        vd = (old > vi || old != old) ? old : vi;          // torch.maximum (NaN propagates)
        vmax[i] = vd;
      }
      const T denom = std::sqrt(vd) / bc2 + eps;
      p[i] = pi + (neg_step * mi) / denom;                 // param.addcdiv_(m, denom, value=-step_size)
    }
  });
}

template <typename T>
void adam_dispatch(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                   const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq, const Backend::AdamStepParams& s) {
  T* p = param.ptr<T>();
  const T* g = grad.ptr<T>();
  T* m = exp_avg.ptr<T>();
  T* v = exp_avg_sq.ptr<T>();
  T* vmax = s.amsgrad ? max_exp_avg_sq.ptr<T>() : nullptr;
  const int64_t n = param.numel;
  const bool l2 = s.weight_decay != 0;
  const bool decoupled = s.param_scale != 1;
  // Every combination of the three flags is its own branch-free loop.
  auto run = [&](auto l2_tag, auto dec_tag, auto ams_tag) {
    adam_loop<T, decltype(l2_tag)::value, decltype(dec_tag)::value, decltype(ams_tag)::value>(p, g, m, v, vmax, n,
                                                                                            s);
  };
  using F = std::false_type;
  using Tr = std::true_type;
  auto with_ams = [&](auto l2_tag, auto dec_tag) {
    if (s.amsgrad) run(l2_tag, dec_tag, Tr{});
    else run(l2_tag, dec_tag, F{});
  };
  auto with_dec = [&](auto l2_tag) {
    if (decoupled) with_ams(l2_tag, Tr{});
    else with_ams(l2_tag, F{});
  };
  if (l2) with_dec(Tr{});
  else with_dec(F{});
}

}  // namespace

void CpuBackend::adam_step(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                           const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq,
                           const AdamStepParams& p) {
  dispatch_float(param.dtype, "adam_step", [&](auto tag) {
    using T = decltype(tag);
    adam_dispatch<T>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, p);
  });
}

}  // namespace focus::cpu
