#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::leaf;

namespace {

// float64 reference of layer_norm over the last N elements of each row.
Tensor ref_layer_norm(const Tensor& x, int64_t N, const Tensor& w, const Tensor& b, double eps) {
  const auto v = x.to_vector<double>();
  const auto wv = w.defined() ? w.to_vector<double>() : std::vector<double>(N, 1.0);
  const auto bv = b.defined() ? b.to_vector<double>() : std::vector<double>(N, 0.0);
  std::vector<double> out(v.size());
  for (size_t r = 0; r * N < v.size(); ++r) {
    double m = 0, var = 0;
    for (int64_t i = 0; i < N; ++i) m += v[r * N + i];
    m /= N;
    for (int64_t i = 0; i < N; ++i) var += (v[r * N + i] - m) * (v[r * N + i] - m);
    var /= N;
    for (int64_t i = 0; i < N; ++i) out[r * N + i] = (v[r * N + i] - m) / std::sqrt(var + eps) * wv[i] + bv[i];
  }
  return tensor(out, x.shape(), kFloat64);
}

}  // namespace

TEST_SUITE("layer_norm") {

TEST_CASE("layer_norm: values with and without weight/bias, float32 and float64") {
  manual_seed(20);
  for (DType dt : {kFloat32, kFloat64}) {
    Tensor x = (randn({4, 6}) * 2 + 1).to(dt);
    Tensor w = randn({6}).to(dt);
    Tensor b = randn({6}).to(dt);
    CHECK(allclose(layer_norm(x, {6}, w, b), ref_layer_norm(x, 6, w, b, 1e-5), 1e-4, 1e-5));
    CHECK(allclose(layer_norm(x, {6}, w), ref_layer_norm(x, 6, w, {}, 1e-5), 1e-4, 1e-5));
    CHECK(allclose(layer_norm(x, {6}, {}, b), ref_layer_norm(x, 6, {}, b, 1e-5), 1e-4, 1e-5));
    CHECK(allclose(layer_norm(x, {6}), ref_layer_norm(x, 6, {}, {}, 1e-5), 1e-4, 1e-5));
    CHECK(layer_norm(x, {6}).dtype() == dt);
  }
  // Hand-computed: [1, 2, 3] has mean 2 and variance 2/3.
  Tensor y = layer_norm(tensor({1.0, 2.0, 3.0}), {3}, {}, {}, 0.0);
  const double k = std::sqrt(1.5);
  CHECK(allclose(y, tensor({-k, 0.0, k}), 1e-12, 1e-12));
  // eps matters for a constant row: (x - mean) = 0 everywhere, no NaN.
  CHECK(layer_norm(full({2, 4}, 5.0), {4}).to_vector<double>() == std::vector<double>(8, 0.0));
}

TEST_CASE("layer_norm: multi-dim normalized_shape, non-contiguous input, empty dims") {
  manual_seed(21);
  Tensor x = randn({2, 3, 4});
  Tensor w = randn({3, 4});
  Tensor b = randn({3, 4});
  CHECK(allclose(layer_norm(x, {3, 4}, w, b), ref_layer_norm(x, 12, w, b, 1e-5), 1e-4, 1e-5));
  Tensor t = randn({5, 3}).t();  // [3, 5], rows are strided
  CHECK(allclose(layer_norm(t, {5}, {}, {}, 1e-3), ref_layer_norm(t, 5, {}, {}, 1e-3), 1e-4, 1e-5));
  CHECK(layer_norm(zeros({0, 4}), {4}, ones({4}), zeros({4})).shape() == Shape{0, 4});
  CHECK(layer_norm(zeros({2, 0}), {0}).shape() == Shape{2, 0});
  Tensor x1 = randn({1, 7});
  CHECK(allclose(layer_norm(x1, {7}), ref_layer_norm(x1, 7, {}, {}, 1e-5), 1e-4, 1e-5));
}

TEST_CASE("layer_norm gradcheck") {
  manual_seed(22);
  auto full_ln = [](const std::vector<Tensor>& t) { return layer_norm(t[0], {4}, t[1], t[2]); };
  CHECK(gradcheck(full_ln, {leaf({3, 4}), leaf({4}), leaf({4})}));
  CHECK(gradcheck(full_ln, {leaf({2, 2, 4}), leaf({4}), leaf({4})}));
  CHECK(gradcheck([](const std::vector<Tensor>& t) { return layer_norm(t[0], {4}); }, {leaf({3, 4})}));
  CHECK(gradcheck([](const std::vector<Tensor>& t) { return layer_norm(t[0], {4}, t[1]); }, {leaf({3, 4}), leaf({4})}));
  CHECK(gradcheck([](const std::vector<Tensor>& t) { return layer_norm(t[0], {4}, {}, t[1]); },
                  {leaf({3, 4}), leaf({4})}));
  CHECK(gradcheck([](const std::vector<Tensor>& t) { return layer_norm(t[0], {2, 3}, t[1], t[2]); },
                  {leaf({2, 2, 3}), leaf({2, 3}), leaf({2, 3})}));
  // Only the parameters require grad; a non-contiguous input.
  Tensor xt = randn({4, 3}, kFloat64).t();
  CHECK(gradcheck(full_ln, {xt, leaf({4}), leaf({4})}));
  xt.requires_grad_();
  CHECK(gradcheck(full_ln, {xt, leaf({4}), leaf({4})}));
  Tensor x = leaf({2, 4});
  CHECK(layer_norm(x, {4}).grad_fn()->name() == "NativeLayerNormBackward0");
}

TEST_CASE("layer_norm backward: many rows (partial sums over row chunks) against float64 references") {
  manual_seed(23);
  const int64_t R = 700, N = 5;
  Tensor x = randn({R, N});
  x.requires_grad_();
  Tensor w = randn({N});
  w.requires_grad_();
  Tensor b = randn({N});
  b.requires_grad_();
  Tensor g = randn({R, N});
  layer_norm(x, {N}, w, b).backward(g);
  // dbias = sum_r g; dweight = sum_r g * norm(x)
  const auto gv = g.to_vector<double>();
  const auto nv = ref_layer_norm(x.detach(), N, {}, {}, 1e-5).to_vector<double>();
  std::vector<double> dw(N, 0.0), db(N, 0.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < N; ++i) {
      db[i] += gv[r * N + i];
      dw[i] += gv[r * N + i] * nv[r * N + i];
    }
  CHECK(allclose(b.grad(), tensor(db), 1e-4, 1e-4));
  CHECK(allclose(w.grad(), tensor(dw), 1e-4, 1e-4));
  // Empty rows: parameter gradients are zero sums.
  Tensor xe = zeros({0, 3});
  xe.requires_grad_();
  Tensor we = ones({3});
  we.requires_grad_();
  layer_norm(xe, {3}, we).backward(zeros({0, 3}));
  CHECK(we.grad().to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(xe.grad().shape() == Shape{0, 3});
}

TEST_CASE("layer_norm errors") {
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {3}),
                       "[layer_norm] normalized_shape [3] does not match the trailing dims of input of shape [2, 4]",
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({4}), {2, 4}),
                       "[layer_norm] normalized_shape [2, 4] does not match the trailing dims of input of shape [4]",
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {}),
                       "[layer_norm] normalized_shape must have at least 1 dimension, got []", Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {4}, zeros({3})),
                       "[layer_norm] weight of shape [3] does not match normalized_shape [4]", Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {4}, {}, zeros({1, 4})),
                       "[layer_norm] bias of shape [1, 4] does not match normalized_shape [4]", Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {4}, zeros({4}, kFloat64)),
                       "[layer_norm] expected weight of dtype float32, got float64", Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}, kInt64), {4}),
                       "[layer_norm] expected a floating point 'input', got int64", Error);
  Tensor x = leaf({2, 4});
  CHECK_THROWS_WITH_AS(
      layer_norm(x, {4}).backward(ones({2, 4}, kFloat64), false, true),
      "[backward] double backward (create_graph=true) through NativeLayerNormBackward0 is not supported", Error);
}

}  // TEST_SUITE
