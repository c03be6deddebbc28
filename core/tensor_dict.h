#pragma once
/// TensorDict: an insertion-ordered map from names to tensors, the one container for
/// state_dicts (modules, optimizers, schedulers), safetensors files and checkpoints.
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace focus {

class TensorDict {
 public:
  using Item = std::pair<std::string, Tensor>;

  TensorDict() = default;
  TensorDict(std::initializer_list<Item> items) {
    for (const auto& [k, v] : items) insert(k, v);
  }

  /// Adds a new key; a duplicate key is an error naming it.
  void insert(const std::string& key, const Tensor& value) {
    FOCUS_CHECK(index_.find(key) == index_.end(), "[TensorDict] duplicate key '{}'", key);
    index_.emplace(key, items_.size());
    items_.emplace_back(key, value);
  }
  /// Adds or replaces.
  void set(const std::string& key, const Tensor& value) {
    auto it = index_.find(key);
    if (it == index_.end()) insert(key, value);
    else items_[it->second].second = value;
  }
  bool contains(const std::string& key) const { return index_.count(key) != 0; }
  /// The tensor under key; a missing key is an error naming it.
  const Tensor& at(const std::string& key) const {
    auto it = index_.find(key);
    FOCUS_CHECK(it != index_.end(), "[TensorDict] no key '{}'", key);
    return items_[it->second].second;
  }
  /// Pointer to the tensor under key, or nullptr.
  const Tensor* find(const std::string& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &items_[it->second].second;
  }
  /// Removes key if present; returns whether it was.
  bool erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(it->second));
    rebuild_index();
    return true;
  }
  /// The entries whose keys start with prefix, with the prefix removed.
  TensorDict with_prefix_removed(std::string_view prefix) const {
    TensorDict out;
    for (const auto& [k, v] : items_)
      if (k.size() >= prefix.size() && std::string_view(k).substr(0, prefix.size()) == prefix)
        out.insert(k.substr(prefix.size()), v);
    return out;
  }
  /// Inserts every entry of other under prefix + key.
  void update(const TensorDict& other, std::string_view prefix = {}) {
    for (const auto& [k, v] : other.items_) set(std::string(prefix) + k, v);
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    out.reserve(items_.size());
    for (const auto& it : items_) out.push_back(it.first);
    return out;
  }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  void rebuild_index() {
    index_.clear();
    for (size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first, i);
  }
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace focus
