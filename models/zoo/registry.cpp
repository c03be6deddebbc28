// models/zoo/registry.h: the models the `focus` command line knows.
#include "models/zoo/registry.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "models/zoo/parse.h"
#include "nn/quantized.h"

// Each model's entry point (models/<name>/program.h) is included here as the models land.
#include "models/g2p/program.h"
#include "models/char_gpt/program.h"
#include "models/spam/program.h"
#include "models/vit/program.h"

namespace focus::zoo {

using training::Config;
namespace {

/// The built-in models, in the order `focus models` lists them.
std::vector<ModelEntry> builtin_models() {
  return {
      models::g2p::model_entry(),
      models::char_gpt::model_entry(),
      models::spam::model_entry(),
      models::vit::model_entry(),
  };
}

std::vector<ModelEntry>& registry() {
  static std::vector<ModelEntry> all = [] {
    auto v = builtin_models();
    for (const auto& m : v) {
      FOCUS_CHECK(!m.name.empty(), "[models] a built-in model has no name");
      FOCUS_CHECK(m.default_config && m.train && m.evaluate, "[models] model '{}' lacks default_config, train or evaluate",
                  m.name);
    }
    return v;
  }();
  return all;
}

}  // namespace

const std::vector<std::string>& command_names() {
  static const std::vector<std::string> names{"predict", "generate", "classify"};
  return names;
}

const std::vector<ModelEntry>& models() { return registry(); }

const ModelEntry& find_model(const std::string& name) {
  const auto& all = registry();
  for (const auto& m : all) {
    if (m.name == name) return m;
  }
  std::vector<std::string> names;
  for (const auto& m : all) names.push_back(m.name);
  FOCUS_FAIL("[models] unknown model '{}'; the models are: {}", name,
             names.empty() ? std::string("(none built in)") : fmt::format("{}", fmt::join(names, ", ")));
}

void add_model(ModelEntry entry) {
  FOCUS_CHECK(!entry.name.empty(), "[models] add_model: the model has no name");
  FOCUS_CHECK(entry.default_config && entry.train && entry.evaluate,
              "[models] add_model: model '{}' lacks default_config, train or evaluate", entry.name);
  auto& all = registry();
  for (const auto& m : all) FOCUS_CHECK(m.name != entry.name, "[models] add_model: model '{}' exists already", entry.name);
  all.push_back(std::move(entry));
}

void remove_model(const std::string& name) {
  auto& all = registry();
  all.erase(std::remove_if(all.begin(), all.end(), [&](const ModelEntry& m) { return m.name == name; }), all.end());
}

// ---- CommandArgs / EvalArgs ----------------------------------------------------------------

const std::string& CommandArgs::option(const std::string& name) const {
  auto it = options.find(name);
  FOCUS_CHECK(it != options.end(), "[{}] no option --{}", command.empty() ? "command" : command, name);
  return it->second;
}

int64_t CommandArgs::integer(const std::string& name) const {
  const std::string& v = option(name);
  int64_t out = 0;
  FOCUS_CHECK(parse_int(v, &out), "[{}] --{}: expected an integer, got '{}'", command.empty() ? "command" : command, name,
              v);
  return out;
}

double CommandArgs::real(const std::string& name) const {
  const std::string& v = option(name);
  double out = 0;
  FOCUS_CHECK(parse_real(v, &out), "[{}] --{}: expected a number, got '{}'",
              command.empty() ? "command" : command, name, v);
  return out;
}

bool CommandArgs::flag(const std::string& name) const {
  const std::string& v = option(name);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off" || v.empty()) return false;
  FOCUS_FAIL("[{}] --{}: expected true or false, got '{}'", command.empty() ? "command" : command, name, v);
}

std::vector<std::string> CommandArgs::list(const std::string& name) const {
  const std::string& v = option(name);
  std::vector<std::string> out;
  if (v.empty()) return out;
  size_t start = 0;
  while (true) {
    const size_t nl = v.find('\n', start);
    out.push_back(v.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

Config EvalArgs::config() const {
  Config c = config_from_checkpoint(checkpoint);
  for (const auto& o : overrides) c.apply(o);
  return c;
}

CommandOption int8_option() {
  return {"int8", "run the model with int8 weights (dynamic quantization of the Linear layers and attention projections)",
          "false", true};
}

bool int8_requested(const CommandArgs& args) { return args.options.count("int8") != 0 && args.flag("int8"); }

void quantize_if_asked(bool int8, nn::Module& model, Device device, const std::string& command, std::ostream& note) {
  if (!int8) return;
  FOCUS_CHECK(device.is_cpu(), "[{}] --int8 runs on the CPU only (as PyTorch's quantize_dynamic), not on {}", command,
              device);
  const int64_t n = nn::quantize_dynamic(model);
  note << fmt::format("int8: {} layers quantized (Linear layers and attention input projections: int8 weights per "
                      "output channel, activations per row)\n",
                      n);
}

Config config_from_checkpoint(const std::string& path) {
  auto meta = training::checkpoint_meta(path);
  auto it = meta.find("config");
  FOCUS_CHECK(it != meta.end(), "[checkpoint] {} has no stored config (not written by `focus train`)", path);
  const auto model = meta.find("model");
  if (model != meta.end()) {
    for (const auto& entry : models()) {
      if (entry.name != model->second) continue;
      Config c = entry.checkpoint_config ? entry.checkpoint_config(meta) : entry.default_config();
      c.merge_json(it->second, path + " (config)");
      return c;
    }
  }
  return Config::from_json(it->second);
}

}  // namespace focus::zoo
