#pragma once
/// Optimizer base: param groups with per-group hyperparameters, per-parameter state,
/// zero_grad, and state_dict()/load_state_dict() in PyTorch's layout, flattened into one
/// TensorDict so that it goes into a safetensors checkpoint as it is:
///
///   state.<i>.<name>          per-parameter state (exp_avg, exp_avg_sq, momentum_buffer,
///                             ...); `step` is a 0-d float32 CPU tensor as in PyTorch 2.x
///                             (the optimizer counts steps as a host number, so stepping
///                             never reads the device). <i> is the parameter's index counted
///                             over all groups in order.
///   param_groups.<g>.params   int64 [n]: the indices of group g's parameters
///   param_groups.<g>.<key>    hyperparameters as 0-d tensors: float64 numbers (lr,
///                             weight_decay, momentum, eps, ...), bool flags (nesterov,
///                             amsgrad, maximize); betas is float64 [2]. Scheduler
///                             bookkeeping (initial_lr, max_lr, ...) is stored the same way.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "core/tensor_dict.h"

namespace focus::optim {

/// Hyperparameters of one param group. Each optimizer's options (SGDOptions, AdamOptions,
/// AdamWOptions) derive from it and add chained setters for their own fields.
class OptimizerOptions {
 public:
  virtual ~OptimizerOptions() = default;
  /// A deep copy of the same dynamic type.
  virtual std::unique_ptr<OptimizerOptions> clone() const = 0;

  double lr() const { return lr_; }
  double weight_decay() const { return weight_decay_; }
  void set_lr(double lr) { lr_ = lr; }
  void set_weight_decay(double weight_decay) { weight_decay_ = weight_decay; }

  /// Whether the optimizer has a momentum coefficient that OneCycleLR can cycle: SGD's
  /// `momentum`, Adam's `beta1` (PyTorch: 'momentum' or 'betas' in optimizer.defaults).
  virtual bool has_cycled_momentum() const { return false; }
  virtual double cycled_momentum() const;
  virtual void set_cycled_momentum(double value);

  /// Writes the hyperparameters under prefix with PyTorch's param_group keys.
  virtual void save(TensorDict& out, const std::string& prefix) const;
  /// Reads the hyperparameters present under prefix (missing keys keep their values);
  /// a wrongly typed value is an error naming the key.
  virtual void load(const TensorDict& in, const std::string& prefix);
  /// Errors (naming op) on values PyTorch rejects: negative lr, weight_decay, ...
  virtual void validate(const char* op) const;

 protected:
  OptimizerOptions(double lr, double weight_decay) : lr_(lr), weight_decay_(weight_decay) {}
  OptimizerOptions(const OptimizerOptions&) = default;
  OptimizerOptions& operator=(const OptimizerOptions&) = default;
  double lr_;
  double weight_decay_;
};

/// Helpers for OptimizerOptions::save/load: numbers are 0-d float64, flags 0-d bool.
namespace detail {
void put_number(TensorDict& out, const std::string& key, double value);
void put_flag(TensorDict& out, const std::string& key, bool value);
/// The value under key, if present; errors if it is not a one-element tensor.
std::optional<double> get_number(const TensorDict& in, const std::string& key);
std::optional<bool> get_flag(const TensorDict& in, const std::string& key);
}  // namespace detail

/// A set of parameters optimized with the same hyperparameters. Before it is given to an
/// optimizer it may override the optimizer's lr and weight_decay (for example no decay
/// for biases and norms) or carry a full options object of the optimizer's type:
///
///   optim::AdamW({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0)},
///                optim::AdamWOptions().lr(3e-4).weight_decay(0.1));
class ParamGroup {
 public:
  /// Parameters taking the optimizer's default hyperparameters.
  explicit ParamGroup(std::vector<Tensor> params);
  /// Parameters with their own complete hyperparameters (must be the optimizer's options type).
  ParamGroup(std::vector<Tensor> params, const OptimizerOptions& options);
  ParamGroup(const ParamGroup& other);
  ParamGroup& operator=(const ParamGroup& other);
  ParamGroup(ParamGroup&&) noexcept = default;
  ParamGroup& operator=(ParamGroup&&) noexcept = default;

  /// Sets lr (an override of the defaults until the group belongs to an optimizer).
  ParamGroup& lr(double lr);
  ParamGroup& weight_decay(double weight_decay);
  /// The group's lr / weight_decay (errors if neither set nor given by an optimizer yet).
  double lr() const;
  double weight_decay() const;
  void set_lr(double lr) { this->lr(lr); }

  const std::vector<Tensor>& params() const { return params_; }
  /// The group's full hyperparameters; set once the group belongs to an optimizer.
  bool has_options() const { return options_ != nullptr; }
  OptimizerOptions& options();
  const OptimizerOptions& options() const;

  /// Extra numbers stored with the group, as schedulers store them in PyTorch's param_group
  /// dicts: initial_lr, max_lr, min_lr, max_momentum, base_momentum. Saved in state_dict.
  std::map<std::string, double>& extras() { return extras_; }
  const std::map<std::string, double>& extras() const { return extras_; }

 private:
  friend class Optimizer;
  std::vector<Tensor> params_;
  std::unique_ptr<OptimizerOptions> options_;
  std::optional<double> lr_override_;
  std::optional<double> weight_decay_override_;
  std::map<std::string, double> extras_;
};

/// Base of all optimizers. Parameters are held by handle (updates are in place under
/// NoGradGuard), so they stay the tensors the model uses.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One update of every parameter that has a gradient (parameters without one are skipped).
  virtual void step() = 0;
  /// PyTorch's step(closure): evaluates closure with grad mode on (it should zero the
  /// grads, compute the loss and call backward), steps, and returns the loss.
  Tensor step(const std::function<Tensor()>& closure);

  /// Adds a group; unset hyperparameters take the optimizer's defaults. Errors on an empty
  /// or undefined parameter, a non-floating or non-leaf one, a parameter already in a
  /// group, or options of another optimizer's type.
  void add_param_group(ParamGroup group);
  /// Clears every parameter's grad: undefined when set_to_none, else filled with zeros.
  void zero_grad(bool set_to_none = true);

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  /// The constructor's hyperparameters (PyTorch's optimizer.defaults).
  const OptimizerOptions& defaults() const { return *defaults_; }
  /// The learning rate of a group (what schedulers read and write).
  double lr(size_t group = 0) const;
  void set_lr(size_t group, double lr);
  /// Sets every group's lr.
  void set_lr(double lr);
  /// The optimizer's name as in PyTorch ("SGD", "Adam", "AdamW").
  const std::string& name() const { return name_; }
  /// Number of parameters over all groups.
  size_t num_params() const;

  /// A parameter's state as PyTorch's optimizer.state[param]: the optimizer's own state
  /// tensors (not copies) plus, for optimizers that count steps, `step` (a new 0-d float32
  /// CPU tensor holding the count); std::nullopt before the parameter has any state.
  /// (Virtual so that ZeroRedundancyOptimizer can answer for its local shard.)
  virtual std::optional<TensorDict> state(const Tensor& param) const;
  /// The step count of param (Adam, AdamW): a host number, std::nullopt before its first step.
  /// (Adam with capturable reads its count from the device.)
  virtual std::optional<double> step_count(const Tensor& param) const;

  /// The whole state as documented at the top of this header. Tensors are the optimizer's
  /// own (not copies; `step` excepted): save or clone them before stepping again.
  /// Virtual: ZeroRedundancyOptimizer returns its consolidated state.
  virtual TensorDict state_dict() const;
  /// Restores a state_dict(): the dict must have this optimizer's number of groups and of
  /// parameters per group; state tensors must have their parameter's shape (they are
  /// copied and converted to its dtype and device; `step`, one number of any dtype and
  /// device, becomes the host step count); unknown keys are errors. Nothing is changed
  /// when an error is thrown.
  virtual void load_state_dict(const TensorDict& dict);

 protected:
  Optimizer(std::string name, std::unique_ptr<OptimizerOptions> defaults);
  /// Adds the groups (call from the derived constructor once defaults are valid).
  void init_groups(std::vector<ParamGroup> groups);
  /// The state tensors of param, created empty on first use.
  TensorDict& mutable_state(const Tensor& param);
  /// The state tensors of param, nullptr before it has any (creates nothing).
  const TensorDict* find_state(const Tensor& param) const;
  /// Adds one to param's step count (a host number, starting at 0) and returns the new
  /// count: no tensor is read or written, so no device is synchronised.
  double increment_step(const Tensor& param);
  /// Writes the param_groups.<i>.* entries of state_dict() (hyperparameters, extras and the
  /// parameters' global indices) into out.
  void save_param_groups(TensorDict& out) const;
  /// The state names this optimizer writes (load_state_dict rejects others).
  virtual std::vector<std::string> state_names() const = 0;
  /// Called when load_state_dict() has replaced the state (the host step counts included).
  virtual void state_loaded() {}
  /// For optimizers that wrap another one (ZeroRedundancyOptimizer): a copy of group (its
  /// overrides or options, and its extras) that holds params instead of its own parameters.
  static ParamGroup group_with_params(const ParamGroup& group, std::vector<Tensor> params);
  /// Replaces group's hyperparameters by a copy of options (of the group's options type).
  static void set_group_options(ParamGroup& group, const OptimizerOptions& options);

  std::vector<ParamGroup> groups_;

 private:
  std::string name_;
  std::unique_ptr<OptimizerOptions> defaults_;
  std::unordered_map<const TensorImpl*, TensorDict> state_;
  // Step counts (state "step") on the host, for the optimizers that count steps.
  std::unordered_map<const TensorImpl*, double> steps_;
};

}  // namespace focus::optim
