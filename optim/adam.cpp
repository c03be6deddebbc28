#include "optim/adam.h"

#include <cmath>

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
    for (const Tensor& p : group.params()) {
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      TensorDict& st = mutable_state(p);
      for (const char* name : {"exp_avg", "exp_avg_sq"})
        if (!st.contains(name)) st.insert(name, zeros(p.shape(), TensorOptions(p.dtype()).device(p.device())));
      if (o.amsgrad() && !st.contains("max_exp_avg_sq"))
        st.insert("max_exp_avg_sq", zeros(p.shape(), TensorOptions(p.dtype()).device(p.device())));
      // PyTorch: step_t += 1; step = step_t.item(); bias corrections in Python floats
      // (double). The count is a host number here, so this reads nothing from the device.
      const double step = increment_step(p);
      Backend::AdamStepParams s;
      s.beta1 = beta1;
      s.beta2 = beta2;
      s.eps = o.eps();
      s.weight_decay = decoupled_ ? 0.0 : wd;
      s.param_scale = decoupled_ ? 1 - lr * wd : 1.0;
      const double bias_correction1 = 1 - std::pow(beta1, step);
      const double bias_correction2 = 1 - std::pow(beta2, step);
      s.step_size = lr / bias_correction1;
      s.bias_correction2_sqrt = std::sqrt(bias_correction2);
      s.amsgrad = o.amsgrad();
      s.maximize = o.maximize();
      const Tensor* vmax = st.find("max_exp_avg_sq");
      raw::adam_step(p, grad, st.at("exp_avg"), st.at("exp_avg_sq"), vmax ? *vmax : Tensor(), s);
    }
  }
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Adam("AdamW", std::move(groups), options, true) {}

}  // namespace focus::optim
