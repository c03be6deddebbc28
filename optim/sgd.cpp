#include "optim/sgd.h"

#include <utility>
#include <vector>

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
    // One multi-tensor step per group (see Adam::step); new momentum buffers are stored only
    // once it has succeeded, so a step that throws changes nothing.
    std::vector<raw::SgdStepTensors> entries;
    std::vector<std::pair<Tensor, Tensor>> created;
    for (const Tensor& p : group.params()) {
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      raw::SgdStepTensors e;
      e.param = p;
      e.grad = grad;
      if (s.momentum != 0) {
        const TensorDict* st = find_state(p);
        if (const Tensor* b = st ? st->find("momentum_buffer") : nullptr) {
          e.momentum_buffer = *b;
        } else {
          e.momentum_buffer = zeros(p.shape(), TensorOptions(p.dtype()).device(p.device()));
          e.first_step = true;
          created.emplace_back(p, e.momentum_buffer);
        }
      }
      entries.push_back(std::move(e));
    }
    if (entries.empty()) continue;
    raw::sgd_step_multi(entries, s);
    for (auto& [p, buf] : created) mutable_state(p).insert("momentum_buffer", std::move(buf));
  }
}

}  // namespace focus::optim
