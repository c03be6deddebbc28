#include "nn/module.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"

namespace focus::nn {

Module::Module(std::string name) : name_(std::move(name)) {}
Module::~Module() = default;

void Module::check_new_name(const std::string& name, const char* what) const {
  FOCUS_CHECK(!name.empty(), "[{}] {} name can't be empty", name_, what);
  FOCUS_CHECK(name.find('.') == std::string::npos, "[{}] {} name can't contain '.', got '{}'", name_, what, name);
  const bool taken =
      std::any_of(params_.begin(), params_.end(), [&](const Param& p) { return p.name == name; }) ||
      std::any_of(buffers_.begin(), buffers_.end(), [&](const Buffer& b) { return b.name == name; }) ||
      std::any_of(children_.begin(), children_.end(), [&](const auto& c) { return c.first == name; });
  FOCUS_CHECK(!taken, "[{}] attribute '{}' already exists", name_, name);
}

Tensor Module::register_parameter(std::string name, Tensor t, bool requires_grad) {
  check_new_name(name, "parameter");
  if (t.defined()) {
    FOCUS_CHECK(t.is_leaf(), "[{}] parameter '{}' must be a leaf tensor (detach it first)", name_, name);
    FOCUS_CHECK(!requires_grad || t.is_floating_point(),
                "[{}] parameter '{}' must be floating point to require grad, got {}", name_, name, t.dtype());
    t.requires_grad_(requires_grad);
  }
  params_.push_back({std::move(name), t});
  return t;
}

Tensor Module::register_buffer(std::string name, Tensor t, bool persistent) {
  check_new_name(name, "buffer");
  buffers_.push_back({std::move(name), t, persistent});
  return t;
}

void Module::register_module_impl(std::string name, std::shared_ptr<Module> m) {
  check_new_name(name, "module");
  FOCUS_CHECK(m != nullptr, "[{}] module '{}' is null", name_, name);
  FOCUS_CHECK(m.get() != this, "[{}] a module can't be its own child", name_);
  children_.emplace_back(std::move(name), std::move(m));
}

void Module::replace_module_impl(const std::string& name, std::shared_ptr<Module> m) {
  FOCUS_CHECK(m != nullptr, "[{}] module '{}' is null", name_, name);
  for (auto& c : children_)
    if (c.first == name) {
      c.second = std::move(m);
      return;
    }
  FOCUS_FAIL("[{}] no child module named '{}'", name_, name);
}

void Module::unregister_module(const std::string& name) {
  for (auto it = children_.begin(); it != children_.end(); ++it)
    if (it->first == name) {
      children_.erase(it);
      return;
    }
  FOCUS_FAIL("[{}] no child module named '{}'", name_, name);
}

void Module::unregister_tensor(const std::string& name) {
  for (auto it = params_.begin(); it != params_.end(); ++it)
    if (it->name == name) {
      params_.erase(it);
      return;
    }
  for (auto it = buffers_.begin(); it != buffers_.end(); ++it)
    if (it->name == name) {
      buffers_.erase(it);
      return;
    }
  FOCUS_FAIL("[{}] no parameter or buffer named '{}'", name_, name);
}

Tensor Module::replace_with_buffer(const std::string& name, Tensor t) {
  unregister_tensor(name);
  return register_buffer(name, std::move(t));
}

// ---- traversal --------------------------------------------------------------------------

void Module::collect_named_modules(const std::string& prefix,
                                   std::vector<std::pair<std::string, std::shared_ptr<Module>>>& out,
                                   std::vector<const Module*>& seen) const {
  for (const auto& [n, c] : children_) {
    if (std::find(seen.begin(), seen.end(), c.get()) != seen.end()) continue;
    seen.push_back(c.get());
    const std::string full = prefix.empty() ? n : prefix + "." + n;
    out.emplace_back(full, c);
    c->collect_named_modules(full, out, seen);
  }
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  // Modules are meant to be held by shared_ptr; one built on the stack still lists itself
  // with an aliasing pointer that owns nothing.
  std::shared_ptr<Module> self = std::const_pointer_cast<Module>(weak_from_this().lock());
  if (!self) self = std::shared_ptr<Module>(std::shared_ptr<Module>(), const_cast<Module*>(this));
  out.emplace_back("", self);
  std::vector<const Module*> seen{this};
  collect_named_modules("", out, seen);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::modules() const {
  std::vector<std::shared_ptr<Module>> out;
  for (auto& [n, m] : named_modules()) out.push_back(m);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& c : children_) out.push_back(c.second);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const { return children_; }

namespace {
std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::unordered_set<const TensorImpl*> seen;
  auto add = [&](const std::string& prefix, const Module& m) {
    for (const auto& p : m.params_)
      if (p.tensor.defined() && seen.insert(p.tensor.unsafe_impl()).second)
        out.emplace_back(join_name(prefix, p.name), p.tensor);
  };
  if (!recurse) {
    add("", *this);
    return out;
  }
  for (const auto& [prefix, m] : named_modules()) add(prefix, *m);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  std::unordered_set<const TensorImpl*> seen;
  auto add = [&](const std::string& prefix, const Module& m) {
    for (const auto& b : m.buffers_)
      if (b.tensor.defined() && seen.insert(b.tensor.unsafe_impl()).second)
        out.emplace_back(join_name(prefix, b.name), b.tensor);
  };
  if (!recurse) {
    add("", *this);
    return out;
  }
  for (const auto& [prefix, m] : named_modules()) add(prefix, *m);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [n, c] : children_) c->apply(fn);
  fn(*this);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

// ---- conversion -------------------------------------------------------------------------

namespace {
// Replaces the data behind t's handle with a converted copy: every copy of the handle
// (an optimizer's parameter list, a tied module) sees the new data.
void convert_in_place(const Tensor& t, DType* dtype, const Device* device) {
  const DType dt = dtype && t.is_floating_point() ? *dtype : t.dtype();
  const Device dev = device ? *device : t.device();
  if (dt == t.dtype() && dev == t.device()) return;
  Tensor c = t.detach().to(dt).to(dev).contiguous();
  if (c.storage() == t.storage()) c = c.clone();
  TensorImpl* impl = t.unsafe_impl();
  impl->storage = c.storage();
  impl->strides = c.strides();
  impl->offset = c.storage_offset();
  impl->dtype = c.dtype();
  if (impl->autograd) {
    // The gradient accumulator of the old leaf is tied to the old dtype/device.
    impl->autograd->grad_accumulator.reset();
    if (impl->autograd->grad) {
      Tensor g = *impl->autograd->grad;
      impl->autograd->grad = std::make_shared<Tensor>(g.detach().to(dt).to(dev).contiguous());
    }
  }
}
}  // namespace

void Module::convert(DType* dtype, const Device* device) {
  NoGradGuard guard;
  std::unordered_set<const TensorImpl*> done;
  for (const auto& [prefix, m] : named_modules()) {
    for (auto& p : m->params_)
      if (p.tensor.defined() && done.insert(p.tensor.unsafe_impl()).second) convert_in_place(p.tensor, dtype, device);
    for (auto& b : m->buffers_)
      if (b.tensor.defined() && done.insert(b.tensor.unsafe_impl()).second) convert_in_place(b.tensor, dtype, device);
  }
}

void Module::to(Device device) { convert(nullptr, &device); }

void Module::to(DType dtype) {
  FOCUS_CHECK(is_floating(dtype), "[{}.to] expected a floating dtype, got {}", name_, dtype);
  convert(&dtype, nullptr);
}

void Module::zero_grad(bool set_to_none) {
  NoGradGuard guard;
  for (const Tensor& p : parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none) p.set_grad(Tensor());
    else g.detach().zero_();
  }
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const Tensor& p : parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

// ---- state_dict -------------------------------------------------------------------------

void Module::collect_state(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& p : params_)
    if (p.tensor.defined()) out.emplace_back(prefix + p.name, p.tensor);
  for (const auto& b : buffers_)
    if (b.persistent && b.tensor.defined()) out.emplace_back(prefix + b.name, b.tensor);
  for (const auto& [n, c] : children_) c->collect_state(prefix + n + ".", out);
}

TensorDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> items;
  collect_state("", items);
  TensorDict d;
  for (auto& [k, t] : items) d.insert(k, t.detach());
  return d;
}

namespace {
std::string quoted_list(const std::vector<std::string>& keys) {
  std::string s;
  for (size_t i = 0; i < keys.size(); ++i) s += (i ? ", \"" : "\"") + keys[i] + "\"";
  return s;
}
}  // namespace

LoadStateDictResult Module::load_state_dict(const TensorDict& dict, bool strict) {
  std::vector<std::pair<std::string, Tensor>> items;
  collect_state("", items);
  LoadStateDictResult result;
  std::vector<std::string> mismatched;
  std::unordered_set<std::string> expected;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  for (const auto& [k, t] : items) {
    expected.insert(k);
    const Tensor* src = dict.find(k);
    if (!src || !src->defined()) {
      result.missing_keys.push_back(k);
      continue;
    }
    if (src->shape() != t.shape()) {
      mismatched.push_back(fmt::format("size mismatch for {}: copying a param with shape {} from checkpoint, the shape "
                                       "in current model is {}.",
                                       k, src->shape(), t.shape()));
      continue;
    }
    copies.emplace_back(t, *src);
  }
  for (const auto& [k, v] : dict)
    if (!expected.count(k)) result.unexpected_keys.push_back(k);

  const bool key_errors = strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty());
  if (key_errors || !mismatched.empty()) {
    std::string msg = fmt::format("[load_state_dict] Error(s) in loading state_dict for {}:", name_);
    if (strict && !result.unexpected_keys.empty())
      msg += "\n\tUnexpected key(s) in state_dict: " + quoted_list(result.unexpected_keys) + ".";
    if (strict && !result.missing_keys.empty())
      msg += "\n\tMissing key(s) in state_dict: " + quoted_list(result.missing_keys) + ".";
    for (const auto& m : mismatched) msg += "\n\t" + m;
    FOCUS_FAIL("{}", msg);
  }
  NoGradGuard guard;
  for (auto& [dst, src] : copies)
    if (!dst.is_same(src) && !(dst.storage() == src.storage() && dst.storage_offset() == src.storage_offset() &&
                               dst.strides() == src.strides() && dst.dtype() == src.dtype()))
      dst.copy_(src);
  return result;
}

// ---- printing ---------------------------------------------------------------------------

std::string Module::extra_repr() const { return ""; }

namespace {
// PyTorch's _addindent: indent every line but the first.
std::string add_indent(const std::string& s, int n) {
  std::string out;
  const std::string pad(static_cast<size_t>(n), ' ');
  for (char c : s) {
    out += c;
    if (c == '\n') out += pad;
  }
  return out;
}
}  // namespace

std::string Module::repr() const {
  std::vector<std::string> extra_lines;
  const std::string extra = extra_repr();
  if (!extra.empty()) {
    size_t start = 0;
    while (true) {
      size_t nl = extra.find('\n', start);
      extra_lines.push_back(extra.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  std::vector<std::string> child_lines;
  for (const auto& [n, c] : children_) child_lines.push_back("(" + n + "): " + add_indent(c->repr(), 2));
  std::string s = name_ + "(";
  if (extra_lines.size() == 1 && child_lines.empty()) {
    s += extra_lines[0];
  } else if (!extra_lines.empty() || !child_lines.empty()) {
    for (const auto& l : extra_lines) s += "\n  " + l;
    for (const auto& l : child_lines) s += "\n  " + l;
    s += "\n";
  }
  return s + ")";
}

std::string py_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string py_tuple(const Shape& s) {
  if (s.size() == 1) return fmt::format("({},)", s[0]);
  return fmt::format("({})", fmt::join(s, ", "));
}

}  // namespace focus::nn
