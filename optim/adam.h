#pragma once
/// Adam and AdamW, as torch.optim.Adam / torch.optim.AdamW with the single-tensor form's
/// arithmetic (Backend::adam_step's bits), stepped as one multi-tensor update per param
/// group (Backend::adam_step_multi: a few kernel launches per device and dtype, as
/// PyTorch's fused optimizers; each parameter keeps its own step count).
#include <optional>
#include <unordered_map>
#include <utility>

#include "optim/optimizer.h"

namespace focus::optim {

/// Adam hyperparameters (PyTorch's names and defaults: lr 1e-3, betas (0.9, 0.999),
/// eps 1e-8, weight_decay 0 (L2, added to the gradient), amsgrad false).
class AdamOptions : public OptimizerOptions {
 public:
  explicit AdamOptions(double lr = 1e-3) : OptimizerOptions(lr, 0.0) {}
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<AdamOptions>(*this); }

  AdamOptions& lr(double v) { lr_ = v; return *this; }
  AdamOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  using OptimizerOptions::lr;
  using OptimizerOptions::weight_decay;
  AdamOptions& betas(std::pair<double, double> v) { betas_ = v; return *this; }
  std::pair<double, double> betas() const { return betas_; }
  AdamOptions& eps(double v) { eps_ = v; return *this; }
  double eps() const { return eps_; }
  AdamOptions& amsgrad(bool v) { amsgrad_ = v; return *this; }
  bool amsgrad() const { return amsgrad_; }
  AdamOptions& maximize(bool v) { maximize_ = v; return *this; }
  bool maximize() const { return maximize_; }
  /// PyTorch's capturable: the step counts live on the parameters' GPU and the update
  /// derives its bias corrections there, so that optimizer.step() can be captured in a CUDA
  /// graph (focus::cuda::Graph) and replayed. Needs every parameter on a CUDA device (an
  /// error otherwise, as in PyTorch). lr, betas, eps and weight_decay are baked into a
  /// captured graph: changing them afterwards (a scheduler's set_lr included) does not
  /// affect its replays until it is captured again.
  AdamOptions& capturable(bool v) { capturable_ = v; return *this; }
  bool capturable() const { return capturable_; }

  bool has_cycled_momentum() const override { return true; }
  double cycled_momentum() const override { return betas_.first; }
  void set_cycled_momentum(double v) override { betas_.first = v; }
  void save(TensorDict& out, const std::string& prefix) const override;
  void load(const TensorDict& in, const std::string& prefix) override;
  void validate(const char* op) const override;

 protected:
  AdamOptions(double lr, double weight_decay) : OptimizerOptions(lr, weight_decay) {}

 private:
  std::pair<double, double> betas_{0.9, 0.999};
  double eps_ = 1e-8;
  bool amsgrad_ = false;
  bool maximize_ = false;
  bool capturable_ = false;
};

/// AdamW hyperparameters: as Adam's, but weight_decay defaults to 1e-2 and is decoupled.
class AdamWOptions : public AdamOptions {
 public:
  explicit AdamWOptions(double lr = 1e-3) : AdamOptions(lr, 1e-2) {}
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<AdamWOptions>(*this); }

  AdamWOptions& lr(double v) { lr_ = v; return *this; }
  AdamWOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  using OptimizerOptions::lr;
  using OptimizerOptions::weight_decay;
  AdamWOptions& betas(std::pair<double, double> v) { AdamOptions::betas(v); return *this; }
  AdamWOptions& eps(double v) { AdamOptions::eps(v); return *this; }
  AdamWOptions& amsgrad(bool v) { AdamOptions::amsgrad(v); return *this; }
  AdamWOptions& maximize(bool v) { AdamOptions::maximize(v); return *this; }
  AdamWOptions& capturable(bool v) { AdamOptions::capturable(v); return *this; }
  using AdamOptions::amsgrad;
  using AdamOptions::betas;
  using AdamOptions::capturable;
  using AdamOptions::eps;
  using AdamOptions::maximize;
};

/// torch.optim.Adam. Per parameter, with step t (counted per parameter):
///   g = maximize ? -grad : grad;  if weight_decay: g = g + weight_decay * p
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v)
///   p = p - lr / (1 - beta1^t) * m / (sqrt(amsgrad ? vmax : v) / sqrt(1 - beta2^t) + eps)
/// State: `step` (a host count, exposed as a 0-d float32 tensor), `exp_avg`, `exp_avg_sq`,
/// `max_exp_avg_sq` (amsgrad only).
/// With capturable(true) the count of each parameter lives in a float32 scalar on its GPU
/// that every step (and every replay of a captured step) increments; state() and
/// state_dict() read it (a synchronisation), load_state_dict() writes the loaded count into
/// it. Replays of a captured graph must keep using the same tensors: load_state_dict
/// replaces exp_avg and exp_avg_sq, so capture again after loading.
class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<Tensor> params, const AdamOptions& options = AdamOptions());
  explicit Adam(std::vector<ParamGroup> groups, const AdamOptions& options = AdamOptions());
  void step() override;
  using Optimizer::step;
  std::optional<double> step_count(const Tensor& param) const override;

 protected:
  Adam(std::string name, std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled);
  std::vector<std::string> state_names() const override {
    return {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  }
  void state_loaded() override;

 private:
  bool decoupled_;
  // capturable: each parameter's step count on its device (0-d float32).
  std::unordered_map<const TensorImpl*, Tensor> device_steps_;
};

/// torch.optim.AdamW: Adam with decoupled weight decay, p = p * (1 - lr * weight_decay)
/// before the Adam update (the gradient is not decayed).
class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, const AdamWOptions& options = AdamWOptions());
  explicit AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options = AdamWOptions());
};

}  // namespace focus::optim
