#pragma once
/// Where the rows of a [B..., L, C] attention operand live, shared by the composed path
/// (attention.cu) and the flash kernels (flash_attention.cu): the batch dims coalesced
/// (innermost first; size-1 dims dropped, stride 0 kept for broadcast ones), and the row and
/// column strides. Row r of the flattened [B*L, C] is (b, l) = (r / L, r % L).
#include <cstdint>

#include "backends/backend.h"

namespace focus::cuda_detail {

struct RowGeom {
  int nb = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  int64_t s_row = 0, s_col = 0;
};

inline RowGeom row_geom(const TensorView& v, int nb) {
  RowGeom g;
  for (int d = nb - 1; d >= 0; --d) {
    const int64_t s = v.sizes[d], t = v.strides[d];
    if (s == 1) continue;
    if (g.nb > 0 && g.strides[g.nb - 1] * g.sizes[g.nb - 1] == t) {
      g.sizes[g.nb - 1] *= s;
      continue;
    }
    g.sizes[g.nb] = s;
    g.strides[g.nb] = t;
    ++g.nb;
  }
  g.s_row = v.strides[nb];
  g.s_col = v.strides[nb + 1];
  return g;
}

/// Element offset of batch entry b. The loop is unrolled with a break (not a loop bounded by
/// g.nb) so that the kernel-parameter arrays are indexed by constants and never copied into
/// local memory.
__device__ __forceinline__ int64_t batch_offset(const RowGeom& g, int64_t b) {
  int64_t off = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d >= g.nb) break;
    const int64_t s = g.sizes[d];
    off += (b % s) * g.strides[d];
    b /= s;
  }
  return off;
}

/// Element offset of (row r, column 0) of the flattened [B*L, C].
__device__ __forceinline__ int64_t row_offset(const RowGeom& g, int64_t r, int64_t L) {
  const int64_t b = r / L;
  return (r - b * L) * g.s_row + batch_offset(g, b);
}

}  // namespace focus::cuda_detail
