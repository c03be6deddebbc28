#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::leaf;

namespace {

// float64 reference of softmax / log_softmax along dim, by plain loops.
Tensor ref_softmax(const Tensor& x, int64_t dim, bool log) {
  const auto v = x.to_vector<double>();
  const int64_t nd = x.dim();
  dim = dim < 0 ? dim + std::max<int64_t>(nd, 1) : dim;
  int64_t outer = 1, D = nd == 0 ? 1 : x.size(dim), inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < nd; ++d) inner *= x.size(d);
  std::vector<double> out(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t d) { return static_cast<size_t>((o * D + d) * inner + j); };
      double m = -INFINITY, s = 0;
      for (int64_t d = 0; d < D; ++d) m = std::max(m, v[at(d)]);
      for (int64_t d = 0; d < D; ++d) s += std::exp(v[at(d)] - m);
      for (int64_t d = 0; d < D; ++d) out[at(d)] = log ? v[at(d)] - m - std::log(s) : std::exp(v[at(d)] - m) / s;
    }
  return tensor(out, x.shape(), kFloat64);
}

}  // namespace

TEST_SUITE("softmax") {

TEST_CASE("softmax and log_softmax: hand-computed values") {
  Tensor x = tensor({1.f, 2.f, 3.f});
  const double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0), s = e1 + e2 + e3;
  CHECK(allclose(softmax(x, 0), tensor({e1 / s, e2 / s, e3 / s}), 1e-6));
  CHECK(allclose(log_softmax(x, -1), tensor({1 - std::log(s), 2 - std::log(s), 3 - std::log(s)}), 1e-6));
  CHECK(x.softmax(0).dtype() == kFloat32);
  // Large logits stay finite (max subtracted first); -inf masks to probability 0.
  Tensor big = tensor({1000.f, 1001.f, -INFINITY});
  const double p = 1 / (1 + std::exp(1.0));
  CHECK(allclose(softmax(big, 0), tensor({p, 1 - p, 0.0}), 1e-6));
  auto ls = log_softmax(big, 0).to_vector<double>();
  CHECK(ls[0] == doctest::Approx(std::log(p)).epsilon(1e-6));
  CHECK(ls[2] == -INFINITY);
  // 0-d input: one element, probability 1.
  CHECK(softmax(scalar_tensor(3.0), 0).item<double>() == 1.0);
  CHECK(log_softmax(scalar_tensor(3.0), -1).item<double>() == 0.0);
}

TEST_CASE("softmax and log_softmax: every dim, float32 and float64, against float64 loops") {
  manual_seed(10);
  for (DType dt : {kFloat32, kFloat64}) {
    Tensor x = (randn({3, 4, 5}) * 3).to(dt);
    for (int64_t dim : {0, 1, 2, -1, -3}) {
      for (bool log : {false, true}) {
        Tensor y = log ? log_softmax(x, dim) : softmax(x, dim);
        CHECK(y.dtype() == dt);
        CHECK(allclose(y, ref_softmax(x, dim, log), 1e-5, 1e-6));
      }
    }
  }
  // Long rows (vector tails), and an inner extent above one column tile (256).
  Tensor r = randn({3, 1037});
  CHECK(allclose(softmax(r, 1), ref_softmax(r, 1, false), 1e-5, 1e-7));
  Tensor c = randn({2, 3, 300});
  CHECK(allclose(softmax(c, 1), ref_softmax(c, 1, false), 1e-5, 1e-7));
  CHECK(allclose(log_softmax(c, 0), ref_softmax(c, 0, true), 1e-5, 1e-6));
}

TEST_CASE("softmax: non-contiguous inputs, size-1 and empty dims") {
  manual_seed(11);
  Tensor base = randn({5, 4});
  Tensor t = base.t();  // [4, 5]
  CHECK(allclose(softmax(t, 1), ref_softmax(t, 1, false), 1e-5, 1e-7));
  CHECK(allclose(log_softmax(t, 0), ref_softmax(t, 0, true), 1e-5, 1e-6));
  Tensor ex = tensor({1.f, 2.f}).unsqueeze(0).expand({3, 2});
  CHECK(allclose(softmax(ex, 1), ref_softmax(ex, 1, false), 1e-6));
  CHECK(softmax(randn({3, 1}), 1).to_vector<float>() == std::vector<float>{1, 1, 1});
  CHECK(softmax(zeros({0, 3}), 1).shape() == Shape{0, 3});
  CHECK(log_softmax(zeros({2, 0}), 1).shape() == Shape{2, 0});
}

TEST_CASE("softmax and log_softmax gradcheck") {
  manual_seed(12);
  for (bool log : {false, true}) {
    auto f = [log](int64_t dim) {
      return [log, dim](const std::vector<Tensor>& t) { return log ? log_softmax(t[0], dim) : softmax(t[0], dim); };
    };
    CHECK(gradcheck(f(-1), {leaf({3, 5})}));
    CHECK(gradcheck(f(0), {leaf({3, 5})}));
    CHECK(gradcheck(f(1), {leaf({2, 3, 4})}));
    Tensor nc = randn({4, 3}, kFloat64).t();
    nc.requires_grad_();
    CHECK(gradcheck(f(1), {nc}));
    CHECK(gradcheck(f(0), {leaf({})}));
  }
  Tensor x = leaf({2, 3});
  CHECK(softmax(x, 1).grad_fn()->name() == "SoftmaxBackward0");
  CHECK(log_softmax(x, 1).grad_fn()->name() == "LogSoftmaxBackward0");
}

TEST_CASE("softmax backward: non-contiguous incoming gradient; no double backward") {
  Tensor x = leaf({2, 3});
  Tensor y = softmax(x, 1);
  // An expanded gradient (stride 0): softmax's rows sum to 1, so a constant grad gives 0.
  y.backward(ones({3}, kFloat64).expand({2, 3}));
  CHECK(allclose(x.grad(), zeros({2, 3}, kFloat64), 0, 1e-12));
  Tensor x2 = leaf({2, 3});
  CHECK_THROWS_WITH_AS(softmax(x2, 1).backward(ones({2, 3}, kFloat64), false, true),
                       "[backward] double backward (create_graph=true) through SoftmaxBackward0 is not supported",
                       Error);
}

TEST_CASE("softmax errors") {
  CHECK_THROWS_WITH_AS(softmax(zeros({2, 3}, kInt64), 1), "[softmax] expected a floating point 'input', got int64",
                       Error);
  CHECK_THROWS_WITH_AS(log_softmax(zeros({2, 3}), 2),
                       "[log_softmax] dim 2 is out of range for a tensor with 2 dims (expected -2 to 1)", Error);
  CHECK_THROWS_WITH_AS(softmax(Tensor(), 0), "[softmax] argument 'input' is an undefined tensor", Error);
}

}  // TEST_SUITE
