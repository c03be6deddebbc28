#include "optim/grad_scaler.h"

#include <cmath>
#include <limits>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/indexing.h"
#include "autograd/functions/reduce.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/error.h"

namespace focus::optim {

namespace {
void check_options(const GradScalerOptions& o) {
  // The scale lives in float32: a larger value would become infinite there.
  FOCUS_CHECK(std::isfinite(o.init_scale_) && o.init_scale_ > 0 && o.init_scale_ <= std::numeric_limits<float>::max(),
              "[GradScaler] init_scale must be positive and finite (in float32), got {}", o.init_scale_);
  FOCUS_CHECK(o.growth_factor_ > 1.0, "[GradScaler] growth_factor must be > 1, got {}", o.growth_factor_);
  FOCUS_CHECK(o.backoff_factor_ > 0.0 && o.backoff_factor_ < 1.0,
              "[GradScaler] backoff_factor must be in (0, 1), got {}", o.backoff_factor_);
  FOCUS_CHECK(o.growth_interval_ > 0, "[GradScaler] growth_interval must be > 0, got {}", o.growth_interval_);
}
}  // namespace

GradScaler::GradScaler(GradScalerOptions options) : options_(options), scale_(options.init_scale_) {
  check_options(options_);
  // The scale lives in float32, as PyTorch's scale tensor.
  scale_ = static_cast<double>(static_cast<float>(scale_));
}

Tensor GradScaler::scale(const Tensor& outputs) const {
  if (!options_.enabled_) return outputs;
  FOCUS_CHECK(outputs.defined(), "[GradScaler.scale] expected a defined tensor");
  return outputs * scale_;
}

void GradScaler::unscale_(Optimizer& optimizer) {
  if (!options_.enabled_) return;
  PerOptimizer& st = state_of(optimizer);
  FOCUS_CHECK(!st.stepped, "[GradScaler.unscale_] unscale_() is being called after step()");
  FOCUS_CHECK(!st.unscaled, "[GradScaler.unscale_] unscale_() has already been called on this optimizer since the "
                            "last update()");
  // 1 / scale computed in double and rounded to float32, as PyTorch's inv_scale.
  const double inv = static_cast<double>(static_cast<float>(1.0 / scale_));
  NoGradGuard no_grad;
  // Non-finite check without reading every gradient back: g * 0 is 0 where g is finite and
  // NaN where it is inf or NaN, so the sum over all gradients is NaN exactly when one is.
  std::vector<Tensor> probes;
  for (const ParamGroup& group : optimizer.param_groups())
    for (const Tensor& p : group.params()) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      FOCUS_CHECK(g.dtype() != kFloat16,
                  "[GradScaler.unscale_] attempting to unscale float16 gradients: keep the parameters (master "
                  "weights) in float32 and let autocast cast them");
      g.mul_(inv);
      probes.push_back(sum(g * 0.0).to(kFloat32));
    }
  st.found_inf = !probes.empty() && !std::isfinite(sum(stack(probes)).item<double>());
  st.unscaled = true;
}

bool GradScaler::step(Optimizer& optimizer) {
  if (!options_.enabled_) {
    optimizer.step();
    return true;
  }
  PerOptimizer& st = state_of(optimizer);
  FOCUS_CHECK(!st.stepped, "[GradScaler.step] step() has already been called since the last update()");
  if (!st.unscaled) unscale_(optimizer);
  st.stepped = true;
  if (st.found_inf) {
    ++skipped_;
    return false;
  }
  optimizer.step();
  return true;
}

void GradScaler::update(double new_scale) {
  if (!options_.enabled_) return;
  FOCUS_CHECK(std::isfinite(new_scale) && new_scale > 0, "[GradScaler.update] new_scale must be positive and finite, "
                                                         "got {}", new_scale);
  scale_ = static_cast<double>(static_cast<float>(new_scale));
  per_opt_.clear();
}

void GradScaler::update() {
  if (!options_.enabled_) return;
  bool any = false, found = false;
  for (const auto& [opt, st] : per_opt_) {
    if (!st.unscaled) continue;
    any = true;
    found = found || st.found_inf;
  }
  FOCUS_CHECK(any, "[GradScaler.update] no inf checks were recorded prior to update(): call step() or unscale_() "
                   "first");
  // PyTorch's _amp_update_scale_: back off at once, grow after growth_interval clean steps,
  // and only to a finite float32 value.
  if (found) {
    scale_ = static_cast<double>(static_cast<float>(scale_ * options_.backoff_factor_));
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == options_.growth_interval_) {
    const float grown = static_cast<float>(scale_ * options_.growth_factor_);
    if (std::isfinite(grown)) scale_ = static_cast<double>(grown);
    growth_tracker_ = 0;
  }
  per_opt_.clear();
}

TensorDict GradScaler::state_dict() const {
  TensorDict d;
  if (!options_.enabled_) return d;
  detail::put_number(d, "scale", scale_);
  detail::put_number(d, "growth_factor", options_.growth_factor_);
  detail::put_number(d, "backoff_factor", options_.backoff_factor_);
  d.insert("growth_interval", scalar_tensor(options_.growth_interval_, kInt64));
  d.insert("_growth_tracker", scalar_tensor(growth_tracker_, kInt64));
  return d;
}

void GradScaler::load_state_dict(const TensorDict& state) {
  FOCUS_CHECK(!state.empty(), "[GradScaler.load_state_dict] the source state dict is empty, possibly because it was "
                              "saved from a disabled GradScaler");
  auto number = [&](const char* key) {
    const std::optional<double> v = detail::get_number(state, key);
    FOCUS_CHECK(v.has_value(), "[GradScaler.load_state_dict] missing key '{}'", key);
    return *v;
  };
  // Counts may be stored as any number (PyTorch writes Python ints, focus int64): a whole
  // number that fits int64, checked before the conversion (which is undefined otherwise).
  auto integer = [&](const char* key) {
    const double v = number(key);
    FOCUS_CHECK(std::isfinite(v) && v == std::trunc(v) && v >= -9.2e18 && v <= 9.2e18,
                "[GradScaler.load_state_dict] '{}' must be a whole number, got {}", key, v);
    return static_cast<int64_t>(v);
  };
  GradScalerOptions o = options_;
  o.init_scale_ = number("scale");
  o.growth_factor_ = number("growth_factor");
  o.backoff_factor_ = number("backoff_factor");
  o.growth_interval_ = integer("growth_interval");
  check_options(o);
  const int64_t tracker = integer("_growth_tracker");
  FOCUS_CHECK(tracker >= 0 && tracker < o.growth_interval_,
              "[GradScaler.load_state_dict] _growth_tracker {} is outside [0, growth_interval {})", tracker,
              o.growth_interval_);
  options_ = o;
  scale_ = static_cast<double>(static_cast<float>(o.init_scale_));
  growth_tracker_ = tracker;
  per_opt_.clear();
}

}  // namespace focus::optim
