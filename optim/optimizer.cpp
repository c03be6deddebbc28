#include "optim/optimizer.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <typeinfo>
#include <unordered_set>

#include "autograd/node.h"
#include "core/creation.h"

namespace focus::optim {

// ---- OptimizerOptions -------------------------------------------------------------------

double OptimizerOptions::cycled_momentum() const {
  FOCUS_FAIL("[OneCycleLR] the optimizer has no momentum or betas to cycle");
}

void OptimizerOptions::set_cycled_momentum(double) {
  FOCUS_FAIL("[OneCycleLR] the optimizer has no momentum or betas to cycle");
}

void OptimizerOptions::save(TensorDict& out, const std::string& prefix) const {
  detail::put_number(out, prefix + "lr", lr_);
  detail::put_number(out, prefix + "weight_decay", weight_decay_);
}

void OptimizerOptions::load(const TensorDict& in, const std::string& prefix) {
  if (auto v = detail::get_number(in, prefix + "lr")) lr_ = *v;
  if (auto v = detail::get_number(in, prefix + "weight_decay")) weight_decay_ = *v;
}

void OptimizerOptions::validate(const char* op) const {
  FOCUS_CHECK(lr_ >= 0, "[{}] invalid learning rate: {}", op, lr_);
  FOCUS_CHECK(weight_decay_ >= 0, "[{}] invalid weight_decay value: {}", op, weight_decay_);
}

namespace detail {

void put_number(TensorDict& out, const std::string& key, double value) {
  out.set(key, scalar_tensor(value, kFloat64));
}

void put_flag(TensorDict& out, const std::string& key, bool value) { out.set(key, scalar_tensor(value, kBool)); }

std::optional<double> get_number(const TensorDict& in, const std::string& key) {
  const Tensor* t = in.find(key);
  if (!t) return std::nullopt;
  FOCUS_CHECK(t->defined() && t->numel() == 1, "[load_state_dict] '{}' must hold one number, got shape {}", key,
              t->defined() ? t->shape() : Shape{});
  return t->item<double>();
}

std::optional<bool> get_flag(const TensorDict& in, const std::string& key) {
  auto v = get_number(in, key);
  if (!v) return std::nullopt;
  return *v != 0;
}

}  // namespace detail

// ---- ParamGroup ---------------------------------------------------------------------------

ParamGroup::ParamGroup(std::vector<Tensor> params) : params_(std::move(params)) {}

ParamGroup::ParamGroup(std::vector<Tensor> params, const OptimizerOptions& options)
    : params_(std::move(params)), options_(options.clone()) {}

ParamGroup::ParamGroup(const ParamGroup& o)
    : params_(o.params_),
      options_(o.options_ ? o.options_->clone() : nullptr),
      lr_override_(o.lr_override_),
      weight_decay_override_(o.weight_decay_override_),
      extras_(o.extras_) {}

ParamGroup& ParamGroup::operator=(const ParamGroup& o) {
  if (this != &o) {
    params_ = o.params_;
    options_ = o.options_ ? o.options_->clone() : nullptr;
    lr_override_ = o.lr_override_;
    weight_decay_override_ = o.weight_decay_override_;
    extras_ = o.extras_;
  }
  return *this;
}

ParamGroup& ParamGroup::lr(double lr) {
  if (options_) options_->set_lr(lr);
  else lr_override_ = lr;
  return *this;
}

ParamGroup& ParamGroup::weight_decay(double weight_decay) {
  if (options_) options_->set_weight_decay(weight_decay);
  else weight_decay_override_ = weight_decay;
  return *this;
}

double ParamGroup::lr() const {
  if (options_) return options_->lr();
  FOCUS_CHECK(lr_override_.has_value(), "[ParamGroup] lr is not known before the group is added to an optimizer");
  return *lr_override_;
}

double ParamGroup::weight_decay() const {
  if (options_) return options_->weight_decay();
  FOCUS_CHECK(weight_decay_override_.has_value(),
              "[ParamGroup] weight_decay is not known before the group is added to an optimizer");
  return *weight_decay_override_;
}

OptimizerOptions& ParamGroup::options() {
  FOCUS_CHECK(options_ != nullptr, "[ParamGroup] the group has no options before it is added to an optimizer");
  return *options_;
}

const OptimizerOptions& ParamGroup::options() const {
  FOCUS_CHECK(options_ != nullptr, "[ParamGroup] the group has no options before it is added to an optimizer");
  return *options_;
}

// ---- Optimizer ------------------------------------------------------------------------------

Optimizer::Optimizer(std::string name, std::unique_ptr<OptimizerOptions> defaults)
    : name_(std::move(name)), defaults_(std::move(defaults)) {
  defaults_->validate(name_.c_str());
}

void Optimizer::init_groups(std::vector<ParamGroup> groups) {
  FOCUS_CHECK(!groups.empty(), "[{}] optimizer got an empty parameter list", name_);
  size_t total = 0;
  for (const auto& g : groups) total += g.params().size();
  FOCUS_CHECK(total > 0, "[{}] optimizer got an empty parameter list", name_);
  for (auto& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  const char* op = name_.c_str();
  if (group.options_) {
    const OptimizerOptions& o = *group.options_;
    FOCUS_CHECK(typeid(o) == typeid(*defaults_),
                "[{}] a param group's options must be the optimizer's own options type", op);
  } else {
    group.options_ = defaults_->clone();
  }
  if (group.lr_override_) group.options_->set_lr(*group.lr_override_);
  if (group.weight_decay_override_) group.options_->set_weight_decay(*group.weight_decay_override_);
  group.lr_override_.reset();
  group.weight_decay_override_.reset();
  group.options_->validate(op);

  std::unordered_set<const TensorImpl*> existing;
  for (const auto& g : groups_)
    for (const auto& p : g.params()) existing.insert(p.unsafe_impl());
  std::unordered_set<const TensorImpl*> seen;
  for (size_t i = 0; i < group.params_.size(); ++i) {
    const Tensor& p = group.params_[i];
    FOCUS_CHECK(p.defined(), "[{}] parameter {} of the group is an undefined tensor", op, i);
    FOCUS_CHECK(p.is_floating_point(), "[{}] can only optimize floating tensors, but parameter {} is {}", op, i,
                p.dtype());
    FOCUS_CHECK(p.is_leaf(), "[{}] can't optimize a non-leaf tensor (parameter {} of the group)", op, i);
    FOCUS_CHECK(seen.insert(p.unsafe_impl()).second, "[{}] parameter {} appears twice in one parameter group", op,
                i);
    FOCUS_CHECK(existing.count(p.unsafe_impl()) == 0,
                "[{}] some parameters appear in more than one parameter group (parameter {} of the new group)", op,
                i);
  }
  groups_.push_back(std::move(group));
}

Tensor Optimizer::step(const std::function<Tensor()>& closure) {
  Tensor loss;
  {
    EnableGradGuard enable;
    loss = closure();
  }
  step();
  return loss;
}

void Optimizer::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (auto& g : groups_) {
    for (const auto& p : g.params()) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (set_to_none) {
        p.set_grad(Tensor());
      } else {
        if (grad.grad_fn()) grad = grad.detach();  // PyTorch: grad.detach_() else requires_grad_(False)
        grad.zero_();
        p.set_grad(grad);
      }
    }
  }
}

double Optimizer::lr(size_t group) const {
  FOCUS_CHECK(group < groups_.size(), "[{}] param group {} out of range (the optimizer has {})", name_, group,
              groups_.size());
  return groups_[group].lr();
}

void Optimizer::set_lr(size_t group, double lr) {
  FOCUS_CHECK(group < groups_.size(), "[{}] param group {} out of range (the optimizer has {})", name_, group,
              groups_.size());
  groups_[group].set_lr(lr);
}

void Optimizer::set_lr(double lr) {
  for (auto& g : groups_) g.set_lr(lr);
}

ParamGroup Optimizer::group_with_params(const ParamGroup& group, std::vector<Tensor> params) {
  ParamGroup out(group);
  out.params_ = std::move(params);
  return out;
}

void Optimizer::set_group_options(ParamGroup& group, const OptimizerOptions& options) {
  if (group.options_) {
    const OptimizerOptions& current = *group.options_;
    FOCUS_CHECK(typeid(current) == typeid(options), "[Optimizer] a param group's options must keep their type");
  }
  group.options_ = options.clone();
}

size_t Optimizer::num_params() const {
  size_t n = 0;
  for (const auto& g : groups_) n += g.params().size();
  return n;
}

std::optional<TensorDict> Optimizer::state(const Tensor& param) const {
  auto it = state_.find(param.unsafe_impl());
  const std::optional<double> step = step_count(param);
  if (it == state_.end() && !step) return std::nullopt;
  TensorDict out;
  // PyTorch's order: step first, then the tensors in the order the optimizer created them.
  if (step) out.insert("step", scalar_tensor(*step, kFloat32));
  if (it != state_.end())
    for (const auto& [k, v] : it->second) out.insert(k, v);
  return out;
}

std::optional<double> Optimizer::step_count(const Tensor& param) const {
  auto it = steps_.find(param.unsafe_impl());
  if (it == steps_.end()) return std::nullopt;
  return it->second;
}

TensorDict& Optimizer::mutable_state(const Tensor& param) { return state_[param.unsafe_impl()]; }

const TensorDict* Optimizer::find_state(const Tensor& param) const {
  auto it = state_.find(param.unsafe_impl());
  return it == state_.end() ? nullptr : &it->second;
}

double Optimizer::increment_step(const Tensor& param) { return steps_[param.unsafe_impl()] += 1.0; }

TensorDict Optimizer::state_dict() const {
  TensorDict out;
  int64_t index = 0;
  for (const auto& g : groups_) {
    for (const auto& p : g.params()) {
      if (const auto st = state(p))
        for (const auto& [k, v] : *st) out.insert(fmt::format("state.{}.{}", index, k), v);
      ++index;
    }
  }
  save_param_groups(out);
  return out;
}

void Optimizer::save_param_groups(TensorDict& out) const {
  int64_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& g = groups_[gi];
    const std::string prefix = fmt::format("param_groups.{}.", gi);
    g.options().save(out, prefix);
    for (const auto& [k, v] : g.extras()) detail::put_number(out, prefix + k, v);
    std::vector<int64_t> ids(g.params().size());
    for (auto& id : ids) id = index++;
    out.insert(prefix + "params", tensor<int64_t>(ids, Shape{static_cast<int64_t>(ids.size())}));
  }
}

namespace {

// Parses "<int>." at the start of s; returns the int and advances s past the dot.
std::optional<int64_t> parse_index(std::string_view& s) {
  int64_t v = -1;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr == s.data() || ptr == s.data() + s.size() || *ptr != '.' || v < 0)
    return std::nullopt;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()) + 1);
  if (s.empty()) return std::nullopt;
  return v;
}

// Option keys written by OptimizerOptions::save of any optimizer plus the scheduler
// extras: everything else under param_groups.<g>. is kept in extras when it is a number.
bool is_known_extra(const std::string& key) {
  static const std::set<std::string> extras = {"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"};
  return extras.count(key) != 0;
}

}  // namespace

void Optimizer::load_state_dict(const TensorDict& dict) {
  const char* op = name_.c_str();
  // 1. Sort the keys into groups and per-parameter state.
  std::map<int64_t, TensorDict> group_entries;
  std::map<int64_t, TensorDict> state_entries;
  for (const auto& [key, value] : dict) {
    std::string_view rest(key);
    FOCUS_CHECK(value.defined(), "[{}.load_state_dict] key '{}' holds an undefined tensor", op, key);
    if (rest.substr(0, 13) == "param_groups.") {
      rest.remove_prefix(13);
      auto g = parse_index(rest);
      FOCUS_CHECK(g.has_value(), "[{}.load_state_dict] malformed key '{}' (expected param_groups.<g>.<name>)", op,
                  key);
      group_entries[*g].insert(std::string(rest), value);
    } else if (rest.substr(0, 6) == "state.") {
      rest.remove_prefix(6);
      auto i = parse_index(rest);
      FOCUS_CHECK(i.has_value(), "[{}.load_state_dict] malformed key '{}' (expected state.<i>.<name>)", op, key);
      state_entries[*i].insert(std::string(rest), value);
    } else {
      FOCUS_FAIL("[{}.load_state_dict] unexpected key '{}' (expected state.* or param_groups.*)", op, key);
    }
  }
  // 2. Groups: same count, same sizes; the saved ids map onto this optimizer's parameters.
  FOCUS_CHECK(group_entries.size() == groups_.size(),
              "[{}.load_state_dict] loaded state dict has {} parameter groups, but the optimizer has {}", op,
              group_entries.size(), groups_.size());
  std::map<int64_t, const Tensor*> id_to_param;
  std::vector<std::unique_ptr<OptimizerOptions>> new_options;
  std::vector<std::map<std::string, double>> new_extras;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto it = group_entries.find(static_cast<int64_t>(gi));
    FOCUS_CHECK(it != group_entries.end(), "[{}.load_state_dict] missing entries for param_groups.{}", op, gi);
    const TensorDict& entries = it->second;
    const Tensor* ids = entries.find("params");
    FOCUS_CHECK(ids != nullptr, "[{}.load_state_dict] missing key 'param_groups.{}.params'", op, gi);
    FOCUS_CHECK(ids->dim() == 1 && (ids->dtype() == kInt64 || ids->dtype() == kInt32),
                "[{}.load_state_dict] 'param_groups.{}.params' must be a 1-d integer tensor, got {} of shape {}", op,
                gi, ids->dtype(), ids->shape());
    const auto& params = groups_[gi].params();
    FOCUS_CHECK(ids->numel() == static_cast<int64_t>(params.size()),
                "[{}.load_state_dict] loaded param group {} has {} parameters, but the optimizer's group has {}", op,
                gi, ids->numel(), params.size());
    const auto id_values = ids->to_vector<int64_t>();
    for (size_t j = 0; j < params.size(); ++j) {
      FOCUS_CHECK(id_to_param.emplace(id_values[j], &params[j]).second,
                  "[{}.load_state_dict] parameter id {} appears twice in param_groups", op, id_values[j]);
    }
    auto options = groups_[gi].options().clone();
    std::string prefix = "";
    options->load(entries, prefix);
    options->validate(op);
    std::map<std::string, double> extras;
    for (const auto& [k, v] : entries) {
      if (!is_known_extra(k)) continue;
      extras[k] = *detail::get_number(entries, k);
    }
    new_options.push_back(std::move(options));
    new_extras.push_back(std::move(extras));
  }
  // 3. State: known names only, parameter shapes, converted to the parameter's dtype and
  // device (copies, so that stepping never writes into the caller's tensors).
  const auto names = state_names();
  std::unordered_map<const TensorImpl*, TensorDict> new_state;
  std::unordered_map<const TensorImpl*, double> new_steps;
  for (const auto& [id, entries] : state_entries) {
    auto pit = id_to_param.find(id);
    FOCUS_CHECK(pit != id_to_param.end(), "[{}.load_state_dict] state for parameter id {} that no group lists", op,
                id);
    const Tensor& p = *pit->second;
    TensorDict st;
    for (const auto& [name, value] : entries) {
      FOCUS_CHECK(std::find(names.begin(), names.end(), name) != names.end(),
                  "[{}.load_state_dict] unexpected state 'state.{}.{}' for this optimizer", op, id, name);
      if (name == "step") {
        FOCUS_CHECK(value.numel() == 1, "[{}.load_state_dict] 'state.{}.step' must hold one number, got shape {}", op,
                    id, value.shape());
        // Loading is not a hot path: one host read, then a host number (see steps_).
        new_steps[p.unsafe_impl()] = value.item<double>();
        continue;
      }
      FOCUS_CHECK(value.shape() == p.shape(),
                  "[{}.load_state_dict] 'state.{}.{}' has shape {}, but its parameter has shape {}", op, id, name,
                  value.shape(), p.shape());
      FOCUS_CHECK(value.is_floating_point(), "[{}.load_state_dict] 'state.{}.{}' must be floating, got {}", op, id,
                  name, value.dtype());
      Tensor copy = zeros(p.shape(), TensorOptions(p.dtype()).device(p.device()));
      {
        NoGradGuard no_grad;
        copy.copy_(value);
      }
      st.insert(name, copy);
    }
    if (!st.empty()) new_state.emplace(p.unsafe_impl(), std::move(st));
  }
  // 4. Commit.
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    groups_[gi].options_ = std::move(new_options[gi]);
    groups_[gi].extras_ = std::move(new_extras[gi]);
  }
  state_ = std::move(new_state);
  steps_ = std::move(new_steps);
  state_loaded();
}

}  // namespace focus::optim
