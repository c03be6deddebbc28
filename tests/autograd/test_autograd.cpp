// The autograd engine: requires_grad and leaves, backward with implicit and explicit
// gradients, retain_graph, accumulation, detach, grad mode, graph memory, autograd::grad,
// retain_grad, diamonds, the in-place checks, create_graph, and gradcheck itself.
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

Tensor vec(std::vector<double> v) { return tensor(v); }
Tensor leaf(std::vector<double> v) { return tensor(v).requires_grad_(); }
std::vector<double> grad_of(const Tensor& t) { return t.grad().to_vector<double>(); }

// A deliberately wrong op for the gradcheck tests: y = x * x with backward grad * x
// (the right one is 2 x).
Tensor wrong_square(const Tensor& x) {
  Tensor y;
  {
    NoGradGuard ng;
    y = x * x;
  }
  if (needs_grad(x))
    record("WrongSquareBackward", {x}, {y}, {save(x)},
           [](BackwardContext& c) { return grads(c.grad(0) * c.saved(0)); });
  return y;
}

// y = 3 x recorded with a wrong backward (2 grad): a linear function, so the numerical
// derivative is exactly 3 up to rounding.
Tensor wrong_triple(const Tensor& x) {
  Tensor y;
  {
    NoGradGuard ng;
    y = x * 3.0;
  }
  if (needs_grad(x)) record("WrongTripleBackward", {x}, {y}, {}, [](BackwardContext& c) { return grads(c.grad(0) * 2.0); });
  return y;
}

}  // namespace

TEST_SUITE("autograd") {

TEST_CASE("requires_grad, leaves and grad_fn names") {
  const Tensor a = ones({2});
  CHECK_FALSE(a.requires_grad());
  CHECK(a.is_leaf());
  CHECK_FALSE(a.grad().defined());
  CHECK(a.requires_grad_().requires_grad());
  CHECK(a.is_leaf());
  CHECK_FALSE(a.grad_fn());
  CHECK(ones({2}, TensorOptions().requires_grad()).requires_grad());
  CHECK_FALSE(a.requires_grad_(false).requires_grad());
  a.requires_grad_();

  const Tensor b = ones({2});
  const Tensor y = a * b;
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  CHECK(y.grad_fn()->name() == "MulBackward0");
  CHECK((b * b).requires_grad() == false);
  CHECK_FALSE((b * b).grad_fn());
  // names of the elementwise nodes, as PyTorch
  CHECK((a + b).grad_fn()->name() == "AddBackward0");
  CHECK((a + 1).grad_fn()->name() == "AddBackward1");
  CHECK((a - b).grad_fn()->name() == "AddBackward0");  // sub is add with alpha = -1
  CHECK((a * 2).grad_fn()->name() == "MulBackward1");
  CHECK((a / b).grad_fn()->name() == "DivBackward0");
  CHECK((a / 2).grad_fn()->name() == "DivBackward1");
  CHECK((-a).grad_fn()->name() == "NegBackward0");
  CHECK(focus::pow(a, 3).grad_fn()->name() == "PowBackward0");
  CHECK(focus::pow(a, b).grad_fn()->name() == "PowBackward1");
  CHECK(focus::exp(a).grad_fn()->name() == "ExpBackward0");
  CHECK(focus::log(a).grad_fn()->name() == "LogBackward0");
  CHECK(focus::log1p(a).grad_fn()->name() == "Log1PBackward0");
  CHECK(focus::sqrt(a).grad_fn()->name() == "SqrtBackward0");
  CHECK(rsqrt(a).grad_fn()->name() == "RsqrtBackward0");
  CHECK(focus::abs(a).grad_fn()->name() == "AbsBackward0");
  CHECK(focus::sin(a).grad_fn()->name() == "SinBackward0");
  CHECK(focus::cos(a).grad_fn()->name() == "CosBackward0");
  CHECK(focus::tanh(a).grad_fn()->name() == "TanhBackward0");
  CHECK(sigmoid(a).grad_fn()->name() == "SigmoidBackward0");
  CHECK(relu(a).grad_fn()->name() == "ReluBackward0");
  CHECK(gelu(a).grad_fn()->name() == "GeluBackward0");
  CHECK(silu(a).grad_fn()->name() == "SiluBackward0");
  CHECK(softplus(a).grad_fn()->name() == "SoftplusBackward0");
  CHECK(clamp(a, 0, 1).grad_fn()->name() == "ClampBackward1");
  CHECK(maximum(a, b).grad_fn()->name() == "MaximumBackward0");
  CHECK(minimum(a, b).grad_fn()->name() == "MinimumBackward0");
  CHECK(where(ones({2}, kBool), a, b).grad_fn()->name() == "WhereBackward0");
  CHECK(masked_fill(a, ones({2}, kBool), 0).grad_fn()->name() == "MaskedFillBackward0");

  CHECK_THROWS_WITH_AS(zeros({2}, kInt64).requires_grad_(),
                       "[requires_grad_] only tensors of floating point dtype can require gradients, got int64", Error);
  CHECK_THROWS_WITH_AS(y.requires_grad_(false),
                       "[requires_grad_] you can only change requires_grad flags of leaf variables; use detach() instead",
                       Error);
}

TEST_CASE("backward: implicit gradient for one element, explicit otherwise") {
  const Tensor x = leaf({1.0, 2.0, 3.0});
  // one-element output: the gradient defaults to 1
  const Tensor s = x.select(0, 1) * x.select(0, 2);  // 0-d
  s.backward();
  CHECK(grad_of(x) == std::vector<double>{0, 3, 2});
  const Tensor x1 = leaf({4.0});
  (x1 * x1).backward();  // shape [1]
  CHECK(grad_of(x1) == std::vector<double>{8});
  // more elements need a gradient of the output's shape
  const Tensor z = leaf({1.0, 2.0, 3.0});
  const Tensor y = z * z;
  CHECK_THROWS_WITH_AS(y.backward(),
                       "[backward] grad can be implicitly created only for one-element outputs; output 0 has shape "
                       "[3]: pass a gradient",
                       Error);
  CHECK_THROWS_WITH_AS(y.backward(ones({2}, kFloat64)),
                       "[backward] gradient 0 has shape [2] but the output has shape [3]", Error);
  y.backward(vec({1.0, 0.5, -1.0}));
  CHECK(grad_of(z) == std::vector<double>{2, 2, -6});
  // backward of a leaf itself
  const Tensor w = leaf({1.0, 2.0});
  w.backward(vec({3.0, 4.0}));
  CHECK(grad_of(w) == std::vector<double>{3, 4});
  // engine entry with several outputs
  const Tensor u = leaf({1.0, 2.0});
  autograd::backward({u * 2.0, u * u}, {vec({1.0, 1.0}), vec({1.0, 1.0})});
  CHECK(grad_of(u) == std::vector<double>{4, 6});
  CHECK_THROWS_WITH_AS(autograd::backward({u * 2.0, u * 3.0}, {vec({1.0, 1.0})}),
                       "[backward] got 1 gradients for 2 outputs", Error);
}

TEST_CASE("backward on a tensor that does not require grad is an error") {
  const Tensor x = ones({1});
  CHECK_THROWS_WITH_AS(x.backward(),
                       "[backward] element 0 of tensors does not require grad and does not have a grad_fn", Error);
  CHECK_THROWS_WITH_AS((x * 2).backward(),
                       "[backward] element 0 of tensors does not require grad and does not have a grad_fn", Error);
  const Tensor w = ones({1}).requires_grad_();
  Tensor y;
  {
    NoGradGuard ng;
    y = w * 2;
  }
  CHECK_THROWS_WITH_AS(y.backward(),
                       "[backward] element 0 of tensors does not require grad and does not have a grad_fn", Error);
  CHECK_THROWS_WITH_AS(autograd::backward({w * 2, Tensor()}), "[backward] output 1 is an undefined tensor", Error);
}

TEST_CASE("retain_graph: a second backward through a freed graph is an error") {
  const Tensor x = leaf({0.5, 1.0});
  const Tensor y = focus::exp(x);  // saves its output
  y.backward(ones({2}, kFloat64));
  CHECK(allclose(x.grad(), focus::exp(x.detach())));
  CHECK_THROWS_WITH_AS(y.backward(ones({2}, kFloat64)),
                       "[backward] trying to backward through the graph a second time (or to use saved tensors after "
                       "they were freed) in ExpBackward0: pass retain_graph=true to the first backward",
                       Error);
  // with retain_graph the second backward works and accumulates
  const Tensor x2 = leaf({0.5, 1.0});
  const Tensor y2 = focus::exp(x2) * x2;  // d/dx = e^x (1 + x)
  y2.backward(ones({2}, kFloat64), /*retain_graph=*/true);
  const Tensor once = x2.grad().clone();
  CHECK(allclose(once, focus::exp(x2.detach()) * (x2.detach() + 1.0)));
  y2.backward(ones({2}, kFloat64));
  CHECK(allclose(x2.grad(), once * 2.0));
  CHECK_THROWS_WITH_AS(y2.backward(ones({2}, kFloat64)),
                       "[backward] trying to backward through the graph a second time (or to use saved tensors after "
                       "they were freed) in MulBackward0: pass retain_graph=true to the first backward",
                       Error);
}

TEST_CASE("gradients accumulate in .grad over backward calls until reset") {
  const Tensor x = leaf({1.0, -2.0});
  (x * 3.0).backward(ones({2}, kFloat64));
  CHECK(grad_of(x) == std::vector<double>{3, 3});
  (x * x).backward(ones({2}, kFloat64));
  CHECK(grad_of(x) == std::vector<double>{5, -1});
  x.set_grad(Tensor());
  CHECK_FALSE(x.grad().defined());
  (x * 2.0).backward(ones({2}, kFloat64));
  CHECK(grad_of(x) == std::vector<double>{2, 2});
  x.grad().zero_();
  (x * 2.0).backward(ones({2}, kFloat64));
  CHECK(grad_of(x) == std::vector<double>{2, 2});
  x.set_grad(vec({10.0, 20.0}));
  (x * 1.0).backward(ones({2}, kFloat64));
  CHECK(grad_of(x) == std::vector<double>{11, 21});
  CHECK_THROWS_WITH_AS(x.set_grad(ones({3}, kFloat64)),
                       "[grad] assigned grad has shape [3] but the tensor has shape [2]", Error);
  CHECK_THROWS_WITH_AS(x.set_grad(ones({2})), "[grad] assigned grad has dtype float32 but the tensor has dtype float64",
                       Error);
  // the stored gradient does not alias a tensor the caller still holds
  const Tensor w = leaf({1.0, 1.0});
  const Tensor g = vec({1.0, 2.0});
  w.backward(g);
  g.fill_(100);
  CHECK(grad_of(w) == std::vector<double>{1, 2});
  // gradients reaching a leaf from a broadcast view come back in the leaf's shape
  const Tensor v = leaf({1.0, 2.0, 3.0});
  v.view({3, 1}).backward(ones({3, 1}, kFloat64));
  CHECK(v.grad().shape() == Shape{3});
}

TEST_CASE("detach and detach_") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor y = x * 2.0;
  const Tensor d = y.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.storage() == y.storage());  // same data
  CHECK(y.requires_grad());           // the original is untouched
  // no gradient flows through a detached tensor
  const Tensor z = x * x.detach();
  z.backward(ones({2}, kFloat64));
  CHECK(grad_of(x) == std::vector<double>{1, 2});
  // detach_ cuts the tensor itself from the graph
  const Tensor w = x * 3.0;
  CHECK(w.detach_().grad_fn() == nullptr);
  CHECK_FALSE(w.requires_grad());
  CHECK(w.is_leaf());
  CHECK(w.to_vector<double>() == std::vector<double>{3, 6});
  CHECK_FALSE((w * 2.0).requires_grad());
  // writing through a detached alias bumps the shared version counter
  const Tensor a = x * 1.0;
  const Tensor b = a * a;
  a.detach().add_(1);
  CHECK_THROWS_WITH_AS(b.backward(ones({2}, kFloat64)),
                       "[backward] a tensor needed for gradient computation by MulBackward0 was modified by an "
                       "in-place operation: it had version 0 when saved and has version 1 now (shape [2])",
                       Error);
}

TEST_CASE("NoGradGuard and EnableGradGuard") {
  const Tensor x = leaf({1.0, 2.0});
  CHECK(GradMode::is_enabled());
  {
    NoGradGuard ng;
    CHECK_FALSE(GradMode::is_enabled());
    const Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK_FALSE(y.grad_fn());
    CHECK_FALSE(x.view({2, 1}).requires_grad());
    // in-place on a leaf that requires grad is allowed without recording
    x.add_(1.0);
    {
      EnableGradGuard eg;
      CHECK(GradMode::is_enabled());
      CHECK((x * 2.0).requires_grad());
      {
        NoGradGuard inner;
        CHECK_FALSE((x * 2.0).requires_grad());
      }
      CHECK(GradMode::is_enabled());
    }
    CHECK_FALSE(GradMode::is_enabled());
  }
  CHECK(GradMode::is_enabled());
  CHECK(x.to_vector<double>() == std::vector<double>{2, 3});
  CHECK(x.is_leaf());
  CHECK(x.requires_grad());
}

TEST_CASE("the graph and its saved tensors are freed after backward") {
  const Tensor x = leaf({1.0, 2.0, 3.0});
  std::weak_ptr<Storage> saved;
  std::weak_ptr<Node> node;
  Tensor out;
  {
    const Tensor a = x * 2.0;  // an intermediate only the graph keeps
    saved = a.storage();
    out = a * a;  // saves a twice
    node = out.grad_fn();
  }
  CHECK_FALSE(saved.expired());  // held for backward
  out.backward(ones({3}, kFloat64));
  CHECK(saved.expired());  // released by backward
  CHECK(grad_of(x) == std::vector<double>{8, 16, 24});
  CHECK_FALSE(node.expired());  // the node lives as long as out
  out = Tensor();
  CHECK(node.expired());

  // with retain_graph the saved tensors stay until the graph is dropped
  {
    const Tensor a = x * 2.0;
    saved = a.storage();
    out = focus::sin(a);
  }
  out.backward(ones({3}, kFloat64), /*retain_graph=*/true);
  CHECK_FALSE(saved.expired());
  out.backward(ones({3}, kFloat64));
  CHECK(saved.expired());
  out = Tensor();

  // a saved output does not keep its node alive through a reference cycle
  {
    const Tensor y = focus::exp(x);
    node = y.grad_fn();
    saved = y.storage();
  }
  CHECK(node.expired());
  CHECK(saved.expired());

  // the leaf's accumulator is owned by the graph only
  std::weak_ptr<Node> acc;
  {
    const Tensor y = x * 3.0;
    acc = y.grad_fn()->next_edges[0].fn;
    CHECK(acc.lock()->name() == "AccumulateGrad");
  }
  CHECK(acc.expired());

  // the graph's accumulator does not keep a leaf alive (only saved tensors do)
  {
    std::weak_ptr<TensorImpl> gone;
    Tensor y;
    {
      const Tensor w = leaf({2.0});
      gone = w.impl_ptr();
      y = w * 2.0;  // saves nothing
    }
    CHECK(gone.expired());
    y.backward();  // reaches the accumulator of a leaf that is gone: nothing to do
  }
  // a create_graph gradient references a graph that saved the leaf (leaf -> grad ->
  // graph -> leaf), as in PyTorch: resetting .grad breaks the cycle
  {
    std::weak_ptr<TensorImpl> gone;
    {
      const Tensor w = leaf({2.0});
      gone = w.impl_ptr();
      (w * w * w).backward(Tensor(), false, /*create_graph=*/true);
      CHECK(w.grad().requires_grad());
      w.set_grad(Tensor());
    }
    CHECK(gone.expired());
  }

  // a long graph is freed without recursing once per node
  {
    Tensor z = x;
    for (int i = 0; i < 100000; ++i) z = z * 1.0;
    node = z.grad_fn();
  }
  CHECK(node.expired());
}

TEST_CASE("autograd::grad returns gradients without touching .grad") {
  const Tensor x = leaf({1.0, 2.0}), w = leaf({3.0, -1.0}), unused = leaf({5.0});
  const Tensor h = x * w;
  const Tensor y = focus::sin(h) + x;
  const std::vector<Tensor> g = autograd::grad({y}, {x, w}, {ones({2}, kFloat64)}, /*retain_graph=*/true);
  CHECK(allclose(g[0], focus::cos(h.detach()) * w.detach() + 1.0));
  CHECK(allclose(g[1], focus::cos(h.detach()) * x.detach()));
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(w.grad().defined());
  // with respect to an intermediate
  const Tensor gh = autograd::grad({y}, {h}, {ones({2}, kFloat64)}, true)[0];
  CHECK(allclose(gh, focus::cos(h.detach())));
  CHECK_FALSE(h.grad().defined());
  // of a leaf with respect to itself
  CHECK(autograd::grad({x}, {x}, {vec({2.0, 3.0})})[0].to_vector<double>() == std::vector<double>{2, 3});
  // unused inputs
  CHECK_THROWS_WITH_AS(autograd::grad({y}, {x, unused}, {ones({2}, kFloat64)}, true),
                       "[grad] one of the differentiated tensors (input 1) appears to not have been used in the "
                       "graph; pass allow_unused=true if this is intended",
                       Error);
  const std::vector<Tensor> gu =
      autograd::grad({y}, {x, unused}, {ones({2}, kFloat64)}, true, false, /*allow_unused=*/true);
  CHECK(gu[0].defined());
  CHECK_FALSE(gu[1].defined());
  CHECK_FALSE(unused.grad().defined());
  CHECK_THROWS_WITH_AS(autograd::grad({y}, {ones({2})}, {ones({2}, kFloat64)}),
                       "[grad] input 0 does not require grad", Error);
  CHECK_THROWS_WITH_AS(autograd::grad({y}, {Tensor()}, {ones({2}, kFloat64)}), "[grad] input 0 is an undefined tensor",
                       Error);
  // a later backward still fills .grad
  y.backward(ones({2}, kFloat64));
  CHECK(allclose(x.grad(), g[0]));
}

TEST_CASE("retain_grad keeps the gradient of a non-leaf") {
  const Tensor x = leaf({1.0, 2.0});
  const Tensor y = x * 3.0;
  const Tensor z = y * 2.0;
  y.retain_grad();
  y.retain_grad();  // twice is harmless
  const Tensor out = z * z;
  out.backward(ones({2}, kFloat64), true);
  CHECK(grad_of(y) == std::vector<double>{24, 48});  // d(4 y^2)/dy = 8 y
  CHECK_FALSE(z.grad().defined());                    // not retained
  CHECK(grad_of(x) == std::vector<double>{72, 144});
  out.backward(ones({2}, kFloat64));
  CHECK(grad_of(y) == std::vector<double>{48, 96});  // accumulates like a leaf
  // the retained gradient is not a view of engine buffers
  const Tensor x2 = leaf({1.0});
  const Tensor y2 = x2 * 1.0;
  y2.retain_grad();
  y2.backward(vec({5.0}));
  CHECK(grad_of(y2) == std::vector<double>{5});
  CHECK_FALSE(y2.grad().requires_grad());
  // leaves keep their grad anyway; tensors without grad cannot retain one
  x.retain_grad();
  CHECK_THROWS_WITH_AS(ones({2}).retain_grad(),
                       "[retain_grad] can't retain_grad on a tensor that doesn't require gradient", Error);
}

TEST_CASE("diamonds: a tensor used several times gets the sum of its gradients") {
  const Tensor x = leaf({0.3, -0.7, 1.1});
  // x used twice by one op
  (x * x).backward(ones({3}, kFloat64));
  CHECK(allclose(x.grad(), x.detach() * 2.0));
  x.set_grad(Tensor());
  // y = 2x feeds two branches that meet again
  const Tensor y = x * 2.0;
  const Tensor out = focus::sin(y) * focus::cos(y) + y;
  out.backward(ones({3}, kFloat64));
  const Tensor yd = y.detach();
  // d/dx [sin(2x) cos(2x) + 2x] = 2 (cos^2(2x) - sin^2(2x)) + 2
  CHECK(allclose(x.grad(), (focus::cos(yd) * focus::cos(yd) - focus::sin(yd) * focus::sin(yd)) * 2.0 + 2.0));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& v) {
        const Tensor a = v[0] * v[1];
        const Tensor b = focus::exp(a) + a * v[0];
        return b * focus::tanh(a) - v[1];
      },
      {leaf({0.3, -0.7, 1.1}), leaf({0.5, 0.2, -0.4})}));
}

TEST_CASE("in-place ops that would corrupt autograd are errors") {
  const Tensor x = leaf({1.0, 2.0, 3.0});
  // on a leaf that requires grad
  CHECK_THROWS_WITH_AS(x.add_(1.0),
                       "[add_] a leaf tensor that requires grad is used in an in-place operation; wrap it in "
                       "NoGradGuard or work on a clone()",
                       Error);
  CHECK_THROWS_WITH_AS(x.mul_(vec({1.0, 1.0, 1.0})),
                       "[mul_] a leaf tensor that requires grad is used in an in-place operation; wrap it in "
                       "NoGradGuard or work on a clone()",
                       Error);
  CHECK_THROWS_WITH_AS(x.zero_(),
                       "[fill_] a leaf tensor that requires grad is used in an in-place operation; wrap it in "
                       "NoGradGuard or work on a clone()",
                       Error);
  CHECK_THROWS_WITH_AS(x.copy_(vec({0.0, 0.0, 0.0})),
                       "[copy_] a leaf tensor that requires grad is used in an in-place operation; wrap it in "
                       "NoGradGuard or work on a clone()",
                       Error);
  CHECK(x.to_vector<double>() == std::vector<double>{1, 2, 3});  // nothing was written
  // on a view of a tensor with history (or of a leaf that requires grad)
  const std::string view_msg =
      " in-place operation on a view is not supported while it records autograd history (the viewed tensor would "
      "not get the gradient); apply it to a clone() of the view, or to the viewed tensor itself";
  const Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.select(0, 1).mul_(2.0), ("[mul_]" + view_msg).c_str(), Error);
  CHECK_THROWS_WITH_AS(y.view({3, 1}).add_(1.0), ("[add_]" + view_msg).c_str(), Error);
  CHECK_THROWS_WITH_AS(y.t().clamp_(0, 1), ("[clamp_]" + view_msg).c_str(), Error);
  CHECK_THROWS_WITH_AS(x.narrow(0, 0, 2).fill_(0), ("[fill_]" + view_msg).c_str(), Error);
  CHECK_THROWS_WITH_AS(y.slice(0, 1).masked_fill_(ones({2}, kBool), 0), ("[masked_fill_]" + view_msg).c_str(), Error);
  // ... and writing a tensor that requires grad into a view of one that does not
  const Tensor buf = zeros({2, 3}, kFloat64);
  CHECK_THROWS_WITH_AS(buf.select(0, 0).copy_(x), ("[copy_]" + view_msg).c_str(), Error);
  CHECK_FALSE(buf.requires_grad());
  // allowed: in-place on a non-leaf itself (recorded), and on views when nothing records
  y.mul_(2.0);
  y.add_(x);
  y.backward(ones({3}, kFloat64));
  CHECK(grad_of(x) == std::vector<double>{5, 5, 5});
  buf.select(0, 1).copy_(vec({1.0, 2.0, 3.0}));
  {
    NoGradGuard ng;
    y.select(0, 0).fill_(7);
    x.narrow(0, 0, 1).add_(1.0);
  }
  CHECK(x.to_vector<double>() == std::vector<double>{2, 2, 3});
  CHECK(buf.to_vector<double>() == std::vector<double>{0, 0, 0, 1, 2, 3});
  // a clone of a view is a fresh tensor
  const Tensor c = y.detach().requires_grad_();
  const Tensor v = (c * 1.0).select(0, 0).clone();
  v.mul_(3.0);
  v.backward();
  CHECK(grad_of(c) == std::vector<double>{3, 0, 0});
}

TEST_CASE("create_graph: higher-order gradients") {
  const Tensor x = leaf({0.5, -1.5});
  const Tensor y = x * x * x;
  const Tensor g = autograd::grad({y}, {x}, {ones({2}, kFloat64)}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  CHECK(g.requires_grad());
  CHECK(allclose(g, x.detach() * x.detach() * 3.0));
  const Tensor gg = autograd::grad({g}, {x}, {ones({2}, kFloat64)})[0];
  CHECK(allclose(gg, x.detach() * 6.0));
  // through exp, sin, div and a view
  const Tensor z = leaf({0.3, 0.8});
  const Tensor f = focus::exp(focus::sin(z.view({2, 1}))) / (z.view({2, 1}) + 2.0);
  const Tensor dz = autograd::grad({f}, {z}, {ones({2, 1}, kFloat64)}, true, true)[0];
  // gradcheck of a first derivative checks the second (gradcheck's finite differences run
  // f under NoGradGuard, so f turns grad mode back on for its inner backward)
  CHECK(gradcheck([](const std::vector<Tensor>& v) {
    EnableGradGuard eg;
    const Tensor t = focus::exp(focus::sin(v[0])) / (v[0] + 2.0);
    return autograd::grad({t}, {v[0]}, {ones({2}, kFloat64)}, true, true)[0];
  }, {leaf({0.3, 0.8})}));
  CHECK(dz.shape() == Shape{2});
  // backward(create_graph) leaves a differentiable .grad
  const Tensor w = leaf({2.0});
  (w * w).backward(Tensor(), false, /*create_graph=*/true);
  CHECK(w.grad().requires_grad());
  CHECK(autograd::grad({w.grad()}, {w})[0].to_vector<double>() == std::vector<double>{2});
  w.set_grad(Tensor());  // breaks the w -> grad -> graph -> w cycle (see the memory test)
  // fused backward kernels refuse instead of returning wrong second derivatives
  const Tensor u = leaf({0.5});
  CHECK_THROWS_WITH_AS(autograd::grad({gelu(u)}, {u}, {}, true, true),
                       "[backward] double backward (create_graph=true) through GeluBackward0 is not supported", Error);
  CHECK_THROWS_WITH_AS(autograd::grad({silu(u)}, {u}, {}, true, true),
                       "[backward] double backward (create_graph=true) through SiluBackward0 is not supported", Error);
  // tanh, sigmoid and relu compose differentiable ops under create_graph
  for (int k = 0; k < 3; ++k) {
    INFO(k);
    CHECK(gradcheck(
        [k](const std::vector<Tensor>& v) {
          EnableGradGuard eg;
          const Tensor t = k == 0 ? focus::tanh(v[0]) : k == 1 ? sigmoid(v[0]) : relu(v[0]) * v[0];
          return autograd::grad({t}, {v[0]}, {ones({3}, kFloat64)}, true, true)[0];
        },
        {leaf({0.3, -0.8, 1.2})}));
  }
}

TEST_CASE("engine: deep chains, shared subgraphs, gradients that do not flow") {
  // a deep chain runs without recursion
  const Tensor x = leaf({1.0});
  Tensor z = x;
  for (int i = 0; i < 20000; ++i) z = z * 1.0 + 0.0;
  z.backward();
  CHECK(grad_of(x) == std::vector<double>{1});
  // where(): the branch not taken gets zeros, the other the gradient
  const Tensor a = leaf({1.0, 2.0}), b = leaf({3.0, 4.0});
  where(tensor<bool>({true, false}), a * 2.0, b * 3.0).backward(ones({2}, kFloat64));
  CHECK(grad_of(a) == std::vector<double>{2, 0});
  CHECK(grad_of(b) == std::vector<double>{0, 3});
  // an output that does not depend on some inputs leaves their .grad undefined
  const Tensor p = leaf({1.0}), q = leaf({2.0});
  const Tensor only_p = p * 2.0;
  const Tensor unused_q = q * 2.0;
  only_p.backward();
  CHECK(grad_of(p) == std::vector<double>{2});
  CHECK_FALSE(q.grad().defined());
  // gradient of a comparison-masked expression
  const Tensor m = leaf({-1.0, 2.0});
  (m * gt(m, 0).to(kFloat64)).backward(ones({2}, kFloat64));
  CHECK(grad_of(m) == std::vector<double>{0, 1});
}

TEST_CASE("gradcheck detects a wrong gradient") {
  const Tensor x = leaf({1.5, -0.5});
  GradcheckOptions quiet;
  quiet.raise = false;
  CHECK_FALSE(gradcheck([](const std::vector<Tensor>& v) { return wrong_square(v[0]); }, {x}, quiet));
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return v[0] * v[0]; }, {x}, quiet));
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& v) { return wrong_triple(v[0]); }, {leaf({0.0, 1.0})}),
                       "[gradcheck] Jacobian mismatch for output element 0 with respect to input 0 element 0: "
                       "numerical 3, analytical 2",
                       Error);
  // a wrong gradient for the second input only
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& v) { return v[0] + wrong_triple(v[1]); },
                                 {leaf({0.0, 1.0}), leaf({0.0, 1.0})}),
                       "[gradcheck] Jacobian mismatch for output element 0 with respect to input 1 element 0: "
                       "numerical 3, analytical 2",
                       Error);
  // an input not requiring grad is left alone; a float32 one that does is refused
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return v[0] * v[1]; }, {x, vec({2.0, 3.0})}));
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& v) { return v[0] * 2; }, {ones({2}).requires_grad_()}),
                       "[gradcheck] input 0 must be a float64 cpu tensor, got float32 on cpu", Error);
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& v) { return v[0] * 2; }, {vec({1.0})}),
                       "[gradcheck] no input requires grad", Error);
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& v) { return gt(v[0], 0); }, {x}),
                       "[gradcheck] f must return a floating tensor", Error);
  // the inputs come back unchanged
  CHECK(x.to_vector<double>() == std::vector<double>{1.5, -0.5});
}

}  // TEST_SUITE
