// optim::GradScaler: scaling, unscaling, skipped steps on injected infinities and NaNs,
// PyTorch's growth/backoff schedule, the once-per-update rules, state_dict, and the
// disabled pass-through.
#include <cmath>
#include <limits>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

// One parameter w [3] with loss = sum(w * x), so grad = x exactly.
struct Setup {
  Tensor w = tensor<float>({1.0f, 2.0f, 3.0f}, {3}).requires_grad_();
  optim::SGD opt{std::vector<Tensor>{w}, optim::SGDOptions(0.5)};
  void backward(optim::GradScaler& s, const Tensor& x) {
    opt.zero_grad();
    s.scale(sum(w * x)).backward();
  }
};

}  // namespace

TEST_CASE("GradScaler: scale, unscale and a clean step equal an unscaled step") {
  optim::GradScaler scaler(optim::GradScalerOptions().init_scale(1024.0));
  Setup s;
  Tensor x = tensor<float>({0.25f, -1.0f, 8.0f}, {3});
  Tensor scaled = scaler.scale(tensor<float>({2.0f}, {1}));
  CHECK(scaled.item<double>() == 2048.0);
  CHECK(scaled.dtype() == kFloat32);
  s.backward(scaler, x);
  CHECK(allclose(s.w.grad(), x * 1024.0));
  scaler.unscale_(s.opt);
  CHECK(allclose(s.w.grad(), x, 0, 0));  // a power of two: exact
  CHECK(scaler.step(s.opt));
  CHECK(allclose(s.w.detach(), tensor<float>({0.875f, 2.5f, -1.0f}, {3}), 0, 0));
  scaler.update();
  CHECK(scaler.get_scale() == 1024.0);
  CHECK(scaler.growth_tracker() == 1);
}

TEST_CASE("GradScaler: an inf or NaN gradient skips the step and backs off; growth after the interval") {
  optim::GradScaler scaler(optim::GradScalerOptions().init_scale(65536.0).growth_interval(2));
  Setup s;
  const Tensor before = s.w.detach().clone();
  for (double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    s.backward(scaler, tensor<float>({1.0f, 1.0f, 1.0f}, {3}));
    {
      NoGradGuard ng;
      s.w.grad().select(0, 1).fill_(bad);  // injected overflow
    }
    CHECK_FALSE(scaler.step(s.opt));
    scaler.update();
    CHECK(allclose(s.w.detach(), before, 0, 0));  // untouched
  }
  CHECK(scaler.get_scale() == 16384.0);  // two backoffs of 0.5
  CHECK(scaler.skipped_steps() == 2);
  CHECK(scaler.growth_tracker() == 0);
  // Two clean steps in a row grow the scale by 2 (growth_interval 2), and the count restarts.
  for (int i = 0; i < 2; ++i) {
    s.backward(scaler, tensor<float>({1.0f, 1.0f, 1.0f}, {3}));
    CHECK(scaler.step(s.opt));
    scaler.update();
  }
  CHECK(scaler.get_scale() == 32768.0);
  CHECK(scaler.growth_tracker() == 0);
  // A huge scale only grows to a finite float32.
  optim::GradScaler big(optim::GradScalerOptions().init_scale(3e38).growth_interval(1));
  Setup t;
  t.backward(big, tensor<float>({0.0f, 0.0f, 0.0f}, {3}));
  CHECK(big.step(t.opt));
  big.update();
  CHECK(big.get_scale() == static_cast<double>(3e38f));
  big.update(8.0);
  CHECK(big.get_scale() == 8.0);
}

TEST_CASE("GradScaler: the once-per-update rules and bad options") {
  optim::GradScaler scaler;
  Setup s;
  s.backward(scaler, tensor<float>({1.0f, 1.0f, 1.0f}, {3}));
  CHECK_THROWS_WITH_AS(scaler.update(), doctest::Contains("[GradScaler.update] no inf checks were recorded"), Error);
  scaler.unscale_(s.opt);
  CHECK_THROWS_WITH_AS(scaler.unscale_(s.opt), doctest::Contains("already been called on this optimizer"), Error);
  CHECK(scaler.step(s.opt));  // uses the unscale above
  CHECK_THROWS_WITH_AS(scaler.step(s.opt), doctest::Contains("step() has already been called"), Error);
  CHECK_THROWS_WITH_AS(scaler.unscale_(s.opt), doctest::Contains("after step()"), Error);
  scaler.update();
  CHECK_THROWS_WITH_AS(optim::GradScaler(optim::GradScalerOptions().growth_factor(1.0)),
                       doctest::Contains("[GradScaler] growth_factor must be > 1"), Error);
  CHECK_THROWS_WITH_AS(optim::GradScaler(optim::GradScalerOptions().backoff_factor(1.0)),
                       doctest::Contains("backoff_factor must be in (0, 1)"), Error);
  CHECK_THROWS_WITH_AS(optim::GradScaler(optim::GradScalerOptions().growth_interval(0)),
                       doctest::Contains("growth_interval must be > 0"), Error);
  CHECK_THROWS_WITH_AS(optim::GradScaler(optim::GradScalerOptions().init_scale(-1)),
                       doctest::Contains("init_scale must be positive"), Error);
}

TEST_CASE("GradScaler: load_state_dict refuses counts that are no whole int64 and scales beyond float32 (found by "
          "fuzz_checkpoint)") {
  optim::GradScaler a(optim::GradScalerOptions().init_scale(256.0).growth_interval(5));
  const TensorDict good = a.state_dict();
  auto with = [&](const char* key, double v) {
    TensorDict d = good;
    d.set(key, scalar_tensor(v, kFloat64));
    return d;
  };
  // Converting 1e300 or NaN to int64 was undefined behaviour (UBSan: float-cast-overflow).
  for (double v : {1e300, -1e300, std::nan(""), 2.5})
    CHECK_THROWS_WITH_AS(a.load_state_dict(with("growth_interval", v)),
                         doctest::Contains("'growth_interval' must be a whole number"), Error);
  CHECK_THROWS_WITH_AS(a.load_state_dict(with("_growth_tracker", -1e300)),
                       doctest::Contains("'_growth_tracker' must be a whole number"), Error);
  CHECK_THROWS_WITH_AS(a.load_state_dict(with("scale", 1e300)), doctest::Contains("init_scale must be positive and "
                                                                                  "finite (in float32)"), Error);
  CHECK_THROWS_WITH_AS(optim::GradScaler(optim::GradScalerOptions().init_scale(1e39)),
                       doctest::Contains("init_scale must be positive and finite (in float32)"), Error);
  CHECK(a.get_scale() == 256.0);  // nothing changed
  CHECK(a.get_growth_interval() == 5);
  a.load_state_dict(with("growth_interval", 7.0));  // a whole number stored as a double is fine
  CHECK(a.get_growth_interval() == 7);
}

TEST_CASE("GradScaler: state_dict round trip with PyTorch's keys; disabled passes through") {
  optim::GradScaler a(optim::GradScalerOptions().init_scale(256.0).growth_interval(5));
  Setup s;
  s.backward(a, tensor<float>({1.0f, 1.0f, 1.0f}, {3}));
  a.step(s.opt);
  a.update();
  TensorDict d = a.state_dict();
  for (const char* k : {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"})
    CHECK(d.contains(k));
  optim::GradScaler b;
  b.load_state_dict(d);
  CHECK(b.get_scale() == 256.0);
  CHECK(b.get_growth_interval() == 5);
  CHECK(b.growth_tracker() == 1);

  optim::GradScaler off(optim::GradScalerOptions().enabled(false));
  CHECK(off.state_dict().empty());
  CHECK_THROWS_WITH_AS(b.load_state_dict(off.state_dict()), doctest::Contains("the source state dict is empty"),
                       Error);
  Tensor loss = tensor<float>({3.0f}, {1});
  CHECK(off.scale(loss).is_same(loss));
  CHECK(off.get_scale() == 1.0);
  Setup t;
  t.backward(off, tensor<float>({1.0f, 1.0f, 1.0f}, {3}));
  CHECK(off.step(t.opt));
  off.update();
  CHECK(allclose(t.w.detach(), tensor<float>({0.5f, 1.5f, 2.5f}, {3}), 0, 0));
}
