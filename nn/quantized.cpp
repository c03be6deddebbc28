#include "nn/quantized.h"

#include <algorithm>
#include <mutex>
#include <set>

#include "autograd/functions/quantized.h"
#include "autograd/node.h"
#include "backends/common/int8_math.h"
#include "core/error.h"
#include "nn/attention.h"
#include "nn/linear.h"

namespace focus::nn {

struct Int8Weight::Cache {
  std::mutex mutex;
  // What the packed weight was made from: the storages and their versions.
  const void* q_storage = nullptr;
  const void* scale_storage = nullptr;
  uint64_t q_version = 0, scale_version = 0;
  Int8PackedWeight packed;
};

Int8Weight Int8Weight::quantize(const Tensor& weight, const char* op) {
  FOCUS_CHECK(weight.defined() && weight.dim() == 2, "[{}] expected a 2-D weight to quantize", op);
  FOCUS_CHECK(weight.device().is_cpu(),
              "[{}] int8 layers run on the CPU only (as PyTorch's quantize_dynamic); the weight is on {}", op,
              weight.device());
  NoGradGuard no_grad;
  Int8Weight w;
  std::tie(w.q_, w.scale_) = quantize_per_channel_int8(weight);
  w.cache_ = std::make_shared<Cache>();
  w.cache_->packed = pack_int8(w.q_, w.scale_);  // checks the sizes before the caller changes anything
  w.cache_->q_storage = w.q_.storage().get();
  w.cache_->scale_storage = w.scale_.storage().get();
  w.cache_->q_version = w.q_.version();
  w.cache_->scale_version = w.scale_.version();
  return w;
}

Tensor Int8Weight::bias_buffer(const Tensor& bias) {
  NoGradGuard no_grad;
  return bias.detach().to(kFloat32);
}

Tensor Int8Weight::linear(const Tensor& x, const Tensor& bias, int64_t rows_begin, int64_t rows) const {
  FOCUS_CHECK(defined(), "[linear_int8] the int8 weight is undefined");
  Int8PackedWeight packed;
  {
    // load_state_dict and to() write or replace the buffers: repack when they changed.
    std::lock_guard<std::mutex> lock(cache_->mutex);
    Cache& c = *cache_;
    const void* qs = q_.storage().get();
    const void* ss = scale_.storage().get();
    if (qs != c.q_storage || ss != c.scale_storage || q_.version() != c.q_version ||
        scale_.version() != c.scale_version) {
      c.packed = pack_int8(q_, scale_);
      c.q_storage = qs;
      c.scale_storage = ss;
      c.q_version = q_.version();
      c.scale_version = scale_.version();
    }
    packed = c.packed;
  }
  const Tensor b = bias.defined() && bias.dtype() != kFloat32 ? bias.to(kFloat32) : bias;
  const int64_t n = q_.size(0);
  if (rows < 0) rows = n - rows_begin;
  FOCUS_CHECK(rows_begin >= 0 && rows >= 0 && rows_begin + rows <= n,
              "[linear_int8] rows {} .. {} of a weight of {} rows", rows_begin, rows_begin + rows, n);
  // The kernels start at a block of 16 rows: compute from the block's start and drop the rest.
  const int64_t start = rows_begin / common::kInt8BlockN * common::kInt8BlockN;
  const Tensor y = linear_int8(x, packed, b, start, rows_begin + rows - start);
  return start == rows_begin ? y : y.narrow(-1, rows_begin - start, rows);
}

int64_t quantize_dynamic(Module& module, const std::vector<std::string>& names) {
  const std::set<std::string> wanted(names.begin(), names.end());
  std::set<std::string> found;
  std::vector<std::pair<std::string, Linear*>> todo;
  std::vector<MultiheadAttention*> attention;
  for (const auto& [name, m] : module.named_modules()) {
    if (auto* mha = dynamic_cast<MultiheadAttention*>(m.get())) {
      if (!wanted.empty()) {
        if (!wanted.count(name)) continue;
        found.insert(name);
      }
      if (mha->is_quantized()) continue;
      FOCUS_CHECK(mha->in_proj_weight().defined() ? mha->in_proj_weight().device().is_cpu()
                                                  : mha->q_proj_weight().device().is_cpu(),
                  "[quantize_dynamic] int8 layers run on the CPU only (as PyTorch's); MultiheadAttention '{}' is not "
                  "on the CPU", name);
      attention.push_back(mha);
      continue;
    }
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
                    linear->options().in_features_ <= common::kMaxInt8K,
                "[quantize_dynamic] Linear '{}' has in_features {} and out_features {}: int8 layers need 1 .. {} "
                "and at least 1",
                shown, linear->options().in_features_, linear->options().out_features_, common::kMaxInt8K);
    todo.emplace_back(name, linear);
  }
  for (const auto& n : wanted)
    FOCUS_CHECK(found.count(n), "[quantize_dynamic] '{}' is not the name of a Linear or MultiheadAttention in the module",
                n);
  for (auto* mha : attention) mha->quantize_int8();
  for (auto& [name, linear] : todo) linear->quantize_int8();
  return static_cast<int64_t>(todo.size() + attention.size());
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
