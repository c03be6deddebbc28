#include "nn/container.h"

namespace focus::nn {

size_t detail::wrap_index(int64_t i, size_t size, const char* op) {
  const int64_t n = static_cast<int64_t>(size);
  FOCUS_CHECK(i >= -n && i < n, "[{}] index {} is out of range for {} modules", op, i, n);
  return static_cast<size_t>(i < 0 ? i + n : i);
}

Tensor Sequential::forward(const Tensor& x) const {
  Tensor y = x;
  for (const auto& it : items_) y = it.forward(y);
  return y;
}

std::shared_ptr<Module> Sequential::operator[](int64_t i) const {
  return items_[detail::wrap_index(i, items_.size(), "Sequential")].module;
}

std::shared_ptr<Module> ModuleList::operator[](int64_t i) const {
  return modules_[detail::wrap_index(i, modules_.size(), "ModuleList")];
}

std::string ModuleList::repr() const {
  if (modules_.empty()) return name() + "()";
  auto indent = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      out += c;
      if (c == '\n') out += "  ";
    }
    return out;
  };
  std::string s = name() + "(";
  size_t start = 0;
  while (start < modules_.size()) {
    const std::string r = modules_[start]->repr();
    size_t end = start + 1;
    while (end < modules_.size() && modules_[end]->repr() == r) ++end;
    if (end - start == 1) s += fmt::format("\n  ({}): {}", start, indent(r));
    else s += fmt::format("\n  ({}-{}): {} x {}", start, end - 1, end - start, indent(r));
    start = end;
  }
  return s + "\n)";
}

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& k : keys_)
    if (k == key) return true;
  return false;
}

std::shared_ptr<Module> ModuleDict::operator[](const std::string& key) const {
  for (const auto& [k, m] : named_children())
    if (k == key) return m;
  FOCUS_FAIL("[ModuleDict] no module under key '{}'", key);
}

}  // namespace focus::nn
