// backends/common/matmul_plan.h: how a matmul of strided views becomes column-major
// strided-batched GEMM calls (cuBLAS). Each case checks the plan's fields where they matter
// and runs the plan through a host emulation of cuBLAS's semantics (column-major, op flags,
// leading dims, batch strides, beta) against a direct loop over the views.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "backends/common/matmul_plan.h"

using focus::TensorView;
using focus::common::for_each_gemm;
using focus::common::gemm_layout;
using focus::common::MatmulPlan;
using focus::common::pack_operand;
using focus::common::plan_matmul;

namespace {

TensorView view(double* data, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
  TensorView v;
  v.data = data;
  v.dtype = focus::kFloat64;
  v.ndim = static_cast<int>(sizes.size());
  v.numel = 1;
  for (int d = 0; d < v.ndim; ++d) {
    v.sizes[d] = sizes[static_cast<size_t>(d)];
    v.strides[d] = strides[static_cast<size_t>(d)];
    v.numel *= v.sizes[d];
  }
  return v;
}

std::vector<double> random_buffer(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> b(n);
  for (auto& x : b) x = u(gen);
  return b;
}

void for_each_index(const int64_t* sizes, int ndim, const std::function<void(const int64_t*)>& f) {
  int64_t total = 1;
  for (int d = 0; d < ndim; ++d) total *= sizes[d];
  int64_t idx[focus::kMaxDims] = {};
  for (int64_t it = 0; it < total; ++it) {
    int64_t rem = it;
    for (int d = ndim - 1; d >= 0; --d) {
      idx[d] = rem % sizes[d];
      rem /= sizes[d];
    }
    f(idx);
  }
}

int64_t offset(const TensorView& v, const int64_t* idx) {
  int64_t o = 0;
  for (int d = 0; d < v.ndim; ++d) o += idx[d] * v.strides[d];
  return o;
}

// The contract, directly: every distinct out element becomes beta * old (0 when beta == 0)
// plus alpha times every product that lands on it.
std::vector<double> reference(const TensorView& out, const TensorView& a, const TensorView& b, double alpha,
                              double beta, const std::vector<double>& out_storage) {
  std::vector<double> ref = out_storage;
  const double* old = out_storage.data();
  const double* pa = static_cast<const double*>(a.data);
  const double* pb = static_cast<const double*>(b.data);
  const int nd = out.ndim;
  const int64_t K = a.sizes[nd - 1];
  for_each_index(out.sizes, nd, [&](const int64_t* i) {
    const int64_t o = offset(out, i);
    ref[static_cast<size_t>(o)] = beta == 0 ? 0.0 : beta * old[o];
  });
  for_each_index(out.sizes, nd, [&](const int64_t* i) {
    int64_t ia[focus::kMaxDims], ib[focus::kMaxDims];
    for (int d = 0; d < nd; ++d) ia[d] = ib[d] = i[d];
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      ia[nd - 1] = k;
      ib[nd - 2] = k;
      s += pa[offset(a, ia)] * pb[offset(b, ib)];
    }
    ref[static_cast<size_t>(offset(out, i))] += alpha * s;
  });
  return ref;
}

// cuBLAS's strided-batched gemm on the host: C[m, n] (column-major, ldc) = alpha op(A) op(B)
// + beta C, with A = b and B = a as the plan says.
void emulate(const MatmulPlan& p, const double* a, const double* b, double* c, double alpha, double beta) {
  for_each_gemm(p, beta, [&](int64_t oa, int64_t ob, int64_t oc, int64_t count, double be) {
    for (int64_t t = 0; t < count; ++t) {
      const double* A = b + ob + t * p.b_stride;
      const double* B = a + oa + t * p.a_stride;
      double* C = c + oc + t * p.c_stride;
      for (int64_t i = 0; i < p.m; ++i)
        for (int64_t j = 0; j < p.n; ++j) {
          double s = 0;
          for (int64_t l = 0; l < p.k; ++l) {
            const double x = p.b_trans ? A[l + i * p.b_ld] : A[i + l * p.b_ld];
            const double y = p.a_trans ? B[j + l * p.a_ld] : B[l + j * p.a_ld];
            s += x * y;
          }
          double& cij = C[i + j * p.c_ld];
          cij = alpha * s + (be == 0 ? 0.0 : be * cij);
        }
    }
  });
}

// A packed host copy of an operand, as the CUDA backend makes one with Backend::copy.
TensorView pack_on_host(const TensorView& v, std::vector<double>& storage) {
  auto pk = pack_operand(v);
  storage.assign(static_cast<size_t>(pk.numel), 0.0);
  pk.dst.data = storage.data();
  pk.packed.data = storage.data();
  const double* src = static_cast<const double*>(pk.src.data);
  for_each_index(pk.src.sizes, pk.src.ndim,
                 [&](const int64_t* i) { storage[static_cast<size_t>(offset(pk.dst, i))] = src[offset(pk.src, i)]; });
  return pk.packed;
}

struct Outcome {
  MatmulPlan first;  // the plan for the views as given (pack flags set when packing is needed)
  MatmulPlan plan;   // the plan that ran
};

// Plans (packing when told to), emulates cuBLAS, and compares with the reference.
Outcome run_and_check(const TensorView& out, const TensorView& a, const TensorView& b, double alpha, double beta,
                      std::vector<double>& out_storage) {
  Outcome r;
  r.first = plan_matmul(out, a, b);
  TensorView a2 = a, b2 = b;
  std::vector<double> abuf, bbuf;
  if (r.first.pack_a) a2 = pack_on_host(a, abuf);
  if (r.first.pack_b) b2 = pack_on_host(b, bbuf);
  r.plan = r.first.pack_a || r.first.pack_b ? plan_matmul(out, a2, b2) : r.first;
  REQUIRE_FALSE(r.plan.pack_a);
  REQUIRE_FALSE(r.plan.pack_b);
  const std::vector<double> ref = reference(out, a, b, alpha, beta, out_storage);
  emulate(r.plan, static_cast<const double*>(a2.data), static_cast<const double*>(b2.data), out_storage.data(), alpha,
          beta);
  for (size_t i = 0; i < ref.size(); ++i) {
    INFO("storage element " << i);
    CHECK(out_storage[i] == doctest::Approx(ref[i]).epsilon(1e-12));
  }
  return r;
}

}  // namespace

TEST_SUITE("backends_matmul_plan") {

TEST_CASE("gemm_layout: row-major, column-major, size-1 dims, neither") {
  auto l = gemm_layout(3, 4, 4, 1);
  CHECK((l.ok && !l.col_major && l.ld == 4));
  l = gemm_layout(3, 4, 1, 3);
  CHECK((l.ok && l.col_major && l.ld == 3));
  l = gemm_layout(3, 4, 7, 1);  // padded rows
  CHECK((l.ok && !l.col_major && l.ld == 7));
  l = gemm_layout(1, 4, 999, 1);  // one row: its stride is never used
  CHECK((l.ok && !l.col_major && l.ld == 4));
  l = gemm_layout(3, 1, 5, 42);  // one column: its stride is never used
  CHECK((l.ok && !l.col_major && l.ld == 5));
  l = gemm_layout(1, 1, 0, 0);
  CHECK((l.ok && l.ld == 1));
  CHECK_FALSE(gemm_layout(3, 4, 8, 2).ok);    // stepped columns
  CHECK_FALSE(gemm_layout(3, 4, 2, 1).ok);    // overlapping rows
  CHECK_FALSE(gemm_layout(3, 4, -4, 1).ok);   // negative row stride
  CHECK_FALSE(gemm_layout(3, 4, 0, 1).ok);    // rows broadcast
  CHECK_FALSE(gemm_layout(3, 4, int64_t{1} << 32, 1).ok);  // leading dim beyond int
}

TEST_CASE("2-D row-major: out^T = b^T a^T with no transposes") {
  auto A = random_buffer(12, 1), B = random_buffer(20, 2);
  std::vector<double> C(15, 7.0);
  auto r = run_and_check(view(C.data(), {3, 5}, {5, 1}), view(A.data(), {3, 4}, {4, 1}),
                         view(B.data(), {4, 5}, {5, 1}), 1.0, 0.0, C);
  const MatmulPlan& p = r.plan;
  CHECK(p.m == 5);
  CHECK(p.n == 3);
  CHECK(p.k == 4);
  CHECK_FALSE(p.a_trans);
  CHECK_FALSE(p.b_trans);
  CHECK(p.a_ld == 4);
  CHECK(p.b_ld == 5);
  CHECK(p.c_ld == 5);
  CHECK(p.batch == 1);
  CHECK(p.nloops == 0);
}

TEST_CASE("transposed views go as operation flags") {
  auto A = random_buffer(12, 3), B = random_buffer(20, 4);
  std::vector<double> C(15, 0.0);
  // a = t^T with t [4, 3] contiguous; b = w^T with w [5, 4] contiguous (a Linear weight).
  auto r = run_and_check(view(C.data(), {3, 5}, {5, 1}), view(A.data(), {3, 4}, {1, 3}),
                         view(B.data(), {4, 5}, {1, 4}), 2.0, 0.0, C);
  CHECK(r.plan.a_trans);
  CHECK(r.plan.a_ld == 3);
  CHECK(r.plan.b_trans);
  CHECK(r.plan.b_ld == 4);
  CHECK_FALSE(r.first.pack_a);
  CHECK_FALSE(r.first.pack_b);
}

TEST_CASE("row strides larger than the width (padded rows of a and out), alpha and beta") {
  auto A = random_buffer(3 * 6, 5), B = random_buffer(20, 6);
  auto C = random_buffer(3 * 8, 7);
  auto r = run_and_check(view(C.data(), {3, 5}, {8, 1}), view(A.data(), {3, 4}, {6, 1}),
                         view(B.data(), {4, 5}, {5, 1}), 0.5, 0.25, C);
  CHECK(r.plan.a_ld == 6);
  CHECK(r.plan.c_ld == 8);
}

TEST_CASE("batched: one strided batch over merged batch dims") {
  // [2, 3] batch dims of contiguous tensors merge into one batch of 6.
  auto A = random_buffer(6 * 12, 8), B = random_buffer(6 * 20, 9);
  std::vector<double> C(6 * 15, 0.0);
  auto r = run_and_check(view(C.data(), {2, 3, 3, 5}, {45, 15, 5, 1}), view(A.data(), {2, 3, 3, 4}, {36, 12, 4, 1}),
                         view(B.data(), {2, 3, 4, 5}, {60, 20, 5, 1}), 1.0, 0.0, C);
  CHECK(r.plan.batch == 6);
  CHECK(r.plan.a_stride == 12);
  CHECK(r.plan.b_stride == 20);
  CHECK(r.plan.c_stride == 15);
  CHECK(r.plan.nloops == 0);
}

TEST_CASE("b broadcast over the batch folds into M: one [B*M, K] @ [K, N] product") {
  auto A = random_buffer(2 * 12, 10), B = random_buffer(20, 11);
  std::vector<double> C(2 * 15, 0.0);
  auto r = run_and_check(view(C.data(), {2, 3, 5}, {15, 5, 1}), view(A.data(), {2, 3, 4}, {12, 4, 1}),
                         view(B.data(), {2, 4, 5}, {0, 5, 1}), 1.0, 0.0, C);
  CHECK(r.plan.n == 6);
  CHECK(r.plan.batch == 1);
  CHECK(r.plan.nloops == 0);
}

TEST_CASE("b broadcast over the batch, a transposed: no fold, a strided batch with stride 0") {
  // a [2, 3, 4] as the transpose of [2, 4, 3]: its rows do not continue across the batch.
  auto A = random_buffer(2 * 12, 12), B = random_buffer(20, 13);
  std::vector<double> C(2 * 15, 0.0);
  auto r = run_and_check(view(C.data(), {2, 3, 5}, {15, 5, 1}), view(A.data(), {2, 3, 4}, {12, 1, 3}),
                         view(B.data(), {2, 4, 5}, {0, 5, 1}), 1.0, 0.0, C);
  CHECK(r.plan.batch == 2);
  CHECK(r.plan.b_stride == 0);
  CHECK(r.plan.a_trans);
}

TEST_CASE("a broadcast over the batch: strided batch with a_stride 0") {
  auto A = random_buffer(12, 14), B = random_buffer(3 * 20, 15);
  std::vector<double> C(3 * 15, 0.0);
  auto r = run_and_check(view(C.data(), {3, 3, 5}, {15, 5, 1}), view(A.data(), {3, 3, 4}, {0, 4, 1}),
                         view(B.data(), {3, 4, 5}, {20, 5, 1}), 1.0, 0.0, C);
  CHECK(r.plan.batch == 3);
  CHECK(r.plan.a_stride == 0);
}

TEST_CASE("out stride 0 (weight gradient x^T @ g over [B, T]) folds into K") {
  // x [B=2, T=3, In=4] contiguous, g [2, 3, Out=5] contiguous; out [In, Out] accumulates over B.
  auto X = random_buffer(24, 16), G = random_buffer(30, 17);
  auto C = random_buffer(20, 18);
  auto r = run_and_check(view(C.data(), {2, 4, 5}, {0, 5, 1}), view(X.data(), {2, 4, 3}, {12, 1, 4}),
                         view(G.data(), {2, 3, 5}, {15, 5, 1}), 1.0, 1.0, C);
  CHECK(r.plan.k == 6);
  CHECK(r.plan.batch == 1);
  CHECK(r.plan.nloops == 0);
}

TEST_CASE("out stride 0 that cannot fold: a loop, beta on the first product only") {
  auto A = random_buffer(3 * 12, 19), B = random_buffer(3 * 20, 20);
  for (double beta : {0.0, 1.0, 0.5}) {
    auto C = random_buffer(15, 21);
    auto r = run_and_check(view(C.data(), {3, 3, 5}, {0, 5, 1}), view(A.data(), {3, 3, 4}, {12, 4, 1}),
                           view(B.data(), {3, 4, 5}, {20, 5, 1}), 1.5, beta, C);
    CHECK(r.plan.nloops == 1);
    CHECK(r.plan.loops[0].c == 0);
    CHECK(r.plan.batch == 1);
  }
}

TEST_CASE("accumulating and batched dims together") {
  // out [4, 3, 5] broadcast over a leading dim of 2 (stride 0); a and b contiguous [2, 4, ...].
  auto A = random_buffer(2 * 4 * 12, 22), B = random_buffer(2 * 4 * 20, 23);
  auto C = random_buffer(4 * 15, 24);
  auto r = run_and_check(view(C.data(), {2, 4, 3, 5}, {0, 15, 5, 1}), view(A.data(), {2, 4, 3, 4}, {48, 12, 4, 1}),
                         view(B.data(), {2, 4, 4, 5}, {80, 20, 5, 1}), 1.0, 1.0, C);
  CHECK(r.plan.batch == 4);
  CHECK(r.plan.nloops == 1);
}

TEST_CASE("K == 1 outer products accumulated over the batch fold into K") {
  auto A = random_buffer(4 * 3, 25), B = random_buffer(4 * 5, 26);
  std::vector<double> C(15, 0.0);
  auto r = run_and_check(view(C.data(), {4, 3, 5}, {0, 5, 1}), view(A.data(), {4, 3, 1}, {3, 1, 1}),
                         view(B.data(), {4, 1, 5}, {5, 5, 1}), 1.0, 1.0, C);
  CHECK(r.plan.k == 4);
  CHECK(r.plan.nloops == 0);
}

TEST_CASE("size-1 dims with arbitrary strides") {
  // M = 1 (row stride irrelevant), K = 1, N = 1 and size-1 batch dims with odd strides.
  auto A = random_buffer(8, 27), B = random_buffer(12, 28);  // B spans 12 elements in the first case
  std::vector<double> C(16, 0.0);
  run_and_check(view(C.data(), {1, 1, 4}, {99, 77, 1}), view(A.data(), {1, 1, 3}, {5, 123, 1}),
                view(B.data(), {1, 3, 4}, {0, 4, 1}), 1.0, 0.0, C);
  std::fill(C.begin(), C.end(), 0.0);
  run_and_check(view(C.data(), {2, 3, 1}, {3, 1, 1}), view(A.data(), {2, 3, 1}, {3, 1, 17}),
                view(B.data(), {2, 1, 1}, {1, 9, 9}), 1.0, 0.0, C);
  std::fill(C.begin(), C.end(), 0.0);
  // M == 1 over a batch with b broadcast: folds into M with the batch stride as row stride.
  auto r = run_and_check(view(C.data(), {3, 1, 4}, {4, 4, 1}), view(A.data(), {3, 1, 2}, {2, 50, 1}),
                         view(B.data(), {3, 2, 4}, {0, 4, 1}), 1.0, 0.0, C);
  CHECK(r.plan.n == 3);
  CHECK(r.plan.batch == 1);
}

TEST_CASE("an operand with neither layout is packed, broadcast batch dims kept broadcast") {
  // a: every other column of a [3, 8] buffer (strides 8, 2); b broadcast over a batch of 2
  // and stepped by 2 in its rows and columns.
  auto A = random_buffer(2 * 24, 29), B = random_buffer(8 * 10, 30);
  std::vector<double> C(2 * 15, 0.0);
  auto r = run_and_check(view(C.data(), {2, 3, 5}, {15, 5, 1}), view(A.data(), {2, 3, 4}, {24, 8, 2}),
                         view(B.data(), {2, 4, 5}, {0, 20, 2}), 1.0, 0.0, C);
  CHECK(r.first.pack_a);
  CHECK(r.first.pack_b);
  auto pk = pack_operand(view(B.data(), {2, 4, 5}, {0, 20, 2}));
  CHECK(pk.numel == 20);  // one matrix: the broadcast dim is not materialized
  CHECK(pk.packed.strides[0] == 0);
}

TEST_CASE("batch dims that do not merge: the largest is the strided batch, the others loop") {
  // a's batch dims [2, 3] are a permutation of a contiguous [3, 2, ...] tensor.
  auto A = random_buffer(6 * 12, 31), B = random_buffer(6 * 20, 32);
  std::vector<double> C(6 * 15, 0.0);
  auto r = run_and_check(view(C.data(), {2, 3, 3, 5}, {45, 15, 5, 1}), view(A.data(), {2, 3, 3, 4}, {12, 24, 4, 1}),
                         view(B.data(), {2, 3, 4, 5}, {60, 20, 5, 1}), 1.0, 0.0, C);
  CHECK(r.plan.batch == 3);
  CHECK(r.plan.nloops == 1);
  CHECK(r.plan.loops[0].size == 2);
}

TEST_CASE("broadcast batch dim in the middle (attention heads sharing a mask-like operand)") {
  // a [2, 3, M, K] with the head dim broadcast (stride 0); b full.
  auto A = random_buffer(2 * 12, 33), B = random_buffer(6 * 20, 34);
  std::vector<double> C(6 * 15, 0.0);
  run_and_check(view(C.data(), {2, 3, 3, 5}, {45, 15, 5, 1}), view(A.data(), {2, 3, 3, 4}, {12, 0, 4, 1}),
                view(B.data(), {2, 3, 4, 5}, {60, 20, 5, 1}), 1.0, 0.0, C);
}

TEST_CASE("distinct_out cuts accumulating dims to size 1") {
  std::vector<double> C(15);
  const TensorView o = focus::common::distinct_out(view(C.data(), {4, 3, 5}, {0, 5, 1}));
  CHECK(o.sizes[0] == 1);
  CHECK(o.numel == 15);
}

}  // TEST_SUITE
