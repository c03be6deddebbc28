#pragma once
/// The CPU's one way to call BLAS: C[M, N] = alpha * op(A) @ op(B) + beta * C (row-major,
/// op = transpose when ta / tb), split over focus's thread pool when it is big enough.
/// OpenBLAS always runs on one thread (core/threads.cpp); each thread here gets a band of C's
/// rows (or columns, when C is wider than tall) whose size is a multiple of the BLAS kernel's
/// register block. The bands depend only on the sizes and the thread count, so results repeat
/// bit for bit at a given thread count; across thread counts they agree to rounding (OpenBLAS
/// picks kernels by size, e.g. its small-matrix kernels for a thin band).
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "backends/cpu/parallel.h"

namespace focus::cpu {

/// M * N * K below which a product runs on one thread: ~2.6 µs of sgemm on one core of the
/// development VM, several times the cost of a fork/join with the workers awake.
inline constexpr int64_t kGemmGrain = int64_t{1} << 17;

template <typename T>
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
               int64_t ldb, T beta, T* C, int64_t ldc) {
  const auto opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
  const int m = static_cast<int>(M), n = static_cast<int>(N), k = static_cast<int>(K);
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, opa, opb, m, n, k, alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
                static_cast<int>(ldc));
  else
    cblas_dgemm(CblasRowMajor, opa, opb, m, n, k, alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
                static_cast<int>(ldc));
}

/// C = alpha * op(A) op(B) + beta * C for float or double; M, N, K >= 1 and lda, ldb, ldc
/// valid BLAS leading dimensions. Multi-threaded when M * N * K >= 2 * kGemmGrain.
template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  const int64_t work = M * N * K;
  const int nt = get_num_threads();  // also holds OpenBLAS to one thread, before its first call
  constexpr int64_t kBlock = 16;     // a multiple of every sgemm/dgemm kernel's M and N unroll
  const bool split_m = M >= N;
  const int64_t blocks = ((split_m ? M : N) + kBlock - 1) / kBlock;
  if (nt <= 1 || work < 2 * kGemmGrain || blocks < 2 || in_parallel()) {
    blas_gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t parts = std::min<int64_t>({nt, work / kGemmGrain, blocks});
  const int64_t per = (blocks + parts - 1) / parts * kBlock;  // rows (or columns) per part
  parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p * per, e = std::min(split_m ? M : N, b + per);
      if (b >= e) continue;
      if (split_m)
        blas_gemm<T>(ta, tb, e - b, N, K, alpha, A + (ta ? b : b * lda), lda, B, ldb, beta, C + b * ldc, ldc);
      else
        blas_gemm<T>(ta, tb, M, e - b, K, alpha, A, lda, B + (tb ? b * ldb : b), ldb, beta, C + b, ldc);
    }
  });
}

}  // namespace focus::cpu
