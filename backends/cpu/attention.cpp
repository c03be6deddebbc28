// CPU kernels for scaled dot-product attention: a forward/backward pair per batch entry
// (batch * heads), with OpenBLAS for the products and fused mask + softmax + dropout.
//
// As in FlashAttention-2, the forward keeps only the row logsumexp lse [B, L] (and its
// output) for the backward, never the [B, L, S] probabilities: the backward recomputes the
// scores with one more Q K^T product and gets P = exp(score - lse), and uses
// D = rowsum(dO * O) for the softmax backward. Only need_weights makes the forward write
// [B, L, S] (the returned weights).
//
// Each batch entry runs in blocks of kBlockRows query rows, so the block's scores stay in
// cache from the product that makes them to the product that uses them; with is_causal a
// block only computes the keys its rows may see (j <= its last row), about half the work
// of the products, the exponentials and the backward's five products.
//
// Fully masked rows (no key allowed by the bool mask / causal mask, or all scores -inf):
// the weights are 0 and the output row is 0, with 0 gradients; their lse is +inf, so that
// exp(score - lse) is 0 there with no special case. PyTorch 1.13-2.4 return NaN there
// (softmax of a row of -inf); PyTorch >= 2.5 uses _safe_softmax in the math backend and
// returns 0, as here. Padding-only rows (e.g. a padded query position) therefore never
// poison the loss with NaN.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/philox.h"
#include "backends/cpu/vec_math.h"
#include "core/threads.h"

namespace focus::cpu {

namespace {

// C = alpha * op(A) op(B) + beta * C (gemm.h), with K == 0 done by hand: BLAS wants lda >= 1.
template <typename T>
void gemm_k0(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
             int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// A rows x cols block (row stride rs, column stride cs) that BLAS can read in place when its
// columns are unit-stride and its rows do not overlap; otherwise it is packed.
bool needs_pack(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  const bool unit_cols = cs == 1 || cols <= 1;
  return !(unit_cols && (rows <= 1 || rs >= std::max<int64_t>(cols, 1)));
}

template <typename T> struct Mat {
  const T* p;
  int64_t ld;
};

template <typename T>
Mat<T> rowmajor(const T* base, int64_t rows, int64_t cols, int64_t rs, int64_t cs, std::vector<T>& buf) {
  if (!needs_pack(rows, cols, rs, cs)) return {base, rows <= 1 ? std::max<int64_t>(cols, 1) : rs};
  buf.resize(static_cast<size_t>(rows * cols));  // capacity reserved before any parallel region
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) buf[r * cols + c] = base[r * rs + c * cs];
  return {buf.data(), std::max<int64_t>(cols, 1)};
}

// Element offset of batch entry b in a view whose first nb dims are the batch dims.
int64_t batch_offset(const TensorView& v, int nb, int64_t b) {
  int64_t off = 0;
  for (int d = nb - 1; d >= 0; --d) {
    off += (b % v.sizes[d]) * v.strides[d];
    b /= v.sizes[d];
  }
  return off;
}

// The matrix of batch entry b of a [B..., rows, cols] view.
template <typename T> Mat<T> matrix(const TensorView& v, int nb, int64_t b, std::vector<T>& buf) {
  return rowmajor(v.ptr<T>() + batch_offset(v, nb, b), v.sizes[nb], v.sizes[nb + 1], v.strides[nb],
                  v.strides[nb + 1], buf);
}
bool view_needs_pack(const TensorView& v, int nb) {
  return needs_pack(v.sizes[nb], v.sizes[nb + 1], v.strides[nb], v.strides[nb + 1]);
}


// Per-thread work buffers; their capacity is reserved before the parallel region so nothing
// allocates (or throws) inside it. p: probabilities [L, S]; w: weights after dropout;
// dp: gradient of the scores.
template <typename T> struct Scratch {
  std::vector<T> q, k, v, dout, p, w, dp;
  std::vector<uint8_t> keep;
};

// Runs f(b, scratch) for every batch entry. With several entries and threads, entries run in
// parallel (each product on its thread); otherwise entries run in turn and each product may
// be split over the threads by gemm().
template <typename T, typename Reserve, typename F>
void for_each_batch(int64_t nbatch, double flops_per, const Reserve& reserve, const F& f) {
  const int nt = get_num_threads();
  const bool outer = nbatch >= 2 && nt > 1 && !in_parallel() && flops_per * static_cast<double>(nbatch) > 2e5;
  std::vector<Scratch<T>> scratch(outer ? static_cast<size_t>(std::min<int64_t>(nt, nbatch)) : 1);
  for (auto& s : scratch) reserve(s);
  if (!outer) {
    for (int64_t b = 0; b < nbatch; ++b) f(b, scratch[0]);
    return;
  }
  // One job of scratch.size() threads, so thread_index() < scratch.size(): each thread has a
  // scratch of its own. (parallel_for would read get_num_threads() again, and a
  // set_num_threads from another thread in between could give it more threads than
  // scratches, two of them sharing one.) A job run inline (another thread's job holds the
  // pool) runs every chunk on the calling thread, with index 0.
  struct Ctx {
    const F* f;
    std::vector<Scratch<T>>* scratch;
    int64_t nbatch, chunk;
  } ctx{&f, &scratch, nbatch, (nbatch + static_cast<int64_t>(scratch.size()) - 1) / static_cast<int64_t>(scratch.size())};
  run_parallel(static_cast<int64_t>(scratch.size()), static_cast<int>(scratch.size()), [](void* c, int64_t i) {
    const Ctx& x = *static_cast<const Ctx*>(c);
    Scratch<T>& s = (*x.scratch)[static_cast<size_t>(thread_index())];
    for (int64_t b = i * x.chunk, e = std::min(x.nbatch, b + x.chunk); b < e; ++b) (*x.f)(b, s);
  }, &ctx);
}

int batch_dims(const TensorView& q) { return q.ndim - 2; }
int64_t batch_count(const TensorView& q) {
  int64_t n = 1;
  for (int d = 0; d < batch_dims(q); ++d) n *= q.sizes[d];
  return n;
}

// Copies a block [lb, sk] (row stride sk) into rows of stride S, zeros in columns sk..S.
template <typename T> void write_rows(T* dst, const T* src, int64_t lb, int64_t sk, int64_t S) {
  for (int64_t r = 0; r < lb; ++r) {
    std::copy(src + r * sk, src + (r + 1) * sk, dst + r * S);
    std::fill(dst + r * S + sk, dst + (r + 1) * S, T(0));
  }
}

// Query rows per block (see the top of this file).
constexpr int64_t kBlockRows = 64;

// Keys a block of query rows [l0, l0 + lb) uses: all S, or with is_causal only j < l0 + lb.
int64_t block_keys(int64_t l0, int64_t lb, int64_t S, bool is_causal) { return is_causal ? std::min(S, l0 + lb) : S; }

// The attention scores of rows [l0, l0 + lb) of batch entry b against keys [0, sk), the
// same in forward and backward: Z [lb, sk] (row stride sk) = scale * Q K^T, then -inf where
// the bool mask is false (or + the additive mask), then -inf above the diagonal when causal
// (top-left aligned, as torch.ones(L, S).tril(): key j <= query l).
template <typename T>
void scores(T* Z, const Mat<T>& Q, const Mat<T>& K, int64_t l0, int64_t lb, int64_t sk, int64_t E, double scale,
            const TensorView& mask, int nb, int64_t b, bool is_causal) {
  const T ninf = -std::numeric_limits<T>::infinity();
  // Z = scale * Q[l0 : l0 + lb] K[0 : sk]^T : [lb, E] x [E, sk]
  gemm_k0<T>(false, true, lb, sk, E, static_cast<T>(scale), Q.p + l0 * Q.ld, Q.ld, K.p, K.ld, T(0), Z, sk);
  if (mask.data) {
    const int64_t mo = batch_offset(mask, nb, b), ms = mask.strides[nb + 1];
    for (int64_t r = 0; r < lb; ++r) {
      T* row = Z + r * sk;
      const int64_t mrow = mo + (l0 + r) * mask.strides[nb];
      if (mask.dtype == kBool) {
        const bool* m = mask.ptr<bool>() + mrow;
        for (int64_t j = 0; j < sk; ++j) row[j] = m[j * ms] ? row[j] : ninf;
      } else {
        const T* m = mask.ptr<T>() + mrow;
        for (int64_t j = 0; j < sk; ++j) row[j] += m[j * ms];
      }
    }
  }
  if (is_causal)
    for (int64_t r = 0; r < lb; ++r) std::fill(Z + r * sk + std::min(l0 + r + 1, sk), Z + (r + 1) * sk, ninf);
}

}  // namespace

void CpuBackend::attention_forward(const TensorView& out, const TensorView& lse, const TensorView& weights,
                                   const TensorView& q, const TensorView& k, const TensorView& v,
                                   const TensorView& mask, bool is_causal, double scale, double dropout_p,
                                   RandomState rng) {
  // lse is float32 for 16-bit inputs already: it passes through unchanged.
  if (any_16bit(out, weights, q, k, v, mask)) [[unlikely]] {
    Float32Scope f(*this);
    attention_forward(f.out(out), lse, f.out(weights), f.in(q), f.in(k), f.in(v), f.in(mask), is_causal, scale,
                      dropout_p, rng);
    return f.commit();
  }
  const int nb = batch_dims(q);
  const int64_t nbatch = batch_count(q);
  const int64_t L = q.sizes[nb], E = q.sizes[nb + 1], S = k.sizes[nb], Ev = v.sizes[nb + 1];
  const bool dropout = dropout_p > 0;
  const bool want_weights = weights.data != nullptr;
  dispatch_float(q.dtype, "scaled_dot_product_attention", [&](auto tag) {
    using T = decltype(tag);
    const T ninf = -std::numeric_limits<T>::infinity(), pinf = std::numeric_limits<T>::infinity();
    const T ks = static_cast<T>(dropout_p < 1 ? 1.0 / (1.0 - dropout_p) : 0.0);
    const int64_t rows = std::min(L, kBlockRows);
    auto reserve = [&](Scratch<T>& s) {
      if (view_needs_pack(q, nb)) s.q.reserve(static_cast<size_t>(L * E));
      if (view_needs_pack(k, nb)) s.k.reserve(static_cast<size_t>(S * E));
      if (view_needs_pack(v, nb)) s.v.reserve(static_cast<size_t>(S * Ev));
      s.p.resize(static_cast<size_t>(rows * S));
      if (dropout) s.keep.resize(static_cast<size_t>(rows * S));
    };
    const double work = 2.0 * static_cast<double>(L * S) * static_cast<double>(E + Ev) * (is_causal ? 0.5 : 1.0);
    for_each_batch<T>(nbatch, work, reserve, [&](int64_t b, Scratch<T>& s) {
      const Mat<T> Q = matrix<T>(q, nb, b, s.q), K = matrix<T>(k, nb, b, s.k), V = matrix<T>(v, nb, b, s.v);
      T* lse_b = lse.ptr<T>() + b * L;
      T* out_b = out.ptr<T>() + b * L * Ev;
      for (int64_t l0 = 0; l0 < L; l0 += rows) {
        const int64_t lb = std::min(rows, L - l0), sk = block_keys(l0, lb, S, is_causal);
        T* P = s.p.data();  // [lb, sk]
        scores<T>(P, Q, K, l0, lb, sk, E, scale, mask, nb, b, is_causal);
        for (int64_t r = 0; r < lb; ++r) {
          T* row = P + r * sk;
          T mx = ninf;
          for (int64_t j = 0; j < sk; ++j) mx = std::max(mx, row[j]);
          if (mx == ninf) {  // nothing to attend to: 0 weights, lse +inf (see the top of this file)
            std::fill(row, row + sk, T(0));
            lse_b[l0 + r] = pinf;
            continue;
          }
          T sum = 0;
          for (int64_t j = 0; j < sk; ++j) {
            row[j] = vexp(row[j] - mx);
            sum += row[j];
          }
          lse_b[l0 + r] = mx + std::log(sum);
          const T inv = T(1) / sum;
          for (int64_t j = 0; j < sk; ++j) row[j] *= inv;
        }
        if (want_weights && !dropout) write_rows(weights.ptr<T>() + (b * L + l0) * S, P, lb, sk, S);
        if (dropout) {  // in place: P is not needed afterwards
          keep_mask(rng.seed, rng.offset, static_cast<uint64_t>((b * L + l0) * S), lb * S, dropout_p, s.keep.data());
          for (int64_t r = 0; r < lb; ++r)
            for (int64_t j = 0; j < sk; ++j) {
              T& w = P[r * sk + j];
              w = s.keep[static_cast<size_t>(r * S + j)] ? w * ks : T(0);
            }
          if (want_weights) write_rows(weights.ptr<T>() + (b * L + l0) * S, P, lb, sk, S);
        }
        // out rows = W V : [lb, sk] x [sk, Ev]
        gemm_k0<T>(false, false, lb, Ev, sk, T(1), P, std::max<int64_t>(sk, 1), V.p, V.ld, T(0), out_b + l0 * Ev,
                   std::max<int64_t>(Ev, 1));
      }
    });
  });
}

void CpuBackend::attention_backward(const TensorView& grad_q, const TensorView& grad_k, const TensorView& grad_v,
                                    const TensorView& grad_mask, const TensorView& grad_out,
                                    const TensorView& grad_weights, const TensorView& q, const TensorView& k,
                                    const TensorView& v, const TensorView& mask, bool is_causal,
                                    const TensorView& out, const TensorView& lse, double scale, double dropout_p,
                                    RandomState rng) {
  if (any_16bit(grad_q, grad_k, grad_v, grad_mask, grad_out, grad_weights, q, k, v, mask, out)) [[unlikely]] {
    Float32Scope f(*this);
    attention_backward(f.out(grad_q), f.out(grad_k), f.out(grad_v), f.out(grad_mask), f.in(grad_out),
                       f.in(grad_weights), f.in(q), f.in(k), f.in(v), f.in(mask), is_causal, f.in(out), lse, scale,
                       dropout_p, rng);
    return f.commit();
  }
  const int nb = batch_dims(q);
  const int64_t nbatch = batch_count(q);
  const int64_t L = q.sizes[nb], E = q.sizes[nb + 1], S = k.sizes[nb], Ev = v.sizes[nb + 1];
  const bool dropout = dropout_p > 0;
  const bool want_scores = grad_q.data || grad_k.data || grad_mask.data;
  dispatch_float(q.dtype, "scaled_dot_product_attention_backward", [&](auto tag) {
    using T = decltype(tag);
    const T pinf = std::numeric_limits<T>::infinity();
    const T ks = static_cast<T>(dropout_p < 1 ? 1.0 / (1.0 - dropout_p) : 0.0);
    const int64_t rows = std::min(L, kBlockRows);
    auto reserve = [&](Scratch<T>& s) {
      if (view_needs_pack(q, nb)) s.q.reserve(static_cast<size_t>(L * E));
      if (view_needs_pack(k, nb)) s.k.reserve(static_cast<size_t>(S * E));
      if (view_needs_pack(v, nb)) s.v.reserve(static_cast<size_t>(S * Ev));
      if (view_needs_pack(grad_out, nb)) s.dout.reserve(static_cast<size_t>(L * Ev));
      s.p.resize(static_cast<size_t>(rows * S));
      if (dropout) {
        s.keep.resize(static_cast<size_t>(rows * S));
        s.w.resize(static_cast<size_t>(rows * S));
      }
      if (want_scores) s.dp.resize(static_cast<size_t>(rows * S));
    };
    // Five products per block: Q K^T again, W^T dO, dO V^T, dZ K and dZ^T Q.
    const double work = 2.0 * static_cast<double>(L * S) * static_cast<double>(3 * E + 2 * Ev) * (is_causal ? 0.5 : 1.0);
    for_each_batch<T>(nbatch, work, reserve, [&](int64_t b, Scratch<T>& s) {
      const Mat<T> Q = matrix<T>(q, nb, b, s.q), K = matrix<T>(k, nb, b, s.k);
      const Mat<T> dO = matrix<T>(grad_out, nb, b, s.dout);
      const Mat<T> V = want_scores ? matrix<T>(v, nb, b, s.v) : Mat<T>{nullptr, 0};
      const T* lse_b = lse.ptr<T>() + b * L;
      const T* O = out.ptr<T>() + b * L * Ev;
      // grad_k and grad_v sum over the blocks: start from 0 (keys no row sees keep 0).
      T* gk = grad_k.data ? grad_k.ptr<T>() + b * S * E : nullptr;
      T* gv = grad_v.data ? grad_v.ptr<T>() + b * S * Ev : nullptr;
      if (gk) std::fill(gk, gk + S * E, T(0));
      if (gv) std::fill(gv, gv + S * Ev, T(0));
      const T* gw = grad_weights.data ? grad_weights.ptr<T>() + batch_offset(grad_weights, nb, b) : nullptr;
      const int64_t gws = gw ? grad_weights.strides[nb] : 0, gwc = gw ? grad_weights.strides[nb + 1] : 0;
      for (int64_t l0 = 0; l0 < L; l0 += rows) {
        const int64_t lb = std::min(rows, L - l0), sk = block_keys(l0, lb, S, is_causal);
        const int64_t ldp = std::max<int64_t>(sk, 1);
        const T* dOb = dO.p + l0 * dO.ld;
        // P = exp(Z - lse): the forward's probabilities, recomputed (0 on rows with lse = +inf).
        T* P = s.p.data();
        scores<T>(P, Q, K, l0, lb, sk, E, scale, mask, nb, b, is_causal);
        for (int64_t r = 0; r < lb; ++r) {
          T* row = P + r * sk;
          const T m = lse_b[l0 + r];
          if (m == pinf) {
            std::fill(row, row + sk, T(0));
            continue;
          }
          for (int64_t j = 0; j < sk; ++j) row[j] = vexp(row[j] - m);
        }
        // The weights the forward multiplied v by: P, or P * keep / (1 - p) with dropout.
        const T* W = P;
        if (dropout) {
          keep_mask(rng.seed, rng.offset, static_cast<uint64_t>((b * L + l0) * S), lb * S, dropout_p, s.keep.data());
          for (int64_t r = 0; r < lb; ++r)
            for (int64_t j = 0; j < sk; ++j)
              s.w[static_cast<size_t>(r * sk + j)] = s.keep[static_cast<size_t>(r * S + j)] ? P[r * sk + j] * ks : T(0);
          W = s.w.data();
        }
        // grad_v[0 : sk] += W^T dO : [sk, lb] x [lb, Ev]
        if (gv) gemm_k0<T>(true, false, sk, Ev, lb, T(1), W, ldp, dOb, dO.ld, T(1), gv, std::max<int64_t>(Ev, 1));
        if (!want_scores) continue;
        T* dP = s.dp.data();
        // dW = dO V^T (+ the gradient of the returned weights) : [lb, Ev] x [Ev, sk]
        gemm_k0<T>(false, true, lb, sk, Ev, T(1), dOb, dO.ld, V.p, V.ld, T(0), dP, ldp);
        for (int64_t r = 0; r < lb; ++r) {
          const int64_t l = l0 + r;
          T* dr = dP + r * sk;
          // D = rowsum(dP * P) = rowsum(dW * W) = rowsum(dO * O) (+ rowsum(grad_weights * W)),
          // since O = W V (FlashAttention-2).
          const T* o = O + l * Ev;
          const T* d = dOb + r * dO.ld;
          T D = 0;
          for (int64_t e = 0; e < Ev; ++e) D += d[e] * o[e];
          if (gw) {
            const T* g = gw + l * gws;
            const T* wr = W + r * sk;
            for (int64_t j = 0; j < sk; ++j) {
              dr[j] += g[j * gwc];
              D += g[j * gwc] * wr[j];
            }
          }
          // dZ = P * (dP - D) with dP = dropout'(dW): the gradient of the masked scores.
          const T* pr = P + r * sk;
          if (dropout) {
            const uint8_t* kr = s.keep.data() + r * S;
            for (int64_t j = 0; j < sk; ++j) dr[j] = pr[j] * ((kr[j] ? dr[j] * ks : T(0)) - D);
          } else {
            for (int64_t j = 0; j < sk; ++j) dr[j] = pr[j] * (dr[j] - D);
          }
        }
        if (grad_mask.data) write_rows(grad_mask.ptr<T>() + (b * L + l0) * S, dP, lb, sk, S);
        // grad_q rows = scale * dZ K : [lb, sk] x [sk, E];  grad_k[0 : sk] += scale * dZ^T Q : [sk, lb] x [lb, E]
        if (grad_q.data)
          gemm_k0<T>(false, false, lb, E, sk, static_cast<T>(scale), dP, ldp, K.p, K.ld, T(0),
                     grad_q.ptr<T>() + (b * L + l0) * E, std::max<int64_t>(E, 1));
        if (gk)
          gemm_k0<T>(true, false, sk, E, lb, static_cast<T>(scale), dP, ldp, Q.p + l0 * Q.ld, Q.ld, T(1), gk,
                     std::max<int64_t>(E, 1));
      }
    });
  });
}

}  // namespace focus::cpu
