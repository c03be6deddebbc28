#include "optim/checkpoint.h"

#include <cstring>

#include "autograd/node.h"
#include "core/creation.h"
#include "nn/module.h"
#include "optim/lr_scheduler.h"
#include "optim/grad_scaler.h"
#include "optim/optimizer.h"

namespace focus::optim {

namespace {

constexpr const char* kFormat = "focus-checkpoint";
constexpr const char* kVersion = "1";

Tensor rng_tensor(RandomState s) {
  int64_t v[2];
  std::memcpy(&v[0], &s.seed, 8);
  std::memcpy(&v[1], &s.offset, 8);
  return tensor<int64_t>({v[0], v[1]});
}

RandomState rng_state(const Tensor& t, const std::string& key, const std::string& path) {
  FOCUS_CHECK(t.dtype() == kInt64 && t.shape() == Shape{2},
              "[checkpoint] '{}' in '{}' must be int64 [2] (seed, offset), got {} {}", key, path, t.dtype(), t.shape());
  const auto v = t.to_vector<int64_t>();
  RandomState s;
  std::memcpy(&s.seed, &v[0], 8);
  std::memcpy(&s.offset, &v[1], 8);
  return s;
}

/// Deep copies, so a backup does not change when the live objects are updated in place.
TensorDict clone_dict(const TensorDict& d) {
  TensorDict out;
  NoGradGuard ng;
  for (const auto& [k, v] : d) out.insert(k, v.defined() ? v.detach().clone() : v);
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, const nn::Module& model, const Optimizer* optimizer,
                     const LRScheduler* scheduler, int64_t step, const Generator* generator,
                     const SafetensorsMetadata& extra_metadata, const GradScaler* scaler) {
  SafetensorsMetadata meta;
  for (const auto& [k, v] : extra_metadata) {
    FOCUS_CHECK(k != "format" && k != "version" && k != "optimizer" && k != "scheduler",
                "[checkpoint] metadata key '{}' is reserved", k);
    meta[k] = v;
  }
  meta["format"] = kFormat;
  meta["version"] = kVersion;
  TensorDict all;
  all.update(model.state_dict(), "model.");
  if (optimizer) {
    meta["optimizer"] = optimizer->name();
    all.update(optimizer->state_dict(), "optimizer.");
  }
  if (scheduler) {
    meta["scheduler"] = scheduler->name();
    all.update(scheduler->state_dict(), "scheduler.");
  }
  if (scaler && scaler->is_enabled()) all.update(scaler->state_dict(), "grad_scaler.");
  all.insert("step", scalar_tensor(step, kInt64));
  all.insert("rng.default", rng_tensor(default_generator().get_state()));
  if (generator) all.insert("rng.generator", rng_tensor(generator->get_state()));
  try {
    save_safetensors(all, path, meta);
  } catch (const Error& e) {
    FOCUS_FAIL("[checkpoint] saving '{}' failed: {}", path, e.what());
  }
}

Checkpoint read_checkpoint(const std::string& path) {
  Checkpoint c;
  TensorDict all;
  try {
    all = load_safetensors(path, &c.metadata);
  } catch (const Error& e) {
    FOCUS_FAIL("[checkpoint] reading '{}' failed: {}", path, e.what());
  }
  auto fmt_it = c.metadata.find("format");
  FOCUS_CHECK(fmt_it != c.metadata.end() && fmt_it->second == kFormat,
              "[checkpoint] '{}' is not a focus checkpoint (metadata format is '{}', expected '{}')", path,
              fmt_it == c.metadata.end() ? std::string("<none>") : fmt_it->second, kFormat);
  auto ver_it = c.metadata.find("version");
  FOCUS_CHECK(ver_it != c.metadata.end() && ver_it->second == kVersion,
              "[checkpoint] '{}' has checkpoint version '{}'; this build reads version {}", path,
              ver_it == c.metadata.end() ? std::string("<none>") : ver_it->second, kVersion);
  for (const auto& [k, v] : all) {
    if (k.rfind("model.", 0) == 0) c.model.insert(k.substr(6), v);
    else if (k.rfind("optimizer.", 0) == 0) c.optimizer.insert(k.substr(10), v);
    else if (k.rfind("scheduler.", 0) == 0) c.scheduler.insert(k.substr(10), v);
    else if (k.rfind("grad_scaler.", 0) == 0) c.grad_scaler.insert(k.substr(12), v);
    else if (k == "step") {
      FOCUS_CHECK(v.dtype() == kInt64 && v.numel() == 1, "[checkpoint] 'step' in '{}' must be one int64, got {} {}",
                  path, v.dtype(), v.shape());
      c.step = v.item<int64_t>();
    } else if (k == "rng.default") c.default_rng = rng_state(v, k, path);
    else if (k == "rng.generator") c.generator_rng = rng_state(v, k, path);
    else FOCUS_FAIL("[checkpoint] '{}' has an unknown entry '{}'", path, k);
  }
  FOCUS_CHECK(all.contains("step"), "[checkpoint] '{}' has no 'step'", path);
  FOCUS_CHECK(all.contains("rng.default"), "[checkpoint] '{}' has no 'rng.default'", path);
  return c;
}

int64_t load_checkpoint(const std::string& path, nn::Module& model, Optimizer* optimizer, LRScheduler* scheduler,
                        Generator* generator, GradScaler* scaler) {
  Checkpoint c = read_checkpoint(path);
  const auto& meta = c.metadata;
  auto saved = [&](const char* part) {
    auto it = meta.find(part);
    return it == meta.end() ? std::string() : it->second;
  };
  // Checks that need nothing applied first.
  if (optimizer) {
    FOCUS_CHECK(!saved("optimizer").empty(), "[checkpoint] '{}' holds no optimizer state", path);
    FOCUS_CHECK(saved("optimizer") == optimizer->name(),
                "[checkpoint] '{}' holds {} state, cannot load it into {}", path, saved("optimizer"), optimizer->name());
  }
  if (scheduler) {
    FOCUS_CHECK(!saved("scheduler").empty(), "[checkpoint] '{}' holds no scheduler state", path);
    FOCUS_CHECK(saved("scheduler") == scheduler->name(),
                "[checkpoint] '{}' holds {} state, cannot load it into {}", path, saved("scheduler"), scheduler->name());
  }
  if (generator)
    FOCUS_CHECK(c.generator_rng.has_value(), "[checkpoint] '{}' holds no state for the extra generator", path);

  // Backups, so that a failure halfway (say the optimizer's groups do not match) leaves
  // every object as it was.
  const TensorDict model_backup = clone_dict(model.state_dict());
  const TensorDict opt_backup = optimizer ? clone_dict(optimizer->state_dict()) : TensorDict();
  const TensorDict sched_backup = scheduler ? clone_dict(scheduler->state_dict()) : TensorDict();
  const char* part = "model";
  try {
    model.load_state_dict(c.model, /*strict=*/true);
    part = "optimizer";
    if (optimizer) optimizer->load_state_dict(c.optimizer);
    part = "scheduler";
    if (scheduler) scheduler->load_state_dict(c.scheduler);
    part = "grad scaler";
    if (scaler && scaler->is_enabled() && !c.grad_scaler.empty()) scaler->load_state_dict(c.grad_scaler);
  } catch (const Error& e) {
    try {
      model.load_state_dict(model_backup, true);
      if (optimizer) optimizer->load_state_dict(opt_backup);
      if (scheduler) scheduler->load_state_dict(sched_backup);
    } catch (const Error&) {
      // Best effort: the error below is the one that matters.
    }
    FOCUS_FAIL("[checkpoint] loading the {} from '{}' failed: {}", part, path, e.what());
  }
  default_generator().set_state(c.default_rng);
  if (generator) generator->set_state(*c.generator_rng);
  return c.step;
}

}  // namespace focus::optim
