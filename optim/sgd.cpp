#include "optim/sgd.h"

#include "autograd/functions/elementwise.h"
#include "autograd/node.h"

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
    const double lr = o.lr(), wd = o.weight_decay(), momentum = o.momentum(), dampening = o.dampening();
    for (const Tensor& p : group.params()) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      Tensor g = o.maximize() ? neg(grad) : grad;
      if (wd != 0) g = add(g, p, wd);  // grad.add(param, alpha=weight_decay): a new tensor
      if (momentum != 0) {
        TensorDict& st = mutable_state(p);
        const Tensor* buf = st.find("momentum_buffer");
        if (!buf) {
          st.insert("momentum_buffer", g.clone());  // torch.clone(grad).detach()
          buf = st.find("momentum_buffer");
        } else {
          buf->mul_(momentum).add_(g, 1 - dampening);
        }
        g = o.nesterov() ? add(g, *buf, momentum) : *buf;
      }
      p.add_(g, -lr);
    }
  }
}

}  // namespace focus::optim
