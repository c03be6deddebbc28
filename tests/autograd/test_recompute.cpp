// Saved tensors recomputed from their producer (SavedTensor::recomputable): a Linear after a
// layer_norm, a gelu or a copying reshape keeps no reference to that tensor's memory, and
// its backward gets the same gradients as before; in-place writes, create_graph,
// retain_graph and views behave as with an ordinary saved tensor.
#include <memory>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

Tensor leaf(const Shape& s, DType dt = kFloat64) { return randn(s, dt).requires_grad_(); }

// The producers whose outputs a Linear saves by reference.
const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>>>&
producers() {
  static const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>>>
      p = {
          {"layer_norm", [](const Tensor& x, const Tensor& w, const Tensor& b) { return layer_norm(x, {6}, w, b); }},
          {"gelu", [](const Tensor& x, const Tensor&, const Tensor&) { return gelu(x); }},
          {"gelu tanh", [](const Tensor& x, const Tensor&, const Tensor&) { return gelu(x, "tanh"); }},
          {"reshape copy",
           [](const Tensor& x, const Tensor&, const Tensor&) { return x.transpose(0, 2).reshape({4, 6}); }},
      };
  return p;
}

}  // namespace

TEST_SUITE("autograd") {

TEST_CASE("recompute: a Linear does not keep the output of layer_norm, gelu or a copying reshape alive") {
  manual_seed(21);
  const Tensor w = leaf({5, 6}), lw = leaf({6}), lb = leaf({6});
  for (const auto& [name, make] : producers()) {
    INFO(std::string(name));
    const Tensor x = leaf(std::string(name) == "reshape copy" ? Shape{6, 2, 2} : Shape{4, 6});
    Tensor h = make(x, lw, lb);
    std::weak_ptr<Storage> h_memory = h.storage();
    const Tensor y = linear(h, w);
    h = Tensor();
    CHECK(h_memory.expired());  // only the producer's own saved tensors remain
    y.sum().backward();
    CHECK(w.grad().defined());
    w.set_grad(Tensor());
  }
}

TEST_CASE("recompute: the same gradients as the tensor kept, float32 and float64") {
  for (const auto& [name, make] : producers()) {
    for (DType dt : {kFloat32, kFloat64}) {
      INFO(std::string(name) << " " << dt);
      manual_seed(22);
      const bool reshape = std::string(name) == "reshape copy";
      const Tensor x = leaf(reshape ? Shape{6, 2, 2} : Shape{4, 6}, dt), w = leaf({5, 6}, dt), b = leaf({5}, dt);
      const Tensor lw = leaf({6}, dt), lb = leaf({6}, dt), g = randn({4, 5}, dt);
      // Reference: the producer's output detached and re-attached, so Linear keeps it.
      Tensor h = make(x, lw, lb);
      Tensor kept = h.detach().requires_grad_();
      const Tensor y_ref = linear(kept, w, b);
      y_ref.backward(g);
      const Tensor gw_ref = w.grad(), gb_ref = b.grad();
      h.backward(kept.grad());
      const Tensor gx_ref = x.grad();
      w.set_grad(Tensor());
      b.set_grad(Tensor());
      x.set_grad(Tensor());
      const Tensor y = linear(make(x, lw, lb), w, b);
      CHECK(allclose(y, y_ref, 0, 0));
      y.backward(g);
      CHECK(allclose(w.grad(), gw_ref, 0, 0));
      CHECK(allclose(b.grad(), gb_ref, 0, 0));
      CHECK(allclose(x.grad(), gx_ref, 1e-6, 1e-6));
    }
  }
  // gradcheck through the whole chain
  manual_seed(23);
  auto f = [](const std::vector<Tensor>& t) { return linear(gelu(layer_norm(t[0], {6}, t[1], t[2])), t[3], t[4]); };
  CHECK(gradcheck(f, {leaf({3, 6}), leaf({6}), leaf({6}), leaf({2, 6}), leaf({2})}));
}

TEST_CASE("recompute: in-place writes, retain_graph, create_graph and views") {
  manual_seed(24);
  const Tensor w = leaf({3, 6}), lw = leaf({6}), lb = leaf({6});
  {
    // The producer's input written in place after the forward: caught when recomputing.
    Tensor x = randn({2, 6}, kFloat64).requires_grad_();
    Tensor xi = x * 1.0;
    const Tensor y = linear(gelu(xi), w);
    xi.add_(1.0);
    CHECK_THROWS_WITH_AS(y.sum().backward(),
                         "[backward] a tensor needed for gradient computation by GeluBackward0 was modified by an "
                         "in-place operation: it had version 0 when saved and has version 1 now (shape [2, 6])",
                         Error);
  }
  {
    // retain_graph: recomputed again in the second backward, same result.
    const Tensor x = leaf({2, 6});
    const Tensor y = linear(layer_norm(x, {6}, lw, lb), w).sum();
    y.backward({}, true);
    const Tensor g1 = w.grad().clone();
    y.backward();
    CHECK(allclose(w.grad(), g1 * 2.0, 1e-12, 1e-12));
    w.set_grad(Tensor());
    CHECK_THROWS_AS(y.backward(), Error);  // freed now
  }
  {
    // create_graph: the recomputed tensor carries its history, so second derivatives
    // through it are those of the tensor kept (a copying reshape: double backward works).
    const Tensor x = leaf({6, 2}), w2 = leaf({3, 6});
    const Tensor gw = autograd::grad({linear(x.t().reshape({2, 6}), w2).pow(2).sum()}, {w2}, {}, true, true)[0];
    const Tensor gx = autograd::grad({gw.sum()}, {x})[0];
    const Tensor x_ref = x.detach().requires_grad_();
    const Tensor kept = x_ref.t().contiguous() * 1.0;  // a Mul output: saved as it is
    const Tensor gw_ref = autograd::grad({linear(kept, w2).pow(2).sum()}, {w2}, {}, true, true)[0];
    const Tensor gx_ref = autograd::grad({gw_ref.sum()}, {x_ref})[0];
    CHECK(allclose(gw, gw_ref, 1e-12, 1e-12));
    CHECK(allclose(gx, gx_ref, 1e-12, 1e-12));
  }
  {
    // A view of the producer's output is saved as usual (not recomputable).
    const Tensor x = leaf({6, 2});
    Tensor h = gelu(x).t();
    std::weak_ptr<Storage> mem = h.storage();
    const Tensor y = linear(h, w);
    h = Tensor();
    CHECK_FALSE(mem.expired());
    y.sum().backward();
    CHECK(w.grad().defined());
  }
}

}  // TEST_SUITE
