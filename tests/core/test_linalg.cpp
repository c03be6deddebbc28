#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

// float64 reference of a [B, M, K] @ b [B, K, N] (any layout, any dtype), by plain loops.
Tensor ref_bmm(const Tensor& a, const Tensor& b) {
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  const auto A = a.to_vector<double>();
  const auto Bv = b.to_vector<double>();
  std::vector<double> out(static_cast<size_t>(B * M * N), 0.0);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += A[(i * M + m) * K + k] * Bv[(i * K + k) * N + n];
        out[(i * M + m) * N + n] = s;
      }
  return tensor(out, {B, M, N}, kFloat64);
}
Tensor ref_mm(const Tensor& a, const Tensor& b) {
  return ref_bmm(a.unsqueeze(0), b.unsqueeze(0)).squeeze(0);
}

// Reference of a batched broadcast matmul: both operands (>= 2-D) expanded to the batch
// shape `batch`, flattened to 3-D, multiplied, reshaped.
Tensor ref_batched(const Tensor& a, const Tensor& b, const Shape& batch) {
  Shape sa = batch, sb = batch;
  sa.push_back(a.size(-2));
  sa.push_back(a.size(-1));
  sb.push_back(b.size(-2));
  sb.push_back(b.size(-1));
  Tensor r = ref_bmm(a.expand(sa).reshape({-1, a.size(-2), a.size(-1)}),
                     b.expand(sb).reshape({-1, b.size(-2), b.size(-1)}));
  Shape so = batch;
  so.push_back(a.size(-2));
  so.push_back(b.size(-1));
  return r.reshape(so);
}

bool check_grad(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& in) {
  return gradcheck(f, in);
}

Tensor leaf(const Shape& s) {
  Tensor t = randn(s, kFloat64);
  t.requires_grad_();
  return t;
}

}  // namespace

TEST_SUITE("linalg") {

TEST_CASE("matmul: 2-D values, float32 and float64") {
  for (DType dt : {kFloat32, kFloat64}) {
    Tensor a = tensor({1., 2., 3., 4., 5., 6.}, {2, 3}).to(dt);
    Tensor b = tensor({7., 8., 9., 10., 11., 12.}, {3, 2}).to(dt);
    Tensor c = matmul(a, b);
    CHECK(c.dtype() == dt);
    CHECK(c.shape() == Shape{2, 2});
    CHECK(c.to_vector<double>() == std::vector<double>{58, 64, 139, 154});
    CHECK(mm(a, b).to_vector<double>() == std::vector<double>{58, 64, 139, 154});
    CHECK(a.matmul(b).to_vector<double>() == std::vector<double>{58, 64, 139, 154});
  }
}

TEST_CASE("matmul: 1-D operands drop their temporary dim") {
  Tensor v = tensor({1.f, 2.f, 3.f});
  Tensor w = tensor({4.f, 5.f, 6.f});
  Tensor d = matmul(v, w);
  CHECK(d.dim() == 0);
  CHECK(d.item<float>() == 32.f);
  Tensor m = tensor({1.f, 0.f, 2.f, -1.f, 3.f, 1.f}, {3, 2});  // [3, 2]
  Tensor vm = matmul(v, m);                                   // [3] @ [3, 2] -> [2]
  CHECK(vm.shape() == Shape{2});
  CHECK(vm.to_vector<float>() == std::vector<float>{1 + 4 + 9, 0 - 2 + 3});
  Tensor mv = matmul(m.t(), v);  // [2, 3] @ [3] -> [2]
  CHECK(mv.shape() == Shape{2});
  CHECK(mv.to_vector<float>() == std::vector<float>{14, 1});
  Tensor batch = randn({4, 3, 5});
  Tensor r1 = matmul(v, batch);  // [3] @ [4, 3, 5] -> [4, 5]
  CHECK(r1.shape() == Shape{4, 5});
  CHECK(allclose(r1, ref_batched(v.unsqueeze(0), batch, {4}).squeeze(1), 1e-5, 1e-5));
  Tensor r2 = matmul(batch.transpose(1, 2), v);  // [4, 5, 3] @ [3] -> [4, 5]
  CHECK(r2.shape() == Shape{4, 5});
  CHECK(allclose(r2, ref_batched(batch.transpose(1, 2), v.unsqueeze(1), {4}).squeeze(2), 1e-5, 1e-5));
}

TEST_CASE("matmul: batched with broadcast batch dims") {
  manual_seed(1);
  Tensor a = randn({2, 1, 3, 4});
  Tensor b = randn({5, 4, 2});
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 5, 3, 2});
  CHECK(allclose(c, ref_batched(a, b, {2, 5}), 1e-5, 1e-5));
  // 2-D @ 3-D: the matrix is shared by every batch item.
  Tensor m = randn({3, 4});
  Tensor c2 = matmul(m, b);
  CHECK(c2.shape() == Shape{5, 3, 2});
  CHECK(allclose(c2, ref_batched(m, b, {5}), 1e-5, 1e-5));
  // 3-D @ 2-D: folded into one gemm when a's rows line up, else looped (permuted a).
  Tensor x = randn({2, 3, 4});
  Tensor w = randn({4, 6});
  CHECK(allclose(matmul(x, w), ref_batched(x, w, {2}), 1e-5, 1e-5));
  Tensor xp = randn({3, 2, 4}).transpose(0, 1);  // [2, 3, 4], rows do not line up
  CHECK(allclose(matmul(xp, w), ref_batched(xp, w, {2}), 1e-5, 1e-5));
  // bmm and many small products (split over threads).
  Tensor p = randn({64, 5, 7});
  Tensor q = randn({64, 7, 3});
  CHECK(allclose(bmm(p, q), ref_bmm(p, q), 1e-5, 1e-5));
  CHECK(allclose(matmul(p, q), ref_bmm(p, q), 1e-5, 1e-5));
}

TEST_CASE("matmul: non-contiguous operands (transposed, sliced, expanded, stepped)") {
  manual_seed(2);
  Tensor a = randn({5, 4});
  Tensor b = randn({6, 5});
  // Transposed views go to BLAS with the Trans flag.
  CHECK(allclose(matmul(a.t(), b.t()), ref_mm(a.t(), b.t()), 1e-5, 1e-5));
  // Column slices: row stride larger than the row.
  Tensor big = randn({7, 9});
  Tensor sa = big.narrow(1, 2, 4).narrow(0, 1, 3);  // [3, 4], strides (9, 1)
  CHECK(allclose(matmul(sa, a.t()), ref_mm(sa, a.t()), 1e-5, 1e-5));
  // Stepped slices and stride-0 expansions are packed first.
  Tensor st = big.slice(1, 0, std::nullopt, 2);  // [7, 5], strides (9, 2)
  CHECK(allclose(matmul(st, a), ref_mm(st, a), 1e-5, 1e-5));
  Tensor ex = tensor({1.f, 2.f, 3.f, 4.f}).unsqueeze(0).expand({3, 4});  // strides (0, 1)
  CHECK(allclose(matmul(ex, a.t()), ref_mm(ex, a.t()), 1e-5, 1e-5));
  Tensor ex2 = tensor({1.f, 2.f, 3.f, 4.f}).unsqueeze(1).expand({4, 5});  // strides (1, 0)
  CHECK(allclose(matmul(a, ex2), ref_mm(a, ex2), 1e-5, 1e-5));
  // Batched operand expanded along its batch dim.
  Tensor eb = randn({1, 4, 2}).expand({3, 4, 2});
  Tensor ea = randn({3, 2, 4});
  CHECK(allclose(matmul(ea, eb), ref_bmm(ea, eb.contiguous()), 1e-5, 1e-5));
}

TEST_CASE("matmul: size-1 and empty dims") {
  Tensor a = tensor({2.f, 3.f}, {1, 2});
  Tensor b = tensor({4.f, 5.f}, {2, 1});
  CHECK(matmul(a, b).to_vector<float>() == std::vector<float>{23});
  CHECK(matmul(b, a).to_vector<float>() == std::vector<float>{8, 12, 10, 15});
  // K = 0: sums over nothing are zero.
  Tensor z = matmul(zeros({3, 0}), zeros({0, 2}));
  CHECK(z.shape() == Shape{3, 2});
  CHECK(z.to_vector<float>() == std::vector<float>(6, 0.f));
  CHECK(matmul(zeros({0}), zeros({0})).item<float>() == 0.f);
  CHECK(matmul(zeros({0, 3}), zeros({3, 2})).shape() == Shape{0, 2});
  CHECK(matmul(zeros({2, 3}), zeros({3, 0})).shape() == Shape{2, 0});
  CHECK(matmul(zeros({0, 2, 3}), zeros({3, 4})).shape() == Shape{0, 2, 4});
  CHECK(matmul(zeros({2, 0, 3}), zeros({1, 3, 4})).shape() == Shape{2, 0, 4});
  CHECK(linear(zeros({2, 0}), zeros({3, 0}), tensor({1.f, 2.f, 3.f})).to_vector<float>() ==
        std::vector<float>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("matmul: integer dtypes use a plain loop") {
  Tensor a = tensor<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = tensor<int64_t>({7, 8, 9, 10, 11, 12}, {3, 2});
  Tensor c = matmul(a, b);
  CHECK(c.dtype() == kInt64);
  CHECK(c.to_vector<int64_t>() == std::vector<int64_t>{58, 64, 139, 154});
  CHECK(matmul(a.t(), a).to_vector<int64_t>() == std::vector<int64_t>{17, 22, 27, 22, 29, 36, 27, 36, 45});
  Tensor ai = a.to(kInt32);
  CHECK(matmul(ai, ai.t()).to_vector<int32_t>() == std::vector<int32_t>{14, 32, 32, 77});
  CHECK(linear(a, b.t(), tensor<int64_t>({1, -1})).to_vector<int64_t>() == std::vector<int64_t>{59, 63, 140, 153});
}

TEST_CASE("linear: values with and without bias, 1-D/2-D/3-D and non-contiguous input") {
  manual_seed(3);
  Tensor w = randn({5, 4});
  Tensor bias = randn({5});
  Tensor x = randn({2, 3, 4});
  Tensor ref = ref_batched(x, w.t(), {2}) + bias;
  Tensor y = linear(x, w, bias);
  CHECK(y.shape() == Shape{2, 3, 5});
  CHECK(allclose(y, ref, 1e-5, 1e-5));
  CHECK(allclose(linear(x, w), ref_batched(x, w.t(), {2}), 1e-5, 1e-5));
  Tensor x2 = randn({3, 4});
  CHECK(allclose(linear(x2, w, bias), ref_mm(x2, w.t()) + bias, 1e-5, 1e-5));
  Tensor v = randn({4});
  Tensor yv = linear(v, w, bias);
  CHECK(yv.shape() == Shape{5});
  CHECK(allclose(yv, ref_mm(v.unsqueeze(0), w.t()).squeeze(0) + bias, 1e-5, 1e-5));
  // Rows that do not line up as a matrix: the kernel loops over the leading dim.
  Tensor xp = randn({3, 2, 4}).transpose(0, 1);
  CHECK(allclose(linear(xp, w, bias), ref_batched(xp, w.t(), {2}) + bias, 1e-5, 1e-5));
  // A transposed (column-major) weight.
  Tensor wt = randn({4, 5}).t();
  CHECK(allclose(linear(x2, wt, bias), ref_mm(x2, wt.t()) + bias, 1e-5, 1e-5));
  CHECK(linear(zeros({0, 4}), w, bias).shape() == Shape{0, 5});
}

TEST_CASE("matmul gradcheck: dot, mv, vm, mm, folded and same-batch cases") {
  manual_seed(4);
  auto mmf = [](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); };
  CHECK(check_grad(mmf, {leaf({4}), leaf({4})}));
  CHECK(check_grad(mmf, {leaf({3, 4}), leaf({4})}));
  CHECK(check_grad(mmf, {leaf({4}), leaf({4, 2})}));
  CHECK(check_grad(mmf, {leaf({3, 4}), leaf({4, 2})}));
  CHECK(check_grad(mmf, {leaf({2, 3, 4}), leaf({4, 2})}));
  CHECK(check_grad(mmf, {leaf({2, 3, 4}), leaf({4})}));
  CHECK(check_grad(mmf, {leaf({2, 2, 3, 4}), leaf({2, 2, 4, 2})}));
  // Non-contiguous leaves: transposed, and permuted so the fold needs a copy.
  Tensor at = randn({4, 3}, kFloat64).t();
  at.requires_grad_();
  Tensor bt = randn({2, 4}, kFloat64).t();
  bt.requires_grad_();
  CHECK(check_grad(mmf, {at, bt}));
  Tensor ap = randn({3, 2, 4}, kFloat64).transpose(0, 1);
  ap.requires_grad_();
  CHECK(check_grad(mmf, {ap, bt}));
  // Only one side requires grad.
  CHECK(check_grad(mmf, {leaf({3, 4}), randn({4, 2}, kFloat64)}));
  CHECK(check_grad(mmf, {randn({3, 4}, kFloat64), leaf({4, 2})}));
  CHECK(check_grad([](const std::vector<Tensor>& t) { return mm(t[0], t[1]); }, {leaf({3, 4}), leaf({4, 2})}));
  CHECK(check_grad([](const std::vector<Tensor>& t) { return bmm(t[0], t[1]); }, {leaf({2, 3, 4}), leaf({2, 4, 2})}));
}

TEST_CASE("linear gradcheck and grad_fn") {
  manual_seed(5);
  auto lin = [](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); };
  CHECK(check_grad(lin, {leaf({3, 4}), leaf({5, 4}), leaf({5})}));
  CHECK(check_grad(lin, {leaf({2, 3, 4}), leaf({5, 4}), leaf({5})}));
  CHECK(check_grad(lin, {leaf({4}), leaf({5, 4}), leaf({5})}));
  Tensor xp = randn({3, 2, 4}, kFloat64).transpose(0, 1);
  xp.requires_grad_();
  CHECK(check_grad(lin, {xp, leaf({5, 4}), leaf({5})}));
  CHECK(check_grad([](const std::vector<Tensor>& t) { return linear(t[0], t[1]); }, {leaf({2, 3, 4}), leaf({5, 4})}));
  CHECK(check_grad(lin, {randn({3, 4}, kFloat64), leaf({5, 4}), randn({5}, kFloat64)}));
  Tensor x = leaf({3, 4});
  CHECK(linear(x, randn({2, 4}, kFloat64)).grad_fn()->name() == "LinearBackward0");
  CHECK(matmul(x, randn({4, 2}, kFloat64)).grad_fn()->name() == "MmBackward0");
  CHECK(matmul(x.select(0, 0), randn({4}, kFloat64)).grad_fn()->name() == "DotBackward0");
}

TEST_CASE("matmul and linear: double backward through the products") {
  // d/da of sum(grad_b) with grad_b = a^T @ g: the backward is itself made of matmuls.
  Tensor a = leaf({3, 4});
  Tensor b = leaf({4, 2});
  Tensor c = matmul(a, b);
  Tensor g = ones({3, 2}, kFloat64);
  c.backward(g, false, true);
  Tensor gb = b.grad();  // a^T @ 1 : [4, 2]
  REQUIRE(gb.requires_grad());
  a.set_grad(Tensor());
  gb.backward(ones({4, 2}, kFloat64));
  // d(sum(a^T @ 1))/da = 2 (each a[m,k] appears in N = 2 entries).
  CHECK(a.grad().to_vector<double>() == std::vector<double>(12, 2.0));
}

TEST_CASE("matmul, mm, bmm, linear errors") {
  CHECK_THROWS_WITH_AS(matmul(zeros({4, 3}), zeros({5, 2})), "[matmul] inner dimensions differ: [4, 3] @ [5, 2]", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({3}), zeros({4})), "[matmul] inner dimensions differ: [3] @ [4]", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({}), zeros({3})),
                       "[matmul] both arguments need at least 1 dimension, got [] and [3]", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({3, 2}, kFloat64)),
                       "[matmul] expected both operands to have one dtype, got float32 and float64", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}, kBool), zeros({3, 2}, kBool)),
                       "[matmul] bool tensors are not supported (got [2, 3] and [3, 2])", Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3, 4}), zeros({3, 4, 5})),
                       "[matmul] batch dims [2] and [3] cannot be broadcast: [2, 3, 4] @ [3, 4, 5]", Error);
  CHECK_THROWS_WITH_AS(matmul(Tensor(), zeros({3})), "[matmul] argument 'input' is an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(mm(zeros({2, 3}), zeros({3})), "[mm] expected 2-D tensors, got [2, 3] and [3]", Error);
  CHECK_THROWS_WITH_AS(mm(zeros({2, 3}), zeros({2, 3})), "[mm] inner dimensions differ: [2, 3] @ [2, 3]", Error);
  CHECK_THROWS_WITH_AS(bmm(zeros({2, 3, 4}), zeros({3, 4, 5})), "[bmm] batch sizes differ: [2, 3, 4] and [3, 4, 5]",
                       Error);
  CHECK_THROWS_WITH_AS(bmm(zeros({3, 4}), zeros({4, 5})), "[bmm] expected 3-D tensors, got [3, 4] and [4, 5]", Error);
  CHECK_THROWS_WITH_AS(bmm(zeros({2, 3, 4}), zeros({2, 5, 4})), "[bmm] inner dimensions differ: [2, 3, 4] @ [2, 5, 4]",
                       Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({5, 4})),
                       "[linear] weight of shape [5, 4] does not match input of shape [2, 3]: expected in_features = 3",
                       Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({3})),
                       "[linear] weight must be 2-D [out_features, in_features], got [3]", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({5, 3}), zeros({4})),
                       "[linear] bias of shape [4] does not match weight of shape [5, 3]: expected [5]", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({5, 3}, kFloat64)),
                       "[linear] expected input and weight of one dtype, got float32 and float64", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({5, 3}), zeros({5}, kFloat64)),
                       "[linear] expected bias of dtype float32, got float64", Error);
  CHECK_THROWS_WITH_AS(linear(zeros({}), zeros({5, 3})), "[linear] input needs at least 1 dimension, got []", Error);
}

}  // TEST_SUITE
