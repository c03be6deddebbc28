// linear_gelu (one LinearGeluBackward0 node) against the composition gelu(linear(...)) on
// the CPU: the same numbers bit for bit, forward and backward, for both GELU forms, with and
// without bias, 1-D, 2-D and 3-D x, views that BLAS reads with transpose flags and x whose
// rows do not fold; gradcheck in float64; the error messages; the memory of the saved
// tensors (the next Linear keeps no copy of the output, as after gelu).
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

struct Case {
  std::string name;
  Shape x_shape;
  bool bias;
  bool transpose_x = false;  // x made as [.., K, rows].transpose: rows do not fold / column-major
  bool transpose_w = false;  // weight a column-major view
};

std::vector<Case> cases() {
  return {
      {"2-D with bias", {7, 16}, true},
      {"2-D no bias", {7, 16}, false},
      {"3-D with bias", {2, 5, 16}, true},
      {"3-D no bias", {2, 5, 16}, false},
      {"1-D x", {16}, true},
      {"one row", {1, 16}, true},
      {"column-major x and weight", {7, 16}, true, true, true},
      {"3-D x whose rows do not fold", {3, 4, 16}, true, true, false},
  };
}

// out, then grad_x, grad_w, grad_b of sum(out * g) for f on fresh leaves from x0, w0, b0.
std::vector<Tensor> outputs_and_grads(const Case& c, const Tensor& x0, const Tensor& w0, const Tensor& b0,
                                      const Tensor& g,
                                      const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& f) {
  Tensor xl = x0.clone().requires_grad_(), wl = w0.clone().requires_grad_();
  Tensor bl = c.bias ? b0.clone().requires_grad_() : Tensor();
  // The views are taken after the leaves, so their gradients flow through them.
  Tensor x = xl, w = wl;
  if (c.transpose_x) x = c.x_shape.size() == 3 ? xl.transpose(0, 1) : xl.t();
  if (c.transpose_w) w = wl.t();
  const Tensor y = f(x, w, bl);
  (y * g).sum().backward();
  std::vector<Tensor> r{y.detach(), xl.grad(), wl.grad()};
  if (c.bias) r.push_back(bl.grad());
  return r;
}

}  // namespace

TEST_SUITE("autograd") {

TEST_CASE("linear_gelu: the composition's numbers bit for bit, forward and backward (CPU)") {
  const int64_t N = 24, K = 16;
  for (const Case& c : cases()) {
    for (const char* approx : {"none", "tanh"}) {
      for (DType dt : {kFloat32, kFloat64}) {
        INFO(c.name << ", approximate " << approx << ", " << fmt::format("{}", dt));
        manual_seed(31);
        Shape leaf_shape = c.x_shape;
        if (c.transpose_x) {
          if (c.x_shape.size() == 3) leaf_shape = {c.x_shape[1], c.x_shape[0], c.x_shape[2]};
          else leaf_shape = {c.x_shape[1], c.x_shape[0]};
        }
        const Tensor x0 = randn(leaf_shape, dt);
        const Tensor w0 = c.transpose_w ? randn({K, N}, dt) : randn({N, K}, dt);
        const Tensor b0 = randn({N}, dt);
        Shape out_shape = c.x_shape;
        out_shape.back() = N;
        const Tensor g = randn(out_shape, dt);
        const auto want = outputs_and_grads(c, x0, w0, b0, g, [&](const Tensor& x, const Tensor& w, const Tensor& b) {
          return gelu(linear(x, w, b), approx);
        });
        const auto got = outputs_and_grads(c, x0, w0, b0, g, [&](const Tensor& x, const Tensor& w, const Tensor& b) {
          const Tensor y = linear_gelu(x, w, b, approx);
          CHECK(y.grad_fn()->name() == "LinearGeluBackward0");
          return y;
        });
        REQUIRE(got.size() == want.size());
        CHECK(got[0].shape() == out_shape);
        for (size_t i = 0; i < got.size(); ++i) {
          INFO("result " << i);
          CHECK(got[i].dtype() == dt);
          CHECK(allclose(got[i], want[i], 0, 0));
        }
      }
    }
  }
}

TEST_CASE("linear_gelu: gradcheck in float64 (both forms, with and without bias, 2-D and 3-D)") {
  manual_seed(32);
  for (const char* approx : {"none", "tanh"}) {
    for (const Shape& xs : {Shape{4, 5}, Shape{2, 3, 5}}) {
      INFO("approximate " << approx << ", x " << fmt::format("{}", xs));
      const Tensor x = randn(xs, kFloat64).requires_grad_(), w = randn({6, 5}, kFloat64).requires_grad_(),
                   b = randn({6}, kFloat64).requires_grad_();
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return linear_gelu(v[0], v[1], v[2], approx); }, {x, w, b}));
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return linear_gelu(v[0], v[1], Tensor(), approx); }, {x, w}));
    }
  }
}

TEST_CASE("linear_gelu: only the inputs that require grad get one") {
  manual_seed(33);
  const Tensor x = randn({3, 4}, kFloat64), w = randn({5, 4}, kFloat64).requires_grad_(), b = randn({5}, kFloat64);
  linear_gelu(x, w, b).sum().backward();
  CHECK(w.grad().defined());
  const Tensor x2 = randn({3, 4}, kFloat64).requires_grad_(), w2 = randn({5, 4}, kFloat64);
  const Tensor b2 = randn({5}, kFloat64).requires_grad_();
  (linear_gelu(x2, w2, b2, "tanh") * 2.0).sum().backward();
  Tensor xr = x2.detach().requires_grad_(), br = b2.detach().requires_grad_();
  (gelu(linear(xr, w2, br), "tanh") * 2.0).sum().backward();
  CHECK(allclose(x2.grad(), xr.grad(), 0, 0));
  CHECK(allclose(b2.grad(), br.grad(), 0, 0));
  // No input requires grad: no node.
  CHECK_FALSE(linear_gelu(x, w2, b).requires_grad());
}

TEST_CASE("linear_gelu: empty inputs give empty outputs and zero gradients") {
  const Tensor x = zeros({0, 4}).requires_grad_(), w = randn({3, 4}).requires_grad_(), b = randn({3}).requires_grad_();
  const Tensor y = linear_gelu(x, w, b);
  CHECK(y.shape() == Shape{0, 3});
  y.sum().backward();
  CHECK(allclose(w.grad(), zeros({3, 4}), 0, 0));
  CHECK(allclose(b.grad(), zeros({3}), 0, 0));
  CHECK(x.grad().shape() == Shape{0, 4});
  // K == 0: out = gelu(bias) on every row; grad_b is the usual one, grad_w is [3, 0].
  const Tensor x0 = zeros({2, 0}).requires_grad_(), w0 = zeros({3, 0}).requires_grad_(),
               b0 = randn({3}).requires_grad_();
  const Tensor y0 = linear_gelu(x0, w0, b0);
  CHECK(allclose(y0, gelu(b0.detach()).unsqueeze(0).expand({2, 3}), 0, 0));
  y0.sum().backward();
  const Tensor br = b0.detach().requires_grad_();
  gelu(linear(zeros({2, 0}), zeros({3, 0}), br)).sum().backward();
  CHECK(allclose(b0.grad(), br.grad(), 0, 0));
  CHECK(w0.grad().shape() == Shape{3, 0});
}

TEST_CASE("linear_gelu: error messages") {
  const Tensor x = randn({3, 4}), w = randn({5, 4}), b = randn({5});
  CHECK_THROWS_WITH_AS(linear_gelu(x, w, b, "erf"), "[linear_gelu] approximate must be 'none' or 'tanh', got 'erf'",
                       Error);
  CHECK_THROWS_WITH_AS(linear_gelu(randn({3, 6}), w, b),
                       "[linear] weight of shape [5, 4] does not match input of shape [3, 6]: expected in_features = 6",
                       Error);
  CHECK_THROWS_WITH_AS(linear_gelu(x, w, randn({4})),
                       "[linear] bias of shape [4] does not match weight of shape [5, 4]: expected [5]", Error);
  CHECK_THROWS_WITH_AS(linear_gelu(x, randn({5, 4, 1}), b),
                       "[linear] weight must be 2-D [out_features, in_features], got [5, 4, 1]", Error);
  CHECK_THROWS_WITH_AS(linear_gelu(zeros({3, 4}, kInt64), zeros({5, 4}, kInt64)),
                       "[linear_gelu] expected a floating input, got int64", Error);
  CHECK_THROWS_WITH_AS(linear_gelu(Tensor(), w), "[linear_gelu] argument 'input' is an undefined tensor", Error);
  // The fused backward is not differentiable itself, as gelu's.
  const Tensor u = randn({2, 4}, kFloat64).requires_grad_(), wu = randn({3, 4}, kFloat64);
  CHECK_THROWS_WITH_AS(autograd::grad({linear_gelu(u, wu)}, {u}, {ones({2, 3}, kFloat64)}, true, true),
                       "[backward] double backward (create_graph=true) through LinearGeluBackward0 is not supported",
                       Error);
  // nn::Linear::forward_gelu checks its input as forward does.
  nn::Linear lin(4, 5);
  CHECK_THROWS_WITH_AS(lin.forward_gelu(randn({3, 6})),
                       "[Linear] expected input with last dimension 4 (in_features), got shape [3, 6]", Error);
}

TEST_CASE("linear_gelu: a following Linear keeps no copy of the output, and x is saved by reference") {
  manual_seed(34);
  const Tensor w1 = randn({12, 6}).requires_grad_(), b1 = randn({12}).requires_grad_();
  const Tensor w2 = randn({6, 12}).requires_grad_(), lw = randn({6}).requires_grad_(), lb = randn({6}).requires_grad_();
  const Tensor x = randn({4, 6}).requires_grad_();
  for (const char* approx : {"none", "tanh"}) {
    INFO("approximate " << approx);
    // Fused: layer_norm -> linear_gelu -> linear, as a pre-norm MLP.
    Tensor h = layer_norm(x, {6}, lw, lb);
    std::weak_ptr<Storage> h_memory = h.storage();
    Tensor a = linear_gelu(h, w1, b1, approx);
    std::weak_ptr<Storage> a_memory = a.storage();
    const Tensor y = linear(a, w2);
    h = Tensor();
    a = Tensor();
    CHECK(h_memory.expired());  // recomputed from layer_norm's saved tensors
    CHECK(a_memory.expired());  // recomputed as gelu(pre) from LinearGeluBackward0's pre
    y.sum().backward();
    const std::vector<Tensor> got{x.grad(), w1.grad(), b1.grad(), w2.grad(), lw.grad(), lb.grad()};
    for (Tensor t : {x, w1, b1, w2, lw, lb}) t.set_grad(Tensor());
    linear(gelu(linear(layer_norm(x, {6}, lw, lb), w1, b1), approx), w2).sum().backward();
    const std::vector<Tensor> want{x.grad(), w1.grad(), b1.grad(), w2.grad(), lw.grad(), lb.grad()};
    for (Tensor t : {x, w1, b1, w2, lw, lb}) t.set_grad(Tensor());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("gradient " << i);
      CHECK(allclose(got[i], want[i], 0, 0));
    }
  }
}

TEST_CASE("linear_gelu: retain_graph keeps the pre-activation for a second backward, and only then") {
  // The backward frees pre before its products when the graph is not retained
  // (BackwardContext::release_saved_early); with retain_graph it must stay.
  manual_seed(36);
  const Tensor x = randn({5, 6}).requires_grad_(), w = randn({8, 6}).requires_grad_(), b = randn({8}).requires_grad_();
  const Tensor g = randn({5, 8});
  const Tensor loss = (linear_gelu(x, w, b, "tanh") * g).sum();
  loss.backward(Tensor(), /*retain_graph=*/true);
  const Tensor gx = x.grad().clone(), gw = w.grad().clone(), gb = b.grad().clone();
  loss.backward();  // accumulates the same gradients once more
  CHECK(allclose(x.grad(), gx * 2.0, 0, 0));
  CHECK(allclose(w.grad(), gw * 2.0, 0, 0));
  CHECK(allclose(b.grad(), gb * 2.0, 0, 0));
  const Tensor loss2 = linear_gelu(x, w, b).sum();  // SumBackward0 saves nothing: ours is the first to unpack
  loss2.backward();
  CHECK_THROWS_WITH_AS(loss2.backward(),
                       "[backward] trying to backward through the graph a second time (or to use saved tensors after "
                       "they were freed) in LinearGeluBackward0: pass retain_graph=true to the first backward",
                       Error);
}

TEST_CASE("linear_gelu: nn::TransformerEncoderLayer with gelu gives the composition's numbers") {
  // The layer's feed-forward runs linear1 + gelu as one linear_gelu node: its output and
  // gradients equal the composition written out from the layer's own parameters.
  manual_seed(35);
  nn::TransformerEncoderLayer layer(nn::TransformerLayerOptions(8, 2).dim_feedforward(16).dropout(0.0).activation("gelu"));
  const Tensor src = randn({2, 3, 8});
  const Tensor y = layer.forward(src);
  const Tensor x1 =
      layer.norm1()->forward(src + std::get<0>(layer.self_attn()->forward(src, src, src, {}, false, {}, true, false)));
  const auto& l1 = *layer.linear1();
  const auto& l2 = *layer.linear2();
  const Tensor ff = linear(gelu(linear(x1, l1.weight(), l1.bias())), l2.weight(), l2.bias());
  CHECK(allclose(y, layer.norm2()->forward(x1 + ff), 0, 0));
}

}  // TEST_SUITE
