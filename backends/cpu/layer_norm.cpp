// CPU kernel pairs for layer_norm and add_layer_norm (a residual add fused in front, and
// the gradient that reached the sum added in the backward). Rows are independent, so they split over threads; the
// loops inside a row are `omp simd` reductions (float sums are not reassociated without
// it).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "backends/common/norm_math.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/parallel.h"

namespace focus::cpu {

namespace {

// One row normalized: out, and the row's mean and rstd. Shared by layer_norm and
// add_layer_norm (which passes the row of sum it has just written), so both give the same bits.
template <typename T, bool HasW, bool HasB>
inline void layer_norm_row(T* __restrict o, T& mean_out, T& rstd_out, const T* __restrict xr, const T* __restrict w,
                           const T* __restrict b, int64_t N, T eps) {
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
  mean_out = m;
  rstd_out = rs;
}

// Res: add_layer_norm, sum = x + res is written row by row and normalized while the row is
// still in cache (one pass over memory).
template <typename T, bool HasW, bool HasB, bool Res = false>
void layer_norm_rows(T* out, T* mean_out, T* rstd_out, const T* x, const T* w, const T* b, int64_t R, int64_t N,
                     T eps, T* sum = nullptr, const T* res = nullptr) {
  parallel_for(0, R, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, N)), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const T* xr = x + r * N;
      if constexpr (Res) {
        T* __restrict sr = sum + r * N;
        const T* __restrict a = x + r * N;
        const T* __restrict c = res + r * N;
#pragma omp simd
        for (int64_t i = 0; i < N; ++i) sr[i] = a[i] + c[i];
        xr = sr;
      }
      layer_norm_row<T, HasW, HasB>(out + r * N, mean_out[r], rstd_out[r], xr, w, b, N, eps);
    }
  });
}

// Rows per partial sum of dweight/dbias: partials are summed at the end, which also keeps
// the float32 sums short.
constexpr int64_t kLnChunk = 256;

// AddG: add_layer_norm_backward, dx = the norm's input gradient + dsum (common::add_layer_norm_dx).
template <typename T, bool HasW, bool NeedWB, bool AddG = false>
void layer_norm_bw_rows(T* dx_in, T* dw, T* db, const T* dout_in, const T* x_in, const T* mean_in,
                        const T* rstd_in, const T* w_in, int64_t R, int64_t N_in, const T* dsum_in = nullptr) {
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
    [[maybe_unused]] const T* __restrict dsum = dsum_in;
    T* const dx = dx_in;
    const int64_t N = N_in;
    for (int64_t c = cb; c < ce; ++c) {
      T* __restrict pw = NeedWB ? part + c * 2 * N : nullptr;
      T* __restrict pb = NeedWB ? pw + N : nullptr;
      const int64_t r1 = std::min(R, (c + 1) * rows_per);
      for (int64_t r = c * rows_per; r < r1; ++r) {
        const T* __restrict xr = x + r * N;
        const T* __restrict gr = dout + r * N;
        [[maybe_unused]] const T* __restrict sr = AddG ? dsum + r * N : nullptr;
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
          if constexpr (AddG) o[i] = common::add_layer_norm_dx(dn, n, a, bsum, rs, sr[i]);
          else o[i] = (dn - a - n * bsum) * rs;
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

void CpuBackend::add_layer_norm(const TensorView& sum, const TensorView& out, const TensorView& mean,
                                const TensorView& rstd, const TensorView& x, const TensorView& residual,
                                const TensorView& weight, const TensorView& bias, double eps) {
  const int64_t R = mean.numel, N = R > 0 ? x.numel / R : 0;
  if (x.numel == 0) return;
  dispatch_float(x.dtype, "add_layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.data ? weight.ptr<T>() : nullptr;
    const T* b = bias.data ? bias.ptr<T>() : nullptr;
    auto go = [&]<bool W, bool B>() {
      layer_norm_rows<T, W, B, true>(out.ptr<T>(), mean.ptr<T>(), rstd.ptr<T>(), x.ptr<T>(), w, b, R, N,
                                     static_cast<T>(eps), sum.ptr<T>(), residual.ptr<T>());
    };
    if (w && b) go.template operator()<true, true>();
    else if (w) go.template operator()<true, false>();
    else if (b) go.template operator()<false, true>();
    else go.template operator()<false, false>();
  });
}

void CpuBackend::add_layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                                         const TensorView& dout, const TensorView& dsum, const TensorView& in,
                                         const TensorView& mean, const TensorView& rstd, const TensorView& weight) {
  if (!dsum.data) return layer_norm_backward(dx, dweight, dbias, dout, in, mean, rstd, weight);
  const int64_t R = mean.numel, N = R > 0 ? in.numel / R : (dweight.data ? dweight.numel : dbias.numel);
  dispatch_float(in.dtype, "add_layer_norm_backward", [&](auto tag) {
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
      layer_norm_bw_rows<T, W, WB, true>(dx.ptr<T>(), dw, db, dout.ptr<T>(), in.ptr<T>(), mean.ptr<T>(),
                                         rstd.ptr<T>(), w, R, N, dsum.ptr<T>());
    };
    const bool need = dw || db;
    if (w && need) go.template operator()<true, true>();
    else if (w) go.template operator()<true, false>();
    else if (need) go.template operator()<false, true>();
    else go.template operator()<false, false>();
  });
}

}  // namespace focus::cpu
