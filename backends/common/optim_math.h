#pragma once
/// The per-element updates of the fused optimizer kernels (Backend::adam_step and
/// Backend::sgd_step), written once for the CPU loops and the CUDA kernels. T is the type the
/// update is computed in (the parameter's dtype for float32 and float64; float for the
/// 16-bit types on CUDA). The order of operations is PyTorch's single-tensor one, as
/// documented in backends/backend.h; `a.add(b, alpha=s)` is one fused multiply-add
/// (PyTorch's vectorized add), every other step is rounded on its own. Only fma, products,
/// sqrt and division appear, all correctly rounded on both devices, and no product feeds
/// an addition outside an explicit fma or hd_mul_rn (the compilers' contraction has nothing
/// to fuse), so float32 and float64 updates are bit-identical on the CPU and the GPU.
#include "backends/common/hd.h"
#include "backends/common/hd_math.h"

namespace focus::common {

// ---- Adam / AdamW --------------------------------------------------------------------------

/// The scalars of one Adam step in T, from the double AdamStepParams.
template <typename T> struct AdamScalars {
  T sign;          // -1 when maximizing
  T weight_decay;  // L2 term (Adam)
  T param_scale;   // decoupled decay (AdamW): 1 - lr * weight_decay
  T beta1, one_minus_beta1;
  T beta2, one_minus_beta2;
  T bias_correction2_sqrt;
  T eps;
  T neg_step_size;  // -lr / (1 - beta1^step)
};

template <typename T>
FOCUS_HD AdamScalars<T> make_adam_scalars(double beta1, double beta2, double eps, double weight_decay,
                                          double param_scale, double step_size, double bias_correction2_sqrt,
                                          bool maximize) {
  AdamScalars<T> s;
  s.sign = maximize ? T(-1) : T(1);
  s.weight_decay = static_cast<T>(weight_decay);
  s.param_scale = static_cast<T>(param_scale);
  s.beta1 = static_cast<T>(beta1);
  s.one_minus_beta1 = static_cast<T>(1 - beta1);
  s.beta2 = static_cast<T>(beta2);
  s.one_minus_beta2 = static_cast<T>(1 - beta2);
  s.bias_correction2_sqrt = static_cast<T>(bias_correction2_sqrt);
  s.eps = static_cast<T>(eps);
  s.neg_step_size = static_cast<T>(-step_size);
  return s;
}

/// One element's new values (vmax only meaningful with amsgrad).
template <typename T> struct AdamElement {
  T param, exp_avg, exp_avg_sq, max_exp_avg_sq;
};

/// One Adam/AdamW update of one element. kL2: weight_decay != 0 (Adam's L2 term);
/// kDecoupled: param_scale != 1 (AdamW); kAmsgrad: use and update max_exp_avg_sq.
///   g = sign * grad;  g = fma(p, wd, g)                       grad.add(param, alpha=wd)
///   p = p * param_scale                                       param.mul_(1 - lr * wd)
///   m = fma(g, 1 - b1, m * b1)                                exp_avg.mul_(b1).add_(g, alpha=1-b1)
///   v = fma((1 - b2) * g, g, v * b2)                          exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
///   vmax = maximum(vmax, v) (NaN propagates)                  torch.maximum
///   denom = sqrt(amsgrad ? vmax : v) / bias_correction2_sqrt + eps
///   p = p + (-step_size * m) / denom                          param.addcdiv_(m, denom, value=-step_size)
/// The scaling of p is rounded on its own (hd_mul_rn), so no compiler fuses it into the
/// final addition: the CPU loop has always computed it that way, and nvcc would fuse it.
template <typename T, bool kL2, bool kDecoupled, bool kAmsgrad>
FOCUS_HD AdamElement<T> adam_update(const AdamScalars<T>& s, T param, T grad, T exp_avg, T exp_avg_sq,
                                    T max_exp_avg_sq) {
  T g = grad * s.sign;
  if constexpr (kL2) g = hd_fma(param, s.weight_decay, g);
  const T m = hd_fma(g, s.one_minus_beta1, exp_avg * s.beta1);
  const T gg = s.one_minus_beta2 * g;
  const T v = hd_fma(gg, g, exp_avg_sq * s.beta2);
  T vd = v;
  if constexpr (kAmsgrad) vd = (max_exp_avg_sq > v || max_exp_avg_sq != max_exp_avg_sq) ? max_exp_avg_sq : v;
  const T denom = hd_sqrt(vd) / s.bias_correction2_sqrt + s.eps;
  const T step = (s.neg_step_size * m) / denom;
  T p = param;
  if constexpr (kDecoupled) p = hd_mul_rn(param, s.param_scale);
  return AdamElement<T>{p + step, m, v, vd};
}

// ---- SGD -----------------------------------------------------------------------------------

template <typename T> struct SgdScalars {
  T sign;  // -1 when maximizing
  T weight_decay;
  T momentum;
  T one_minus_dampening;
  T neg_lr;
};

template <typename T>
FOCUS_HD SgdScalars<T> make_sgd_scalars(double lr, double momentum, double dampening, double weight_decay,
                                        bool maximize) {
  SgdScalars<T> s;
  s.sign = maximize ? T(-1) : T(1);
  s.weight_decay = static_cast<T>(weight_decay);
  s.momentum = static_cast<T>(momentum);
  s.one_minus_dampening = static_cast<T>(1 - dampening);
  s.neg_lr = static_cast<T>(-lr);
  return s;
}

template <typename T> struct SgdElement {
  T param, momentum_buffer;
};

/// One SGD update of one element. kL2: weight_decay != 0; kMomentum: momentum != 0 (buf
/// used and updated); kNesterov: nesterov (with momentum). first_step: buf = g.
///   g = sign * grad;  g = fma(p, wd, g)                       grad.add(param, alpha=wd)
///   buf = first_step ? g : fma(g, 1 - dampening, buf * momentum)
///                                                             buf.mul_(momentum).add_(g, alpha=1-dampening)
///   g = nesterov ? fma(buf, momentum, g) : buf                grad.add(buf, alpha=momentum)
///   p = fma(g, -lr, p)                                        param.add_(grad, alpha=-lr)
template <typename T, bool kL2, bool kMomentum, bool kNesterov>
FOCUS_HD SgdElement<T> sgd_update(const SgdScalars<T>& s, bool first_step, T param, T grad, T momentum_buffer) {
  T g = grad * s.sign;
  if constexpr (kL2) g = hd_fma(param, s.weight_decay, g);
  T buf = momentum_buffer;
  if constexpr (kMomentum) {
    buf = first_step ? g : hd_fma(g, s.one_minus_dampening, momentum_buffer * s.momentum);
    if constexpr (kNesterov) g = hd_fma(buf, s.momentum, g);
    else g = buf;
  }
  return SgdElement<T>{hd_fma(g, s.neg_lr, param), buf};
}

}  // namespace focus::common
