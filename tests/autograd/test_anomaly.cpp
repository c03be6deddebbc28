// Anomaly detection (autograd/anomaly.h): the mode and its guard, what nodes record, and the
// errors the backward raises while it is on.
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {
// Leaves the process-wide mode off whatever a test does (a failing CHECK included).
struct ModeOff {
  ModeOff() { autograd::set_detect_anomaly(false); }
  ~ModeOff() { autograd::set_detect_anomaly(false); }
};

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The message of the focus::Error f throws ("" when it throws none).
template <typename F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// a / b on [4, 3] float32 where a[2][1] = b[2][1] = 0: DivBackward0's gradient for b is
// -grad * out / b = -(1 * nan) / 0 = nan there (and its gradient for a, grad / b, is inf).
std::pair<Tensor, Tensor> div_inputs() {
  std::vector<float> av(12, 1.0f), bv(12, 2.0f);
  av[7] = 0.0f;
  bv[7] = 0.0f;
  return {tensor(av, {4, 3}).requires_grad_(), tensor(bv, {4, 3}).requires_grad_()};
}
}  // namespace

TEST_SUITE("autograd") {
  TEST_CASE("anomaly mode: off by default; set_detect_anomaly and nested DetectAnomalyGuards restore it") {
    CHECK_FALSE(autograd::is_anomaly_enabled());
    CHECK(autograd::is_anomaly_check_nan_enabled());
    ModeOff off;
    {
      autograd::DetectAnomalyGuard outer;
      CHECK(autograd::is_anomaly_enabled());
      CHECK(autograd::is_anomaly_check_nan_enabled());
      {
        autograd::DetectAnomalyGuard inner(/*check_nan=*/false);
        CHECK(autograd::is_anomaly_enabled());
        CHECK_FALSE(autograd::is_anomaly_check_nan_enabled());
      }
      CHECK(autograd::is_anomaly_enabled());
      CHECK(autograd::is_anomaly_check_nan_enabled());
    }
    CHECK_FALSE(autograd::is_anomaly_enabled());
    CHECK(autograd::is_anomaly_check_nan_enabled());

    autograd::set_detect_anomaly(true, false);
    CHECK(autograd::is_anomaly_enabled());
    CHECK_FALSE(autograd::is_anomaly_check_nan_enabled());
    {
      autograd::DetectAnomalyGuard g;  // restores (true, false), not the default
      CHECK(autograd::is_anomaly_check_nan_enabled());
    }
    CHECK(autograd::is_anomaly_enabled());
    CHECK_FALSE(autograd::is_anomaly_check_nan_enabled());
    autograd::set_detect_anomaly(false);
    CHECK_FALSE(autograd::is_anomaly_enabled());
    CHECK(autograd::is_anomaly_check_nan_enabled());  // check_nan defaults to true again
  }

  TEST_CASE("anomaly mode: one flag for the process, as PyTorch's (a guard on one thread is seen on another)") {
    ModeOff off;
    autograd::DetectAnomalyGuard g(false);
    bool seen = false, seen_check_nan = true;
    std::thread t([&] {
      seen = autograd::is_anomaly_enabled();
      seen_check_nan = autograd::is_anomaly_check_nan_enabled();
    });
    t.join();
    CHECK(seen);
    CHECK_FALSE(seen_check_nan);
  }

  TEST_CASE("anomaly mode: nodes record their forward op only while it is on") {
    ModeOff off;
    auto [a, b] = div_inputs();
    Tensor y = div(a, b);
    REQUIRE(y.grad_fn());
    CHECK(y.grad_fn()->anomaly_metadata == nullptr);
    CHECK(autograd::anomaly_forward_op(*y.grad_fn()).empty());

    autograd::DetectAnomalyGuard g;
    y = div(a, b);
    REQUIRE(y.grad_fn()->anomaly_metadata != nullptr);
    CHECK(autograd::anomaly_forward_op(*y.grad_fn()) == "div([4, 3] float32, [4, 3] float32) -> [4, 3] float32 on cpu");
    CHECK(y.grad_fn()->anomaly_metadata->parent.empty());
    // Inputs that need no gradient are part of the op all the same; several outputs are listed
    // in parentheses; names as PyTorch's backward nodes give them.
    Tensor x = randn({2, 5}, kFloat64).requires_grad_();
    Tensor s = log1p(x * tensor(std::vector<double>{2.0}));
    CHECK(autograd::anomaly_forward_op(*s.grad_fn()) == "log1p([2, 5] float64) -> [2, 5] float64 on cpu");
    CHECK(autograd::anomaly_forward_op(*s.grad_fn()->next_edges[0].fn) ==
          "mul([2, 5] float64, [1] float64) -> [2, 5] float64 on cpu");
    auto parts = split(x, std::vector<int64_t>{2, 3}, 1);
    CHECK(autograd::anomaly_forward_op(*parts[0].grad_fn()) ==
          "split_with_sizes([2, 5] float64) -> ([2, 2] float64, [2, 3] float64) on cpu");
    Tensor ln = layer_norm(x, {5});
    CHECK(has(autograd::anomaly_forward_op(*ln.grad_fn()), "native_layer_norm([2, 5] float64"));
  }

  TEST_CASE("anomaly mode: a NaN gradient raises an Error naming the node, the forward op and its shapes") {
    ModeOff off;
    autograd::DetectAnomalyGuard g;
    auto [a, b] = div_inputs();
    Tensor loss = div(a, b).sum();
    const std::string msg = error_of([&] { loss.backward(); });
    INFO(msg);
    CHECK(msg.rfind("[backward] function 'DivBackward0' returned ", 0) == 0);
    // Output 0 (grad / b) is the first checked: inf at [2, 1].
    CHECK(has(msg, "returned inf values in its output 0 (the gradient for input 0 of its forward op, [4, 3] "
                   "float32: 0 nan and 1 inf of 12 elements, the first at [2, 1])"));
    CHECK(has(msg, "it was created by the forward op div([4, 3] float32, [4, 3] float32) -> [4, 3] float32 on cpu"));
    CHECK(has(msg, "Raised because anomaly detection is on"));
    CHECK_THROWS_AS(div(a, b).sum().backward(), Error);

    // Only b needs a gradient: output 1 holds the NaN.
    Tensor a2 = a.detach();
    const std::string msg2 = error_of([&] { div(a2, b).sum().backward(); });
    CHECK(has(msg2, "function 'DivBackward0' returned nan values in its output 1 (the gradient for input 1 of its "
                    "forward op, [4, 3] float32: 1 nan and 0 inf of 12 elements, the first at [2, 1])"));

    // The pattern a user sees, in full.
    CHECK_THROWS_WITH_AS(div(a2, b).sum().backward(),
                         doctest::Contains("function 'DivBackward0' returned nan values in its output 1"), Error);
  }

  TEST_CASE("anomaly mode: on every device, in every floating dtype") {
    ModeOff off;
    autograd::DetectAnomalyGuard g;
    FOR_EACH_DEVICE(dev) {
      for (DType dt : {kFloat32, kFloat64, kBFloat16, kFloat16}) {
        CAPTURE(dt);
        auto [a0, b0] = div_inputs();
        Tensor a = a0.detach().to(dt).to(dev), b = b0.detach().to(dt).to(dev).requires_grad_();
        const std::string msg = error_of([&] { div(a, b).sum().backward(); });
        INFO(msg);
        CHECK(has(msg, fmt::format("function 'DivBackward0' returned nan values in its output 1 (the gradient for input "
                                   "1 of its forward op, [4, 3] {}: 1 nan and 0 inf of 12 elements, the first at [2, 1])",
                                   dt)));
        CHECK(has(msg, fmt::format("div([4, 3] {0}, [4, 3] {0}) -> [4, 3] {0} on {1}", dt, dev)));
        // Finite gradients pass, non-contiguous ones included.
        Tensor w = ones({3, 4}, TensorOptions(dt).device(dev)).requires_grad_();
        CHECK_NOTHROW((w.t() * 2.0).sum().backward());
        CHECK(allclose(w.grad().to(kFloat64).cpu(), full({3, 4}, 2.0, kFloat64)));
      }
    }
  }

  TEST_CASE("anomaly mode: non-finite values in a strided gradient (a transposed or expanded view)") {
    ModeOff off;
    autograd::DetectAnomalyGuard g;
    for (int kind = 0; kind < 4; ++kind) {
      CAPTURE(kind);
      Tensor x = zeros(kind == 3 ? Shape{2, 3, 4} : Shape{3, 4}, kFloat64).requires_grad_();
      Tensor y;
      {
        NoGradGuard no_grad;
        y = x * 1.0;
      }
      record("StridedBackward0", {x}, {y}, {}, [kind](BackwardContext&) {
        std::vector<double> v(12, 1.0);
        v[3 * 1 + 2] = kind == 1 ? std::numeric_limits<double>::infinity() : std::nan("");
        if (kind == 2) return grads(full({1, 4}, std::nan(""), kFloat64).expand({3, 4}));  // stride 0
        if (kind == 3) {  // [2, 3, 4] view of a [4, 3, 2] tensor: its last element [3, 2, 1] becomes [1, 2, 3]
          std::vector<double> w(24, 1.0);
          w[23] = std::nan("");
          return grads(tensor(w, {4, 3, 2}).permute({2, 1, 0}));
        }
        return grads(tensor(v, {4, 3}).t());  // [3, 4] view, strides [1, 3]: [1, 2] becomes [2, 1]
      });
      const std::string msg = error_of([&] { y.sum().backward(); });
      INFO(msg);
      if (kind == 3) CHECK(has(msg, "[2, 3, 4] float64: 1 nan and 0 inf of 24 elements, the first at [1, 2, 3])"));
      else if (kind == 2) CHECK(has(msg, "returned nan values in its output 0 (the gradient for input 0 of its forward op, "
                                    "[3, 4] float64: 12 nan and 0 inf of 12 elements, the first at [0, 0])"));
      else
        CHECK(has(msg, fmt::format("returned {} values in its output 0 (the gradient for input 0 of its forward op, "
                                   "[3, 4] float64: {} of 12 elements, the first at [2, 1])",
                                   kind == 1 ? "inf" : "nan", kind == 1 ? "0 nan and 1 inf" : "1 nan and 0 inf")));
    }
  }

  TEST_CASE("anomaly mode: an infinite gradient is an anomaly too (sqrt at 0)") {
    ModeOff off;
    autograd::DetectAnomalyGuard g;
    Tensor x = tensor(std::vector<double>{4.0, 0.0, 1.0}).requires_grad_();
    const std::string msg = error_of([&] { (sqrt(x) * 3.0).sum().backward(); });
    INFO(msg);
    CHECK(has(msg, "function 'SqrtBackward0' returned inf values in its output 0"));
    CHECK(has(msg, "0 nan and 1 inf of 3 elements, the first at [1]"));
    CHECK(has(msg, "created by the forward op sqrt([3] float64) -> [3] float64 on cpu"));
    CHECK_FALSE(x.grad().defined());  // the error came before the leaf's accumulation
  }

  TEST_CASE("anomaly mode off (or check_nan off): no error, and the gradients carry the NaN as in PyTorch") {
    ModeOff off;
    for (bool with_guard : {false, true}) {
      CAPTURE(with_guard);
      std::optional<autograd::DetectAnomalyGuard> g;
      if (with_guard) g.emplace(/*check_nan=*/false);
      auto [a, b] = div_inputs();
      CHECK_NOTHROW(div(a, b).sum().backward());
      const auto ga = a.grad().to_vector<float>(), gb = b.grad().to_vector<float>();
      CHECK(std::isinf(ga[7]));
      CHECK(std::isnan(gb[7]));
      CHECK(ga[0] == doctest::Approx(0.5));
      CHECK(gb[0] == doctest::Approx(-0.25));
      // check_nan off still records the forward op.
      CHECK((div(a, b).grad_fn()->anomaly_metadata != nullptr) == with_guard);
    }
  }

  TEST_CASE("anomaly mode: a node recorded while it was off says its forward op is unknown") {
    ModeOff off;
    auto [a, b] = div_inputs();
    Tensor loss = div(a, b).sum();
    autograd::DetectAnomalyGuard g;
    const std::string msg = error_of([&] { loss.backward(); });
    CHECK(has(msg, "function 'DivBackward0' returned inf values"));
    CHECK(has(msg, "it was created while anomaly detection was off, so its forward op is unknown"));
  }

  TEST_CASE("anomaly mode: other errors raised in a backward name the node and its forward op") {
    ModeOff off;
    for (bool on : {false, true}) {
      CAPTURE(on);
      std::optional<autograd::DetectAnomalyGuard> g;
      if (on) g.emplace(/*check_nan=*/false);
      Tensor x = tensor(std::vector<float>{1, 2, 3}).requires_grad_();
      Tensor y = exp(x);  // ExpBackward0 saves y
      Tensor loss = y.sum();
      y.add_(1.0);        // ... which this changes
      const std::string msg = error_of([&] { loss.backward(); });
      INFO(msg);
      CHECK(has(msg, "modified by an in-place operation"));
      CHECK(has(msg, "raised in the backward of 'ExpBackward0', which was created by the forward op exp([3] float32) "
                     "-> [3] float32 on cpu; anomaly detection is on") == on);
    }
  }

  TEST_CASE("anomaly mode under create_graph: nodes of a backward name the node whose backward made them") {
    ModeOff off;
    autograd::DetectAnomalyGuard g;
    // A custom op whose backward (grad * sqrt(x)) is finite at x = 0, but whose own
    // derivative, taken in a double backward, is not.
    Tensor x = tensor(std::vector<double>{0.0, 1.0, 4.0}).requires_grad_();
    Tensor y;
    {
      NoGradGuard no_grad;
      y = x * 1.0;
    }
    record("CustomOpBackward0", {x}, {y}, {save(x)}, [](BackwardContext& c) {
      return grads(mul(c.grad(0), sqrt(c.saved(0))));
    });
    CHECK(autograd::anomaly_forward_op(*y.grad_fn()) == "custom_op([3] float64) -> [3] float64 on cpu");
    Tensor gx = autograd::grad({y.sum()}, {x}, {}, false, /*create_graph=*/true)[0];
    CHECK(allclose(gx.detach(), tensor(std::vector<double>{0.0, 1.0, 2.0})));
    REQUIRE(gx.grad_fn());
    REQUIRE(gx.grad_fn()->anomaly_metadata);
    CHECK(gx.grad_fn()->anomaly_metadata->parent ==
          "'CustomOpBackward0' (forward op custom_op([3] float64) -> [3] float64 on cpu)");
    const std::string msg = error_of([&] { gx.sum().backward(); });
    INFO(msg);
    CHECK(has(msg, "function 'SqrtBackward0' returned inf values in its output 0"));
    CHECK(has(msg, "created by the forward op sqrt([3] float64) -> [3] float64 on cpu during the backward of "
                   "'CustomOpBackward0' (forward op custom_op([3] float64) -> [3] float64 on cpu)"));
  }

  TEST_CASE("anomaly mode: a finite backward gives the same gradients on and off") {
    ModeOff off;
    Tensor w = randn({3, 4}, kFloat32);
    Tensor x = randn({5, 3}, kFloat32);
    std::vector<Tensor> got;
    for (bool on : {false, true}) {
      std::optional<autograd::DetectAnomalyGuard> g;
      if (on) g.emplace();
      Tensor wl = w.clone().requires_grad_();
      Tensor loss = softmax(matmul(x, wl), -1).log().mean() + layer_norm(matmul(x, wl), {4}).pow(2.0).sum();
      loss.backward();
      got.push_back(wl.grad());
    }
    CHECK(allclose(got[0], got[1], 0, 0));
  }
}
