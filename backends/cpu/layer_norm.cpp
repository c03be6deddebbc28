// CPU kernel pair for layer_norm. Rows are independent, so they split over threads; the
// loops inside a row are `omp simd` reductions (float sums are not reassociated without
// it).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/parallel.h"

namespace focus::cpu {

namespace {

template <typename T, bool HasW, bool HasB>
void layer_norm_rows(T* out, T* mean_out, T* rstd_out, const T* x, const T* w, const T* b, int64_t R, int64_t N,
                     T eps) {
  parallel_for(0, R, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, N)), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const T* __restrict xr = x + r * N;
      T* __restrict o = out + r * N;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < N; ++i) s += xr[i];
      const T m = s / static_cast<T>(N);
      T v = 0;
#pragma omp simd reduction(+ : v)
      for (int64_t i = 0; i < N; ++i) {
        const T d = xr[i] - m;
        v += d * d;
      }
      const T rs = T(1) / std::sqrt(v / static_cast<T>(N) + eps);
#pragma omp simd
      for (int64_t i = 0; i < N; ++i) {
        T n = (xr[i] - m) * rs;
        if constexpr (HasW) n *= w[i];
        if constexpr (HasB) n += b[i];
        o[i] = n;
      }
      mean_out[r] = m;
      rstd_out[r] = rs;
    }
  });
}

// Rows per partial sum of dweight/dbias: partials are summed at the end, which also keeps
// the float32 sums short.
constexpr int64_t kLnChunk = 256;

template <typename T, bool HasW, bool NeedWB>
void layer_norm_bw_rows(T* dx_in, T* dw, T* db, const T* dout_in, const T* x_in, const T* mean_in,
                        const T* rstd_in, const T* w_in, int64_t R, int64_t N_in) {
  const int64_t N = N_in;
  const int64_t chunks = std::max<int64_t>(1, (R + kLnChunk - 1) / kLnChunk);
  const int64_t rows_per = (R + chunks - 1) / chunks;
  // Per chunk: dweight partial [N] then dbias partial [N].
  std::vector<T> partial(NeedWB ? static_cast<size_t>(chunks * 2 * N) : 0, T(0));
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, rows_per * N));
  T* const part = partial.data();
  parallel_for(0, chunks, grain, [&](int64_t cb, int64_t ce) {
    // Local restrict copies: through the lambda's captured references GCC reloads the
    // pointers in the loop and falls back to gathers.
    [[maybe_unused]] const T* __restrict w = w_in;
    const T* __restrict x = x_in;
    const T* __restrict dout = dout_in;
    const T* __restrict mean = mean_in;
    const T* __restrict rstd = rstd_in;
    T* const dx = dx_in;
    const int64_t N = N_in;
    for (int64_t c = cb; c < ce; ++c) {
      T* __restrict pw = NeedWB ? part + c * 2 * N : nullptr;
      T* __restrict pb = NeedWB ? pw + N : nullptr;
      const int64_t r1 = std::min(R, (c + 1) * rows_per);
      for (int64_t r = c * rows_per; r < r1; ++r) {
        const T* __restrict xr = x + r * N;
        const T* __restrict gr = dout + r * N;
        T* __restrict o = dx + r * N;
        const T m = mean[r], rs = rstd[r];
        // dnorm = w * dout; dx = (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) * rstd
        T a = 0, bsum = 0;
#pragma omp simd reduction(+ : a, bsum)
        for (int64_t i = 0; i < N; ++i) {
          const T n = (xr[i] - m) * rs;
          T dn = gr[i];
          if constexpr (HasW) dn *= w[i];
          a += dn;
          bsum += dn * n;
        }
        a /= static_cast<T>(N);
        bsum /= static_cast<T>(N);
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) {
          const T n = (xr[i] - m) * rs;
          T dn = gr[i];
          if constexpr (HasW) dn *= w[i];
          if constexpr (NeedWB) {
            pb[i] += gr[i];
            pw[i] += n * gr[i];
          }
          o[i] = (dn - a - n * bsum) * rs;
        }
      }
    }
  });
  if constexpr (NeedWB) {
    for (int64_t i = 0; i < N; ++i) {
      T sw = 0, sb = 0;
      for (int64_t c = 0; c < chunks; ++c) {
        sw += partial[c * 2 * N + i];
        sb += partial[c * 2 * N + N + i];
      }
      if (dw) dw[i] = sw;
      if (db) db[i] = sb;
    }
  }
}

}  // namespace

void CpuBackend::layer_norm(const TensorView& out, const TensorView& mean, const TensorView& rstd,
                            const TensorView& in, const TensorView& weight, const TensorView& bias, double eps) {
  if (any_16bit(out, mean, rstd, in, weight, bias)) [[unlikely]] {
    Float32Scope f(*this);
    layer_norm(f.out(out), f.out(mean), f.out(rstd), f.in(in), f.in(weight), f.in(bias), eps);
    return f.commit();
  }
  const int64_t R = mean.numel, N = R > 0 ? in.numel / R : 0;
  if (in.numel == 0) return;
  dispatch_float(in.dtype, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    const T* b = bias.data ? bias.ptr<T>() : nullptr;
    auto go = [&]<bool W, bool B>() {
      layer_norm_rows<T, W, B>(out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), in.ptr<T>(), w, b, R, N,
                               static_cast<T>(eps));
    };
    if (w && b) go.template operator()<true, true>();
    else if (w) go.template operator()<true, false>();
    else if (b) go.template operator()<false, true>();
    else go.template operator()<false, false>();
  });
}

void CpuBackend::layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                                     const TensorView& dout, const TensorView& in, const TensorView& mean,
                                     const TensorView& rstd, const TensorView& weight) {
  if (any_16bit(dx, dweight, dbias, dout, in, mean, rstd, weight)) [[unlikely]] {
    Float32Scope f(*this);
    layer_norm_backward(f.out(dx), f.out(dweight), f.out(dbias), f.in(dout), f.in(in), f.in(mean), f.in(rstd),
                        f.in(weight));
    return f.commit();
  }
  const int64_t R = mean.numel, N = R > 0 ? in.numel / R : (dweight.data ? dweight.numel : dbias.numel);
  dispatch_float(in.dtype, "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    T* dw = dweight.data ? dweight.ptr<T>() : nullptr;
    T* db = dbias.data ? dbias.ptr<T>() : nullptr;
    if (R == 0) {  // no rows: the parameter gradients are zero sums
      for (int64_t i = 0; dw && i < dweight.numel; ++i) dw[i] = 0;
      for (int64_t i = 0; db && i < dbias.numel; ++i) db[i] = 0;
      return;
    }
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    auto go = [&]<bool W, bool WB>() {
      layer_norm_bw_rows<T, W, WB>(dx.ptr<T>(), dw, db, dout.ptr<T>(), in.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(),
                                   w, R, N);
    };
    const bool need = dw || db;
    if (w && need) go.template operator()<true, true>();
    else if (w) go.template operator()<true, false>();
    else if (need) go.template operator()<false, true>();
    else go.template operator()<false, false>();
  });
  (void)N;
}

}  // namespace focus::cpu
