#include "optim/sgd.h"

#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/optim.h"

namespace focus::optim {

void SGDOptions::save(TensorDict& out, const std::string& prefix) const {
  detail::put_number(out, prefix + "lr", lr_);
  detail::put_number(out, prefix + "momentum", momentum_);
  detail::put_number(out, prefix + "dampening", dampening_);
  detail::put_number(out, prefix + "weight_decay", weight_decay_);
  detail::put_flag(out, prefix + "nesterov", nesterov_);
  detail::put_flag(out, prefix + "maximize", maximize_);
}

void SGDOptions::load(const TensorDict& in, const std::string& prefix) {
  OptimizerOptions::load(in, prefix);
  if (auto v = detail::get_number(in, prefix + "momentum")) momentum_ = *v;
  if (auto v = detail::get_number(in, prefix + "dampening")) dampening_ = *v;
  if (auto v = detail::get_flag(in, prefix + "nesterov")) nesterov_ = *v;
  if (auto v = detail::get_flag(in, prefix + "maximize")) maximize_ = *v;
}

void SGDOptions::validate(const char* op) const {
  OptimizerOptions::validate(op);
  FOCUS_CHECK(momentum_ >= 0, "[{}] invalid momentum value: {}", op, momentum_);
  FOCUS_CHECK(!nesterov_ || (momentum_ > 0 && dampening_ == 0),
              "[{}] nesterov momentum requires a momentum and zero dampening (got momentum {}, dampening {})", op,
              momentum_, dampening_);
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : SGD(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& options) : Optimizer("SGD", options.clone()) {
  init_groups(std::move(groups));
}

void SGD::step() {
  NoGradGuard no_grad;
  for (auto& group : groups_) {
    const auto& o = static_cast<const SGDOptions&>(group.options());
    Backend::SgdStepParams s;
    s.lr = o.lr();
    s.momentum = o.momentum();
    s.dampening = o.dampening();
    s.weight_decay = o.weight_decay();
    s.nesterov = o.nesterov();
    s.maximize = o.maximize();
    for (const Tensor& p : group.params()) {
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      Tensor buf;
      s.first_step = false;
      if (s.momentum != 0) {
        TensorDict& st = mutable_state(p);
        if (const Tensor* b = st.find("momentum_buffer")) {
          buf = *b;
        } else {
          buf = zeros(p.shape(), TensorOptions(p.dtype()).device(p.device()));
          st.insert("momentum_buffer", buf);
          s.first_step = true;
        }
      }
      raw::sgd_step(p, grad, buf, s);
    }
  }
}

}  // namespace focus::optim
