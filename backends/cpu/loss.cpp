// CPU kernels for the losses (cross entropy, nll, mse): forward/backward pairs;
// check_range (binary_cross_entropy's input check). Targets reach these kernels already
// checked by the raw ops (check_indices), so the kernels never throw on user data.
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/vec_math.h"
#include "core/error.h"

namespace focus::cpu {

namespace {

using Red = Backend::LossReduction;

// Rows of a class-indexed loss: input [N, C, D] with class stride sc, targets [N, D].
struct Rows {
  int64_t N, C, D;
  int64_t sn, sc, sd;  // input strides
  int64_t tn, td;      // target strides
  Rows(const TensorView& in, const TensorView& target)
      : N(in.sizes[0]), C(in.sizes[1]), D(in.sizes[2]), sn(in.strides[0]), sc(in.strides[1]), sd(in.strides[2]),
        tn(target.strides[0]), td(target.strides[1]) {}
  int64_t count() const { return N * D; }
  int64_t in_offset(int64_t r) const { return (r / D) * sn + (r % D) * sd; }
  int64_t target_at(const int64_t* t, int64_t r) const { return t[(r / D) * tn + (r % D) * td]; }
};

// The Mean divisor: the sum of w[t] over non-ignored rows (their count when w is null),
// accumulated in row order.
template <typename T>
double total_weight(const Rows& g, const TensorView& target, const T* w, int64_t ignore_index) {
  const int64_t* t = target.ptr<int64_t>();
  double n = 0;
  for (int64_t r = 0; r < g.count(); ++r) {
    const int64_t v = g.target_at(t, r);
    if (v != ignore_index) n += w ? static_cast<double>(w[v]) : 1.0;
  }
  return n;
}

// Rows per thread chunk so that one chunk touches about kGrain elements.
int64_t row_grain(int64_t row_len) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, row_len)); }

// Per-row losses -> out: written as they are ([N, D]) or summed serially in row order (the
// result does not depend on the thread split), then divided by the count for Mean.
template <typename T>
void finish_rows(const TensorView& out, const std::vector<double>& rows, Red reduction, double valid) {
  T* o = out.ptr<T>();
  if (reduction == Red::None) {
    // out is contiguous [N, D], like rows.
    for (size_t r = 0; r < rows.size(); ++r) o[r] = static_cast<T>(rows[r]);
    return;
  }
  double total = 0;
  for (double v : rows) total += v;
  // Mean over zero valid targets is 0/0 = nan, as in PyTorch.
  *o = static_cast<T>(reduction == Red::Mean ? total / valid : total);
}

// The gradient scale of row r: grad[r] for None, grad / count for Mean, grad for Sum.
struct GradScale {
  const void* data = nullptr;
  int64_t gn = 0, gd = 0, D = 1;
  Red reduction = Red::None;
  double factor = 1;
  template <typename T> T at(int64_t r) const {
    const T* g = static_cast<const T*>(data);
    if (reduction == Red::None) return g[(r / D) * gn + (r % D) * gd];
    return static_cast<T>(static_cast<double>(*g) * factor);
  }
};

GradScale grad_scale(const TensorView& grad, const Rows& g, Red reduction, double valid) {
  GradScale s;
  s.data = grad.data;
  s.reduction = reduction;
  s.D = g.D;
  if (reduction == Red::None) {
    s.gn = grad.strides[0];
    s.gd = grad.strides[1];
  } else if (reduction == Red::Mean) {
    s.factor = 1.0 / valid;
  }
  return s;
}

// Row r of the logits: max, log-sum-exp and (when needed) the plain sum.
template <typename T, bool Contig> void row_stats(const T* x, int64_t C, int64_t sc, bool want_sum, T& lse, T& sum) {
  const int64_t s = Contig ? 1 : sc;
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x[c * s]);
  if (std::isinf(mx)) {
    lse = mx;  // empty row or all -inf: -inf; some +inf: +inf (no inf - inf below)
  } else {
    T acc = 0;
    for (int64_t c = 0; c < C; ++c) acc += vexp(x[c * s] - mx);
    lse = mx + std::log(acc);
  }
  T total = 0;
  if (want_sum)
    for (int64_t c = 0; c < C; ++c) total += x[c * s];
  sum = total;
}

}  // namespace

// ---- value checks ----------------------------------------------------------------------------

void CpuBackend::check_range(const TensorView& x, double lo, double hi, const char* op, const char* what) {
  if (any_16bit(x)) [[unlikely]] {
    Float32Scope f(*this);
    check_range(f.in(x), lo, hi, op, what);
    return f.commit();
  }
  if (x.numel == 0) return;
  dispatch_float(x.dtype, op, [&](auto tag) {
    using T = decltype(tag);
    const T tlo = static_cast<T>(lo), thi = static_cast<T>(hi);
    const StridedLoop<1> loop({&x});
    // One parallel pass finds the first bad position (a plain min over the chunks: parallel_for
    // bodies must not throw); the error is thrown afterwards, on this thread.
    std::atomic<int64_t> first{loop.numel};
    parallel_for(0, loop.numel, kGrain, [&](int64_t b, int64_t e) {
      int64_t pos = b;
      loop.run_range(b, e, [&](char** p, const int64_t* s, int64_t n) {
        if (pos >= first.load(std::memory_order_relaxed)) {
          pos += n;
          return;
        }
        for (int64_t i = 0; i < n; ++i) {
          const T v = *reinterpret_cast<const T*>(p[0] + i * s[0]);
          if (!(v >= tlo && v <= thi)) {  // NaN fails too
            int64_t cur = first.load(std::memory_order_relaxed);
            while (pos + i < cur && !first.compare_exchange_weak(cur, pos + i, std::memory_order_relaxed)) {
            }
            break;
          }
        }
        pos += n;
      });
    });
    const int64_t bad = first.load();
    if (bad == loop.numel) return;
    double value = 0;
    loop.run_range(bad, bad + 1, [&](char** p, const int64_t*, int64_t) {
      value = static_cast<double>(*reinterpret_cast<const T*>(p[0]));
    });
    FOCUS_FAIL("[{}] {}, got {} (at position {})", op, what, value, bad);
  });
}

// ---- cross entropy ---------------------------------------------------------------------------

void CpuBackend::cross_entropy_forward(const TensorView& out, const TensorView& lse, const TensorView& logits,
                                       const TensorView& target, const TensorView& weight, int64_t ignore_index,
                                       double label_smoothing, LossReduction reduction) {
  if (any_16bit(out, lse, logits, weight)) [[unlikely]] {
    Float32Scope f(*this);
    cross_entropy_forward(f.out(out), f.out(lse), f.in(logits), target, f.in(weight), ignore_index,
                          label_smoothing, reduction);
    return f.commit();
  }
  const Rows g(logits, target);
  dispatch_float(logits.dtype, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.ptr<T>();
    const int64_t* t = target.ptr<int64_t>();
    const T* w = weight.ptr<T>();  // [C] contiguous, or null
    T* l = lse.ptr<T>();
    const double valid = total_weight<T>(g, target, w, ignore_index);
    std::vector<double> rows(static_cast<size_t>(g.count()));
    const double eps = label_smoothing;
    const bool smooth = eps > 0;
    parallel_for(0, g.count(), row_grain(g.C), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = x + g.in_offset(r);
        T lr, sum;
        const bool plain_sum = smooth && !w;
        if (g.sc == 1) row_stats<T, true>(xr, g.C, 1, plain_sum, lr, sum);
        else row_stats<T, false>(xr, g.C, g.sc, plain_sum, lr, sum);
        l[r] = lr;
        const int64_t tr = g.target_at(t, r);
        if (tr == ignore_index) {
          rows[r] = 0;
          continue;
        }
        const double ld = static_cast<double>(lr);
        if (!w) {
          // (1 - eps) * (lse - x_t) + eps / C * sum_c (lse - x_c)
          double v = ld - (1 - eps) * static_cast<double>(xr[tr * g.sc]);
          if (smooth) v -= eps / static_cast<double>(g.C) * static_cast<double>(sum);
          rows[r] = v;
          continue;
        }
        // (1 - eps) * w_t (lse - x_t) + eps / C * sum_c w_c (lse - x_c)
        double v = (1 - eps) * static_cast<double>(w[tr]) * (ld - static_cast<double>(xr[tr * g.sc]));
        if (smooth) {
          double acc = 0;
          for (int64_t c = 0; c < g.C; ++c)
            acc += static_cast<double>(w[c]) * (ld - static_cast<double>(xr[c * g.sc]));
          v += eps / static_cast<double>(g.C) * acc;
        }
        rows[r] = v;
      }
    });
    finish_rows<T>(out, rows, reduction, valid);
  });
}

// grad_logits may be the logits themselves (written in place): every element of a row is
// read once, in the same iteration that then writes its gradient, and the target element's
// correction reads the gradient already written.
void CpuBackend::cross_entropy_backward(const TensorView& grad_logits, const TensorView& grad,
                                        const TensorView& logits, const TensorView& lse, const TensorView& target,
                                        const TensorView& weight, int64_t ignore_index, double label_smoothing,
                                        LossReduction reduction) {
  if (any_16bit(grad_logits, grad, logits, lse, weight)) [[unlikely]] {
    Float32Scope f(*this);
    cross_entropy_backward(f.out(grad_logits), f.in(grad), f.in(logits), f.in(lse), target, f.in(weight),
                           ignore_index, label_smoothing, reduction);
    return f.commit();
  }
  const Rows g(logits, target);
  dispatch_float(logits.dtype, "cross_entropy_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.ptr<T>();
    const int64_t* t = target.ptr<int64_t>();
    const T* w = weight.ptr<T>();  // [C] contiguous, or null
    const T* l = lse.ptr<T>();
    T* gx = grad_logits.ptr<T>();  // contiguous [N, C, D]
    const double valid = reduction == Red::Mean ? total_weight<T>(g, target, w, ignore_index) : 0;
    const GradScale gs = grad_scale(grad, g, reduction, valid);
    const double eps = label_smoothing;
    const T off = static_cast<T>(eps / static_cast<double>(g.C));
    const T on = static_cast<T>(1 - eps);
    // Weighted: d/dx_j = p_j ((1 - eps) w_t + eps / C * W) - (1 - eps) w_t [j == t] - eps / C * w_j.
    double wsum = 0;
    if (w)
      for (int64_t c = 0; c < g.C; ++c) wsum += static_cast<double>(w[c]);
    parallel_for(0, g.count(), row_grain(g.C), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t n = r / g.D, d = r % g.D;
        T* o = gx + n * g.C * g.D + d;
        const int64_t tr = g.target_at(t, r);
        if (tr == ignore_index) {
          for (int64_t c = 0; c < g.C; ++c) o[c * g.D] = 0;
          continue;
        }
        const T* xr = x + g.in_offset(r);
        const T lr = l[r];
        const T s = gs.at<T>(r);
        if (w) {
          const T wt = w[tr];
          const T a = static_cast<T>((1 - eps) * static_cast<double>(wt) + eps / static_cast<double>(g.C) * wsum) * s;
          const T os = off * s;
          for (int64_t c = 0; c < g.C; ++c) o[c * g.D] = vexp(xr[c * g.sc] - lr) * a - os * w[c];
          o[tr * g.D] -= on * wt * s;
          continue;
        }
        if (g.D == 1 && g.sc == 1 && xr == o) {
          // In place over the logits (raw::cross_entropy_backward): one pointer, so the loop
          // vectorizes without an aliasing check.
          for (int64_t c = 0; c < g.C; ++c) o[c] = (vexp(o[c] - lr) - off) * s;
        } else if (g.D == 1 && g.sc == 1) {
          for (int64_t c = 0; c < g.C; ++c) o[c] = (vexp(xr[c] - lr) - off) * s;
        } else {
          for (int64_t c = 0; c < g.C; ++c) o[c * g.D] = (vexp(xr[c * g.sc] - lr) - off) * s;
        }
        o[tr * g.D] -= on * s;
      }
    });
  });
}

// ---- nll ------------------------------------------------------------------------------------

void CpuBackend::nll_loss_forward(const TensorView& out, const TensorView& log_probs, const TensorView& target,
                                  const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
  if (any_16bit(out, log_probs, weight)) [[unlikely]] {
    Float32Scope f(*this);
    nll_loss_forward(f.out(out), f.in(log_probs), target, f.in(weight), ignore_index, reduction);
    return f.commit();
  }
  const Rows g(log_probs, target);
  dispatch_float(log_probs.dtype, "nll_loss", [&](auto tag) {
    using T = decltype(tag);
    const T* x = log_probs.ptr<T>();
    const int64_t* t = target.ptr<int64_t>();
    const T* w = weight.ptr<T>();
    const double valid = total_weight<T>(g, target, w, ignore_index);
    std::vector<double> rows(static_cast<size_t>(g.count()));
    for (int64_t r = 0; r < g.count(); ++r) {
      const int64_t tr = g.target_at(t, r);
      if (tr == ignore_index) {
        rows[r] = 0.0;
        continue;
      }
      const double v = -static_cast<double>(x[g.in_offset(r) + tr * g.sc]);
      rows[r] = w ? static_cast<double>(w[tr]) * v : v;
    }
    finish_rows<T>(out, rows, reduction, valid);
  });
}

void CpuBackend::nll_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& target,
                                   const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
  if (any_16bit(grad_input, grad, weight)) [[unlikely]] {
    Float32Scope f(*this);
    nll_loss_backward(f.out(grad_input), f.in(grad), target, f.in(weight), ignore_index, reduction);
    return f.commit();
  }
  // Rows over grad_input's geometry (contiguous [N, C, D]).
  const Rows g(grad_input, target);
  dispatch_float(grad_input.dtype, "nll_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    T* gx = grad_input.ptr<T>();
    const int64_t* t = target.ptr<int64_t>();
    const T* w = weight.ptr<T>();
    const double valid = reduction == Red::Mean ? total_weight<T>(g, target, w, ignore_index) : 0;
    const GradScale gs = grad_scale(grad, g, reduction, valid);
    std::fill(gx, gx + g.N * g.C * g.D, T(0));
    for (int64_t r = 0; r < g.count(); ++r) {
      const int64_t tr = g.target_at(t, r);
      if (tr == ignore_index) continue;
      const T v = -gs.at<T>(r);
      gx[(r / g.D) * g.C * g.D + tr * g.D + r % g.D] = w ? w[tr] * v : v;
    }
  });
}

// ---- mse ------------------------------------------------------------------------------------

void CpuBackend::mse_loss_forward(const TensorView& out, const TensorView& input, const TensorView& target,
                                  LossReduction reduction) {
  if (any_16bit(out, input, target)) [[unlikely]] {
    Float32Scope f(*this);
    mse_loss_forward(f.out(out), f.in(input), f.in(target), reduction);
    return f.commit();
  }
  dispatch_float(input.dtype, "mse_loss", [&](auto tag) {
    using T = decltype(tag);
    if (reduction == Red::None) {
      elementwise<T, T, T>(out, [](T a, T b) { T d = a - b; return d * d; }, input, target);
      return;
    }
    // Fixed blocks summed in order: the result does not depend on the thread count.
    const int64_t n = input.numel;
    constexpr int64_t kBlock = 8192;
    const int64_t nblocks = (n + kBlock - 1) / kBlock;
    std::vector<double> part(static_cast<size_t>(nblocks), 0.0);
    if (n > 0) {
      StridedLoop<2> loop({&input, &target});
      parallel_for(0, nblocks, std::max<int64_t>(1, kGrain / kBlock), [&](int64_t b, int64_t e) {
        for (int64_t blk = b; blk < e; ++blk) {
          double acc = 0;
          loop.run_range(blk * kBlock, std::min(n, (blk + 1) * kBlock), [&](char** p, const int64_t* s, int64_t m) {
            T local = 0;
            for (int64_t i = 0; i < m; ++i) {
              const T d = *reinterpret_cast<const T*>(p[0] + i * s[0]) - *reinterpret_cast<const T*>(p[1] + i * s[1]);
              local += d * d;
            }
            acc += static_cast<double>(local);
          });
          part[blk] = acc;
        }
      });
    }
    double total = 0;
    for (double v : part) total += v;
    *out.ptr<T>() = static_cast<T>(reduction == Red::Mean ? total / static_cast<double>(n) : total);
  });
}

void CpuBackend::mse_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& input,
                                   const TensorView& target, LossReduction reduction) {
  if (any_16bit(grad_input, grad, input, target)) [[unlikely]] {
    Float32Scope f(*this);
    mse_loss_backward(f.out(grad_input), f.in(grad), f.in(input), f.in(target), reduction);
    return f.commit();
  }
  dispatch_float(grad_input.dtype, "mse_loss_backward", [&](auto tag) {
    using T = decltype(tag);
    const T f = static_cast<T>(reduction == Red::Mean ? 2.0 / static_cast<double>(grad_input.numel) : 2.0);
    elementwise<T, T, T, T>(grad_input, [f](T g, T a, T b) { return f * (a - b) * g; }, grad, input, target);
  });
}

}  // namespace focus::cpu
