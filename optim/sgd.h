#pragma once
/// Stochastic gradient descent with momentum, as torch.optim.SGD.
#include "optim/optimizer.h"

namespace focus::optim {

/// SGD hyperparameters (PyTorch's names and defaults).
class SGDOptions : public OptimizerOptions {
 public:
  explicit SGDOptions(double lr = 1e-3) : OptimizerOptions(lr, 0.0) {}
  std::unique_ptr<OptimizerOptions> clone() const override { return std::make_unique<SGDOptions>(*this); }

  SGDOptions& lr(double v) { lr_ = v; return *this; }
  SGDOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  using OptimizerOptions::lr;
  using OptimizerOptions::weight_decay;
  SGDOptions& momentum(double v) { momentum_ = v; return *this; }
  double momentum() const { return momentum_; }
  SGDOptions& dampening(double v) { dampening_ = v; return *this; }
  double dampening() const { return dampening_; }
  SGDOptions& nesterov(bool v) { nesterov_ = v; return *this; }
  bool nesterov() const { return nesterov_; }
  SGDOptions& maximize(bool v) { maximize_ = v; return *this; }
  bool maximize() const { return maximize_; }

  bool has_cycled_momentum() const override { return true; }
  double cycled_momentum() const override { return momentum_; }
  void set_cycled_momentum(double v) override { momentum_ = v; }
  void save(TensorDict& out, const std::string& prefix) const override;
  void load(const TensorDict& in, const std::string& prefix) override;
  void validate(const char* op) const override;

 private:
  double momentum_ = 0;
  double dampening_ = 0;
  bool nesterov_ = false;
  bool maximize_ = false;
};

/// torch.optim.SGD with the single-tensor form's arithmetic (Backend::sgd_step's bits),
/// stepped as one multi-tensor update per param group (Backend::sgd_step_multi: a few
/// kernel launches per device and dtype, as PyTorch's fused optimizers). Per parameter with
/// gradient g:
///   g = maximize ? -grad : grad;  if weight_decay: g = g + weight_decay * p
///   if momentum: buf = first step ? g : buf * momentum + (1 - dampening) * g
///                g = nesterov ? g + momentum * buf : buf
///   p = p - lr * g
/// State: `momentum_buffer` (only when momentum != 0).
class SGD : public Optimizer {
 public:
  explicit SGD(std::vector<Tensor> params, const SGDOptions& options = SGDOptions());
  explicit SGD(std::vector<ParamGroup> groups, const SGDOptions& options = SGDOptions());
  void step() override;
  using Optimizer::step;

 protected:
  std::vector<std::string> state_names() const override { return {"momentum_buffer"}; }
};

}  // namespace focus::optim
