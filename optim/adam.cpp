#include "optim/adam.h"

#include <cmath>
#include <utility>
#include <vector>

#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/optim.h"

namespace focus::optim {

void AdamOptions::save(TensorDict& out, const std::string& prefix) const {
  detail::put_number(out, prefix + "lr", lr_);
  out.set(prefix + "betas", tensor<double>({betas_.first, betas_.second}));
  detail::put_number(out, prefix + "eps", eps_);
  detail::put_number(out, prefix + "weight_decay", weight_decay_);
  detail::put_flag(out, prefix + "amsgrad", amsgrad_);
  detail::put_flag(out, prefix + "maximize", maximize_);
  // Written only when set, so that checkpoints of ordinary optimizers keep their keys.
  if (capturable_) detail::put_flag(out, prefix + "capturable", capturable_);
}

void AdamOptions::load(const TensorDict& in, const std::string& prefix) {
  OptimizerOptions::load(in, prefix);
  if (const Tensor* b = in.find(prefix + "betas")) {
    FOCUS_CHECK(b->numel() == 2, "[load_state_dict] '{}betas' must hold two numbers, got shape {}", prefix,
                b->shape());
    const auto v = b->to_vector<double>();
    betas_ = {v[0], v[1]};
  }
  if (auto v = detail::get_number(in, prefix + "eps")) eps_ = *v;
  if (auto v = detail::get_flag(in, prefix + "amsgrad")) amsgrad_ = *v;
  if (auto v = detail::get_flag(in, prefix + "maximize")) maximize_ = *v;
  if (auto v = detail::get_flag(in, prefix + "capturable")) capturable_ = *v;
}

void AdamOptions::validate(const char* op) const {
  OptimizerOptions::validate(op);
  FOCUS_CHECK(eps_ >= 0, "[{}] invalid epsilon value: {}", op, eps_);
  FOCUS_CHECK(betas_.first >= 0 && betas_.first < 1, "[{}] invalid beta parameter at index 0: {}", op,
              betas_.first);
  FOCUS_CHECK(betas_.second >= 0 && betas_.second < 1, "[{}] invalid beta parameter at index 1: {}", op,
              betas_.second);
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options)
    : Adam("Adam", std::move(groups), options, false) {}

Adam::Adam(std::string name, std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled)
    : Optimizer(std::move(name), options.clone()), decoupled_(decoupled) {
  init_groups(std::move(groups));
}

void Adam::step() {
  NoGradGuard no_grad;
  for (auto& group : groups_) {
    const auto& o = static_cast<const AdamOptions&>(group.options());
    const double lr = o.lr(), wd = o.weight_decay();
    const auto [beta1, beta2] = o.betas();
    Backend::AdamStepParams s;
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.eps = o.eps();
    s.weight_decay = decoupled_ ? 0.0 : wd;
    s.param_scale = decoupled_ ? 1 - lr * wd : 1.0;
    s.amsgrad = o.amsgrad();
    s.maximize = o.maximize();
    s.capturable = o.capturable();
    s.lr = lr;
    if (o.capturable()) {
      for (const Tensor& p : group.params())
        FOCUS_CHECK(!p.grad().defined() || p.device().type == DeviceType::CUDA,
                    "[{}.step] capturable=True needs every parameter on a CUDA device (as PyTorch's), but one is "
                    "on {}",
                    name(), p.device());
    }
    // Every parameter of the group with a gradient goes into one multi-tensor step (a few
    // kernel launches per device and dtype instead of one per parameter). State created
    // here and the step counts are stored only once the step has succeeded, so a step that
    // throws changes nothing.
    std::vector<raw::AdamStepTensors> entries;
    std::vector<std::pair<Tensor, std::vector<std::pair<const char*, Tensor>>>> created;
    std::vector<std::pair<const TensorImpl*, Tensor>> created_steps;
    for (const Tensor& p : group.params()) {
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      const TensorDict* st = find_state(p);
      std::vector<std::pair<const char*, Tensor>> fresh;
      auto state_tensor = [&](const char* name) {
        if (st)
          if (const Tensor* t = st->find(name)) return *t;
        fresh.emplace_back(name, zeros(p.shape(), TensorOptions(p.dtype()).device(p.device())));
        return fresh.back().second;
      };
      raw::AdamStepTensors e;
      e.param = p;
      e.grad = grad;
      // Created in PyTorch's order, which the state dict keeps.
      e.exp_avg = state_tensor("exp_avg");
      e.exp_avg_sq = state_tensor("exp_avg_sq");
      if (o.amsgrad()) e.max_exp_avg_sq = state_tensor("max_exp_avg_sq");
      if (o.capturable()) {
        // The count on the device, created (by a fill kernel: no host copy, so this works
        // inside a capture too) from the host count the first time.
        auto it = device_steps_.find(p.unsafe_impl());
        if (it != device_steps_.end()) {
          e.step = it->second;
        } else {
          e.step = full(Shape{}, Scalar(Optimizer::step_count(p).value_or(0.0)), TensorOptions(kFloat32).device(p.device()));
          created_steps.emplace_back(p.unsafe_impl(), e.step);
        }
      } else {
        // PyTorch: step_t += 1; step = step_t.item(); bias corrections in Python floats
        // (double). The count is a host number here, so this reads nothing from the device.
        const double step = step_count(p).value_or(0.0) + 1;
        e.step_size = lr / (1 - std::pow(beta1, step));
        e.bias_correction2_sqrt = std::sqrt(1 - std::pow(beta2, step));
      }
      entries.push_back(std::move(e));
      if (!fresh.empty()) created.emplace_back(p, std::move(fresh));
    }
    if (entries.empty()) continue;
    raw::adam_step_multi(entries, s);
    for (auto& [p, fresh] : created) {
      TensorDict& st = mutable_state(p);
      for (auto& [name, t] : fresh) st.insert(name, std::move(t));
    }
    for (auto& [impl, t] : created_steps) device_steps_.emplace(impl, std::move(t));
    // capturable: the kernels counted on the device (the host count is not used again).
    if (!o.capturable())
      for (const raw::AdamStepTensors& e : entries) increment_step(e.param);
  }
}

std::optional<double> Adam::step_count(const Tensor& param) const {
  auto it = device_steps_.find(param.unsafe_impl());
  if (it != device_steps_.end()) return it->second.item<double>();
  return Optimizer::step_count(param);
}

void Adam::state_loaded() {
  // Keep the device counts' memory (a captured graph may use it) and write the loaded ones.
  NoGradGuard no_grad;
  for (const auto& group : groups_)
    for (const Tensor& p : group.params()) {
      auto it = device_steps_.find(p.unsafe_impl());
      if (it != device_steps_.end()) it->second.fill_(Scalar(Optimizer::step_count(p).value_or(0.0)));
    }
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Adam("AdamW", std::move(groups), options, true) {}

}  // namespace focus::optim
