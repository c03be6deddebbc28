#include "nn/lora.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "autograd/node.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"

namespace focus::nn {

namespace {

using json = nlohmann::json;

constexpr const char* kKeyPrefix = "base_model.model.";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kConfigFile = "adapter_config.json";

std::string quoted_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", '" : "'") + v[i] + "'";
  return s + "]";
}

std::string targets_text(const LoraConfig& c) {
  return c.target_modules_regex_.empty() ? quoted_list(c.target_modules_) : "'" + c.target_modules_regex_ + "'";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  FOCUS_CHECK(f.good(), "[lora] cannot read '{}': {}", path, io::errno_text());
  std::ostringstream ss;
  ss << f.rdbuf();
  FOCUS_CHECK(!f.bad(), "[lora] cannot read '{}'", path);
  return ss.str();
}

// PEFT's _maybe_include_all_linear_layers / check_target_module_exists, for the two forms.
struct Matcher {
  explicit Matcher(const LoraConfig& c) : config(c) {
    if (!c.target_modules_regex_.empty()) re = std::regex(c.target_modules_regex_, std::regex::ECMAScript);
  }
  bool operator()(const std::string& path) const {
    if (!config.target_modules_regex_.empty()) return std::regex_match(path, re);
    for (const auto& t : config.target_modules_)
      if (path == t || ends_with(path, "." + t)) return true;
    return false;
  }
  const LoraConfig& config;
  std::regex re;
};

}  // namespace

// ---- LoraConfig -------------------------------------------------------------------------

double LoraConfig::scaling() const {
  return use_rslora_ ? lora_alpha_ / std::sqrt(static_cast<double>(r_)) : lora_alpha_ / static_cast<double>(r_);
}

void LoraConfig::validate() const {
  FOCUS_CHECK(r_ > 0, "[lora] r must be a positive integer, got {}", r_);
  FOCUS_CHECK(std::isfinite(lora_alpha_) && lora_alpha_ > 0.0, "[lora] lora_alpha must be positive, got {}",
              lora_alpha_);
  FOCUS_CHECK(lora_dropout_ >= 0.0 && lora_dropout_ < 1.0, "[lora] lora_dropout must be in [0, 1), got {}",
              lora_dropout_);
  FOCUS_CHECK(target_modules_.empty() || target_modules_regex_.empty(),
              "[lora] give target_modules as a list of names or as one regex, not both (got {} and '{}')",
              quoted_list(target_modules_), target_modules_regex_);
  FOCUS_CHECK(!target_modules_.empty() || !target_modules_regex_.empty(),
              "[lora] target_modules is empty: name the Linear layers to adapt (e.g. {{\"c_attn\", \"c_proj\"}})");
  FOCUS_CHECK(target_modules_regex_ != "all-linear",
              "[lora] target_modules='all-linear' is not supported by focus: list the Linear layers' names");
  for (const auto& t : target_modules_) FOCUS_CHECK(!t.empty(), "[lora] target_modules has an empty name");
  if (!target_modules_regex_.empty()) {
    try {
      std::regex re(target_modules_regex_, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      FOCUS_FAIL("[lora] target_modules regex '{}' is invalid: {}", target_modules_regex_, e.what());
    }
  }
}

std::string LoraConfig::to_json() const {
  json j = json::object();  // nlohmann's object is a sorted map: PEFT's sort_keys=True
  const auto null_if_empty = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  // PEFT 0.18's LoraConfig fields, those focus does not implement at their defaults.
  j["alora_invocation_tokens"] = nullptr;
  j["alpha_pattern"] = json::object();
  j["arrow_config"] = nullptr;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = null_if_empty(base_model_name_or_path_);
  j["bias"] = "none";
  j["corda_config"] = nullptr;
  j["ensure_weight_tying"] = false;
  j["eva_config"] = nullptr;
  j["exclude_modules"] = nullptr;
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = inference_mode_;
  j["init_lora_weights"] = true;
  j["layer_replication"] = nullptr;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["loftq_config"] = json::object();
  // An integral alpha is written as Python's int (16, not 16.0), as PEFT users write it.
  if (lora_alpha_ == std::floor(lora_alpha_) && std::abs(lora_alpha_) < 9.0e15)
    j["lora_alpha"] = static_cast<int64_t>(lora_alpha_);
  else
    j["lora_alpha"] = lora_alpha_;
  j["lora_bias"] = false;
  j["lora_dropout"] = lora_dropout_;
  j["megatron_config"] = nullptr;
  j["megatron_core"] = "megatron.core";
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["qalora_group_size"] = 16;
  j["r"] = r_;
  j["rank_pattern"] = json::object();
  j["revision"] = nullptr;
  j["target_modules"] = target_modules_regex_.empty() ? json(target_modules_) : json(target_modules_regex_);
  j["target_parameters"] = nullptr;
  j["task_type"] = null_if_empty(task_type_);
  j["trainable_token_indices"] = nullptr;
  j["use_dora"] = false;
  j["use_qalora"] = false;
  j["use_rslora"] = use_rslora_;
  return j.dump(2) + "\n";
}

LoraConfig LoraConfig::from_json(const std::string& text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    FOCUS_FAIL("[lora] {} is not valid JSON: {}", what, e.what());
  }
  FOCUS_CHECK(j.is_object(), "[lora] {} must hold a JSON object, got {}", what, j.type_name());
  const auto has = [&](const char* k) { return j.contains(k) && !j.at(k).is_null(); };
  FOCUS_CHECK(j.contains("peft_type"), "[lora] {} has no peft_type (expected \"LORA\")", what);
  FOCUS_CHECK(j.at("peft_type").is_string() && j.at("peft_type").get<std::string>() == "LORA",
              "[lora] {}: peft_type is {}, but focus loads LoRA adapters only (\"LORA\")", what,
              j.at("peft_type").dump());
  LoraConfig c;
  // r
  FOCUS_CHECK(has("r") && j.at("r").is_number_integer(), "[lora] {}: r must be an integer, got {}", what,
              j.contains("r") ? j.at("r").dump() : std::string("nothing"));
  c.r_ = j.at("r").get<int64_t>();
  if (j.contains("lora_alpha")) {
    FOCUS_CHECK(j.at("lora_alpha").is_number(), "[lora] {}: lora_alpha must be a number, got {}", what,
                j.at("lora_alpha").dump());
    c.lora_alpha_ = j.at("lora_alpha").get<double>();
  }
  if (has("lora_dropout")) {
    FOCUS_CHECK(j.at("lora_dropout").is_number(), "[lora] {}: lora_dropout must be a number, got {}", what,
                j.at("lora_dropout").dump());
    c.lora_dropout_ = j.at("lora_dropout").get<double>();
  }
  FOCUS_CHECK(has("target_modules"),
              "[lora] {}: target_modules is missing or null (PEFT's per-architecture defaults are not known to focus)",
              what);
  const json& t = j.at("target_modules");
  if (t.is_string()) {
    c.target_modules_regex_ = t.get<std::string>();
  } else {
    FOCUS_CHECK(t.is_array(), "[lora] {}: target_modules must be a list of names or a regex string, got {}", what,
                t.dump());
    for (const auto& e : t) {
      FOCUS_CHECK(e.is_string(), "[lora] {}: target_modules must hold strings, got {}", what, e.dump());
      c.target_modules_.push_back(e.get<std::string>());
    }
  }
  if (has("use_rslora")) {
    FOCUS_CHECK(j.at("use_rslora").is_boolean(), "[lora] {}: use_rslora must be true or false", what);
    c.use_rslora_ = j.at("use_rslora").get<bool>();
  }
  for (auto [key, dst] : {std::pair{"task_type", &c.task_type_}, {"base_model_name_or_path", &c.base_model_name_or_path_}})
    if (has(key)) {
      FOCUS_CHECK(j.at(key).is_string(), "[lora] {}: {} must be a string or null", what, key);
      *dst = j.at(key).get<std::string>();
    }
  if (has("inference_mode") && j.at("inference_mode").is_boolean()) c.inference_mode_ = j.at("inference_mode");

  // Options focus does not implement: refused unless at PEFT's default.
  struct Unsupported {
    const char* key;
    json default_value;
    const char* meaning;
  };
  const Unsupported unsupported[] = {
      {"bias", "none", "focus trains no biases"},
      {"fan_in_fan_out", false, "focus Linears store [out, in]"},
      {"use_dora", false, "DoRA"},
      {"lora_bias", false, "a bias in lora_B"},
      {"modules_to_save", nullptr, "fully trained extra modules"},
      {"layers_to_transform", nullptr, "layer selection by index"},
      {"layers_pattern", nullptr, "layer selection by index"},
      {"rank_pattern", json::object(), "per-module ranks"},
      {"alpha_pattern", json::object(), "per-module alphas"},
      {"exclude_modules", nullptr, "excluded modules"},
      {"layer_replication", nullptr, "layer replication"},
      {"target_parameters", nullptr, "adapted parameters"},
      {"trainable_token_indices", nullptr, "trainable tokens"},
      {"use_qalora", false, "QA-LoRA"},
      {"alora_invocation_tokens", nullptr, "activated LoRA"},
  };
  for (const auto& u : unsupported) {
    if (!j.contains(u.key)) continue;
    const json& v = j.at(u.key);
    // An empty list or dict counts as PEFT's null / {} default.
    const bool is_default = v == u.default_value || ((v.is_array() || v.is_object()) && v.empty() &&
                                                     (u.default_value.is_null() || u.default_value.is_object()));
    FOCUS_CHECK(is_default, "[lora] {}: {} = {} is not supported by focus ({}); expected {}", what, u.key, v.dump(),
                u.meaning, u.default_value.dump());
  }
  if (j.contains("init_lora_weights"))
    FOCUS_CHECK(j.at("init_lora_weights").is_boolean() || j.at("init_lora_weights").is_string(),
                "[lora] {}: init_lora_weights must be a boolean or a string", what);
  try {
    c.validate();
  } catch (const Error& e) {
    FOCUS_FAIL("{} (in {})", e.what(), what);
  }
  return c;
}

// ---- LoraModel --------------------------------------------------------------------------

LoraModel::LoraModel(std::shared_ptr<Module> model, LoraConfig config) : model_(std::move(model)), config_(std::move(config)) {
  FOCUS_CHECK(model_ != nullptr, "[lora] the model is null");
  config_.validate();
  const Matcher match(config_);
  std::vector<std::string> linear_names;
  std::vector<std::pair<std::string, std::shared_ptr<Linear>>> found;
  for (const auto& [path, m] : model_->named_modules()) {
    auto* lin = dynamic_cast<Linear*>(m.get());
    if (lin != nullptr) {
      if (ends_with(path, ".lora_A") || ends_with(path, ".lora_B") || path == "lora_A" || path == "lora_B") continue;
      linear_names.push_back(path);
    }
    if (path.empty() || !match(path)) continue;
    FOCUS_CHECK(lin != nullptr,
                "[lora] target module '{}' is a {}, not a Linear: LoRA adapts Linear layers only (as PEFT; "
                "MultiheadAttention's packed in_proj_weight is no Linear either, its out_proj is)",
                path, m->name());
    FOCUS_CHECK(!lin->has_lora(), "[lora] target module '{}' has a LoRA adapter already", path);
    found.emplace_back(path, std::static_pointer_cast<Linear>(m));
  }
  if (found.empty()) {
    std::vector<std::string> some(linear_names.begin(), linear_names.begin() + std::min<size_t>(linear_names.size(), 8));
    FOCUS_FAIL("[lora] target_modules {} matched no module of the model; its Linear layers are {}{} ({} in all)",
               targets_text(config_), quoted_list(some), linear_names.size() > some.size() ? " ..." : "",
               linear_names.size());
  }
  // Freeze the whole base model first (PEFT's _mark_only_adapters_as_trainable, bias="none").
  for (const Tensor& p : model_->parameters()) p.requires_grad_(false);
  const double scaling = config_.scaling();
  for (auto& [path, lin] : found) {
    lin->add_lora(config_.r_, scaling, config_.lora_dropout_);
    names_.push_back(path);
    layers_.push_back(lin);
  }
  if (config_.inference_mode_)
    for (const Tensor& p : parameters()) p.requires_grad_(false);
}

std::shared_ptr<LoraModel> get_peft_model(std::shared_ptr<Module> model, const LoraConfig& config) {
  return std::make_shared<LoraModel>(std::move(model), config);
}

void LoraModel::check_usable(const char* op) const {
  FOCUS_CHECK(!unloaded_, "[lora] {}: this LoraModel was merged and unloaded; its adapters are gone", op);
}

std::vector<Tensor> LoraModel::parameters() const {
  std::vector<Tensor> out;
  for (const auto& l : layers_)
    if (l->has_lora()) {
      out.push_back(l->lora_A()->weight());
      out.push_back(l->lora_B()->weight());
    }
  return out;
}

std::pair<int64_t, int64_t> LoraModel::get_nb_trainable_parameters() const {
  return {model_->num_parameters(true), model_->num_parameters(false)};
}

std::string LoraModel::trainable_parameters_summary() const {
  const auto [trainable, all] = get_nb_trainable_parameters();
  const double pct = all > 0 ? 100.0 * static_cast<double>(trainable) / static_cast<double>(all) : 0.0;
  // Python's "{:,d}".
  const auto grouped = [](int64_t v) {
    std::string digits = std::to_string(v), out;
    for (size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return out;
  };
  return fmt::format("trainable params: {} || all params: {} || trainable%: {:.4f}", grouped(trainable), grouped(all),
                     pct);
}

TensorDict LoraModel::adapter_state_dict() const {
  check_usable("adapter_state_dict");
  TensorDict d;
  for (size_t i = 0; i < layers_.size(); ++i) {
    d.insert(kKeyPrefix + names_[i] + ".lora_A.weight", layers_[i]->lora_A()->weight().detach());
    d.insert(kKeyPrefix + names_[i] + ".lora_B.weight", layers_[i]->lora_B()->weight().detach());
  }
  return d;
}

void LoraModel::set_adapter_state_dict(const TensorDict& dict) {
  check_usable("load");
  FOCUS_CHECK(!merged_, "[lora] cannot load adapter weights while the adapter is merged: unmerge_adapter() first");
  std::vector<std::string> missing, unexpected, bad;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  const TensorDict own = adapter_state_dict();
  for (const auto& key : own.keys()) {
    const Tensor& dst = own.at(key);
    const Tensor* src = dict.find(key);
    if (src == nullptr) {
      missing.push_back(key);
    } else if (!src->defined() || !src->is_floating_point()) {
      bad.push_back(fmt::format("'{}' is not a floating-point tensor", key));
    } else if (src->shape() != dst.shape()) {
      bad.push_back(fmt::format("'{}' has shape {} but the model's adapter has {}", key, src->shape(), dst.shape()));
    } else {
      copies.emplace_back(dst, *src);
    }
  }
  for (const auto& key : dict.keys())
    if (!own.contains(key)) unexpected.push_back(key);
  if (!missing.empty() || !unexpected.empty() || !bad.empty()) {
    std::string msg = "[lora] the adapter does not fit this model:";
    if (!missing.empty()) msg += " missing keys " + quoted_list(missing) + ";";
    if (!unexpected.empty()) msg += " unexpected keys " + quoted_list(unexpected) + ";";
    for (const auto& b : bad) msg += " " + b + ";";
    msg.pop_back();
    FOCUS_FAIL("{}", msg);
  }
  NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src);
}

void LoraModel::save_pretrained(const std::string& dir) const {
  check_usable("save_pretrained");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  FOCUS_CHECK(!ec, "[lora] save_pretrained: cannot create the directory '{}': {}", dir, ec.message());
  save_safetensors(adapter_state_dict(), (std::filesystem::path(dir) / kWeightsFile).string(), {{"format", "pt"}});
  io::write_file_atomic((std::filesystem::path(dir) / kConfigFile).string(), "lora", config_.to_json());
}

void LoraModel::load_adapter(const std::string& dir) {
  check_usable("load_adapter");
  const std::string config_path = (std::filesystem::path(dir) / kConfigFile).string();
  const LoraConfig c = LoraConfig::from_json(read_text(config_path), config_path);
  std::vector<std::string> diffs;
  if (c.r_ != config_.r_) diffs.push_back(fmt::format("r is {} in the file, {} in the model", c.r_, config_.r_));
  if (c.lora_alpha_ != config_.lora_alpha_)
    diffs.push_back(fmt::format("lora_alpha is {} in the file, {} in the model", c.lora_alpha_, config_.lora_alpha_));
  if (c.use_rslora_ != config_.use_rslora_)
    diffs.push_back(fmt::format("use_rslora is {} in the file, {} in the model", c.use_rslora_, config_.use_rslora_));
  // PEFT keeps target_modules as a set, so the file's order means nothing.
  const auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  if (sorted(c.target_modules_) != sorted(config_.target_modules_) ||
      c.target_modules_regex_ != config_.target_modules_regex_)
    diffs.push_back(fmt::format("target_modules are {} in the file, {} in the model", targets_text(c),
                                targets_text(config_)));
  if (!diffs.empty()) {
    std::string msg;
    for (const auto& d : diffs) msg += (msg.empty() ? "" : "; ") + d;
    FOCUS_FAIL("[lora] the adapter in '{}' was made with another config: {}", dir, msg);
  }
  const std::string weights_path = (std::filesystem::path(dir) / kWeightsFile).string();
  if (!std::filesystem::exists(weights_path) && std::filesystem::exists(std::filesystem::path(dir) / "adapter_model.bin"))
    FOCUS_FAIL("[lora] '{}' holds adapter_model.bin (a pickle), which focus does not read: save it with "
               "safe_serialization=True to get {}",
               dir, kWeightsFile);
  set_adapter_state_dict(load_safetensors(weights_path));
}

LoraModel LoraModel::from_pretrained(std::shared_ptr<Module> model, const std::string& dir, bool is_trainable) {
  const std::string config_path = (std::filesystem::path(dir) / kConfigFile).string();
  LoraConfig c = LoraConfig::from_json(read_text(config_path), config_path);
  c.inference_mode_ = !is_trainable;
  LoraModel m(std::move(model), c);
  m.load_adapter(dir);
  return m;
}

void LoraModel::merge_adapter() {
  check_usable("merge_adapter");
  FOCUS_CHECK(!merged_, "[lora] merge_adapter: the adapter is merged already");
  for (auto& l : layers_) l->merge_lora();
  merged_ = true;
}

void LoraModel::unmerge_adapter() {
  check_usable("unmerge_adapter");
  FOCUS_CHECK(merged_, "[lora] unmerge_adapter: the adapter is not merged");
  for (auto& l : layers_) l->unmerge_lora();
  merged_ = false;
}

std::shared_ptr<Module> LoraModel::merge_and_unload() {
  check_usable("merge_and_unload");
  for (auto& l : layers_) {
    if (!merged_) l->merge_lora();
    l->remove_lora();
  }
  unloaded_ = true;
  return model_;
}

}  // namespace focus::nn
