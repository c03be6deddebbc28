#pragma once
/// How one Backend::matmul call, out[..., M, N] = alpha a[..., M, K] @ b[..., K, N] + beta out,
/// maps onto column-major strided-batched GEMM calls (cuBLAS), decided on the host from the
/// three views alone, so that the CPU tests check it (tests/backends/test_matmul_plan.cpp).
///
/// out is row-major, so the product is computed as out^T = b^T a^T in column-major terms:
/// cuBLAS's first operand is b, its second is a, its C is out with ldc = out's row stride,
/// and m = N, n = M. A row-major matrix is, read column-major, its own transpose (op N);
/// a column-major one needs op T. Transposes are operation flags, never copies: an operand
/// is copied (packed) only when it has neither layout (e.g. both strides > 1, or negative).
///
/// The batch dims (size-1 dims dropped, neighbours merged) go, in this order:
///  - a dim where out has stride 0 (the products of that dim accumulate into one matrix)
///    folds into K when a and b step through it as through K's continuation (typical for a
///    weight gradient x^T @ grad over [B, T, .]); otherwise it is an outer loop whose first
///    call uses beta and the others 1;
///  - a dim where b has stride 0 and a and out step by whole matrices of rows folds into M
///    (x [B, T, K] @ w [K, N] becomes one [B*T, K] @ [K, N] product);
///  - the largest remaining dim becomes the strided batch (stride 0 allowed for a and b);
///  - the rest are outer loops (one strided-batched call per index).
#include <algorithm>
#include <climits>
#include <cstdint>

#include "backends/backend.h"
#include "core/error.h"

namespace focus::common {

/// How a column-major BLAS reads a rows x cols matrix with strides (s_row, s_col):
/// row-major (unit column stride; transpose = false) or column-major (unit row stride;
/// transpose = true), with its leading dimension; ok = false when neither works (pack it).
/// A size-1 dim's stride is never used, so it constrains nothing.
struct GemmLayout {
  bool ok = false;
  bool col_major = false;
  int64_t ld = 0;
};

inline GemmLayout gemm_layout(int64_t rows, int64_t cols, int64_t s_row, int64_t s_col) {
  const int64_t c1 = std::max<int64_t>(1, cols), r1 = std::max<int64_t>(1, rows);
  if ((s_col == 1 || cols == 1) && (rows == 1 || (s_row >= c1 && s_row <= INT_MAX)))
    return {true, false, rows == 1 ? c1 : s_row};
  if ((s_row == 1 || rows == 1) && (cols == 1 || (s_col >= r1 && s_col <= INT_MAX)))
    return {true, true, cols == 1 ? r1 : s_col};
  return {};
}

/// One batch dim of the product: its size and the strides of a, b and out along it.
struct GemmBatchDim {
  int64_t size = 1;
  int64_t a = 0, b = 0, c = 0;
};

/// Most matrices one strided-batched call takes (cuBLAS's batchCount is an int).
inline constexpr int64_t kMaxGemmBatch = INT_MAX;

/// The calls that compute one matmul. Each call is, in cuBLAS's column-major terms,
///   gemm_strided_batched(op(b_trans), op(a_trans), m, n, k, alpha,
///                        b + ob, b_ld, b_stride, a + oa, a_ld, a_stride, beta',
///                        out + oc, c_ld, c_stride, count)
/// with offsets (in elements) and beta' from for_each_gemm.
struct MatmulPlan {
  /// a / b has no BLAS layout: pack it (pack_operand) and plan again with the packed view.
  bool pack_a = false, pack_b = false;
  int64_t m = 0, n = 0, k = 0;  // m = N, n = M (rows of out, folded dims included), k = K (folded)
  bool a_trans = false, b_trans = false;
  int64_t a_ld = 1, b_ld = 1, c_ld = 1;
  int64_t batch = 1;  // matrices per strided-batched call (before splitting at kMaxGemmBatch)
  int64_t a_stride = 0, b_stride = 0, c_stride = 0;
  int nloops = 0;  // outer loops, outermost first; a loop with c == 0 accumulates
  GemmBatchDim loops[kMaxDims];
  int64_t loop_count() const {
    int64_t n_ = 1;
    for (int i = 0; i < nloops; ++i) n_ *= loops[i].size;
    return n_;
  }
};

/// The plan for out = alpha a @ b + beta out under Backend::matmul's contract (same ndim,
/// batch dims broadcast to out's, out row-major). Needs M, N, K >= 1: K == 0 (or alpha == 0)
/// is a scaling of out, which the caller does without a GEMM.
inline MatmulPlan plan_matmul(const TensorView& out, const TensorView& a, const TensorView& b) {
  const int nd = out.ndim, nb = nd - 2;
  FOCUS_CHECK(nd >= 2 && a.ndim == nd && b.ndim == nd, "[matmul] internal: views of {}, {} and {} dims", out.ndim,
              a.ndim, b.ndim);
  int64_t M = out.sizes[nd - 2], N = out.sizes[nd - 1], K = a.sizes[nd - 1];
  FOCUS_CHECK(M >= 1 && N >= 1 && K >= 1, "[matmul] internal: plan_matmul needs non-empty matrices, got M={} N={} K={}",
              M, N, K);
  FOCUS_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX,
              "[matmul] matrix dims must be below 2^31 for cuBLAS, got M={} K={} N={}", M, K, N);
  FOCUS_CHECK(N == 1 || out.strides[nd - 1] == 1, "[matmul] internal: out must be row-major, got column stride {}",
              out.strides[nd - 1]);
  int64_t a_row = a.strides[nd - 2], a_k = a.strides[nd - 1];
  int64_t b_k = b.strides[nd - 2], b_col = b.strides[nd - 1];
  int64_t c_row = out.strides[nd - 2];

  // Batch dims: size 1 dropped, neighbours merged where all three views allow it.
  GemmBatchDim dims[kMaxDims];
  int ndims = 0;
  for (int d = 0; d < nb; ++d) {
    const int64_t s = out.sizes[d];
    if (s == 1) continue;
    if (ndims > 0) {
      GemmBatchDim& p = dims[ndims - 1];
      if (p.a == a.strides[d] * s && p.b == b.strides[d] * s && p.c == out.strides[d] * s) {
        p.size *= s;
        p.a = a.strides[d];
        p.b = b.strides[d];
        p.c = out.strides[d];
        continue;
      }
    }
    dims[ndims++] = {s, a.strides[d], b.strides[d], out.strides[d]};
  }
  auto remove = [&](int i) {
    for (int j = i; j + 1 < ndims; ++j) dims[j] = dims[j + 1];
    --ndims;
  };

  // Accumulating dims into K: column K * i + kk of a and row K * i + kk of b.
  for (bool changed = true; changed;) {
    changed = false;
    for (int i = 0; i < ndims && !changed; ++i) {
      const GemmBatchDim& d = dims[i];
      if (d.c != 0) continue;
      int64_t ak = a_k, bk = b_k;
      if (K == 1) {  // a lone K index has no stride of its own: take the dim's
        ak = d.a;
        bk = d.b;
      } else if (d.a != K * a_k || d.b != K * b_k) {
        continue;
      }
      const int64_t K2 = K * d.size;
      if (K2 > INT_MAX || !gemm_layout(M, K2, a_row, ak).ok || !gemm_layout(K2, N, bk, b_col).ok) continue;
      K = K2;
      a_k = ak;
      b_k = bk;
      remove(i);
      changed = true;
    }
  }

  // Dims where b is broadcast and a and out step by whole row blocks into M: row M * i + mm.
  for (bool changed = true; changed;) {
    changed = false;
    for (int i = 0; i < ndims && !changed; ++i) {
      const GemmBatchDim& d = dims[i];
      if (d.c == 0 || d.b != 0) continue;
      int64_t ar = a_row, cr = c_row;
      if (M == 1) {
        ar = d.a;
        cr = d.c;
      } else if (d.a != M * a_row || d.c != M * c_row) {
        continue;
      }
      const int64_t M2 = M * d.size;
      if (M2 > INT_MAX || cr < std::max<int64_t>(1, N) || cr > INT_MAX || !gemm_layout(M2, K, ar, a_k).ok) continue;
      M = M2;
      a_row = ar;
      c_row = cr;
      remove(i);
      changed = true;
    }
  }

  MatmulPlan p;
  const GemmLayout la = gemm_layout(M, K, a_row, a_k), lb = gemm_layout(K, N, b_k, b_col);
  p.pack_a = !la.ok;
  p.pack_b = !lb.ok;
  if (p.pack_a || p.pack_b) return p;
  p.m = N;
  p.n = M;
  p.k = K;
  p.a_trans = la.col_major;
  p.a_ld = la.ld;
  p.b_trans = lb.col_major;
  p.b_ld = lb.ld;
  p.c_ld = M == 1 ? std::max<int64_t>(1, N) : c_row;
  FOCUS_CHECK(p.c_ld >= N && p.c_ld <= INT_MAX, "[matmul] output row stride {} is not usable by cuBLAS (N={})",
              p.c_ld, N);

  // The strided batch: the largest dim that does not accumulate (innermost on ties).
  int pick = -1;
  for (int i = 0; i < ndims; ++i)
    if (dims[i].c != 0 && (pick < 0 || dims[i].size >= dims[pick].size)) pick = i;
  if (pick >= 0) {
    p.batch = dims[pick].size;
    p.a_stride = dims[pick].a;
    p.b_stride = dims[pick].b;
    p.c_stride = dims[pick].c;
    remove(pick);
  }
  p.nloops = ndims;
  for (int i = 0; i < ndims; ++i) p.loops[i] = dims[i];
  return p;
}

/// Calls f(oa, ob, oc, count, beta') once per strided-batched GEMM of the plan: element
/// offsets of the first matrices of a, b and out, the number of matrices (<= kMaxGemmBatch)
/// and the beta to use: the caller's for the first product into each out matrix, 1 for the
/// products that accumulate onto it (out stride 0).
template <typename F> void for_each_gemm(const MatmulPlan& p, double beta, F&& f) {
  const int64_t total = p.loop_count();
  for (int64_t it = 0; it < total; ++it) {
    int64_t rem = it, oa = 0, ob = 0, oc = 0;
    bool first = true;
    for (int i = p.nloops - 1; i >= 0; --i) {
      const GemmBatchDim& d = p.loops[i];
      const int64_t idx = rem % d.size;
      rem /= d.size;
      oa += idx * d.a;
      ob += idx * d.b;
      oc += idx * d.c;
      if (d.c == 0 && idx != 0) first = false;
    }
    for (int64_t b0 = 0; b0 < p.batch; b0 += kMaxGemmBatch) {
      const int64_t count = std::min(kMaxGemmBatch, p.batch - b0);
      f(oa + b0 * p.a_stride, ob + b0 * p.b_stride, oc + b0 * p.c_stride, count, first ? beta : 1.0);
    }
  }
}

/// A packed (contiguous, row-major matrices) copy of an operand that plan_matmul cannot
/// read in place: copy `src` (the view with its broadcast batch dims, stride 0, cut to
/// size 1) into a buffer of `numel` elements seen as `dst` (src's sizes, contiguous), then
/// plan with `packed` (the view's sizes on that buffer, broadcast dims still stride 0).
/// The data pointers of dst and packed are left null for the caller to set.
struct PackedOperand {
  TensorView src, dst, packed;
  int64_t numel = 1;
};

inline PackedOperand pack_operand(const TensorView& v) {
  PackedOperand p;
  p.src = v;
  const int nb = v.ndim - 2;
  for (int d = 0; d < nb; ++d)
    if (v.strides[d] == 0) p.src.sizes[d] = 1;
  p.numel = 1;
  for (int d = 0; d < v.ndim; ++d) p.numel *= p.src.sizes[d];
  p.src.numel = p.numel;
  p.dst = p.src;
  p.dst.data = nullptr;
  int64_t s = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    p.dst.strides[d] = s;
    s *= p.src.sizes[d];
  }
  p.packed = v;
  p.packed.data = nullptr;
  for (int d = 0; d < v.ndim; ++d) p.packed.strides[d] = p.src.sizes[d] == v.sizes[d] ? p.dst.strides[d] : 0;
  return p;
}

/// out with the dims it accumulates over (stride 0) cut to size 1: the view to scale by
/// beta when the product itself is zero (K == 0 or alpha == 0).
inline TensorView distinct_out(const TensorView& out) {
  TensorView o = out;
  o.numel = 1;
  for (int d = 0; d < o.ndim; ++d) {
    if (o.strides[d] == 0) o.sizes[d] = 1;
    o.numel *= o.sizes[d];
  }
  return o;
}

}  // namespace focus::common
