// Parity of the losses with PyTorch 1.13: values and gradients (input, and target where it
// is differentiable) for every loss x reduction x options, written by gen_loss.py. Each
// case runs through the function and through the matching nn module.
#include <functional>
#include <string>

#include "parity/parity.h"
#include "test_util.h"

using namespace focus;

namespace {

constexpr Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

struct Case {
  const TensorDict* d;
  std::string name;
  bool has(const std::string& f) const { return d->contains(name + "." + f); }
  Tensor get(const std::string& f) const { return has(f) ? d->at(name + "." + f) : Tensor(); }
  std::vector<double> config() const { return get("config").to_vector<double>(); }
  Reduction reduction() const { return kReductions[static_cast<int>(config()[0])]; }
  int64_t ignore_index() const { return static_cast<int64_t>(config()[1]); }
  double label_smoothing() const { return config()[2]; }
  double beta() const { return config()[3]; }
};

// The case names in d (one per "<name>.config").
std::vector<std::string> case_names(const TensorDict& d) {
  std::vector<std::string> out;
  const std::string suffix = ".config";
  for (const auto& k : d.keys())
    if (k.size() > suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(k.substr(0, k.size() - suffix.size()));
  return out;
}

// rtol 1e-5 (float32) / 1e-10 (float64), with a small atol for values near 0.
bool close(const Tensor& got, const Tensor& want) {
  if (!got.defined() || !want.defined()) {
    MESSAGE("undefined tensor: got " << got.defined() << ", want " << want.defined());
    return false;
  }
  if (got.dtype() != want.dtype()) {
    MESSAGE("dtype mismatch");
    return false;
  }
  const bool f64 = want.dtype() == kFloat64;
  return focus::testing::allclose(got, want, f64 ? 1e-10 : 1e-5, f64 ? 1e-12 : 1e-6);
}

using LossFn = std::function<Tensor(const Tensor&, const Tensor&, const Case&)>;

// Runs every case of file `kind` through each of fns and compares value and gradients.
void run_cases(const std::string& kind, const std::vector<std::pair<std::string, LossFn>>& fns) {
  const TensorDict d = parity::load("loss_" + kind);
  const auto names = case_names(d);
  REQUIRE(!names.empty());
  for (const auto& name : names) {
    const Case c{&d, name};
    for (const auto& [how, fn] : fns) {
      CAPTURE(kind);
      CAPTURE(name);
      CAPTURE(how);
      Tensor x = c.get("input").clone().requires_grad_();
      Tensor t = c.get("target").clone();
      const bool grad_target = c.has("grad_target");
      if (grad_target) t.requires_grad_();
      Tensor out = fn(x, t, c);
      CHECK(close(out, c.get("out")));
      out.backward(c.get("grad_out"));
      CHECK(close(x.grad(), c.get("grad_input")));
      if (grad_target) CHECK(close(t.grad(), c.get("grad_target")));
    }
  }
}

CrossEntropyOptions ce_options(const Case& c) {
  return CrossEntropyOptions()
      .weight(c.get("weight"))
      .ignore_index(c.ignore_index())
      .label_smoothing(c.label_smoothing())
      .reduction(c.reduction());
}

Tensor ce_function(const Tensor& x, const Tensor& t, const Case& c) { return cross_entropy(x, t, ce_options(c)); }
Tensor ce_module(const Tensor& x, const Tensor& t, const Case& c) { return nn::CrossEntropyLoss(ce_options(c))(x, t); }

}  // namespace

TEST_SUITE("parity_loss") {

TEST_CASE("cross_entropy with class indices: weights, ignore_index, label smoothing, K-dim, unbatched") {
  run_cases("cross_entropy", {{"function", ce_function}, {"module", ce_module}});
}

TEST_CASE("cross_entropy with class probabilities: weights, label smoothing, K-dim, unbatched") {
  run_cases("cross_entropy_probs", {{"function", ce_function}, {"module", ce_module}});
}

TEST_CASE("nll_loss: weights, ignore_index, K-dim, unbatched") {
  run_cases("nll", {{"function", [](const Tensor& x, const Tensor& t, const Case& c) {
                       return nll_loss(x, t,
                                       NLLLossOptions()
                                           .weight(c.get("weight"))
                                           .ignore_index(c.ignore_index())
                                           .reduction(c.reduction()));
                     }},
                    {"module", [](const Tensor& x, const Tensor& t, const Case& c) {
                       return nn::NLLLoss(nn::NLLLossOptions()
                                              .weight(c.get("weight"))
                                              .ignore_index(c.ignore_index())
                                              .reduction(c.reduction()))(x, t);
                     }}});
}

TEST_CASE("mse_loss and l1_loss, broadcasting target") {
  run_cases("mse", {{"function", [](const Tensor& x, const Tensor& t, const Case& c) {
                       return mse_loss(x, t, c.reduction());
                     }},
                    {"module", [](const Tensor& x, const Tensor& t, const Case& c) {
                       return nn::MSELoss(c.reduction())(x, t);
                     }}});
  run_cases("l1", {{"function", [](const Tensor& x, const Tensor& t, const Case& c) {
                      return l1_loss(x, t, c.reduction());
                    }},
                   {"module", [](const Tensor& x, const Tensor& t, const Case& c) {
                      return nn::L1Loss(c.reduction())(x, t);
                    }}});
}

TEST_CASE("smooth_l1_loss and huber_loss") {
  run_cases("smooth_l1", {{"function", [](const Tensor& x, const Tensor& t, const Case& c) {
                             return smooth_l1_loss(x, t, c.reduction(), c.beta());
                           }},
                          {"module", [](const Tensor& x, const Tensor& t, const Case& c) {
                             return nn::SmoothL1Loss(nn::SmoothL1LossOptions().reduction(c.reduction()).beta(c.beta()))(x, t);
                           }}});
  run_cases("huber", {{"function", [](const Tensor& x, const Tensor& t, const Case& c) {
                         return huber_loss(x, t, c.reduction(), c.beta());
                       }},
                      {"module", [](const Tensor& x, const Tensor& t, const Case& c) {
                         return nn::HuberLoss(nn::HuberLossOptions().reduction(c.reduction()).delta(c.beta()))(x, t);
                       }}});
}

TEST_CASE("binary_cross_entropy_with_logits: weight, pos_weight, extreme logits") {
  run_cases("bce_with_logits", {{"function", [](const Tensor& x, const Tensor& t, const Case& c) {
                                   return binary_cross_entropy_with_logits(x, t,
                                                                           BCEWithLogitsOptions()
                                                                               .weight(c.get("weight"))
                                                                               .pos_weight(c.get("pos_weight"))
                                                                               .reduction(c.reduction()));
                                 }},
                                {"module", [](const Tensor& x, const Tensor& t, const Case& c) {
                                   return nn::BCEWithLogitsLoss(nn::BCEWithLogitsLossOptions()
                                                                    .weight(c.get("weight"))
                                                                    .pos_weight(c.get("pos_weight"))
                                                                    .reduction(c.reduction()))(x, t);
                                 }}});
}

TEST_CASE("binary_cross_entropy: weight") {
  run_cases("bce", {{"function", [](const Tensor& x, const Tensor& t, const Case& c) {
                       return binary_cross_entropy(x, t, c.get("weight"), c.reduction());
                     }},
                    {"module", [](const Tensor& x, const Tensor& t, const Case& c) {
                       return nn::BCELoss(nn::BCELossOptions().weight(c.get("weight")).reduction(c.reduction()))(x, t);
                     }}});
}

}  // TEST_SUITE
