// CPU kernel pair for softmax and log_softmax. Rows are independent, so they split over
// threads; the loops inside a row are `omp simd` reductions (float sums are not
// reassociated without it) with a branch-free vectorizable exp.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <limits>

#include "backends/common/raw_op_util.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/vec_math.h"

namespace focus::cpu {

namespace {

using common::Dims3;
using common::split_at;

// Columns handled together by the strided (inner > 1) paths.
constexpr int64_t kTile = 256;

// ---- softmax forward ----------------------------------------------------------------------

template <typename T> void softmax_row(const T* __restrict x, T* __restrict y, int64_t D, bool log) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < D; ++i) m = x[i] > m ? x[i] : m;
  T s = 0;
  if (!log) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) {
      const T e = vexp(x[i] - m);
      y[i] = e;
      s += e;
    }
    const T r = T(1) / s;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) y[i] *= r;
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += vexp(x[i] - m);
    const T ls = std::log(s);
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) y[i] = (x[i] - m) - ls;
  }
}

// Columns [j0, j0 + w) of one [D, inner] block: the reductions run down the columns,
// vectorized across them.
template <typename T>
void softmax_cols(const T* __restrict x, T* __restrict y, int64_t D, int64_t inner, int64_t w, bool log) {
  T m[kTile], s[kTile];
  for (int64_t j = 0; j < w; ++j) {
    m[j] = -std::numeric_limits<T>::infinity();
    s[j] = 0;
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* row = x + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) m[j] = row[j] > m[j] ? row[j] : m[j];
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* row = x + d * inner;
    T* out = y + d * inner;
    if (!log) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        const T e = vexp(row[j] - m[j]);
        out[j] = e;
        s[j] += e;
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) s[j] += vexp(row[j] - m[j]);
    }
  }
  for (int64_t j = 0; j < w; ++j) s[j] = log ? std::log(s[j]) : T(1) / s[j];
  for (int64_t d = 0; d < D; ++d) {
    const T* row = x + d * inner;
    T* out = y + d * inner;
    if (!log) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) out[j] *= s[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) out[j] = (row[j] - m[j]) - s[j];
    }
  }
}

// ---- softmax backward -----------------------------------------------------------------------
// softmax:     gx = y * (g - sum(g * y))
// log_softmax: gx = g - exp(y) * sum(g)

template <typename T>
void softmax_bw_row(T* __restrict gx, const T* __restrict g, const T* __restrict y, int64_t D, bool log) {
  T s = 0;
  if (!log) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += g[i] * y[i];
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) gx[i] = y[i] * (g[i] - s);
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += g[i];
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) gx[i] = g[i] - vexp(y[i]) * s;
  }
}

template <typename T>
void softmax_bw_cols(T* __restrict gx, const T* __restrict g, const T* __restrict y, int64_t D, int64_t inner,
                     int64_t w, bool log) {
  T s[kTile];
  for (int64_t j = 0; j < w; ++j) s[j] = 0;
  for (int64_t d = 0; d < D; ++d) {
    const T* gr = g + d * inner;
    const T* yr = y + d * inner;
    if (!log) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) s[j] += gr[j] * yr[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) s[j] += gr[j];
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* gr = g + d * inner;
    const T* yr = y + d * inner;
    T* o = gx + d * inner;
    if (!log) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) o[j] = yr[j] * (gr[j] - s[j]);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) o[j] = gr[j] - vexp(yr[j]) * s[j];
    }
  }
}

// Runs row(o) for each of `outer` rows of D elements (inner == 1), or cols(o, j0, w) for
// each column tile of each [D, inner] block, split over threads.
template <typename Row, typename Cols>
void for_blocks(const Dims3& s, const Row& row, const Cols& cols) {
  // An exp per element (~0.6 ns): between a cheap op's grain and a transcendental one's
  // (bench_engine section e: 1.5x on two threads at 16k elements with this grain).
  constexpr int64_t grain = 4 * kHeavyGrain;
  if (s.inner == 1) {
    parallel_for(0, s.outer, std::max<int64_t>(1, grain / std::max<int64_t>(1, s.D)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) row(o);
    });
    return;
  }
  const int64_t tiles = (s.inner + kTile - 1) / kTile;
  const int64_t per_task = s.D * std::min(s.inner, kTile);
  parallel_for(0, s.outer * tiles, std::max<int64_t>(1, grain / std::max<int64_t>(1, per_task)),
               [&](int64_t b, int64_t e) {
                 for (int64_t t = b; t < e; ++t) {
                   const int64_t o = t / tiles, j0 = (t % tiles) * kTile;
                   cols(o, j0, std::min(kTile, s.inner - j0));
                 }
               });
}

}  // namespace

void CpuBackend::softmax(const TensorView& out, const TensorView& in, int dim, bool log) {
  if (any_16bit(out, in)) [[unlikely]] {
    Float32Scope f(*this);
    softmax(f.out(out), f.in(in), dim, log);
    return f.commit();
  }
  if (out.numel == 0) return;
  const Dims3 s = split_at(in, dim);
  dispatch_float(in.dtype, log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* x = in.ptr<T>();
    T* y = out.ptr<T>();
    const int64_t block = s.D * s.inner;
    for_blocks(
        s, [&](int64_t o) { softmax_row<T>(x + o * s.D, y + o * s.D, s.D, log); },
        [&](int64_t o, int64_t j0, int64_t w) {
          softmax_cols<T>(x + o * block + j0, y + o * block + j0, s.D, s.inner, w, log);
        });
  });
}

void CpuBackend::softmax_backward(const TensorView& grad_in, const TensorView& grad_out, const TensorView& out,
                                  int dim, bool log) {
  if (any_16bit(grad_in, grad_out, out)) [[unlikely]] {
    Float32Scope f(*this);
    softmax_backward(f.out(grad_in), f.in(grad_out), f.in(out), dim, log);
    return f.commit();
  }
  if (grad_in.numel == 0) return;
  const Dims3 s = split_at(out, dim);
  dispatch_float(out.dtype, log ? "log_softmax_backward" : "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    T* gx = grad_in.ptr<T>();
    const T* g = grad_out.ptr<T>();
    const T* y = out.ptr<T>();
    const int64_t block = s.D * s.inner;
    for_blocks(
        s, [&](int64_t o) { softmax_bw_row<T>(gx + o * s.D, g + o * s.D, y + o * s.D, s.D, log); },
        [&](int64_t o, int64_t j0, int64_t w) {
          const int64_t off = o * block + j0;
          softmax_bw_cols<T>(gx + off, g + off, y + off, s.D, s.inner, w, log);
        });
  });
}

}  // namespace focus::cpu
