#pragma once
/// Learning-rate schedulers, as torch.optim.lr_scheduler: each wraps an Optimizer, sets
/// every param group's lr on construction (step 0) and on each step(), and computes the
/// same values as PyTorch step by step (the recursive "chainable" forms where PyTorch
/// uses them). Call scheduler.step() after optimizer.step().
///
/// state_dict() keys (all 0-d unless noted): last_epoch and _step_count (int64), base_lrs
/// and _last_lr (float64 [groups]), plus each scheduler's hyperparameters under their
/// PyTorch names; SequentialLR nests its schedulers under `_schedulers.<k>.`.
/// load_state_dict() restores the progress (last_epoch, _step_count, base_lrs, _last_lr
/// and any mutable state); the hyperparameters are the constructor's.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor_dict.h"
#include "optim/optimizer.h"

namespace focus::optim {

class SequentialLR;

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances one step and writes the new lrs into the optimizer's groups.
  virtual void step();
  /// PyTorch's deprecated step(epoch): jumps to epoch, using the closed form where the
  /// scheduler has one (StepLR, ExponentialLR, CosineAnnealingLR, LinearLR, InverseSqrtLR).
  void step(int64_t epoch);
  /// The lrs set by the last step, one per param group.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  /// Steps taken since construction (0 right after it), as PyTorch's last_epoch.
  int64_t last_epoch() const { return last_epoch_; }
  /// Each group's initial_lr when the scheduler was created.
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  Optimizer& optimizer() const { return optimizer_; }
  /// The scheduler's class name ("StepLR", ...).
  const std::string& name() const { return name_; }

  virtual TensorDict state_dict() const;
  /// Restores state_dict(); errors on a missing key or a group count that differs.
  virtual void load_state_dict(const TensorDict& dict);

 protected:
  /// Records initial_lr in every group (last_epoch == -1) or requires it (resuming), as
  /// PyTorch's base constructor. Derived constructors call initial_step() at their end.
  LRScheduler(std::string name, Optimizer& optimizer, int64_t last_epoch);
  /// PyTorch's _initial_step(): resets the step count and takes one step.
  void initial_step();
  /// The lrs for last_epoch_ (the chainable form: may read the groups' current lrs).
  virtual std::vector<double> get_lr() = 0;
  /// The closed form for last_epoch_, where the scheduler has one.
  virtual std::optional<std::vector<double>> closed_form_lr() { return std::nullopt; }
  /// Adds / restores the scheduler's own entries (hyperparameters, mutable state).
  virtual void save_extra(TensorDict& out) const {}
  virtual void load_extra(const TensorDict& in) {}
  /// The current lr of each group.
  std::vector<double> group_lrs() const;
  size_t num_groups() const { return optimizer_.param_groups().size(); }

  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_;
  int64_t step_count_ = 0;
  std::vector<double> last_lr_;

 private:
  friend class SequentialLR;
  void apply(const std::vector<double>& lrs);
  std::string name_;
};

/// lr = lr * gamma every step_size steps.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1, int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;
  void save_extra(TensorDict& out) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// lr = lr * gamma every step.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma, int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;
  void save_extra(TensorDict& out) const override;

 private:
  double gamma_;
};

/// Cosine annealing from the base lr to eta_min over T_max steps (SGDR without restarts),
/// in PyTorch's recursive form: eta_t = eta_min + (eta_{t-1} - eta_min) * (1 + cos(pi t /
/// T_max)) / (1 + cos(pi (t - 1) / T_max)).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0.0, int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;
  void save_extra(TensorDict& out) const override;

 private:
  int64_t T_max_;
  double eta_min_;
};

/// The lr factor goes linearly from start_factor to end_factor over total_iters steps
/// (both factors in [0, 1]), in PyTorch's recursive form.
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0, int64_t total_iters = 5,
           int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override;
  void save_extra(TensorDict& out) const override;

 private:
  double start_factor_;
  double end_factor_;
  int64_t total_iters_;
};

/// lr = base_lr * lambda(last_epoch), one function for all groups or one per group.
class LambdaLR : public LRScheduler {
 public:
  using Lambda = std::function<double(int64_t)>;
  LambdaLR(Optimizer& optimizer, Lambda lr_lambda, int64_t last_epoch = -1);
  LambdaLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas, int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;

 private:
  std::vector<Lambda> lambdas_;
};

/// OneCycleLR's arguments (PyTorch's names and defaults). max_lr is one value for all
/// groups or one per group; the number of steps is total_steps, or epochs * steps_per_epoch.
struct OneCycleLROptions {
  explicit OneCycleLROptions(double max_lr, int64_t total_steps = 0) : max_lr_({max_lr}), total_steps_(total_steps) {}
  explicit OneCycleLROptions(std::vector<double> max_lrs, int64_t total_steps = 0)
      : max_lr_(std::move(max_lrs)), total_steps_(total_steps) {}
  OneCycleLROptions& total_steps(int64_t v) { total_steps_ = v; return *this; }
  OneCycleLROptions& epochs(int64_t v) { epochs_ = v; return *this; }
  OneCycleLROptions& steps_per_epoch(int64_t v) { steps_per_epoch_ = v; return *this; }
  OneCycleLROptions& pct_start(double v) { pct_start_ = v; return *this; }
  /// "cos" or "linear".
  OneCycleLROptions& anneal_strategy(std::string v) { anneal_strategy_ = std::move(v); return *this; }
  OneCycleLROptions& cycle_momentum(bool v) { cycle_momentum_ = v; return *this; }
  OneCycleLROptions& base_momentum(double v) { base_momentum_ = {v}; return *this; }
  OneCycleLROptions& base_momentum(std::vector<double> v) { base_momentum_ = std::move(v); return *this; }
  OneCycleLROptions& max_momentum(double v) { max_momentum_ = {v}; return *this; }
  OneCycleLROptions& max_momentum(std::vector<double> v) { max_momentum_ = std::move(v); return *this; }
  OneCycleLROptions& div_factor(double v) { div_factor_ = v; return *this; }
  OneCycleLROptions& final_div_factor(double v) { final_div_factor_ = v; return *this; }
  OneCycleLROptions& three_phase(bool v) { three_phase_ = v; return *this; }

  std::vector<double> max_lr_;
  int64_t total_steps_ = 0;  // 0: epochs * steps_per_epoch
  int64_t epochs_ = 0;
  int64_t steps_per_epoch_ = 0;
  double pct_start_ = 0.3;
  std::string anneal_strategy_ = "cos";
  bool cycle_momentum_ = true;
  std::vector<double> base_momentum_{0.85};
  std::vector<double> max_momentum_{0.95};
  double div_factor_ = 25.0;
  double final_div_factor_ = 1e4;
  bool three_phase_ = false;
};

/// The 1cycle policy: lr rises from max_lr / div_factor to max_lr over pct_start of the
/// steps, then anneals to initial_lr / final_div_factor (three_phase: back to initial_lr
/// first, then down to the minimum); momentum (SGD's momentum or Adam's beta1) cycles
/// inversely between max_momentum and base_momentum when cycle_momentum. Stores
/// initial_lr, max_lr, min_lr, max_momentum and base_momentum in the groups' extras, as
/// PyTorch does. Stepping past total_steps is an error.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, const OneCycleLROptions& options, int64_t last_epoch = -1);
  int64_t total_steps() const { return total_steps_; }

 protected:
  std::vector<double> get_lr() override;
  void save_extra(TensorDict& out) const override;

 private:
  struct Phase {
    double end_step;
    const char* start_lr;
    const char* end_lr;
    const char* start_momentum;
    const char* end_momentum;
  };
  double anneal(double start, double end, double pct) const;
  int64_t total_steps_;
  std::vector<Phase> phases_;
  bool linear_;
  bool cycle_momentum_;
};

/// Runs schedulers one after another: schedulers[k] from milestones[k - 1] on (restarted
/// there with step(0)). All schedulers must wrap the same optimizer; milestones has one
/// entry fewer than schedulers. Construct the schedulers first, then this.
class SequentialLR : public LRScheduler {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<int64_t> milestones, int64_t last_epoch = -1);
  void step() override;
  using LRScheduler::step;
  TensorDict state_dict() const override;
  void load_state_dict(const TensorDict& dict) override;

 protected:
  std::vector<double> get_lr() override;

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<int64_t> milestones_;
};

/// The inverse-square-root warmup of "Attention Is All You Need" (Vaswani et al., 2017,
/// section 5.3), per group with step number s = last_epoch + 1 (the first optimizer step
/// is step 1):
///   lr = base_lr * scale * min(s^-0.5, s * warmup_steps^-1.5)
/// i.e. a linear rise over warmup_steps steps, then decay as 1/sqrt(s). The default scale
/// sqrt(warmup_steps) makes the peak lr (at s = warmup_steps) equal the base lr. The paper's
/// schedule, lrate = d_model^-0.5 * min(s^-0.5, s * warmup^-1.5), is scale = d_model^-0.5
/// with base lr 1 (see NoamLR).
class InverseSqrtLR : public LRScheduler {
 public:
  InverseSqrtLR(Optimizer& optimizer, int64_t warmup_steps, std::optional<double> scale = std::nullopt,
                int64_t last_epoch = -1);
  /// The factor that multiplies base_lr at step number s (s >= 1).
  static double factor(int64_t s, int64_t warmup_steps, double scale);

 protected:
  InverseSqrtLR(std::string name, Optimizer& optimizer, int64_t warmup_steps, double scale, int64_t last_epoch);
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() override { return get_lr(); }
  void save_extra(TensorDict& out) const override;

 private:
  int64_t warmup_steps_;
  double scale_;
};

/// The paper's exact schedule: InverseSqrtLR with scale = factor * d_model^-0.5, so that
/// with the optimizer's lr set to 1 the lr is factor * d_model^-0.5 * min(s^-0.5,
/// s * warmup^-1.5).
class NoamLR : public InverseSqrtLR {
 public:
  NoamLR(Optimizer& optimizer, int64_t d_model, int64_t warmup_steps, double factor = 1.0, int64_t last_epoch = -1);
};

}  // namespace focus::optim
