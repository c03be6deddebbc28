// add_layer_norm: the residual add fused with layer_norm. Forward and backward have the bits
// of the composed layer_norm(x + residual) on the CPU (both outputs used downstream, with and
// without weight and bias), gradcheck in float64, the errors, and the Linear after it
// keeping no copy of the normalized output (recomputed, as layer_norm's).
#include <memory>
#include <tuple>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::leaf;

namespace {

template <typename T> bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const auto va = a.to_vector<T>(), vb = b.to_vector<T>();
  for (size_t i = 0; i < va.size(); ++i)
    if (!(va[i] == vb[i] || (va[i] != va[i] && vb[i] != vb[i]))) {
      MESSAGE("differ at flat index " << i << ": " << va[i] << " vs " << vb[i]);
      return false;
    }
  return true;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.defined() && a.dtype() == kFloat64 ? same_bits<double>(a, b) : same_bits<float>(a, b);
}

struct Case {
  Shape shape;
  Shape normalized;
  bool weight, bias;
  DType dtype;
};

// What flows into sum and out downstream: how each output is used.
enum class Use { Both, OutOnly, SumOnly };

// The gradients of x, residual, weight, bias and the outputs (sum, out), fused or composed.
std::vector<Tensor> run(const Case& c, Use use, bool fused, uint64_t seed) {
  manual_seed(seed);
  const TensorOptions o = TensorOptions(c.dtype).requires_grad();
  const Tensor x = randn(c.shape, o), r = randn(c.shape, o);
  const Tensor w = c.weight ? randn(c.normalized, o) : Tensor();
  const Tensor b = c.bias ? randn(c.normalized, o) : Tensor();
  const Tensor gy = randn(c.shape, c.dtype), gs = randn(c.shape, c.dtype);
  Tensor s, y;
  if (fused) {
    std::tie(s, y) = add_layer_norm(x, r, c.normalized, w, b, 1e-5);
  } else {
    s = x + r;
    y = layer_norm(s, c.normalized, w, b, 1e-5);
  }
  // sum goes on through a nonlinearity (a residual stream does), out through a product.
  Tensor loss;
  if (use != Use::SumOnly) loss = (y * gy).sum();
  if (use != Use::OutOnly) loss = loss.defined() ? loss + (tanh(s) * gs).sum() : (tanh(s) * gs).sum();
  loss.backward();
  return {s.detach(), y.detach(), x.grad(), r.grad(), w.defined() ? w.grad() : Tensor(),
          b.defined() ? b.grad() : Tensor()};
}

}  // namespace

TEST_SUITE("add_layer_norm") {

TEST_CASE("add_layer_norm: forward and backward have the bits of layer_norm(x + residual)") {
  const std::vector<Case> cases = {
      {{3, 5, 37}, {37}, true, true, kFloat32},  {{4, 64}, {64}, true, false, kFloat32},
      {{4, 64}, {64}, false, true, kFloat32},    {{2, 7}, {7}, false, false, kFloat32},
      {{2, 3, 4, 6}, {4, 6}, true, true, kFloat32}, {{300, 48}, {48}, true, true, kFloat32},
      {{3, 5, 37}, {37}, true, true, kFloat64},  {{1, 1}, {1}, true, true, kFloat32},
  };
  const char* names[] = {"sum", "out", "dx", "dresidual", "dweight", "dbias"};
  for (const Case& c : cases) {
    for (Use use : {Use::Both, Use::OutOnly, Use::SumOnly}) {
      CAPTURE(fmt::format("{} over {} w={} b={} {} use={}", c.shape, c.normalized, c.weight, c.bias, c.dtype,
                          static_cast<int>(use)));
      const auto f = run(c, use, true, 7), ref = run(c, use, false, 7);
      for (size_t i = 0; i < f.size(); ++i) {
        CAPTURE(names[i]);
        if (use == Use::SumOnly && i >= 4) {
          // The norm got no gradient: neither path gives its parameters one.
          CHECK(!f[i].defined());
          CHECK(!ref[i].defined());
        } else {
          CHECK(same(f[i], ref[i]));
        }
      }
    }
  }
}

TEST_CASE("add_layer_norm: non-contiguous inputs, inputs that need no grad, one input twice") {
  manual_seed(3);
  const Tensor xt = randn({6, 4}).t(), rt = randn({6, 4}).t();  // [4, 6], strided rows
  const Tensor w = randn({6}), b = randn({6});
  auto [s, y] = add_layer_norm(xt, rt, {6}, w, b);
  CHECK(same(s, xt + rt));
  CHECK(same(y, layer_norm(xt + rt, {6}, w, b)));

  // Only the residual requires grad: it gets the gradient, x none.
  const Tensor x = randn({3, 8}), r = randn({3, 8}).requires_grad_();
  auto [s2, y2] = add_layer_norm(x, r, {8});
  CHECK(y2.requires_grad());
  CHECK(s2.requires_grad());
  (y2.sum() + (s2 * s2).sum()).backward();
  const Tensor r_ref = r.detach().requires_grad_();
  const Tensor s_ref = x + r_ref;
  (layer_norm(s_ref, {8}).sum() + (s_ref * s_ref).sum()).backward();
  CHECK(same(r.grad(), r_ref.grad()));

  // x + x: both gradients accumulate into the one leaf.
  const Tensor z = randn({2, 5}).requires_grad_(), z_ref = z.detach().requires_grad_();
  auto [s3, y3] = add_layer_norm(z, z, {5});
  (y3 * y3).sum().backward();
  const Tensor y3_ref = layer_norm(z_ref + z_ref, {5});
  (y3_ref * y3_ref).sum().backward();
  CHECK(same(z.grad(), z_ref.grad()));

  // No grad mode or no input requiring grad: plain tensors.
  auto [s4, y4] = add_layer_norm(randn({2, 3}), randn({2, 3}), {3}, ones({3}), zeros({3}));
  CHECK(!s4.requires_grad());
  CHECK(!y4.requires_grad());
  {
    NoGradGuard ng;
    auto [s5, y5] = add_layer_norm(z, z, {5});
    CHECK(!y5.requires_grad());
  }
  // Empty: rows of no elements and no rows.
  auto [se, ye] = add_layer_norm(zeros({0, 4}), zeros({0, 4}), {4}, ones({4}), zeros({4}));
  CHECK(ye.shape() == Shape{0, 4});
  CHECK(se.shape() == Shape{0, 4});
}

TEST_CASE("add_layer_norm: gradcheck in float64") {
  manual_seed(4);
  // Both outputs in one function: sum through a square, so its gradient is not constant.
  auto both = [](const std::vector<Tensor>& t) {
    auto [s, y] = add_layer_norm(t[0], t[1], {4}, t[2], t[3]);
    return y * 1.5 + s * s;
  };
  CHECK(gradcheck(both, {leaf({3, 4}), leaf({3, 4}), leaf({4}), leaf({4})}));
  CHECK(gradcheck(both, {leaf({2, 2, 4}), leaf({2, 2, 4}), leaf({4}), leaf({4})}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& t) {
        auto [s, y] = add_layer_norm(t[0], t[1], {4});
        return y + tanh(s);
      },
      {leaf({3, 4}), leaf({3, 4})}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& t) { return std::get<1>(add_layer_norm(t[0], t[1], {4}, t[2])); },
      {leaf({3, 4}), leaf({3, 4}), leaf({4})}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& t) { return std::get<1>(add_layer_norm(t[0], t[1], {4}, {}, t[2])); },
      {leaf({3, 4}), leaf({3, 4}), leaf({4})}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& t) {
        auto [s, y] = add_layer_norm(t[0], t[1], {2, 3}, t[2], t[3]);
        return s * s * s - y;
      },
      {leaf({2, 2, 3}), leaf({2, 2, 3}), leaf({2, 3}), leaf({2, 3})}));
  // Only sum used; and a non-contiguous x.
  CHECK(gradcheck([](const std::vector<Tensor>& t) { return std::get<0>(add_layer_norm(t[0], t[1], {4})).exp(); },
                  {leaf({3, 4}), leaf({3, 4})}));
  Tensor xt = randn({4, 3}, kFloat64).t();
  xt.requires_grad_();
  CHECK(gradcheck(both, {xt, leaf({3, 4}), leaf({4}), leaf({4})}));
}

TEST_CASE("add_layer_norm: a Linear after it keeps no copy of out, same gradients; retain_graph") {
  manual_seed(5);
  const Tensor x = leaf({4, 6}), r = leaf({4, 6}), lw = leaf({6}), lb = leaf({6}), w = leaf({5, 6});
  auto [s, y] = add_layer_norm(x, r, {6}, lw, lb);
  std::weak_ptr<Storage> y_memory = y.storage();
  const Tensor z = linear(y, w);
  y = Tensor();
  CHECK(y_memory.expired());
  (z.sum() + s.pow(2).sum()).backward(Tensor(), true);
  const Tensor gx = x.grad().clone(), gw = w.grad().clone(), glw = lw.grad().clone();
  // The reference keeps y: the same gradients.
  const Tensor x2 = x.detach().requires_grad_(), r2 = r.detach().requires_grad_();
  const Tensor lw2 = lw.detach().requires_grad_(), lb2 = lb.detach().requires_grad_(), w2 = w.detach().requires_grad_();
  const Tensor s2 = x2 + r2;
  (linear(layer_norm(s2, {6}, lw2, lb2), w2).sum() + s2.pow(2).sum()).backward();
  CHECK(same(gx, x2.grad()));
  CHECK(same(gw, w2.grad()));
  CHECK(same(glw, lw2.grad()));
  // retain_graph: a second backward adds the same gradients again.
  (z.sum() + s.pow(2).sum()).backward();
  CHECK(same(x.grad(), gx * 2));
  // An in-place write to sum after the forward is caught.
  auto [s3, y3] = add_layer_norm(x, r, {6});
  s3.detach().add_(1.0);
  CHECK_THROWS_WITH_AS(y3.sum().backward(),
                       "[backward] a tensor needed for gradient computation by AddLayerNormBackward0 was modified by "
                       "an in-place operation: it had version 0 when saved and has version 1 now (shape [4, 6])",
                       Error);
}

TEST_CASE("add_layer_norm errors") {
  CHECK_THROWS_WITH_AS(add_layer_norm(zeros({2, 4}), zeros({1, 4}), {4}),
                       "[add_layer_norm] input of shape [2, 4] and residual of shape [1, 4] differ: the shapes must "
                       "be equal (no broadcasting)",
                       Error);
  CHECK_THROWS_WITH_AS(add_layer_norm(zeros({2, 4}), zeros({2, 4}, kFloat64), {4}),
                       "[add_layer_norm] expected input and residual of one dtype, got float32 and float64", Error);
  CHECK_THROWS_WITH_AS(add_layer_norm(zeros({2, 4}), Tensor(), {4}),
                       "[add_layer_norm] argument 'residual' is an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(
      add_layer_norm(zeros({2, 4}), zeros({2, 4}), {3}),
      "[add_layer_norm] normalized_shape [3] does not match the trailing dims of input of shape [2, 4]", Error);
  CHECK_THROWS_WITH_AS(add_layer_norm(zeros({2, 4}), zeros({2, 4}), {}),
                       "[add_layer_norm] normalized_shape must have at least 1 dimension, got []", Error);
  CHECK_THROWS_WITH_AS(add_layer_norm(zeros({2, 4}), zeros({2, 4}), {4}, zeros({3})),
                       "[add_layer_norm] weight of shape [3] does not match normalized_shape [4]", Error);
  CHECK_THROWS_WITH_AS(add_layer_norm(zeros({2, 4}), zeros({2, 4}), {4}, {}, zeros({4}, kFloat64)),
                       "[add_layer_norm] expected bias of dtype float32, got float64", Error);
  CHECK_THROWS_WITH_AS(add_layer_norm(zeros({2, 4}, kInt64), zeros({2, 4}, kInt64), {4}),
                       "[add_layer_norm] expected a floating point 'input', got int64", Error);
  const Tensor x = leaf({2, 4});
  auto [s, y] = add_layer_norm(x, x, {4});
  CHECK_THROWS_WITH_AS(
      y.backward(ones({2, 4}, kFloat64), false, true),
      "[backward] double backward (create_graph=true) through AddLayerNormBackward0 is not supported", Error);
  // The plain layer_norm's messages still name layer_norm.
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {3}),
                       "[layer_norm] normalized_shape [3] does not match the trailing dims of input of shape [2, 4]",
                       Error);
}

}  // TEST_SUITE
