#include "nn/quantized.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "nn/linear.h"

namespace focus::nn {

int64_t quantize_dynamic(Module& module, const std::vector<std::string>& names) {
  const std::set<std::string> wanted(names.begin(), names.end());
  std::set<std::string> found;
  std::vector<std::pair<std::string, Linear*>> todo;
  for (const auto& [name, m] : module.named_modules()) {
    auto* linear = dynamic_cast<Linear*>(m.get());
    if (linear == nullptr) continue;
    if (!wanted.empty()) {
      if (!wanted.count(name)) continue;
      found.insert(name);
    }
    const std::string shown = name.empty() ? std::string("(the module itself)") : name;
    FOCUS_CHECK(!linear->has_lora(),
                "[quantize_dynamic] Linear '{}' has a LoRA adapter: merge and unload it first (merge_and_unload)",
                shown);
    if (linear->is_quantized()) continue;
    FOCUS_CHECK(linear->weight().device().is_cpu(),
                "[quantize_dynamic] int8 layers run on the CPU only (as PyTorch's); Linear '{}' is on {}", shown,
                linear->weight().device());
    FOCUS_CHECK(linear->options().in_features_ >= 1 && linear->options().out_features_ >= 1 &&
                    linear->options().in_features_ <= 66000,
                "[quantize_dynamic] Linear '{}' has in_features {} and out_features {}: int8 layers need 1 .. 66000 "
                "and at least 1",
                shown, linear->options().in_features_, linear->options().out_features_);
    todo.emplace_back(name, linear);
  }
  for (const auto& n : wanted)
    FOCUS_CHECK(found.count(n), "[quantize_dynamic] '{}' is not the name of a Linear in the module", n);
  for (auto& [name, linear] : todo) linear->quantize_int8();
  return static_cast<int64_t>(todo.size());
}

std::vector<std::string> quantized_layer_names(const TensorDict& state_dict) {
  std::vector<std::string> out;
  const std::string suffix = ".weight_scale";
  for (const auto& [key, t] : state_dict) {
    std::string layer;
    if (key == "weight_scale") {
      layer = "";
    } else if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
      layer = key.substr(0, key.size() - suffix.size());
    } else {
      continue;
    }
    const Tensor* w = state_dict.find(layer.empty() ? std::string("weight") : layer + ".weight");
    if (w != nullptr && w->defined() && w->dtype() == kInt8) out.push_back(layer);
  }
  return out;
}

}  // namespace focus::nn
