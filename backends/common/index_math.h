#pragma once
/// Index arithmetic written once for the CPU and the GPU (FOCUS_HD): exact 64-bit division
/// by a fixed divisor without a divide instruction, the element offsets of strided views
/// from a row-major position, the bounds tests of the index checks, the range test of
/// check_range, the kept columns of tril/triu.
#include <cstdint>

#include "backends/backend.h"
#include "backends/common/hd.h"

namespace focus::common {

// ---- division by a fixed divisor ---------------------------------------------------------

/// The high 64 bits of the 128-bit product a * b.
FOCUS_HD uint64_t mul_hi_u64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

/// Division by a fixed d (1 <= d <= 2^63) as a multiply-high, an add and two shifts
/// (Granlund and Montgomery, "Division by invariant integers using multiplication", 1994,
/// figure 4.1), exact for every 64-bit dividend. GPUs have no 64-bit divide instruction: a
/// 64-bit '/' becomes a subroutine call, around which live registers spill to local
/// memory, so the kernels' index arithmetic divides by these instead (it is also faster
/// than the 32-bit divide sequence).
struct FastDivider {
  uint64_t d;    // the divisor
  uint64_t m;    // floor(2^64 (2^l - d) / d) + 1 with l = ceil(log2 d)
  uint32_t sh1;  // min(l, 1)
  uint32_t sh2;  // max(l - 1, 0)
  FOCUS_HD uint64_t div(uint64_t n) const {
    const uint64_t t = mul_hi_u64(m, n);
    return (t + ((n - t) >> sh1)) >> sh2;
  }
};

/// The divider of d, 1 <= d <= 2^63 (host only: it divides 128-bit numbers).
inline FastDivider make_fast_divider(uint64_t d) {
  uint32_t l = 0;
  while (l < 63 && (uint64_t{1} << l) < d) ++l;
  FastDivider f;
  f.d = d;
  f.m = static_cast<uint64_t>((static_cast<unsigned __int128>((uint64_t{1} << l) - d) << 64) / d) + 1;
  f.sh1 = l < 1 ? l : 1;
  f.sh2 = l > 1 ? l - 1 : 0;
  return f;
}

// ---- strided offsets ----------------------------------------------------------------------

/// Element offsets of N views of one shape (ndim dims, innermost last) from a row-major
/// position: the sizes as FastDividers, so no 64-bit divide runs on the device.
template <int N> struct StridedOffsets {
  int ndim;
  FastDivider size[kMaxDims];
  int64_t stride[N][kMaxDims];
  FOCUS_HD void offsets(uint64_t linear, int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const uint64_t q = size[d].div(linear);
      const int64_t i = static_cast<int64_t>(linear - q * size[d].d);
      linear = q;
      for (int k = 0; k < N; ++k) off[k] += i * stride[k][d];
    }
  }
};

/// The offsets of views with these sizes (each >= 1) and strides[k][d] (host only).
template <int N>
StridedOffsets<N> make_strided_offsets(int ndim, const int64_t* sizes, const int64_t (*strides)[kMaxDims]) {
  StridedOffsets<N> s;
  s.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    s.size[d] = make_fast_divider(static_cast<uint64_t>(sizes[d]));
    for (int k = 0; k < N; ++k) s.stride[k][d] = strides[k][d];
  }
  return s;
}

// ---- bounds -------------------------------------------------------------------------------

/// check_indices' test: x lies in [lo, hi) or equals skip.
FOCUS_HD bool index_ok(int64_t x, int64_t lo, int64_t hi, int64_t skip) { return x == skip || (x >= lo && x < hi); }

/// check_range's test: lo <= v <= hi, false for NaN.
template <typename T> FOCUS_HD bool value_in_range(T v, T lo, T hi) { return v >= lo && v <= hi; }

/// Whether tril(k) (lower) or triu(k) keeps element (i, j): j <= i + k for tril, j >= i + k
/// for triu (written so that no k overflows).
FOCUS_HD bool trilu_keeps(int64_t i, int64_t j, int64_t k, bool lower) { return lower ? j - i <= k : j - i >= k; }

/// The columns [*begin, *end) of row i (0 <= i) that trilu_keeps in a matrix with `cols`
/// columns.
FOCUS_HD void trilu_kept_columns(int64_t i, int64_t k, int64_t cols, bool lower, int64_t* begin, int64_t* end) {
  // The first column past (tril) or at (triu) the diagonal i + k, clamped to [0, cols].
  const int64_t shift = lower ? 1 : 0;
  int64_t edge;
  if (k >= cols - i - shift) edge = cols;
  else if (k < -i - shift) edge = 0;
  else edge = i + k + shift;
  *begin = lower ? 0 : edge;
  *end = lower ? edge : cols;
}

}  // namespace focus::common
