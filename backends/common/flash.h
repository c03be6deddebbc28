#pragma once
/// The math of FlashAttention-2 (Dao 2023, algorithms 1 and 2), written once for the host
/// tiling in backends/cpu/flash_attention.cpp and the CUDA kernels in
/// backends/cuda/flash_attention.cu, so the CPU tests check the merge the GPU runs.
///
/// Forward, per query row l, over key tiles of kFlashBlockCols keys in order:
///   z_j   = flash_score(scale * q_l . k_j, mask, causal)       (masked score, -inf = masked)
///   m'    = max(m, max_j z_j);  c = flash_rescale(m, m')       (c = exp(m - m'), 1 if m' = -inf)
///   p_j   = flash_prob(z_j, m')                                 (exp(z_j - m'), 0 if m' = -inf)
///   l     = c l + sum_j p_j;   acc = c acc + sum_j dropout(p_j) v_j
/// and at the end out = acc / l, lse = m + log l (flash_finish: a row with no allowed key has
/// l = 0 and gets out = 0, lse = +inf, as the composed path).
/// Backward, per key tile (outer) and query tile (inner), from lse and D = rowsum(dO * O):
///   p = flash_prob(z, lse);  dp = dO . v_j;  ds = p (dropout'(dp) - D)
///   dV += dropout(p) dO;  dK += scale ds q;  dQ += scale ds k;  grad_mask = ds.
/// Dropout keeps element (b, l, j) of the [B, L, S] scores when Philox element
/// i = (b L + l) S + j is kept (common::dropout_keep), on every device and in both passes.
#include <cmath>
#include <cstdint>

#include "backends/common/hd.h"
#include "backends/common/hd_math.h"

namespace focus::common {

/// Query rows per tile and keys per tile: the CUDA kernels' block shape, which the host
/// tiling copies so that both fold the keys in the same order.
inline constexpr int kFlashBlockRows = 64;
inline constexpr int kFlashBlockCols = 64;

/// Head dims the CUDA flash kernels are built for (E == Ev); others take the composed path.
FOCUS_HD constexpr bool flash_head_dim_ok(int64_t e) { return e == 32 || e == 64 || e == 128; }

/// Mask kinds of a score: none, bool (true = attend) or additive (added to the scaled score).
enum FlashMask : int { kFlashNoMask = 0, kFlashBoolMask = 1, kFlashAddMask = 2 };

/// The masked score of query l, key j: z = scaled q.k, -inf where a bool mask is false,
/// + the additive mask value, -inf above the diagonal (j > l) when causal (top-left aligned).
template <typename A>
FOCUS_HD A flash_score(A z, int mask_kind, bool allow, A add, bool causal, int64_t l, int64_t j) {
  if (mask_kind == kFlashBoolMask && !allow) z = -INFINITY;
  if (mask_kind == kFlashAddMask) z += add;
  if (causal && j > l) z = -INFINITY;
  return z;
}

/// Moves the running max m to m_new = max(m, tile_max) and returns the factor exp(m - m_new)
/// that rescales the running sum and accumulator (1 while every score so far is -inf).
template <typename A> FOCUS_HD A flash_rescale(A& m, A tile_max) {
  const A m_new = tile_max > m ? tile_max : m;
  const A c = m_new == A(-INFINITY) ? A(1) : hd_exp(m - m_new);
  m = m_new;
  return c;
}

/// exp(z - m): the unnormalized probability against a running max (forward) or the
/// probability against lse (backward). 0 when m is -inf (nothing seen yet) or +inf (a
/// row with no allowed key in the backward), so masked and empty rows never make NaN.
template <typename A> FOCUS_HD A flash_prob(A z, A m) {
  if (m == A(-INFINITY) || m == A(INFINITY)) return A(0);
  return hd_exp(z - m);
}

/// End of a row: the 1 / l that scales the accumulator into out (0 for an empty row) and
/// lse = m + log l (+inf for an empty row).
template <typename A> FOCUS_HD A flash_finish(A m, A l, A& lse) {
  if (!(l > A(0))) {
    lse = A(INFINITY);
    return A(0);
  }
  lse = m + hd_log(l);
  return A(1) / l;
}

/// The key tiles a causal query tile [r0, r0 + rows) needs: keys up to its last row.
FOCUS_HD int64_t flash_causal_key_end(int64_t r0, int64_t rows, int64_t S) {
  const int64_t end = r0 + rows;
  return end < S ? end : S;
}

/// The first query tile a causal key tile starting at key c0 touches: rows l >= c0.
FOCUS_HD int64_t flash_causal_first_row(int64_t c0) { return c0; }

}  // namespace focus::common
