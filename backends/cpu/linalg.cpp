// CPU kernels for matrix products: OpenBLAS sgemm/dgemm with CBLAS transpose flags, a
// plain loop for integer dtypes.
#include <algorithm>
#include <climits>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/gemm.h"

namespace focus::cpu {

namespace {

// How one matrix operand goes to BLAS: row-major as is (NoTrans), column-major as is
// (Trans), or not at all (ok = false: pack it first).
struct BlasLayout {
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int64_t ld = 0;
  bool ok = false;
};

BlasLayout blas_layout(int64_t rows, int64_t cols, int64_t s_row, int64_t s_col) {
  const int64_t c1 = std::max<int64_t>(1, cols), r1 = std::max<int64_t>(1, rows);
  // A size-1 dim's stride is never used, so it does not constrain the layout.
  if ((s_col == 1 || cols == 1) && (rows == 1 || (s_row >= c1 && s_row <= INT_MAX)))
    return {CblasNoTrans, rows == 1 ? c1 : s_row, true};
  if ((s_row == 1 || rows == 1) && (cols == 1 || (s_col >= r1 && s_col <= INT_MAX)))
    return {CblasTrans, cols == 1 ? r1 : s_col, true};
  return {};
}

// One matrix of a batch: pointer, sizes, strides in elements.
template <typename T> struct Mat {
  const T* p;
  int64_t rows, cols, s_row, s_col;
};

// A packed row-major copy of m into buf.
template <typename T> const T* pack(const Mat<T>& m, std::vector<T>& buf) {
  buf.resize(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) buf[r * m.cols + c] = m.p[r * m.s_row + c * m.s_col];
  return buf.data();
}

// c[M, N] (row stride ldc, unit col stride) = alpha * a @ b + beta * c.
template <typename T>
void gemm_one(T* c, int64_t ldc, const Mat<T>& a, const Mat<T>& b, T alpha, T beta, std::vector<T>& abuf,
              std::vector<T>& bbuf) {
  const int64_t M = a.rows, K = a.cols, N = b.cols;
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == T(0)) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) c[m * ldc + n] = beta == T(0) ? T(0) : beta * c[m * ldc + n];
    return;
  }
  if constexpr (std::is_floating_point_v<T>) {
    BlasLayout la = blas_layout(M, K, a.s_row, a.s_col), lb = blas_layout(K, N, b.s_row, b.s_col);
    const T* ap = a.p;
    const T* bp = b.p;
    if (!la.ok) {
      ap = pack(a, abuf);
      la = {CblasNoTrans, std::max<int64_t>(1, K), true};
    }
    if (!lb.ok) {
      bp = pack(b, bbuf);
      lb = {CblasNoTrans, std::max<int64_t>(1, N), true};
    }
    gemm<T>(la.trans == CblasTrans, lb.trans == CblasTrans, M, N, K, alpha, ap, la.ld, bp, lb.ld, beta, c,
            M == 1 ? std::max<int64_t>(1, N) : ldc);
  } else {
    // Integers: i-k-j order so the innermost loop runs along a row of b and c.
    (void)abuf;
    (void)bbuf;
    for (int64_t m = 0; m < M; ++m) {
      T* crow = c + m * ldc;
      for (int64_t n = 0; n < N; ++n) crow[n] = beta == T(0) ? T(0) : static_cast<T>(beta * crow[n]);
      for (int64_t k = 0; k < K; ++k) {
        const T av = static_cast<T>(alpha * a.p[m * a.s_row + k * a.s_col]);
        const T* brow = b.p + k * b.s_row;
        for (int64_t n = 0; n < N; ++n) crow[n] = static_cast<T>(crow[n] + av * brow[n * b.s_col]);
      }
    }
  }
}

// Matrices at most this big (M*N*K) are not worth splitting (kGemmGrain), so a batch of
// them is split over the threads instead, one whole product per task.
constexpr int64_t kSmallGemm = 2 * kGemmGrain;

template <typename T>
void matmul_typed(const TensorView& out, const TensorView& a, const TensorView& b, double alpha_d, double beta_d) {
  const int nd = out.ndim, nb = nd - 2;
  const int64_t M = out.sizes[nd - 2], N = out.sizes[nd - 1], K = a.sizes[nd - 1];
  const T alpha = static_cast<T>(alpha_d), beta = static_cast<T>(beta_d);
  int64_t batch = 1;
  bool accumulate = false;  // out broadcast over a batch dim: the products of that dim sum up
  for (int d = 0; d < nb; ++d) {
    batch *= out.sizes[d];
    if (out.sizes[d] > 1 && out.strides[d] == 0) accumulate = true;
  }
  const int64_t ldc = out.strides[nd - 2];
  T* c0 = out.ptr<T>();
  const T* a0 = a.ptr<T>();
  const T* b0 = b.ptr<T>();

  auto run = [&](int64_t begin, int64_t end) {
    std::vector<T> abuf, bbuf;
    for (int64_t i = begin; i < end; ++i) {
      int64_t rem = i, oa = 0, ob = 0, oc = 0;
      for (int d = nb - 1; d >= 0; --d) {
        const int64_t idx = rem % out.sizes[d];
        rem /= out.sizes[d];
        oa += idx * a.strides[d];
        ob += idx * b.strides[d];
        oc += idx * out.strides[d];
      }
      Mat<T> am{a0 + oa, M, K, a.strides[nd - 2], a.strides[nd - 1]};
      Mat<T> bm{b0 + ob, K, N, b.strides[nd - 2], b.strides[nd - 1]};
      gemm_one<T>(c0 + oc, ldc, am, bm, alpha, beta, abuf, bbuf);
    }
  };
  const int64_t work = std::max<int64_t>(1, M * N * std::max<int64_t>(1, K));
  const int nt = get_num_threads();
  // Whole products per thread when they are small, or when the batch divides evenly over the
  // threads (no product is split, nothing is packed twice); otherwise one product after
  // another, each split over the threads by gemm().
  if (batch > 1 && !accumulate && nt > 1 && (work <= kSmallGemm || batch % nt == 0 || batch >= 4 * nt)) {
    parallel_for(0, batch, std::max<int64_t>(1, kGemmGrain / work), run);
  } else {
    run(0, batch);
  }
}

}  // namespace

void CpuBackend::matmul(const TensorView& out, const TensorView& a, const TensorView& b, double alpha,
                        double beta) {
  if (out.numel == 0) return;
  if (any_16bit(out, a, b)) [[unlikely]] {
    // Operands widened to float32, one sgemm, the result rounded once; beta != 0 reads out.
    Float32Scope f(*this);
    const TensorView o = beta != 0 ? f.inout(out) : f.out(out);
    matmul(o, f.in(a), f.in(b), alpha, beta);
    return f.commit();
  }
  dispatch_numeric(out.dtype, "matmul",
                   [&](auto tag) { matmul_typed<decltype(tag)>(out, a, b, alpha, beta); });
}

}  // namespace focus::cpu
