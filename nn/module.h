#pragma once
/// nn::Module: the base of every layer. A module owns named parameters, named buffers and
/// named child modules, registered in its constructor; names compose into PyTorch's dotted
/// state_dict keys ("layers.0.self_attn.in_proj_weight").
#include <fmt/format.h>

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/tensor_dict.h"

namespace focus::nn {

/// What load_state_dict(..., strict = false) skipped: keys the module expected but the dict
/// lacked, and keys the dict had but the module does not know.
struct LoadStateDictResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  /// name: the type name shown when printing ("Linear").
  explicit Module(std::string name = "Module");
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Registers a parameter under name (no '.', unique within this module). The tensor
  /// becomes a leaf that requires grad (unless requires_grad is false) and is returned.
  /// An undefined tensor registers an absent parameter (as PyTorch's `bias=None`): it is
  /// skipped by parameters() and state_dict().
  Tensor register_parameter(std::string name, Tensor t, bool requires_grad = true);
  /// Registers a buffer (state that is not trained, e.g. a positional table). Persistent
  /// buffers appear in state_dict(); non-persistent ones only move with to().
  Tensor register_buffer(std::string name, Tensor t, bool persistent = true);
  /// Registers a child module under name; returns it.
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    static_assert(std::is_base_of_v<Module, M>, "register_module needs a Module");
    register_module_impl(std::move(name), std::static_pointer_cast<Module>(m));
    return m;
  }
  /// Replaces the child registered under name (keeps its position); returns the new one.
  template <class M>
  std::shared_ptr<M> replace_module(const std::string& name, std::shared_ptr<M> m) {
    replace_module_impl(name, std::static_pointer_cast<Module>(m));
    return m;
  }

  /// Removes the child registered under name (as `del module.name` in PyTorch); an error
  /// when there is none. Used by nn::LoraModel::merge_and_unload to drop adapters.
  void unregister_module(const std::string& name);
  /// Removes the parameter or buffer registered under name (as `del module.name`); an error
  /// when there is none.
  void unregister_tensor(const std::string& name);
  /// Puts a buffer holding t in place of the parameter or buffer registered under name (as
  /// `del module.name; module.register_buffer(name, t)`) and returns it. Used by the int8
  /// quantization of Linear and MultiheadAttention, whose weights become buffers.
  Tensor replace_with_buffer(const std::string& name, Tensor t);

  /// Parameters of this module and (recurse) its descendants, each tensor once (tied
  /// parameters are listed under their first name), in registration order, depth first.
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  /// Direct children, in registration order.
  std::vector<std::shared_ptr<Module>> children() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  /// This module (name "") and every descendant, depth first, each once.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
  std::vector<std::shared_ptr<Module>> modules() const;
  /// Calls fn on every descendant (children first) and then on this module, as PyTorch.
  void apply(const std::function<void(Module&)>& fn);

  /// Sets training mode here and in every descendant (Dropout is active only in training).
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Moves / converts every parameter and buffer in place. The Tensor handles stay the same
  /// (the handle's storage, strides and dtype are replaced), so optimizers and other
  /// holders of parameter handles keep working; gradients are converted alongside.
  /// to(dtype) converts floating tensors only (integer buffers keep their dtype), as PyTorch.
  void to(Device device);
  void to(DType dtype);
  /// Clears gradients: set to undefined (default) or filled with zeros.
  void zero_grad(bool set_to_none = true);
  /// Number of parameter elements (each tied tensor once); only those requiring grad when
  /// trainable_only.
  int64_t num_parameters(bool trainable_only = false) const;

  /// Parameters and persistent buffers by dotted name, detached (sharing storage).
  TensorDict state_dict() const;
  /// Copies values into the parameters and persistent buffers (in place, under no-grad,
  /// converting dtype/device), so handles held elsewhere stay valid. Nothing is copied if
  /// anything is wrong: one focus::Error lists every missing and unexpected key (strict) and
  /// every shape mismatch (always). Returns the keys skipped when not strict.
  LoadStateDictResult load_state_dict(const TensorDict& dict, bool strict = true);

  /// The type name given to the constructor.
  const std::string& name() const { return name_; }
  /// The text inside the parentheses when printing, e.g. "in_features=4, out_features=2, bias=True".
  virtual std::string extra_repr() const;
  /// PyTorch-like tree: "Sequential(\n  (0): Linear(in_features=4, ...)\n)".
  virtual std::string repr() const;

 private:
  struct Param {
    std::string name;
    Tensor tensor;
  };
  struct Buffer {
    std::string name;
    Tensor tensor;
    bool persistent;
  };
  void register_module_impl(std::string name, std::shared_ptr<Module> m);
  void replace_module_impl(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name, const char* what) const;
  void collect_named_modules(const std::string& prefix, std::vector<std::pair<std::string, std::shared_ptr<Module>>>& out,
                             std::vector<const Module*>& seen) const;
  void collect_state(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  void convert(DType* dtype, const Device* device);

  std::string name_;
  bool training_ = true;
  std::vector<Param> params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

/// Formats a double like Python's repr (1e-05, 0.1, 0.0), for extra_repr.
std::string py_float(double v);
/// Formats a shape like a Python tuple: "(4,)", "(2, 3)".
std::string py_tuple(const Shape& s);
/// "True" / "False".
inline const char* py_bool(bool b) { return b ? "True" : "False"; }

}  // namespace focus::nn

/// fmt::format("{}", module) prints module.repr(); also for shared_ptr<Linear> etc.
template <class M, class Char>
  requires std::derived_from<M, focus::nn::Module>
struct fmt::formatter<M, Char> : fmt::formatter<std::string_view, Char> {
  template <typename Ctx> auto format(const M& m, Ctx& ctx) const {
    const std::string s = m.repr();
    return fmt::formatter<std::string_view, Char>::format(std::string_view(s), ctx);
  }
};
template <class M, class Char>
  requires std::derived_from<M, focus::nn::Module>
struct fmt::formatter<std::shared_ptr<M>, Char> : fmt::formatter<std::string_view, Char> {
  template <typename Ctx> auto format(const std::shared_ptr<M>& m, Ctx& ctx) const {
    const std::string s = m ? m->repr() : std::string("None");
    return fmt::formatter<std::string_view, Char>::format(std::string_view(s), ctx);
  }
};
