// The host implementation of FlashAttention-2's tiling (Dao 2023, algorithms 1 and 2): the
// same tile loop and the same online-softmax merge (backends/common/flash.h) as the CUDA
// kernels in backends/cuda/flash_attention.cu, in float32 or float64 on the CPU. It exists to
// check the algorithm where no GPU is: the tests gradcheck it in float64 and compare it with
// the composed path (backends/cpu/attention.cpp). It is taken only when a program allows
// nothing but SDPBackend::FlashAttention (SdpaKernelGuard), since the composed CPU path,
// which multiplies whole 64-row blocks with BLAS, is the faster one on a CPU.
//
// Forward, per batch entry and tile of kFlashBlockRows query rows: for each tile of
// kFlashBlockCols keys (only those a causal tile can see), the scores of the tile, their
// row max folded into the running max (flash_rescale rescales the running sum and the
// accumulator), exp against the running max (flash_prob), and the dropped-out
// probabilities times v added into the accumulator; at the end out = acc / l and
// lse = m + log l (flash_finish). No [L, S] buffer exists, only one [rows, cols] tile.
//
// Backward, per batch entry and tile of keys (outer) and tile of query rows (inner), as the
// GPU's: P = exp(z - lse) recomputed, dV += dropout(P)^T dO, dP = dO V^T,
// dS = P (dropout'(dP) - D) with D = rowsum(dO * O), dK += scale dS^T Q, dQ += scale dS K.
// The GPU adds dQ from every key tile with atomics; here the key tiles of one batch entry
// run in order on one thread, so dQ is a plain sum. Batch entries run in parallel.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/common/flash.h"
#include "backends/common/philox.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/parallel.h"

namespace focus::cpu {

namespace {

using common::kFlashBlockCols;
using common::kFlashBlockRows;

// A [B..., rows, cols] view read at (batch entry b, row r, column c) through its strides
// (stride 0 on broadcast dims included).
template <typename T> struct Strided {
  const T* base = nullptr;
  int64_t rs = 0, cs = 0;
  T at(int64_t r, int64_t c) const { return base[r * rs + c * cs]; }
};

template <typename T> Strided<T> entry(const TensorView& v, int nb, int64_t b) {
  int64_t off = 0;
  for (int d = nb - 1; d >= 0; --d) {
    off += (b % v.sizes[d]) * v.strides[d];
    b /= v.sizes[d];
  }
  return {static_cast<const T*>(v.data) + off, v.strides[nb], v.strides[nb + 1]};
}

// What the tile loops share: sizes, scale, mask, causal flag and dropout.
template <typename T> struct Problem {
  int nb = 0;
  int64_t L = 0, S = 0, E = 0, Ev = 0;
  T scale = 1;
  int mask_kind = common::kFlashNoMask;
  const TensorView* mask = nullptr;
  bool causal = false;
  double p = 0;
  T ks = 1;  // 1 / (1 - p) rounded to T, as the composed path (0 when p == 1)
  RandomState rng;
};

template <typename T> Problem<T> problem(const TensorView& q, const TensorView& k, const TensorView& v,
                                         const TensorView& mask, bool causal, double scale, double p,
                                         RandomState rng) {
  Problem<T> P;
  P.nb = q.ndim - 2;
  P.L = q.sizes[P.nb];
  P.E = q.sizes[P.nb + 1];
  P.S = k.sizes[P.nb];
  P.Ev = v.sizes[P.nb + 1];
  P.scale = static_cast<T>(scale);
  if (mask.data) {
    P.mask = &mask;
    P.mask_kind = mask.dtype == kBool ? common::kFlashBoolMask : common::kFlashAddMask;
  }
  P.causal = causal;
  P.p = p;
  P.ks = static_cast<T>(p < 1 ? 1.0 / (1.0 - p) : 0.0);
  P.rng = rng;
  return P;
}

int64_t batch_count(const TensorView& q) {
  int64_t n = 1;
  for (int d = 0; d < q.ndim - 2; ++d) n *= q.sizes[d];
  return n;
}

// The masked score z of query l, key j of batch entry b (flash_score), from q . k.
template <typename T>
T score(const Problem<T>& P, const Strided<T>& Q, const Strided<T>& K, int64_t b, int64_t l, int64_t j) {
  T dot = 0;
  for (int64_t e = 0; e < P.E; ++e) dot += Q.at(l, e) * K.at(j, e);
  bool allow = true;
  T add = 0;
  if (P.mask_kind == common::kFlashBoolMask) allow = entry<bool>(*P.mask, P.nb, b).at(l, j);
  if (P.mask_kind == common::kFlashAddMask) add = entry<T>(*P.mask, P.nb, b).at(l, j);
  return common::flash_score<T>(P.scale * dot, P.mask_kind, allow, add, P.causal, l, j);
}

// Dropout's factor for score (b, l, j): ks when kept, 0 when dropped (1 without dropout).
template <typename T> T drop_factor(const Problem<T>& P, int64_t b, int64_t l, int64_t j) {
  if (P.p <= 0) return T(1);
  const auto i = static_cast<uint64_t>((b * P.L + l) * P.S + j);
  return common::dropout_keep(P.rng.seed, P.rng.offset, i, P.p) ? P.ks : T(0);
}

// One query tile [r0, r0 + rows) of batch entry b: out rows and lse.
template <typename T>
void forward_tile(const Problem<T>& P, int64_t b, int64_t r0, const Strided<T>& Q, const Strided<T>& K,
                  const Strided<T>& V, T* out, T* lse, std::vector<T>& acc, std::vector<T>& z) {
  const int64_t rows = std::min<int64_t>(kFlashBlockRows, P.L - r0);
  std::vector<T> m(static_cast<size_t>(rows), T(-INFINITY)), l(static_cast<size_t>(rows), T(0));
  std::fill(acc.begin(), acc.begin() + rows * P.Ev, T(0));
  const int64_t key_end = P.causal ? common::flash_causal_key_end(r0, rows, P.S) : P.S;
  for (int64_t c0 = 0; c0 < key_end; c0 += kFlashBlockCols) {
    const int64_t cols = std::min<int64_t>(kFlashBlockCols, key_end - c0);
    for (int64_t r = 0; r < rows; ++r) {
      T* zr = z.data() + r * kFlashBlockCols;
      T tile_max = -INFINITY;
      for (int64_t c = 0; c < cols; ++c) {
        zr[c] = score(P, Q, K, b, r0 + r, c0 + c);
        tile_max = std::max(tile_max, zr[c]);
      }
      const T factor = common::flash_rescale(m[r], tile_max);
      T* ar = acc.data() + r * P.Ev;
      l[r] *= factor;
      for (int64_t e = 0; e < P.Ev; ++e) ar[e] *= factor;
      for (int64_t c = 0; c < cols; ++c) {
        const T p = common::flash_prob(zr[c], m[r]);
        l[r] += p;
        const T w = p * drop_factor(P, b, r0 + r, c0 + c);
        if (w != T(0))
          for (int64_t e = 0; e < P.Ev; ++e) ar[e] += w * V.at(c0 + c, e);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T inv = common::flash_finish(m[r], l[r], lse[r0 + r]);
    for (int64_t e = 0; e < P.Ev; ++e) out[(r0 + r) * P.Ev + e] = acc[r * P.Ev + e] * inv;
  }
}

}  // namespace

bool CpuBackend::flash_attention_supports(DType dtype, int64_t, int64_t) const {
  return dtype == kFloat32 || dtype == kFloat64;
}

void CpuBackend::flash_attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                                         const TensorView& k, const TensorView& v, const TensorView& mask,
                                         bool is_causal, double scale, double dropout_p, RandomState rng) {
  dispatch_float(q.dtype, "scaled_dot_product_attention (flash)", [&](auto tag) {
    using T = decltype(tag);
    const Problem<T> P = problem<T>(q, k, v, mask, is_causal, scale, dropout_p, rng);
    const int64_t tiles = (P.L + kFlashBlockRows - 1) / kFlashBlockRows;
    const int64_t items = batch_count(q) * tiles;
    parallel_for(0, items, 1, [&](int64_t i0, int64_t i1) {
      std::vector<T> acc(static_cast<size_t>(kFlashBlockRows * P.Ev)), z(kFlashBlockRows * kFlashBlockCols);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / tiles, r0 = (i % tiles) * kFlashBlockRows;
        forward_tile<T>(P, b, r0, entry<T>(q, P.nb, b), entry<T>(k, P.nb, b), entry<T>(v, P.nb, b),
                        out.ptr<T>() + b * P.L * P.Ev, lse.ptr<T>() + b * P.L, acc, z);
      }
    });
  });
}

void CpuBackend::flash_attention_backward(const TensorView& grad_q, const TensorView& grad_k,
                                          const TensorView& grad_v, const TensorView& grad_mask,
                                          const TensorView& grad_out, const TensorView& q, const TensorView& k,
                                          const TensorView& v, const TensorView& mask, bool is_causal,
                                          const TensorView& out, const TensorView& lse, double scale,
                                          double dropout_p, RandomState rng) {
  dispatch_float(q.dtype, "scaled_dot_product_attention_backward (flash)", [&](auto tag) {
    using T = decltype(tag);
    const Problem<T> P = problem<T>(q, k, v, mask, is_causal, scale, dropout_p, rng);
    const int64_t L = P.L, S = P.S, E = P.E, Ev = P.Ev;
    parallel_for(0, batch_count(q), 1, [&](int64_t b0, int64_t b1) {
      std::vector<T> dq(static_cast<size_t>(L * E)), D(static_cast<size_t>(L));
      std::vector<T> dk(static_cast<size_t>(kFlashBlockCols * E)), dv(static_cast<size_t>(kFlashBlockCols * Ev));
      for (int64_t b = b0; b < b1; ++b) {
        const Strided<T> Q = entry<T>(q, P.nb, b), K = entry<T>(k, P.nb, b), V = entry<T>(v, P.nb, b),
                         dO = entry<T>(grad_out, P.nb, b);
        const T* O = out.ptr<T>() + b * L * Ev;
        const T* lse_b = lse.ptr<T>() + b * L;
        T* gm = grad_mask.data ? grad_mask.ptr<T>() + b * L * S : nullptr;
        // D = rowsum(dO * O), the softmax backward's row term.
        for (int64_t l = 0; l < L; ++l) {
          T d = 0;
          for (int64_t e = 0; e < Ev; ++e) d += dO.at(l, e) * O[l * Ev + e];
          D[static_cast<size_t>(l)] = d;
        }
        std::fill(dq.begin(), dq.end(), T(0));
        for (int64_t c0 = 0; c0 < S; c0 += kFlashBlockCols) {
          const int64_t cols = std::min<int64_t>(kFlashBlockCols, S - c0);
          std::fill(dk.begin(), dk.end(), T(0));
          std::fill(dv.begin(), dv.end(), T(0));
          // A causal key tile is seen by rows l >= c0 only: start at the query tile holding c0.
          const int64_t first = P.causal ? common::flash_causal_first_row(c0) / kFlashBlockRows * kFlashBlockRows : 0;
          for (int64_t r0 = first; r0 < L; r0 += kFlashBlockRows) {
            const int64_t rows = std::min<int64_t>(kFlashBlockRows, L - r0);
            for (int64_t r = 0; r < rows; ++r) {
              const int64_t l = r0 + r;
              for (int64_t c = 0; c < cols; ++c) {
                const int64_t j = c0 + c;
                const T p = common::flash_prob(score(P, Q, K, b, l, j), lse_b[l]);
                const T f = drop_factor(P, b, l, j);
                T dp = 0;
                for (int64_t e = 0; e < Ev; ++e) {
                  dp += dO.at(l, e) * V.at(j, e);
                  dv[c * Ev + e] += p * f * dO.at(l, e);
                }
                const T ds = p * (dp * f - D[static_cast<size_t>(l)]);
                if (gm) gm[l * S + j] = ds;
                for (int64_t e = 0; e < E; ++e) {
                  dk[c * E + e] += P.scale * ds * Q.at(l, e);
                  dq[l * E + e] += P.scale * ds * K.at(j, e);
                }
              }
            }
          }
          // Rows before `first` never see this tile: their grad_mask entries are 0.
          if (gm)
            for (int64_t l = 0; l < std::min(first, L); ++l) std::fill(gm + l * S + c0, gm + l * S + c0 + cols, T(0));
          if (grad_k.data) std::copy(dk.begin(), dk.begin() + cols * E, grad_k.ptr<T>() + (b * S + c0) * E);
          if (grad_v.data) std::copy(dv.begin(), dv.begin() + cols * Ev, grad_v.ptr<T>() + (b * S + c0) * Ev);
        }
        if (grad_q.data) std::copy(dq.begin(), dq.end(), grad_q.ptr<T>() + b * L * E);
      }
    });
  });
}

}  // namespace focus::cpu
