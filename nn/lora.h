#pragma once
/// LoRA adapters as Hugging Face PEFT makes them (LoraConfig, get_peft_model, merge_adapter,
/// save_pretrained, PeftModel.from_pretrained), for the Linear layers of any focus model.
///
/// An adapted Linear computes base(x) + lora_B(lora_A(dropout(x))) * scaling, with
/// scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora); lora_A [r, in] starts
/// kaiming-uniform (a = sqrt(5)), lora_B [out, r] zeros, so a fresh adapter changes nothing.
/// Every other parameter of the model is frozen (PEFT's bias="none").
///
/// Files are PEFT's: `adapter_model.safetensors` with keys
/// "base_model.model.<module path>.lora_A.weight" / ".lora_B.weight" and
/// `adapter_config.json` (PEFT's LoraConfig fields, sorted, indented by 2).
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor_dict.h"
#include "nn/linear.h"

namespace focus::nn {

/// PEFT's LoraConfig (the fields focus supports; the rest are written with PEFT's defaults
/// and, when a file sets them otherwise, refused on load).
struct LoraConfig {
  int64_t r_ = 8;
  double lora_alpha_ = 8.0;
  double lora_dropout_ = 0.0;
  /// Module names: a module is adapted when its dotted path equals a name or ends with
  /// "." + name (PEFT's list form).
  std::vector<std::string> target_modules_;
  /// PEFT's single-string form: a regular expression (ECMAScript syntax, which agrees with
  /// Python's re for the usual patterns) that must match a module's whole dotted path
  /// (re.fullmatch). Exclusive with target_modules_.
  std::string target_modules_regex_;
  /// scaling = lora_alpha / sqrt(r) instead of lora_alpha / r.
  bool use_rslora_ = false;
  /// Written as null when empty ("CAUSAL_LM", "SEQ_CLS", ... otherwise).
  std::string task_type_;
  /// Written as null when empty.
  std::string base_model_name_or_path_;
  /// PEFT sets it for adapters loaded for inference only (from_pretrained, is_trainable false).
  bool inference_mode_ = false;

  LoraConfig& r(int64_t v) { r_ = v; return *this; }
  LoraConfig& lora_alpha(double v) { lora_alpha_ = v; return *this; }
  LoraConfig& lora_dropout(double v) { lora_dropout_ = v; return *this; }
  LoraConfig& target_modules(std::vector<std::string> v) { target_modules_ = std::move(v); return *this; }
  LoraConfig& target_modules_regex(std::string v) { target_modules_regex_ = std::move(v); return *this; }
  LoraConfig& use_rslora(bool v) { use_rslora_ = v; return *this; }
  LoraConfig& task_type(std::string v) { task_type_ = std::move(v); return *this; }
  LoraConfig& base_model_name_or_path(std::string v) { base_model_name_or_path_ = std::move(v); return *this; }
  LoraConfig& inference_mode(bool v) { inference_mode_ = v; return *this; }

  /// lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
  double scaling() const;
  /// Throws "[lora] ..." for r <= 0, lora_alpha <= 0 (or not finite), lora_dropout outside
  /// [0, 1), no target (or both forms), an invalid regex.
  void validate() const;
  /// adapter_config.json's text, as PEFT's save_pretrained writes it (sorted keys, indent 2).
  std::string to_json() const;
  /// Parses adapter_config.json text (what: the file, for messages). Refuses, naming the
  /// field, a peft_type other than "LORA" and every option focus does not implement
  /// (bias other than "none", fan_in_fan_out, use_dora, modules_to_save, rank_pattern,
  /// layers_to_transform, ...); unknown fields are ignored, as PEFT does.
  static LoraConfig from_json(const std::string& text, const std::string& what = "adapter_config.json");
};

/// A model with LoRA adapters: PEFT's PeftModel / LoraModel. It holds the model (the
/// user keeps calling the model's own forward) and the adapted Linears by path.
class LoraModel {
 public:
  /// PEFT's get_peft_model(model, config): validates config, adapts every Linear matched by
  /// target_modules, freezes every other parameter (requires_grad false). Errors: no module
  /// matched (the message names the patterns and some of the model's Linears), a matched
  /// module that is not a Linear, a Linear that has an adapter already.
  LoraModel(std::shared_ptr<Module> model, LoraConfig config);

  /// PEFT's PeftModel.from_pretrained(model, dir, is_trainable): reads dir's
  /// adapter_config.json, adapts model and loads adapter_model.safetensors into it
  /// (load_adapter's checks). Unless is_trainable the adapters are frozen too and
  /// config().inference_mode_ is true.
  static LoraModel from_pretrained(std::shared_ptr<Module> model, const std::string& dir, bool is_trainable = false);

  /// PEFT's save_pretrained: creates dir and writes dir/adapter_model.safetensors (the
  /// adapters only, metadata format=pt) and dir/adapter_config.json, each atomically.
  void save_pretrained(const std::string& dir) const;
  /// Loads dir's adapter into this model: its config must agree (r, lora_alpha, use_rslora,
  /// target_modules) and its tensors must pass set_adapter_state_dict's checks.
  void load_adapter(const std::string& dir);

  /// PEFT's get_peft_model_state_dict: "base_model.model.<path>.lora_A.weight" [r, in] and
  /// ".lora_B.weight" [out, r] for each adapted Linear, in model order (detached, shared).
  TensorDict adapter_state_dict() const;
  /// Copies an adapter state dict in (no grad, converting dtype/device). Nothing is copied
  /// when anything is wrong: one "[lora] ..." error lists every missing key, unexpected key
  /// and wrong shape. An error while merged (the merged weights would go stale).
  void set_adapter_state_dict(const TensorDict& dict);

  /// PEFT's merge_adapter: W += scaling * B @ A in every adapted Linear; outputs equal the
  /// unmerged forward up to float rounding. An error when merged already.
  void merge_adapter();
  /// PEFT's unmerge_adapter: W -= scaling * B @ A. An error when not merged.
  void unmerge_adapter();
  bool merged() const { return merged_; }
  /// PEFT's merge_and_unload: merges, removes the adapters and returns the plain model (its
  /// parameters stay frozen, as PEFT leaves them). This LoraModel is unusable afterwards.
  std::shared_ptr<Module> merge_and_unload();

  /// The adapter parameters (lora_A, lora_B of each adapted Linear), for the optimizer.
  std::vector<Tensor> parameters() const;
  /// PEFT's get_nb_trainable_parameters: (trainable, all) parameter element counts.
  std::pair<int64_t, int64_t> get_nb_trainable_parameters() const;
  /// "trainable params: 1,024 || all params: 10,240 || trainable%: 10.0000", as PEFT prints.
  std::string trainable_parameters_summary() const;

  /// PEFT's targeted_module_names: the dotted paths of the adapted Linears, in model order.
  const std::vector<std::string>& targeted_module_names() const { return names_; }
  const std::vector<std::shared_ptr<Linear>>& adapted_layers() const { return layers_; }
  const std::shared_ptr<Module>& model() const { return model_; }
  const LoraConfig& config() const { return config_; }

 private:
  void check_usable(const char* op) const;

  std::shared_ptr<Module> model_;
  LoraConfig config_;
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<Linear>> layers_;
  bool merged_ = false;
  bool unloaded_ = false;
};

/// PEFT's get_peft_model for LoRA: std::make_shared<LoraModel>(model, config).
std::shared_ptr<LoraModel> get_peft_model(std::shared_ptr<Module> model, const LoraConfig& config);

}  // namespace focus::nn
