// Tensor::register_post_accumulate_grad_hook and autograd::queue_callback: what
// DistributedDataParallel builds on.
#include <string>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

TEST_SUITE("autograd") {
  TEST_CASE("post-accumulate-grad hooks run after the gradient is in .grad, in order, once per backward") {
    Tensor a = tensor(std::vector<double>{1, 2}).requires_grad_();
    Tensor b = tensor(std::vector<double>{3}).requires_grad_();
    std::vector<std::string> log;
    auto h1 = a.register_post_accumulate_grad_hook([&](const Tensor& t) {
      CHECK(t.is_same(a));
      log.push_back("a1 " + std::to_string(t.grad().to_vector<double>()[0]));
    });
    auto h2 = a.register_post_accumulate_grad_hook([&](const Tensor&) { log.push_back("a2"); });
    b.register_post_accumulate_grad_hook([&](const Tensor& t) { log.push_back("b " + std::to_string(t.grad().item<double>())); });
    // a is used twice: its gradient is summed before the one accumulation.
    (a * b + a * 2).sum().backward();
    CHECK(log.size() == 3);
    CHECK(std::count(log.begin(), log.end(), "a1 5.000000") == 1);
    CHECK(std::count(log.begin(), log.end(), "b 3.000000") == 1);
    // A second backward accumulates: the hook sees the sum.
    log.clear();
    h2.remove();
    h2.remove();  // twice is harmless
    (a * 3).sum().backward();
    CHECK(log == std::vector<std::string>{"a1 8.000000"});
    // A hook may replace the gradient.
    h1.remove();
    a.register_post_accumulate_grad_hook([](const Tensor& t) { t.set_grad(zeros_like(t)); });
    (a * 3).sum().backward();
    CHECK(allclose(a.grad(), zeros({2}, kFloat64)));
  }

  TEST_CASE("post-accumulate-grad hooks: not in autograd::grad, errors") {
    Tensor a = tensor(std::vector<double>{1, 2}).requires_grad_();
    int calls = 0;
    a.register_post_accumulate_grad_hook([&](const Tensor&) { ++calls; });
    autograd::grad({(a * a).sum()}, {a});
    CHECK(calls == 0);
    Tensor nonleaf = a * 2;
    CHECK_THROWS_WITH_AS(nonleaf.register_post_accumulate_grad_hook([](const Tensor&) {}),
                         doctest::Contains("non-leaf"), Error);
    CHECK_THROWS_WITH_AS(zeros({2}).register_post_accumulate_grad_hook([](const Tensor&) {}),
                         doctest::Contains("doesn't require gradient"), Error);
    // An exception from a hook leaves the backward.
    Tensor c = tensor(std::vector<double>{1}).requires_grad_();
    c.register_post_accumulate_grad_hook([](const Tensor&) { FOCUS_FAIL("[test] hook failed"); });
    CHECK_THROWS_WITH_AS((c * 2).sum().backward(), doctest::Contains("hook failed"), Error);
  }

  TEST_CASE("queue_callback runs once the whole backward is done") {
    Tensor a = tensor(std::vector<double>{1, 2}).requires_grad_();
    Tensor b = tensor(std::vector<double>{3, 4}).requires_grad_();
    std::vector<std::string> log;
    bool queued = false;
    a.register_post_accumulate_grad_hook([&](const Tensor&) {
      if (queued) return;
      queued = true;
      autograd::queue_callback([&] {
        // Every leaf has its gradient by now.
        log.push_back(b.grad().defined() && a.grad().defined() ? "both" : "missing");
        autograd::queue_callback([&] { log.push_back("second"); });
      });
    });
    b.register_post_accumulate_grad_hook([&](const Tensor&) { log.push_back("b"); });
    (a * b).sum().backward();
    CHECK(log.back() == "second");
    CHECK(log[log.size() - 2] == "both");
    CHECK_THROWS_WITH_AS(autograd::queue_callback([] {}), doctest::Contains("no backward is running"), Error);
  }
}
