// CPU kernels for the optimizers: one fused SGD or Adam/AdamW loop per parameter.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "backends/common/optim_math.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/parallel.h"

namespace focus::cpu {

namespace {

// The per-element updates are backends/common/optim_math.h's, shared with the CUDA kernels
// (PyTorch's order; its `a.add_(b, alpha=s)` as one fused multiply-add).
template <typename T, bool kL2, bool kDecoupled, bool kAmsgrad>
void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
               int64_t n, const Backend::AdamStepParams& s) {
  const common::AdamScalars<T> k = common::make_adam_scalars<T>(s.beta1, s.beta2, s.eps, s.weight_decay,
                                                                  s.param_scale, s.step_size,
                                                                  s.bias_correction2_sqrt, s.maximize);
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      T old_vmax = T(0);
      if constexpr (kAmsgrad) old_vmax = vmax[i];
      const common::AdamElement<T> r = common::adam_update<T, kL2, kDecoupled, kAmsgrad>(k, p[i], g[i], m[i], v[i],
                                                                                          old_vmax);
      p[i] = r.param;
      m[i] = r.exp_avg;
      v[i] = r.exp_avg_sq;
      if constexpr (kAmsgrad) vmax[i] = r.max_exp_avg_sq;
    }
  });
}

// Elements [lo, lo + n) of one parameter.
template <typename T>
void adam_dispatch(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                   const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq, const Backend::AdamStepParams& s,
                   int64_t lo, int64_t n) {
  T* p = param.ptr<T>() + lo;
  const T* g = grad.ptr<T>() + lo;
  T* m = exp_avg.ptr<T>() + lo;
  T* v = exp_avg_sq.ptr<T>() + lo;
  T* vmax = s.amsgrad ? max_exp_avg_sq.ptr<T>() + lo : nullptr;
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

template <typename T, bool kL2, bool kMomentum, bool kNesterov>
void sgd_loop(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n, const Backend::SgdStepParams& s) {
  const common::SgdScalars<T> k = common::make_sgd_scalars<T>(s.lr, s.momentum, s.dampening, s.weight_decay, s.maximize);
  const bool first = s.first_step;
  parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      T old_buf = T(0);
      if constexpr (kMomentum) old_buf = buf[i];
      const common::SgdElement<T> r = common::sgd_update<T, kL2, kMomentum, kNesterov>(k, first, p[i], g[i], old_buf);
      if constexpr (kMomentum) buf[i] = r.momentum_buffer;
      p[i] = r.param;
    }
  });
}

}  // namespace

namespace {

// Elements [lo, lo + n) of one parameter.
template <typename T>
void sgd_dispatch(const TensorView& param, const TensorView& grad, const TensorView& momentum_buffer,
                  const Backend::SgdStepParams& s, int64_t lo, int64_t n) {
  T* p = param.ptr<T>() + lo;
  const T* g = grad.ptr<T>() + lo;
  T* buf = s.momentum != 0 ? momentum_buffer.ptr<T>() + lo : nullptr;
  using F = std::false_type;
  using Tr = std::true_type;
  auto run = [&](auto l2, auto mom, auto nes) {
    sgd_loop<T, decltype(l2)::value, decltype(mom)::value, decltype(nes)::value>(p, g, buf, n, s);
  };
  auto with_l2 = [&](auto mom, auto nes) {
    if (s.weight_decay != 0) run(Tr{}, mom, nes);
    else run(F{}, mom, nes);
  };
  if (s.momentum == 0) with_l2(F{}, F{});
  else if (s.nesterov) with_l2(Tr{}, Tr{});
  else with_l2(Tr{}, F{});
}

}  // namespace

void CpuBackend::sgd_step(const TensorView& param, const TensorView& grad, const TensorView& momentum_buffer,
                          const SgdStepParams& s) {
  if (any_16bit(param, grad, momentum_buffer)) [[unlikely]] {
    Float32Scope f(*this);
    const TensorView buf = s.momentum != 0 ? f.inout(momentum_buffer) : TensorView{};
    sgd_step(f.inout(param), f.in(grad), buf, s);
    return f.commit();
  }
  dispatch_float(param.dtype, "sgd_step", [&](auto tag) {
    sgd_dispatch<decltype(tag)>(param, grad, momentum_buffer, s, 0, param.numel);
  });
}

void CpuBackend::adam_step(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                           const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq,
                           const AdamStepParams& p) {
  if (any_16bit(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)) [[unlikely]] {
    Float32Scope f(*this);
    const TensorView vmax = p.amsgrad ? f.inout(max_exp_avg_sq) : TensorView{};
    adam_step(f.inout(param), f.in(grad), f.inout(exp_avg), f.inout(exp_avg_sq), vmax, p);
    return f.commit();
  }
  dispatch_float(param.dtype, "adam_step", [&](auto tag) {
    using T = decltype(tag);
    adam_dispatch<T>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, p, 0, param.numel);
  });
}

namespace {

// Runs step(ref, lo, hi) for every ref and element range [lo, hi) of its parameter, with all
// the parameters' elements as one range split over the threads: a model's many small tensors
// (biases, norms) share the threads instead of each running alone. Every ref's dtype is
// checked first, on this thread (an unsupported one throws before anything is written).
template <typename Ref, typename Step>
void for_all_elements(const Ref* refs, size_t count, const char* op, const Step& step) {
  std::vector<int64_t> start(count + 1, 0);
  for (size_t i = 0; i < count; ++i) {
    dispatch_float(refs[i].param.dtype, op, [](auto) {});
    start[i + 1] = start[i] + refs[i].param.numel;
  }
  parallel_for(0, start[count], kGrain, [&](int64_t b, int64_t e) {
    size_t i = static_cast<size_t>(std::upper_bound(start.begin(), start.end(), b) - start.begin()) - 1;
    for (; i < count && start[i] < e; ++i) {
      const int64_t lo = std::max(b, start[i]) - start[i], hi = std::min(e, start[i + 1]) - start[i];
      if (lo < hi) step(refs[i], lo, hi);
    }
  });
}

}  // namespace

namespace {

// The multi-tensor steps with 16-bit refs: every ref's dtype is checked first (nothing is
// written when one is unsupported); the refs without 16-bit views then take one float32/64
// call as before, and the 16-bit ones go in groups of at most kWidenElements elements, each
// group widened to float32 (half_adapter.h), stepped in one call and rounded back. Each
// element gets exactly the single-tensor step's bits either way.
constexpr int64_t kWidenElements = int64_t{1} << 22;

template <typename Ref, typename Has16, typename Widen, typename Step>
void multi_16bit(CpuBackend& be, const Ref* refs, size_t count, const char* op, const Has16& has16,
                 const Widen& widen, const Step& step) {
  std::vector<Ref> plain, group;
  for (size_t i = 0; i < count; ++i) {
    if (!is_16bit(refs[i].param.dtype)) dispatch_float(refs[i].param.dtype, op, [](auto) {});
    if (!has16(refs[i])) plain.push_back(refs[i]);
  }
  if (!plain.empty()) step(plain.data(), plain.size());
  size_t i = 0;
  while (i < count) {
    Float32Scope f(be);
    group.clear();
    int64_t n = 0;
    for (; i < count && (group.empty() || n + refs[i].param.numel <= kWidenElements); ++i) {
      if (!has16(refs[i])) continue;
      group.push_back(widen(f, refs[i]));
      n += refs[i].param.numel;
    }
    if (group.empty()) continue;
    step(group.data(), group.size());
    f.commit();
  }
}

}  // namespace

void CpuBackend::adam_step_multi(const AdamTensorRef* refs, size_t count, const AdamStepParams& p) {
  auto has16 = [&](const AdamTensorRef& r) {
    return any_16bit(r.param, r.grad, r.exp_avg, r.exp_avg_sq) || (p.amsgrad && is_16bit(r.max_exp_avg_sq.dtype));
  };
  bool any = false;
  for (size_t i = 0; i < count && !any; ++i) any = has16(refs[i]);
  if (any) [[unlikely]] {
    auto widen = [&](Float32Scope& f, const AdamTensorRef& r) {
      AdamTensorRef w = r;
      w.param = f.inout(r.param);
      w.grad = f.in(r.grad);
      w.exp_avg = f.inout(r.exp_avg);
      w.exp_avg_sq = f.inout(r.exp_avg_sq);
      if (p.amsgrad) w.max_exp_avg_sq = f.inout(r.max_exp_avg_sq);
      return w;
    };
    return multi_16bit(*this, refs, count, "adam_step", has16, widen,
                       [&](const AdamTensorRef* rs, size_t n) { adam_step_multi(rs, n, p); });
  }
  for_all_elements(refs, count, "adam_step", [&](const AdamTensorRef& r, int64_t lo, int64_t hi) {
    AdamStepParams q = p;
    q.step_size = r.step_size;
    q.bias_correction2_sqrt = r.bias_correction2_sqrt;
    dispatch_float(r.param.dtype, "adam_step", [&](auto tag) {
      adam_dispatch<decltype(tag)>(r.param, r.grad, r.exp_avg, r.exp_avg_sq, r.max_exp_avg_sq, q, lo, hi - lo);
    });
  });
}

void CpuBackend::sgd_step_multi(const SgdTensorRef* refs, size_t count, const SgdStepParams& p) {
  auto has16 = [&](const SgdTensorRef& r) {
    return any_16bit(r.param, r.grad) || (p.momentum != 0 && is_16bit(r.momentum_buffer.dtype));
  };
  bool any = false;
  for (size_t i = 0; i < count && !any; ++i) any = has16(refs[i]);
  if (any) [[unlikely]] {
    auto widen = [&](Float32Scope& f, const SgdTensorRef& r) {
      SgdTensorRef w = r;
      w.param = f.inout(r.param);
      w.grad = f.in(r.grad);
      if (p.momentum != 0) w.momentum_buffer = f.inout(r.momentum_buffer);
      return w;
    };
    return multi_16bit(*this, refs, count, "sgd_step", has16, widen,
                       [&](const SgdTensorRef* rs, size_t n) { sgd_step_multi(rs, n, p); });
  }
  for_all_elements(refs, count, "sgd_step", [&](const SgdTensorRef& r, int64_t lo, int64_t hi) {
    SgdStepParams q = p;
    q.first_step = r.first_step;
    dispatch_float(r.param.dtype, "sgd_step", [&](auto tag) {
      sgd_dispatch<decltype(tag)>(r.param, r.grad, r.momentum_buffer, q, lo, hi - lo);
    });
  });
}

}  // namespace focus::cpu
