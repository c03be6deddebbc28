// dropout: identity cases, mask statistics and reproducibility, the backward's mask,
// gradcheck and error messages.
#include <cmath>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

TEST_SUITE("dropout") {

TEST_CASE("dropout: identity cases, p = 1, statistics, scale, reproducibility") {
  Tensor x = ones({4, 5});
  CHECK(dropout(x, 0.5, false).is_same(x));
  CHECK(dropout(x, 0.0, true).is_same(x));
  CHECK(dropout(x, 1.0).to_vector<float>() == std::vector<float>(20, 0.f));
  manual_seed(7);
  Tensor big = ones({100, 100}, kFloat64);
  const double p = 0.3;
  Tensor y = dropout(big, p);
  int64_t kept = 0;
  for (double v : y.to_vector<double>()) {
    CHECK((v == 0.0 || v == doctest::Approx(1.0 / (1.0 - p)).epsilon(1e-15)));
    kept += v != 0.0;
  }
  CHECK(std::abs(static_cast<double>(kept) / 10000.0 - (1 - p)) < 0.03);
  // the default generator advances: a second call draws a different mask
  Tensor y2 = dropout(big, p);
  CHECK(y.to_vector<double>() != y2.to_vector<double>());
  // manual_seed / an explicit generator reproduce a mask; float32 and float64 draw the same one
  Generator g1(99), g2(99);
  Tensor a = dropout(ones({50}, kFloat64), 0.5, true, &g1);
  Tensor b = dropout(ones({50}), 0.5, true, &g2);
  auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  for (size_t i = 0; i < av.size(); ++i) CHECK((av[i] == 0) == (bv[i] == 0));
  manual_seed(11);
  Tensor c = dropout(ones({50}, kFloat64), 0.5);
  manual_seed(11);
  CHECK(dropout(ones({50}, kFloat64), 0.5).to_vector<double>() == c.to_vector<double>());
  // non-contiguous input: same values as its contiguous copy under the same stream
  Tensor nc = randn({6, 7}, kFloat64).t();
  Generator g3(5), g4(5);
  CHECK(allclose(dropout(nc, 0.4, true, &g3), dropout(nc.contiguous(), 0.4, true, &g4), 0, 0));
  // empty
  CHECK(dropout(zeros({0, 3}), 0.5).shape() == Shape{0, 3});
}

TEST_CASE("dropout backward uses the forward's mask; gradcheck with a reseeded generator") {
  manual_seed(8);
  Tensor x = (rand({40}, kFloat64) + 0.5).requires_grad_();
  Tensor y = dropout(x, 0.25);
  CHECK(y.grad_fn()->name() == "NativeDropoutBackward0");
  y.backward(ones({40}, kFloat64));
  auto yv = y.to_vector<double>(), gv = x.grad().to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) CHECK(gv[i] == (yv[i] != 0 ? doctest::Approx(1 / 0.75) : doctest::Approx(0)));
  for (double p : {0.2, 0.7, 1.0}) {
    Tensor z = randn({3, 5}, kFloat64).requires_grad_();
    CHECK(gradcheck([p](const std::vector<Tensor>& in) {
      Generator g(1234);  // the same mask in every evaluation
      return dropout(in[0], p, true, &g);
    }, {z}));
  }
  Tensor zt = randn({5, 3}, kFloat64).t().requires_grad_();
  CHECK(gradcheck([](const std::vector<Tensor>& in) {
    manual_seed(77);
    return dropout(in[0], 0.5);
  }, {zt}));
}

TEST_CASE("dropout errors") {
  CHECK_THROWS_WITH_AS(dropout(ones({2}), 1.5), "[dropout] dropout probability has to be between 0 and 1, but got 1.5",
                       Error);
  CHECK_THROWS_WITH_AS(dropout(ones({2}), -0.1),
                       "[dropout] dropout probability has to be between 0 and 1, but got -0.1", Error);
  CHECK_THROWS_WITH_AS(dropout(ones({2}, kInt64), 0.5), "[dropout] expected a floating point 'input', got int64", Error);
}

}  // TEST_SUITE
