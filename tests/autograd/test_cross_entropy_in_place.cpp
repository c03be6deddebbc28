// cross_entropy's backward writes the gradient over the logits when nothing but the graph
// holds them (llm.c's fused classifier: no second [N, C] buffer), and into a fresh buffer
// when the caller still holds them (whose values must stay as they were). Gradients are the
// same either way.
#include <memory>
#include <vector>

#include "test_util.h"

using namespace focus;

namespace {

// An identity on x's memory whose backward notes where its incoming gradient lives: put
// between the Linear and the loss, it shows where the loss's backward wrote grad_logits.
Tensor observe_grad(const Tensor& x, std::shared_ptr<const void*> seen) {
  Tensor y = x.detach();  // a second handle on x's storage, given history below
  record("ObserveGradBackward", {x}, {y}, {}, [seen](BackwardContext& c) {
    *seen = c.grad(0).data_ptr();
    return grads(c.grad(0));
  });
  return y;
}

struct Run {
  Tensor gh, gw, gb, loss;
  const void* logits_memory = nullptr;
  const void* grad_memory = nullptr;
};

// h [N, E] -> Linear -> logits [N, V] -> cross_entropy, as a language model's head. hold:
// the caller keeps the logits through backward (and checks they are unchanged).
Run run(bool hold, const CrossEntropyOptions& o, DType dt, int64_t D = 0) {
  manual_seed(11);
  const int64_t N = 6, E = 5, V = 13;
  const Tensor h = randn({N, E}, dt).requires_grad_();
  const Tensor w = randn({V, E}, dt).requires_grad_(), b = randn({V}, dt).requires_grad_();
  Tensor t = randint(0, V, {N});
  t.data_ptr<int64_t>()[2] = -100;  // one ignored row
  auto seen = std::make_shared<const void*>(nullptr);
  Run r;
  Tensor logits = observe_grad(linear(h, w, b), seen);
  if (D > 0) {  // [N / D, V, D]: classes on dim 1, a trailing position dim
    logits = logits.view({N / D, D, V}).transpose(1, 2).contiguous();
    t = t.view({N / D, D});
  }
  r.logits_memory = logits.data_ptr();
  const Tensor before = hold ? logits.detach().clone() : Tensor();
  r.loss = cross_entropy(logits, t, o);
  if (!hold) logits = Tensor();
  r.loss.backward();
  if (hold) {
    CHECK(logits.to_vector<double>() == before.to_vector<double>());  // the caller's logits are intact
  }
  r.gh = h.grad();
  r.gw = w.grad();
  r.gb = b.grad();
  r.grad_memory = *seen;
  return r;
}

bool same(const Tensor& a, const Tensor& b) { return a.to_vector<double>() == b.to_vector<double>(); }

}  // namespace

TEST_SUITE("cross_entropy") {

TEST_CASE("cross_entropy backward writes over logits nobody else holds, and only then") {
  const std::vector<CrossEntropyOptions> opts = {
      CrossEntropyOptions(),
      CrossEntropyOptions().label_smoothing(0.1),
      CrossEntropyOptions().reduction(Reduction::Sum),
      CrossEntropyOptions().weight(rand({13}) + 0.5),
  };
  for (DType dt : {kFloat32, kFloat64}) {
    for (size_t i = 0; i < opts.size(); ++i) {
      CAPTURE(i);
      CAPTURE(dt);
      CrossEntropyOptions o = opts[i];
      if (o.weight_.defined()) o.weight(o.weight_.to(dt));
      const Run free = run(false, o, dt), held = run(true, o, dt);
      CHECK(free.grad_memory == free.logits_memory);  // in place: no second [N, C] buffer
      CHECK(held.grad_memory != nullptr);
      CHECK(held.grad_memory != held.logits_memory);  // the held logits were not touched
      CHECK(same(free.loss, held.loss));
      CHECK(same(free.gh, held.gh));
      CHECK(same(free.gw, held.gw));
      CHECK(same(free.gb, held.gb));
    }
  }
  // Classes on dim 1 with a trailing dim ([N, C, D], a contiguous copy of the Linear's
  // output): the same gradients.
  const Run free = run(false, CrossEntropyOptions(), kFloat32, 2), held = run(true, CrossEntropyOptions(), kFloat32, 2);
  CHECK(same(free.gh, held.gh));
  CHECK(same(free.gw, held.gw));
}

TEST_CASE("cross_entropy in place through a reshape of [B, T, V] logits, as models::GPT::loss") {
  manual_seed(13);
  const Tensor h = randn({2, 3, 5}).requires_grad_(), w = randn({11, 5}).requires_grad_();
  const Tensor t = randint(0, 11, {2, 3});
  auto seen = std::make_shared<const void*>(nullptr);
  Tensor logits = observe_grad(linear(h, w), seen);  // [B, T, V]
  const void* mem = logits.data_ptr();
  Tensor loss = cross_entropy(logits.reshape({-1, 11}), t.reshape({-1}));
  logits = Tensor();
  loss.backward();
  CHECK(*seen == mem);
  const Tensor h2 = h.detach().requires_grad_(), w2 = w.detach().requires_grad_();
  const Tensor held = linear(h2, w2);
  cross_entropy(held.reshape({-1, 11}), t.reshape({-1})).backward();
  CHECK(same(h.grad(), h2.grad()));
  CHECK(same(w.grad(), w2.grad()));
}

TEST_CASE("cross_entropy in place: never over memory another tensor shares, nor under retain_graph") {
  manual_seed(12);
  const Tensor t = randint(0, 7, {4});
  // The first rows of a larger tensor (contiguous, at offset 0, but not all of its memory):
  // no in place, even with nothing else holding that memory.
  {
    const Tensor base = randn({8, 7}).requires_grad_();
    Tensor y = base * 1.0;
    Tensor half = y.narrow(0, 0, 4);
    y = Tensor();
    CHECK(half.is_contiguous());
    auto seen = std::make_shared<const void*>(nullptr);
    const void* mem = half.data_ptr();
    Tensor loss = cross_entropy(observe_grad(half, seen), t);
    half = Tensor();
    loss.backward();
    CHECK(*seen != mem);
    CHECK(base.grad().defined());
  }
  // retain_graph: the saved logits must survive for the second backward.
  {
    const Tensor x = randn({4, 7}).requires_grad_();
    Tensor logits = x * 2.0;
    Tensor loss = cross_entropy(logits, t);
    logits = Tensor();
    loss.backward(Tensor(), true);
    const Tensor g1 = x.grad().clone();
    loss.backward();
    CHECK(same(x.grad(), g1 * 2.0));
  }
  // Logits saved by another op's backward too (x * x saves its input): not overwritten.
  {
    const Tensor x = randn({4, 7}).requires_grad_(), x_ref = x.detach().requires_grad_();
    Tensor logits = x + 0.5;
    Tensor loss = cross_entropy(logits, t) + (logits * logits).sum();
    logits = Tensor();
    loss.backward();
    const Tensor l_ref = x_ref + 0.5;
    (cross_entropy(l_ref, t) + (l_ref * l_ref).sum()).backward();
    CHECK(same(x.grad(), x_ref.grad()));
  }
  // The same logits in two losses: the second backward may reuse them, the first not.
  {
    const Tensor x = randn({4, 7}).requires_grad_(), x_ref = x.detach().requires_grad_();
    Tensor logits = x * 3.0;
    Tensor loss = cross_entropy(logits, t) + cross_entropy(logits, t, CrossEntropyOptions().label_smoothing(0.2));
    logits = Tensor();
    loss.backward();
    const Tensor l_ref = x_ref * 3.0;
    (cross_entropy(l_ref, t) + cross_entropy(l_ref, t, CrossEntropyOptions().label_smoothing(0.2))).backward();
    CHECK(same(x.grad(), x_ref.grad()));
  }
}

}  // TEST_SUITE
