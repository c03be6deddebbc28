#include "optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/creation.h"

namespace focus::optim {

namespace {

constexpr double kPi = std::numbers::pi;

// Python's a % b and a // b for b > 0.
int64_t py_mod(int64_t a, int64_t b) { return ((a % b) + b) % b; }
int64_t py_floordiv(int64_t a, int64_t b) { return (a - py_mod(a, b)) / b; }

Tensor doubles(const std::vector<double>& v) {
  return tensor<double>(v, Shape{static_cast<int64_t>(v.size())});
}

const Tensor& require(const TensorDict& d, const std::string& key, const std::string& who) {
  const Tensor* t = d.find(key);
  FOCUS_CHECK(t != nullptr && t->defined(), "[{}.load_state_dict] missing key '{}'", who, key);
  return *t;
}

int64_t require_int(const TensorDict& d, const std::string& key, const std::string& who) {
  const Tensor& t = require(d, key, who);
  FOCUS_CHECK(t.numel() == 1, "[{}.load_state_dict] '{}' must hold one number, got shape {}", who, key, t.shape());
  return t.item<int64_t>();
}

// Step counts from a file: at least `lowest` (-1: not started) and at most 2^53, so that
// stepping on can neither overflow int64 nor lose precision in the double lr formulas.
void check_step(int64_t v, int64_t lowest, const char* key, const std::string& who) {
  constexpr int64_t kMaxStep = int64_t{1} << 53;
  FOCUS_CHECK(v >= lowest && v <= kMaxStep, "[{}.load_state_dict] '{}' is {}, outside [{}, 2^53]", who, key, v, lowest);
}

std::vector<double> require_doubles(const TensorDict& d, const std::string& key, const std::string& who,
                                    size_t count) {
  const Tensor& t = require(d, key, who);
  FOCUS_CHECK(t.dim() == 1 && t.numel() == static_cast<int64_t>(count),
              "[{}.load_state_dict] '{}' has shape {}, but the optimizer has {} param groups", who, key, t.shape(),
              count);
  return t.to_vector<double>();
}

}  // namespace

// ---- LRScheduler ------------------------------------------------------------------------

LRScheduler::LRScheduler(std::string name, Optimizer& optimizer, int64_t last_epoch)
    : optimizer_(optimizer), last_epoch_(last_epoch), name_(std::move(name)) {
  FOCUS_CHECK(last_epoch >= -1, "[{}] last_epoch must be -1 (a new schedule) or a step to resume at, got {}", name_,
              last_epoch);
  auto& groups = optimizer_.param_groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& extras = groups[i].extras();
    if (last_epoch == -1) {
      extras.emplace("initial_lr", groups[i].lr());  // setdefault
    } else {
      FOCUS_CHECK(extras.count("initial_lr") != 0,
                  "[{}] param 'initial_lr' is not specified in param_groups[{}] when resuming an optimizer", name_, i);
    }
    base_lrs_.push_back(extras.at("initial_lr"));
  }
}

void LRScheduler::initial_step() {
  step_count_ = 0;
  step();
}

std::vector<double> LRScheduler::group_lrs() const {
  std::vector<double> out;
  for (const auto& g : optimizer_.param_groups()) out.push_back(g.lr());
  return out;
}

void LRScheduler::apply(const std::vector<double>& lrs) {
  auto& groups = optimizer_.param_groups();
  FOCUS_CHECK(lrs.size() == groups.size(), "[{}] computed {} learning rates for {} param groups", name_, lrs.size(),
              groups.size());
  for (size_t i = 0; i < groups.size(); ++i) groups[i].set_lr(lrs[i]);
  last_lr_ = group_lrs();
}

void LRScheduler::step() {
  const int64_t saved_epoch = last_epoch_, saved_count = step_count_;
  ++step_count_;
  ++last_epoch_;
  std::vector<double> lrs;
  try {
    lrs = get_lr();
  } catch (...) {
    last_epoch_ = saved_epoch;
    step_count_ = saved_count;
    throw;
  }
  apply(lrs);
}

void LRScheduler::step(int64_t epoch) {
  const int64_t saved_epoch = last_epoch_, saved_count = step_count_;
  ++step_count_;
  last_epoch_ = epoch;
  std::vector<double> lrs;
  try {
    auto closed = closed_form_lr();
    lrs = closed ? std::move(*closed) : get_lr();
  } catch (...) {
    last_epoch_ = saved_epoch;
    step_count_ = saved_count;
    throw;
  }
  apply(lrs);
}

TensorDict LRScheduler::state_dict() const {
  TensorDict out;
  out.insert("last_epoch", scalar_tensor(last_epoch_, kInt64));
  out.insert("_step_count", scalar_tensor(step_count_, kInt64));
  out.insert("base_lrs", doubles(base_lrs_));
  out.insert("_last_lr", doubles(last_lr_));
  save_extra(out);
  return out;
}

void LRScheduler::load_state_dict(const TensorDict& dict) {
  const int64_t last_epoch = require_int(dict, "last_epoch", name_);
  const int64_t step_count = require_int(dict, "_step_count", name_);
  check_step(last_epoch, -1, "last_epoch", name_);
  check_step(step_count, 0, "_step_count", name_);
  auto base = require_doubles(dict, "base_lrs", name_, num_groups());
  auto last = require_doubles(dict, "_last_lr", name_, num_groups());
  load_extra(dict);
  last_epoch_ = last_epoch;
  step_count_ = step_count;
  base_lrs_ = std::move(base);
  last_lr_ = std::move(last);
}

// ---- StepLR -----------------------------------------------------------------------------

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma, int64_t last_epoch)
    : LRScheduler("StepLR", optimizer, last_epoch), step_size_(step_size), gamma_(gamma) {
  FOCUS_CHECK(step_size > 0, "[StepLR] step_size must be positive, got {}", step_size);
  initial_step();
}

std::vector<double> StepLR::get_lr() {
  auto lrs = group_lrs();
  if (last_epoch_ == 0 || py_mod(last_epoch_, step_size_) != 0) return lrs;
  for (auto& lr : lrs) lr = lr * gamma_;
  return lrs;
}

std::optional<std::vector<double>> StepLR::closed_form_lr() {
  std::vector<double> out;
  for (double base : base_lrs_)
    out.push_back(base * std::pow(gamma_, static_cast<double>(py_floordiv(last_epoch_, step_size_))));
  return out;
}

void StepLR::save_extra(TensorDict& out) const {
  out.insert("step_size", scalar_tensor(step_size_, kInt64));
  out.insert("gamma", scalar_tensor(gamma_, kFloat64));
}

// ---- ExponentialLR ------------------------------------------------------------------------

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma, int64_t last_epoch)
    : LRScheduler("ExponentialLR", optimizer, last_epoch), gamma_(gamma) {
  initial_step();
}

std::vector<double> ExponentialLR::get_lr() {
  auto lrs = group_lrs();
  if (last_epoch_ == 0) return lrs;
  for (auto& lr : lrs) lr = lr * gamma_;
  return lrs;
}

std::optional<std::vector<double>> ExponentialLR::closed_form_lr() {
  std::vector<double> out;
  for (double base : base_lrs_) out.push_back(base * std::pow(gamma_, static_cast<double>(last_epoch_)));
  return out;
}

void ExponentialLR::save_extra(TensorDict& out) const { out.insert("gamma", scalar_tensor(gamma_, kFloat64)); }

// ---- CosineAnnealingLR ----------------------------------------------------------------------

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min, int64_t last_epoch)
    : LRScheduler("CosineAnnealingLR", optimizer, last_epoch), T_max_(T_max), eta_min_(eta_min) {
  FOCUS_CHECK(T_max > 0, "[CosineAnnealingLR] T_max must be positive, got {}", T_max);
  initial_step();
}

std::vector<double> CosineAnnealingLR::get_lr() {
  auto lrs = group_lrs();
  const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max_);
  if (last_epoch_ == 0) return lrs;
  if (step_count_ == 1 && last_epoch_ > 0) {
    for (size_t i = 0; i < lrs.size(); ++i)
      lrs[i] = eta_min_ + (base_lrs_[i] - eta_min_) * (1 + std::cos(e * kPi / T)) / 2;
    return lrs;
  }
  if (py_mod(last_epoch_ - 1 - T_max_, 2 * T_max_) == 0) {
    for (size_t i = 0; i < lrs.size(); ++i) lrs[i] = lrs[i] + (base_lrs_[i] - eta_min_) * (1 - std::cos(kPi / T)) / 2;
    return lrs;
  }
  for (auto& lr : lrs)
    lr = (1 + std::cos(kPi * e / T)) / (1 + std::cos(kPi * (e - 1) / T)) * (lr - eta_min_) + eta_min_;
  return lrs;
}

std::optional<std::vector<double>> CosineAnnealingLR::closed_form_lr() {
  std::vector<double> out;
  const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max_);
  for (double base : base_lrs_) out.push_back(eta_min_ + (base - eta_min_) * (1 + std::cos(kPi * e / T)) / 2);
  return out;
}

void CosineAnnealingLR::save_extra(TensorDict& out) const {
  out.insert("T_max", scalar_tensor(T_max_, kInt64));
  out.insert("eta_min", scalar_tensor(eta_min_, kFloat64));
}

// ---- LinearLR ---------------------------------------------------------------------------------

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor, int64_t total_iters,
                   int64_t last_epoch)
    : LRScheduler("LinearLR", optimizer, last_epoch),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
  FOCUS_CHECK(start_factor > 0 && start_factor <= 1,
              "[LinearLR] starting multiplicative factor expected to be greater than 0 and less or equal to 1, got {}",
              start_factor);
  FOCUS_CHECK(end_factor >= 0 && end_factor <= 1,
              "[LinearLR] ending multiplicative factor expected to be between 0 and 1, got {}", end_factor);
  FOCUS_CHECK(total_iters > 0, "[LinearLR] total_iters must be positive, got {}", total_iters);
  initial_step();
}

std::vector<double> LinearLR::get_lr() {
  auto lrs = group_lrs();
  if (last_epoch_ == 0) {
    for (auto& lr : lrs) lr = lr * start_factor_;
    return lrs;
  }
  if (last_epoch_ > total_iters_) return lrs;
  const double d = end_factor_ - start_factor_;
  for (auto& lr : lrs)
    lr = lr * (1. + d / (static_cast<double>(total_iters_) * start_factor_ +
                         static_cast<double>(last_epoch_ - 1) * d));
  return lrs;
}

std::optional<std::vector<double>> LinearLR::closed_form_lr() {
  std::vector<double> out;
  const double d = end_factor_ - start_factor_;
  const double done = static_cast<double>(std::min(total_iters_, last_epoch_));
  for (double base : base_lrs_)
    out.push_back(base * (start_factor_ + d * done / static_cast<double>(total_iters_)));
  return out;
}

void LinearLR::save_extra(TensorDict& out) const {
  out.insert("start_factor", scalar_tensor(start_factor_, kFloat64));
  out.insert("end_factor", scalar_tensor(end_factor_, kFloat64));
  out.insert("total_iters", scalar_tensor(total_iters_, kInt64));
}

// ---- LambdaLR ---------------------------------------------------------------------------------

LambdaLR::LambdaLR(Optimizer& optimizer, Lambda lr_lambda, int64_t last_epoch)
    : LRScheduler("LambdaLR", optimizer, last_epoch) {
  FOCUS_CHECK(static_cast<bool>(lr_lambda), "[LambdaLR] lr_lambda is empty");
  lambdas_.assign(num_groups(), lr_lambda);
  initial_step();
}

LambdaLR::LambdaLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas, int64_t last_epoch)
    : LRScheduler("LambdaLR", optimizer, last_epoch), lambdas_(std::move(lr_lambdas)) {
  FOCUS_CHECK(lambdas_.size() == num_groups(), "[LambdaLR] expected {} lr_lambdas, but got {}", num_groups(),
              lambdas_.size());
  for (size_t i = 0; i < lambdas_.size(); ++i)
    FOCUS_CHECK(static_cast<bool>(lambdas_[i]), "[LambdaLR] lr_lambda {} is empty", i);
  initial_step();
}

std::vector<double> LambdaLR::get_lr() {
  std::vector<double> out;
  for (size_t i = 0; i < lambdas_.size(); ++i) out.push_back(base_lrs_[i] * lambdas_[i](last_epoch_));
  return out;
}

// ---- OneCycleLR ---------------------------------------------------------------------------------

namespace {

std::vector<double> per_group(const std::vector<double>& v, size_t groups, const char* name) {
  if (v.size() == 1) return std::vector<double>(groups, v[0]);
  FOCUS_CHECK(v.size() == groups, "[OneCycleLR] expected {} values for {}, got {}", groups, name, v.size());
  return v;
}

}  // namespace

OneCycleLR::OneCycleLR(Optimizer& optimizer, const OneCycleLROptions& o, int64_t last_epoch)
    : LRScheduler("OneCycleLR", optimizer, last_epoch) {
  if (o.total_steps_ != 0) {
    FOCUS_CHECK(o.total_steps_ > 0, "[OneCycleLR] expected positive integer total_steps, but got {}", o.total_steps_);
    total_steps_ = o.total_steps_;
  } else {
    FOCUS_CHECK(o.epochs_ != 0 || o.steps_per_epoch_ != 0,
                "[OneCycleLR] you must define either total_steps OR (epochs AND steps_per_epoch)");
    FOCUS_CHECK(o.epochs_ > 0, "[OneCycleLR] expected positive integer epochs, but got {}", o.epochs_);
    FOCUS_CHECK(o.steps_per_epoch_ > 0, "[OneCycleLR] expected positive integer steps_per_epoch, but got {}",
                o.steps_per_epoch_);
    total_steps_ = o.epochs_ * o.steps_per_epoch_;
  }
  const double total = static_cast<double>(total_steps_);
  if (o.three_phase_) {
    phases_ = {{o.pct_start_ * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
               {2 * o.pct_start_ * total - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"},
               {total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"}};
  } else {
    phases_ = {{o.pct_start_ * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
               {total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"}};
  }
  FOCUS_CHECK(o.pct_start_ >= 0 && o.pct_start_ <= 1, "[OneCycleLR] expected float between 0 and 1 pct_start, but got {}",
              o.pct_start_);
  FOCUS_CHECK(o.anneal_strategy_ == "cos" || o.anneal_strategy_ == "linear",
              "[OneCycleLR] anneal_strategy must be one of 'cos' or 'linear', instead got '{}'", o.anneal_strategy_);
  linear_ = o.anneal_strategy_ == "linear";
  auto& groups = optimizer_.param_groups();
  const auto max_lrs = per_group(o.max_lr_, groups.size(), "max_lr");
  if (last_epoch == -1) {
    for (size_t i = 0; i < groups.size(); ++i) {
      auto& ex = groups[i].extras();
      ex["initial_lr"] = max_lrs[i] / o.div_factor_;
      ex["max_lr"] = max_lrs[i];
      ex["min_lr"] = ex["initial_lr"] / o.final_div_factor_;
    }
  }
  cycle_momentum_ = o.cycle_momentum_;
  if (cycle_momentum_) {
    FOCUS_CHECK(optimizer_.defaults().has_cycled_momentum(),
                "[OneCycleLR] optimizer must support momentum with `cycle_momentum` option enabled");
    const auto max_m = per_group(o.max_momentum_, groups.size(), "max_momentum");
    const auto base_m = per_group(o.base_momentum_, groups.size(), "base_momentum");
    if (last_epoch == -1) {
      for (size_t i = 0; i < groups.size(); ++i) {
        groups[i].options().set_cycled_momentum(max_m[i]);
        groups[i].extras()["max_momentum"] = max_m[i];
        groups[i].extras()["base_momentum"] = base_m[i];
      }
    }
  }
  base_lrs_.clear();
  for (auto& g : groups) {
    FOCUS_CHECK(g.extras().count("initial_lr") && g.extras().count("max_lr") && g.extras().count("min_lr"),
                "[OneCycleLR] param groups lack initial_lr / max_lr / min_lr when resuming (last_epoch = {})",
                last_epoch);
    base_lrs_.push_back(g.extras().at("initial_lr"));
  }
  initial_step();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (linear_) return (end - start) * pct + start;
  const double cos_out = std::cos(kPi * pct) + 1;
  return end + (start - end) / 2.0 * cos_out;
}

std::vector<double> OneCycleLR::get_lr() {
  const int64_t step_num = last_epoch_;
  FOCUS_CHECK(step_num <= total_steps_, "[OneCycleLR] tried to step {} times. The specified number of total steps is {}",
              step_num + 1, total_steps_);
  std::vector<double> lrs;
  for (auto& group : optimizer_.param_groups()) {
    const auto& ex = group.extras();
    auto get = [&](const char* key) {
      auto it = ex.find(key);
      FOCUS_CHECK(it != ex.end(), "[OneCycleLR] param group has no '{}'", key);
      return it->second;
    };
    double start_step = 0, lr = 0, momentum = 0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (static_cast<double>(step_num) <= ph.end_step || i + 1 == phases_.size()) {
        const double pct = (static_cast<double>(step_num) - start_step) / (ph.end_step - start_step);
        lr = anneal(get(ph.start_lr), get(ph.end_lr), pct);
        if (cycle_momentum_) momentum = anneal(get(ph.start_momentum), get(ph.end_momentum), pct);
        break;
      }
      start_step = ph.end_step;
    }
    lrs.push_back(lr);
    if (cycle_momentum_) group.options().set_cycled_momentum(momentum);
  }
  return lrs;
}

void OneCycleLR::save_extra(TensorDict& out) const {
  out.insert("total_steps", scalar_tensor(total_steps_, kInt64));
  out.insert("cycle_momentum", scalar_tensor(cycle_momentum_, kBool));
}

// ---- SequentialLR ---------------------------------------------------------------------------------

SequentialLR::SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<int64_t> milestones, int64_t last_epoch)
    : LRScheduler("SequentialLR", optimizer, -1), schedulers_(std::move(schedulers)),
      milestones_(std::move(milestones)) {
  FOCUS_CHECK(!schedulers_.empty(), "[SequentialLR] expects at least one scheduler");
  for (size_t i = 0; i < schedulers_.size(); ++i) {
    FOCUS_CHECK(schedulers_[i] != nullptr, "[SequentialLR] scheduler {} is null", i);
    FOCUS_CHECK(&schedulers_[i]->optimizer() == &optimizer,
                "[SequentialLR] expects all schedulers to belong to the same optimizer, but got scheduler at index {} "
                "to be different than the optimizer passed in",
                i);
  }
  FOCUS_CHECK(milestones_.size() + 1 == schedulers_.size(),
              "[SequentialLR] expects number of schedulers provided to be one more than the number of milestone "
              "points, but got number of schedulers {} and the number of milestones to be equal to {}",
              schedulers_.size(), milestones_.size());
  last_epoch_ = last_epoch + 1;
  // Reset learning rates back to initial values, "undo" the step the schedulers took when
  // they were built, and take the initial step of the first one only.
  for (auto& g : optimizer_.param_groups()) g.set_lr(g.extras().at("initial_lr"));
  for (auto& s : schedulers_) s->last_epoch_ -= 1;
  schedulers_[0]->initial_step();
  last_lr_ = schedulers_[0]->get_last_lr();
}

std::vector<double> SequentialLR::get_lr() { return last_lr_; }

void SequentialLR::step() {
  ++last_epoch_;
  const auto idx =
      static_cast<size_t>(std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin());
  auto& scheduler = *schedulers_[idx];
  if (idx > 0 && milestones_[idx - 1] == last_epoch_) scheduler.step(int64_t{0});
  else scheduler.step();
  last_lr_ = scheduler.get_last_lr();
}

TensorDict SequentialLR::state_dict() const {
  TensorDict out;
  out.insert("last_epoch", scalar_tensor(last_epoch_, kInt64));
  out.insert("_last_lr", doubles(last_lr_));
  out.insert("_milestones", tensor<int64_t>(milestones_, Shape{static_cast<int64_t>(milestones_.size())}));
  for (size_t i = 0; i < schedulers_.size(); ++i)
    out.update(schedulers_[i]->state_dict(), fmt::format("_schedulers.{}.", i));
  return out;
}

void SequentialLR::load_state_dict(const TensorDict& dict) {
  const int64_t last_epoch = require_int(dict, "last_epoch", name());
  check_step(last_epoch, -1, "last_epoch", name());
  auto last = require_doubles(dict, "_last_lr", name(), num_groups());
  for (size_t i = 0; i < schedulers_.size(); ++i) {
    const TensorDict sub = dict.with_prefix_removed(fmt::format("_schedulers.{}.", i));
    FOCUS_CHECK(!sub.empty(), "[SequentialLR.load_state_dict] missing the state of scheduler {} (_schedulers.{}.*)",
                i, i);
    schedulers_[i]->load_state_dict(sub);
  }
  last_epoch_ = last_epoch;
  last_lr_ = std::move(last);
}

// ---- InverseSqrtLR / NoamLR ---------------------------------------------------------------------

InverseSqrtLR::InverseSqrtLR(Optimizer& optimizer, int64_t warmup_steps, std::optional<double> scale,
                             int64_t last_epoch)
    : InverseSqrtLR("InverseSqrtLR", optimizer, warmup_steps,
                    scale ? *scale : std::sqrt(static_cast<double>(warmup_steps)), last_epoch) {}

InverseSqrtLR::InverseSqrtLR(std::string name, Optimizer& optimizer, int64_t warmup_steps, double scale,
                             int64_t last_epoch)
    : LRScheduler(std::move(name), optimizer, last_epoch), warmup_steps_(warmup_steps), scale_(scale) {
  FOCUS_CHECK(warmup_steps > 0, "[{}] warmup_steps must be positive, got {}", this->name(), warmup_steps);
  initial_step();
}

double InverseSqrtLR::factor(int64_t s, int64_t warmup_steps, double scale) {
  const double sd = static_cast<double>(s), w = static_cast<double>(warmup_steps);
  return scale * std::min(std::pow(sd, -0.5), sd * std::pow(w, -1.5));
}

std::vector<double> InverseSqrtLR::get_lr() {
  std::vector<double> out;
  const double f = factor(last_epoch_ + 1, warmup_steps_, scale_);
  for (double base : base_lrs_) out.push_back(base * f);
  return out;
}

void InverseSqrtLR::save_extra(TensorDict& out) const {
  out.insert("warmup_steps", scalar_tensor(warmup_steps_, kInt64));
  out.insert("scale", scalar_tensor(scale_, kFloat64));
}

NoamLR::NoamLR(Optimizer& optimizer, int64_t d_model, int64_t warmup_steps, double factor, int64_t last_epoch)
    : InverseSqrtLR("NoamLR", optimizer, warmup_steps,
                    factor / std::sqrt(static_cast<double>(std::max<int64_t>(d_model, 1))), last_epoch) {
  FOCUS_CHECK(d_model > 0, "[NoamLR] d_model must be positive, got {}", d_model);
}

}  // namespace focus::optim
