// Fuzz target: the checkpoint loader (optim/checkpoint.h: load_checkpoint, with the reader
// of the run metadata in training/run.h). A tiny model, AdamW (two groups, after one step,
// so it has state), SequentialLR(LinearLR, CosineAnnealingLR), an extra Generator and a
// GradScaler are built afresh for every input; the input is written as a checkpoint file and
// loaded into them. A load that fails with focus::Error must leave every object bit for bit
// as it was (model, optimizer, scheduler, scaler, both generators); an accepted one must
// train on: one more step runs.
//
// Inputs are checkpoint files, or edits of a valid one (see edited_checkpoint).
//
// Seeds: FOCUS_FUZZ_WRITE_SEED=PATH fuzz_checkpoint writes a valid checkpoint of these
// objects to PATH and exits.
#include <cstring>

#include "focus/focus.h"
#include "fuzz.h"
#include "models/zoo/registry.h"
#include "training/run.h"
#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "optim/grad_scaler.h"
#include "optim/lr_scheduler.h"

using namespace focus;

namespace {

struct Objects {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::AdamW> opt;
  std::shared_ptr<optim::LinearLR> warm;
  std::shared_ptr<optim::CosineAnnealingLR> cosine;
  std::unique_ptr<optim::SequentialLR> sched;
  std::unique_ptr<Generator> gen;
  std::unique_ptr<optim::GradScaler> scaler;

  Objects() {
    manual_seed(1);
    model = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 6), std::make_shared<nn::LayerNorm>(6),
                                             std::make_shared<nn::Linear>(6, 3));
    std::vector<Tensor> decay, no_decay;
    for (const auto& [name, p] : model->named_parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
    opt = std::make_unique<optim::AdamW>(
        std::vector<optim::ParamGroup>{optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
        optim::AdamWOptions().lr(1e-2).weight_decay(0.1));
    warm = std::make_shared<optim::LinearLR>(*opt, 0.1, 1.0, 3);
    cosine = std::make_shared<optim::CosineAnnealingLR>(*opt, 10);
    sched = std::make_unique<optim::SequentialLR>(*opt, std::vector<std::shared_ptr<optim::LRScheduler>>{warm, cosine},
                                                  std::vector<int64_t>{3});
    gen = std::make_unique<Generator>(7);
    scaler = std::make_unique<optim::GradScaler>(optim::GradScalerOptions().init_scale(256.0));
  }

  // One training step: what a resumed run does next.
  void train_step() {
    Tensor x = randn({5, 4}, {}, gen.get());
    Tensor y = randint(0, 3, {5}, TensorOptions().dtype(kInt64), gen.get());
    Tensor loss = cross_entropy(model->forward(x), y);
    opt->zero_grad();
    scaler->scale(loss).backward();
    scaler->step(*opt);
    scaler->update();
    sched->step();
  }
};

// Bytes of every entry, for a bit-for-bit comparison.
struct Snapshot {
  std::vector<std::tuple<std::string, DType, Shape, std::vector<uint8_t>>> entries;
  bool operator==(const Snapshot&) const = default;
};

void add(Snapshot& s, const std::string& prefix, const TensorDict& d) {
  for (const auto& [k, v] : d) {
    Tensor c = v.contiguous();
    std::vector<uint8_t> bytes(static_cast<size_t>(c.numel()) * c.element_size());
    if (!bytes.empty()) std::memcpy(bytes.data(), c.data_ptr(), bytes.size());
    s.entries.emplace_back(prefix + k, c.dtype(), c.shape(), std::move(bytes));
  }
}

Snapshot snapshot(const Objects& o) {
  Snapshot s;
  add(s, "model.", o.model->state_dict());
  add(s, "optimizer.", o.opt->state_dict());
  add(s, "scheduler.", o.sched->state_dict());
  add(s, "grad_scaler.", o.scaler->state_dict());
  for (const auto& [i, lr] : std::vector<std::pair<int, double>>{{0, o.opt->param_groups()[0].lr()},
                                                                  {1, o.opt->param_groups()[1].lr()}}) {
    std::vector<uint8_t> b(sizeof lr);
    std::memcpy(b.data(), &lr, sizeof lr);
    s.entries.emplace_back("lr." + std::to_string(i), kFloat64, Shape{}, b);
  }
  for (const auto& [name, st] : {std::pair<const char*, RandomState>{"rng.default", default_generator().get_state()},
                                 {"rng.generator", o.gen->get_state()}}) {
    std::vector<uint8_t> b(sizeof st);
    std::memcpy(b.data(), &st, sizeof st);
    s.entries.emplace_back(name, kUInt8, Shape{}, b);
  }
  return s;
}

std::string describe_difference(const Snapshot& a, const Snapshot& b) {
  if (a.entries.size() != b.entries.size())
    return "entry count " + std::to_string(a.entries.size()) + " -> " + std::to_string(b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i)
    if (a.entries[i] != b.entries[i]) return "entry " + std::get<0>(a.entries[i]) + " / " + std::get<0>(b.entries[i]);
  return "?";
}

}  // namespace

// Inputs starting with 'M' are edits of a valid checkpoint (the objects' own), so that the
// fuzzer reaches the values the loaders interpret instead of stopping at the file format:
// after the 'M', each 11 bytes [op, entry, dtype, 8 value bytes] change one entry (op % 5:
// 0 a 0-d tensor of the dtype holding the value bytes, 1 the entry's shape filled with them,
// 2 the entry removed, 3 the entry reshaped to one dim, 4 a metadata value set to the bytes).
std::vector<uint8_t> edited_checkpoint(const uint8_t* data, size_t size, bool* ok) {
  static const auto base = [] {
    Objects o;
    o.train_step();
    const std::string path = (focus_fuzz::scratch_dir() / "base.safetensors").string();
    optim::save_checkpoint(path, *o.model, o.opt.get(), o.sched.get(), 1, o.gen.get(),
                           {{"model", "fuzz"}, {"config", "{\"steps\": 10, \"lr\": 0.01}"}}, o.scaler.get());
    SafetensorsMetadata meta;
    TensorDict dict = load_safetensors(path, &meta);
    return std::make_pair(std::move(dict), std::move(meta));
  }();
  TensorDict d = base.first;
  SafetensorsMetadata meta = base.second;
  static const char* const kMetaKeys[] = {"format", "version", "optimizer", "scheduler", "model", "config"};
  for (size_t at = 1; at + 11 <= size; at += 11) {
    const uint8_t* c = data + at;
    const std::vector<std::string> keys = d.keys();
    const uint8_t op = c[0] % 5;
    if (op == 4) {
      meta[kMetaKeys[c[1] % 6]] = std::string(reinterpret_cast<const char*>(c + 3), 8 - c[2] % 9);
      continue;
    }
    if (keys.empty()) break;
    const std::string& key = keys[c[1] % keys.size()];
    const Tensor old = d.at(key);
    const auto dtype = static_cast<DType>(c[2] % 9);  // every DType, int8 included
    if (op == 0 || op == 1) {
      Tensor t = zeros(op == 0 ? Shape{} : old.shape(), TensorOptions().dtype(dtype));
      auto* p = static_cast<uint8_t*>(t.data_ptr());
      const size_t es = t.element_size();
      for (int64_t i = 0; i < t.numel(); ++i) std::memcpy(p + i * es, c + 3, es);
      d.set(key, t);
    } else if (op == 2) {
      d.erase(key);
    } else {
      d.set(key, old.contiguous().reshape({old.numel()}));
    }
  }
  std::vector<uint8_t> bytes;
  *ok = focus_fuzz::accepts([&] { bytes = safetensors_serialize(d, meta); });  // e.g. metadata not UTF-8
  return bytes;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* path = std::getenv("FOCUS_FUZZ_WRITE_SEED")) {
    Objects o;
    o.train_step();
    optim::save_checkpoint(path, *o.model, o.opt.get(), o.sched.get(), 1, o.gen.get(),
                           {{"model", "fuzz"}, {"config", "{\"steps\": 10, \"lr\": 0.01}"}}, o.scaler.get());
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  if (size > 0 && data[0] == 'M') {
    bool ok = false;
    const std::vector<uint8_t> bytes = edited_checkpoint(data, size, &ok);
    if (!ok) return 0;
    path = focus_fuzz::write_scratch("checkpoint.safetensors", bytes.data(), bytes.size());
  } else {
    path = focus_fuzz::write_scratch("checkpoint.safetensors", data, size);
  }
  // What `focus train --resume` and `focus eval` read first.
  focus_fuzz::accepts([&] { (void)training::checkpoint_meta(path); });
  focus_fuzz::accepts([&] { (void)zoo::config_from_checkpoint(path); });

  Objects o;
  o.train_step();
  const Snapshot before = snapshot(o);
  int64_t step = -1;
  if (!focus_fuzz::accepts([&] {
        step = optim::load_checkpoint(path, *o.model, o.opt.get(), o.sched.get(), o.gen.get(), o.scaler.get());
      })) {
    const Snapshot after = snapshot(o);
    if (!(after == before)) focus_fuzz::fail("a failed load changed the objects: " + describe_difference(before, after));
    return 0;
  }
  // An accepted checkpoint trains on: NaN weights are allowed, but an error in the step (a
  // hyperparameter the loader let through), a crash or undefined behaviour is a finding.
  try {
    o.train_step();
  } catch (const Error& e) {
    focus_fuzz::fail(std::string("an accepted checkpoint (step ") + std::to_string(step) +
                     ") does not train on: " + e.what());
  }
  return 0;
}
