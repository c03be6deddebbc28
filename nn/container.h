#pragma once
/// Containers: nn::Sequential (chains forwards), nn::ModuleList, nn::ModuleDict, and
/// nn::Functional (a function as a module).
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/ranges.h>

#include "nn/module.h"

namespace focus::nn {

/// A module whose forward is Tensor forward(const Tensor&).
template <class M>
concept TensorModule = std::derived_from<M, Module> && requires(const M& m, const Tensor& x) {
  { m.forward(x) } -> std::convertible_to<Tensor>;
};

namespace detail {
/// Wraps a negative index like Python; error names op.
size_t wrap_index(int64_t i, size_t size, const char* op);
/// A descendant cast to M; error names op when the type differs.
template <class M>
std::shared_ptr<M> cast_module(const std::shared_ptr<Module>& m, const char* op) {
  auto p = std::dynamic_pointer_cast<M>(m);
  FOCUS_CHECK(p != nullptr, "[{}] the module is a {}, not the requested type", op, m->name());
  return p;
}
}  // namespace detail

/// A function as a parameterless module (e.g. a custom activation inside Sequential).
class Functional : public Module {
 public:
  explicit Functional(std::function<Tensor(const Tensor&)> fn, std::string name = "Functional")
      : Module(std::move(name)), fn_(std::move(fn)) {}
  Tensor forward(const Tensor& x) const { return fn_(x); }
  Tensor operator()(const Tensor& x) const { return forward(x); }

 private:
  std::function<Tensor(const Tensor&)> fn_;
};

/// Modules applied one after another; children named "0", "1", ... (or given names).
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  template <TensorModule... Ms>
  explicit Sequential(std::shared_ptr<Ms>... modules) : Sequential() {
    (push_back(std::move(modules)), ...);
  }
  /// Appends under the name of its index.
  template <TensorModule M> void push_back(std::shared_ptr<M> m) { push_back(std::to_string(size()), std::move(m)); }
  /// Appends under a given name (as PyTorch's OrderedDict form).
  template <TensorModule M> void push_back(std::string name, std::shared_ptr<M> m) {
    const M* p = m.get();
    register_module(std::move(name), m);
    items_.push_back({std::static_pointer_cast<Module>(std::move(m)), [p](const Tensor& x) { return p->forward(x); }});
  }
  /// Runs x through every module in order; an empty Sequential returns x.
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  /// The i-th module (negative counts from the end).
  std::shared_ptr<Module> operator[](int64_t i) const;
  template <class M> std::shared_ptr<M> at(int64_t i) const {
    return detail::cast_module<M>((*this)[i], "Sequential");
  }

 private:
  struct Item {
    std::shared_ptr<Module> module;
    std::function<Tensor(const Tensor&)> forward;
  };
  std::vector<Item> items_;
};

/// A list of modules registered as "0", "1", ...; no forward of its own.
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  template <class... Ms>
  explicit ModuleList(std::shared_ptr<Ms>... modules) : ModuleList() {
    (push_back(std::move(modules)), ...);
  }
  template <class M> void push_back(std::shared_ptr<M> m) {
    register_module(std::to_string(size()), m);
    modules_.push_back(std::static_pointer_cast<Module>(std::move(m)));
  }
  size_t size() const { return modules_.size(); }
  bool empty() const { return modules_.empty(); }
  std::shared_ptr<Module> operator[](int64_t i) const;
  template <class M> std::shared_ptr<M> at(int64_t i) const {
    return detail::cast_module<M>((*this)[i], "ModuleList");
  }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }
  /// As PyTorch 2.x: runs of identical children print once, "(0-3): 4 x Linear(...)".
  std::string repr() const override;

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

/// Modules by name, in insertion order; names are state_dict prefixes.
class ModuleDict : public Module {
 public:
  ModuleDict() : Module("ModuleDict") {}
  template <class M> std::shared_ptr<M> insert(std::string key, std::shared_ptr<M> m) {
    register_module(key, m);
    keys_.push_back(std::move(key));
    return m;
  }
  bool contains(const std::string& key) const;
  /// The module under key; a missing key is an error naming it.
  std::shared_ptr<Module> operator[](const std::string& key) const;
  template <class M> std::shared_ptr<M> at(const std::string& key) const {
    return detail::cast_module<M>((*this)[key], "ModuleDict");
  }
  const std::vector<std::string>& keys() const { return keys_; }
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> items() const { return named_children(); }

 private:
  std::vector<std::string> keys_;
};

}  // namespace focus::nn

/// ModuleList has begin()/end(); print it as a module (its repr), not as a range.
template <> struct fmt::is_range<focus::nn::ModuleList, char> : std::false_type {};
