// Parity of optimizers, LR schedulers and gradient clipping with PyTorch
// (references written by tests/parity/gen_optim.py; the problem and configurations here
// must match it).
#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include "test_util.h"

// The parity harness (parity.h) lands separately; until then this file compiles to nothing.
#if __has_include("parity/parity.h")
#include "parity/parity.h"

using namespace focus;

namespace {

constexpr int kSteps = 50;

// The largest |a - b| / (atol + rtol |b|) over the elements (<= 1 means close).
double closeness(const Tensor& a, const Tensor& b, double rtol, double atol) {
  REQUIRE_MESSAGE(a.shape() == b.shape(), fmt::format("shape {} vs {}", a.shape(), b.shape()));
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    if (va[i] == vb[i]) continue;
    worst = std::max(worst, std::abs(va[i] - vb[i]) / (atol + rtol * std::abs(vb[i])));
  }
  return worst;
}

double max_rel_err(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i)
    if (va[i] != vb[i]) worst = std::max(worst, std::abs(va[i] - vb[i]) / std::max(std::abs(vb[i]), 1e-30));
  return worst;
}

Tensor loss_fn(const TensorDict& d, const Tensor& W, const Tensor& b, const Tensor& v) {
  const Tensor h = tanh(matmul(d.at("x"), W) + b);
  return (h - d.at("y")).pow(2).mean() + 0.5 * (d.at("s") * v * v).sum() + 0.025 * v.pow(4).sum();
}

using Params = std::map<std::string, Tensor>;
using Factory = std::function<std::unique_ptr<optim::Optimizer>(Params&)>;

std::vector<Tensor> all(Params& p) { return {p["W"], p["b"], p["v"], p["unused"]}; }

const std::vector<std::pair<std::string, Factory>>& configs() {
  using namespace optim;
  static const std::vector<std::pair<std::string, Factory>> list = {
      {"sgd", [](Params& p) { return std::make_unique<SGD>(all(p), SGDOptions(0.1)); }},
      {"sgd_momentum", [](Params& p) { return std::make_unique<SGD>(all(p), SGDOptions(0.05).momentum(0.9)); }},
      {"sgd_nesterov",
       [](Params& p) { return std::make_unique<SGD>(all(p), SGDOptions(0.05).momentum(0.9).nesterov(true)); }},
      {"sgd_dampening",
       [](Params& p) { return std::make_unique<SGD>(all(p), SGDOptions(0.05).momentum(0.8).dampening(0.3)); }},
      {"sgd_wd",
       [](Params& p) { return std::make_unique<SGD>(all(p), SGDOptions(0.05).momentum(0.9).weight_decay(0.01)); }},
      {"sgd_maximize",
       [](Params& p) {
         return std::make_unique<SGD>(all(p), SGDOptions(0.02).momentum(0.5).weight_decay(0.1).maximize(true));
       }},
      {"adam", [](Params& p) { return std::make_unique<Adam>(all(p), AdamOptions(0.01)); }},
      {"adam_amsgrad",
       [](Params& p) { return std::make_unique<Adam>(all(p), AdamOptions(0.02).amsgrad(true).betas({0.8, 0.99})); }},
      {"adam_wd",
       [](Params& p) { return std::make_unique<Adam>(all(p), AdamOptions(0.01).weight_decay(0.1).eps(1e-6)); }},
      {"adam_maximize",
       [](Params& p) {
         return std::make_unique<Adam>(all(p), AdamOptions(0.01).weight_decay(0.05).maximize(true));
       }},
      {"adamw", [](Params& p) { return std::make_unique<AdamW>(all(p), AdamWOptions(0.01)); }},
      {"adamw_amsgrad",
       [](Params& p) {
         return std::make_unique<AdamW>(all(p),
                                        AdamWOptions(0.02).weight_decay(0.1).amsgrad(true).betas({0.85, 0.95}));
       }},
      {"adamw_groups",
       [](Params& p) {
         return std::make_unique<AdamW>(
             std::vector<ParamGroup>{ParamGroup({p["W"], p["unused"]}),
                                     ParamGroup({p["b"], p["v"]}).lr(0.03).weight_decay(0.0)},
             AdamWOptions(0.01).weight_decay(0.1));
       }},
  };
  return list;
}

// Scale of a tensor: its largest |value| (at least tiny).
double scale_of(const Tensor& t) {
  double m = 1e-30;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

// 50 steps of every configuration. fixed_grads: the gradients come from the file
// (grads.<k> [50, ...]) instead of the loss, so only the optimizer arithmetic can differ.
// Parameters must match within rtol (atol for elements near 0); state tensors within rtol
// of their largest element (10 rtol when the gradients come from the loss).
void check_training(const char* file, double rtol, double atol, bool fixed_grads = false) {
  const TensorDict d = parity::load(file);
  double worst_rel = 0, worst_close = 0;
  for (const auto& [name, factory] : configs()) {
    CAPTURE(name);
    Params p;
    for (const char* k : {"W", "b", "v", "unused"}) p[k] = d.at(std::string("init.") + k).clone().requires_grad_();
    auto opt = factory(p);
    std::vector<double> losses;
    for (int s = 0; s < kSteps; ++s) {
      opt->zero_grad();
      if (fixed_grads) {
        for (const char* k : {"W", "b", "v"}) p[k].set_grad(d.at(std::string("grads.") + k).select(0, s).clone());
        opt->step();
        continue;
      }
      Tensor loss = loss_fn(d, p["W"], p["b"], p["v"]);
      if (name.find("maximize") != std::string::npos) loss = -loss;
      loss.backward();
      opt->step();
      losses.push_back(loss.item<double>());
    }
    if (!fixed_grads) CHECK(closeness(tensor<double>(losses), d.at(name + ".loss"), rtol, atol) <= 1.0);
    for (const char* k : {"W", "b", "v", "unused"}) {
      CAPTURE(k);
      const Tensor& ref = d.at(name + ".final." + k);
      CHECK(p[k].dtype() == ref.dtype());
      CHECK(closeness(p[k], ref, rtol, atol) <= 1.0);
      worst_rel = std::max(worst_rel, max_rel_err(p[k], ref));
      worst_close = std::max(worst_close, closeness(p[k], ref, rtol, atol));
      if (std::getenv("FOCUS_OPTIM_VERBOSE")) MESSAGE(fmt::format("{} {}: max rel err {:.3g}", name, k, max_rel_err(p[k], ref)));
    }
    // Every entry of focus's state_dict is in PyTorch's under the same name, with close values.
    // With gradients from the loss, the state holds gradient statistics, which carry the
    // rounding of the two frameworks' forward/backward passes: 10x the parameter tolerance.
    const double state_rtol = fixed_grads ? rtol : 10 * rtol;
    const TensorDict sd = opt->state_dict();
    const std::string prefix = name + ".sd.";
    for (const auto& [key, value] : sd) {
      CAPTURE(key);
      const Tensor* ref = d.find(prefix + key);
      REQUIRE_MESSAGE(ref != nullptr, "PyTorch's state_dict has no " << key);
      CHECK(value.shape() == ref->shape());
      if (key.ends_with(".step") || key.ends_with(".params")) CHECK(value.to_vector<double>() == ref->to_vector<double>());
      else CHECK(closeness(value.to(kFloat64), ref->to(kFloat64), state_rtol, state_rtol * scale_of(*ref)) <= 1.0);
    }
    // ... and PyTorch's state entries are all in focus's.
    for (const auto& [key, value] : d) {
      if (key.rfind(prefix + "state.", 0) == 0) CHECK_MESSAGE(sd.contains(key.substr(prefix.size())), key);
    }
  }
  MESSAGE(fmt::format("{}: largest relative parameter error after {} steps: {:.3g} (largest |focus - torch| / (atol + "
                      "rtol |torch|): {:.3g})",
                      file, kSteps, worst_rel, worst_close));
}

// ---- schedulers -------------------------------------------------------------------------------

struct SchedCase {
  bool adam;
  std::vector<double> lrs;
  int steps;
  std::function<std::shared_ptr<optim::LRScheduler>(optim::Optimizer&)> build;
};

const std::map<std::string, SchedCase>& sched_cases() {
  using namespace optim;
  static const std::map<std::string, SchedCase> cases = {
      {"step", {false, {0.1, 0.01}, 20, [](Optimizer& o) { return std::make_shared<StepLR>(o, 3, 0.5); }}},
      {"exponential", {false, {0.1}, 20, [](Optimizer& o) { return std::make_shared<ExponentialLR>(o, 0.9); }}},
      {"cosine",
       {false, {0.1, 0.05}, 35, [](Optimizer& o) { return std::make_shared<CosineAnnealingLR>(o, 10, 0.001); }}},
      {"linear", {false, {0.1}, 15, [](Optimizer& o) { return std::make_shared<LinearLR>(o, 0.25, 1.0, 8); }}},
      {"linear_decay", {true, {0.1}, 12, [](Optimizer& o) { return std::make_shared<LinearLR>(o, 1.0, 0.1, 6); }}},
      {"lambda",
       {false, {0.1, 0.2}, 20,
        [](Optimizer& o) {
          return std::make_shared<LambdaLR>(o, [](int64_t e) { return std::pow(0.95, static_cast<double>(e)); });
        }}},
      {"onecycle_cos",
       {false, {0.1, 0.05}, 30,
        [](Optimizer& o) { return std::make_shared<OneCycleLR>(o, OneCycleLROptions({0.1, 0.2}, 30)); }}},
      {"onecycle_linear3",
       {true, {0.1}, 40,
        [](Optimizer& o) {
          return std::make_shared<OneCycleLR>(o, OneCycleLROptions(0.01, 40)
                                                     .pct_start(0.25)
                                                     .anneal_strategy("linear")
                                                     .three_phase(true)
                                                     .div_factor(10.0)
                                                     .final_div_factor(100.0)
                                                     .base_momentum(0.8)
                                                     .max_momentum(0.9));
        }}},
      {"onecycle_nomom",
       {true, {0.1}, 20,
        [](Optimizer& o) {
          return std::make_shared<OneCycleLR>(
              o, OneCycleLROptions(0.05).epochs(4).steps_per_epoch(5).cycle_momentum(false));
        }}},
      {"sequential",
       {false, {0.1, 0.02}, 30,
        [](Optimizer& o) {
          auto a = std::make_shared<LinearLR>(o, 0.1, 1.0, 5);
          auto b = std::make_shared<CosineAnnealingLR>(o, 20);
          return std::make_shared<SequentialLR>(o, std::vector<std::shared_ptr<LRScheduler>>{a, b},
                                                std::vector<int64_t>{5});
        }}},
      {"sequential3",
       {true, {0.1}, 25,
        [](Optimizer& o) {
          auto a = std::make_shared<LinearLR>(o, 0.5, 1.0, 4);
          auto b = std::make_shared<ExponentialLR>(o, 0.8);
          auto c = std::make_shared<StepLR>(o, 4, 0.5);
          return std::make_shared<SequentialLR>(o, std::vector<std::shared_ptr<LRScheduler>>{a, b, c},
                                                std::vector<int64_t>{4, 12});
        }}},
      {"inverse_sqrt",
       {true, {0.001, 0.002}, 30, [](Optimizer& o) { return std::make_shared<InverseSqrtLR>(o, 8); }}},
  };
  return cases;
}

std::unique_ptr<optim::Optimizer> sched_optimizer(const SchedCase& c, std::vector<Tensor>& keep) {
  std::vector<optim::ParamGroup> groups;
  for (double lr : c.lrs) {
    keep.push_back(zeros({2}).requires_grad_());
    groups.push_back(optim::ParamGroup({keep.back()}).lr(lr));
  }
  if (c.adam) return std::make_unique<optim::Adam>(groups, optim::AdamOptions(c.lrs[0]));
  return std::make_unique<optim::SGD>(groups, optim::SGDOptions(c.lrs[0]).momentum(0.9));
}

std::vector<double> momenta(const optim::Optimizer& o) {
  std::vector<double> out;
  for (const auto& g : o.param_groups()) out.push_back(g.options().cycled_momentum());
  return out;
}

}  // namespace

TEST_SUITE("parity_optim") {
  TEST_CASE("optimizers follow PyTorch's trajectories for 50 steps (float32)") {
    // Gradients from each framework's own forward/backward differ by rounding; elements near 0
    // need the atol (largest relative error seen here: ~1e-5 on an element of size 4e-4).
    check_training("optim_train_f32", 1e-6, 3e-7);
  }

  TEST_CASE("optimizers follow PyTorch's trajectories for 50 steps (float64)") {
    check_training("optim_train_f64", 1e-10, 1e-12);
  }

  TEST_CASE("optimizers driven by fixed gradients: PyTorch's arithmetic (float32, float64)") {
    check_training("optim_fixedgrad_f32", 1e-6, 1e-9, true);
    check_training("optim_fixedgrad_f64", 1e-13, 1e-15, true);
  }

  TEST_CASE("schedulers give PyTorch's lr (and momentum) at every step") {
    const TensorDict d = parity::load("optim_sched");
    for (const auto& [name, c] : sched_cases()) {
      CAPTURE(name);
      std::vector<Tensor> keep;
      auto opt = sched_optimizer(c, keep);
      auto sched = c.build(*opt);
      std::vector<double> lrs, moms;
      auto record = [&] {
        for (size_t g = 0; g < c.lrs.size(); ++g) {
          lrs.push_back(opt->lr(g));
          moms.push_back(momenta(*opt)[g]);
          CHECK(sched->get_last_lr()[g] == opt->lr(g));
        }
      };
      record();
      for (int s = 0; s < c.steps; ++s) {
        opt->step();
        sched->step();
        record();
      }
      const Shape shape{c.steps + 1, static_cast<int64_t>(c.lrs.size())};
      CHECK(closeness(tensor<double>(lrs, shape), d.at(name + ".lr"), 1e-12, 1e-15) <= 1.0);
      CHECK(closeness(tensor<double>(moms, shape), d.at(name + ".momentum"), 1e-12, 1e-15) <= 1.0);
    }
  }

  TEST_CASE("clip_grad_norm_ matches PyTorch") {
    const TensorDict d = parity::load("optim_clip");
    const std::map<std::string, std::pair<double, double>> cases = {{"l2_clip", {2.0, 0.5}},
                                                                     {"l2_noclip", {2.0, 100.0}},
                                                                     {"l1", {1.0, 2.0}},
                                                                     {"inf", {INFINITY, 1.5}},
                                                                     {"p3", {3.0, 1.0}}};
    for (const auto& [name, pm] : cases) {
      CAPTURE(name);
      std::vector<Tensor> params;
      for (int i = 0; i < 3; ++i) {
        const Tensor g = d.at(fmt::format("grad.{}", i));
        params.push_back(zeros_like(g).requires_grad_());
        params.back().set_grad(g.clone());
      }
      const Tensor total = optim::clip_grad_norm_(params, pm.second, pm.first);
      CHECK(total.dim() == 0);
      CHECK(total.dtype() == params[0].grad().dtype());
      CHECK(total.item<double>() == doctest::Approx(d.at(name + ".total").item<double>()).epsilon(1e-6));
      for (int i = 0; i < 3; ++i)
        CHECK(closeness(params[i].grad(), d.at(fmt::format("{}.grad.{}", name, i)), 1e-6, 1e-7) <= 1.0);
    }
  }
}

#endif  // __has_include("parity/parity.h")
