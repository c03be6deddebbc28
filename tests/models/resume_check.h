#pragma once
// The zoo programs' shared resume test: a run interrupted mid-training (as by Ctrl-C) and
// continued with --resume must end with the same weights, bit for bit, as a run that went
// straight through. Each program's test picks a config (with dropout, an interruption
// inside an epoch) and adds its own checks on the returned text.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "models/zoo/registry.h"
#include "training/run.h"
#include "optim/checkpoint.h"
#include "test_util.h"

namespace focus::testing {

/// Trains `entry` with `config` in `dir`: once straight through ("straight"), once with
/// training::Run::request_interrupt called when the validation line of step `interrupt_at` is
/// printed, then again in the same directory with --resume ("resumed"). Checks that the
/// interrupted run reports interrupted(), leaves a checkpoint at `interrupt_at` and no
/// report; that the resumed run says where it resumes; and that both runs end at step
/// `final_step` with identical weights. The library's thread count (the programs set it from
/// the config) is put back. amp: the runs' mixed precision (RunOptions::amp); with "fp16" the
/// GradScaler's state goes through the checkpoint too. Returns everything the three runs
/// printed.
inline std::string check_exact_resume(const zoo::ModelEntry& entry, const training::Config& config, const TempDir& dir,
                                      int64_t interrupt_at, int64_t final_step, const std::string& amp = "none") {
  struct ThreadsBack {
    int n = get_num_threads();
    ~ThreadsBack() { set_num_threads(n); }
  } threads_back;
  std::ostringstream log;
  auto options = [&](const std::string& sub, std::ostream* out) {
    training::RunOptions o;
    o.set_dir(dir / sub).set_quiet().set_streams(out, &log).set_amp(amp);
    return o;
  };
  {
    training::Run run(entry.name, config, options("straight", &log));
    entry.train(run);
  }
  {
    training::Run* target = nullptr;
    CallOnText console_buf("step " + std::to_string(interrupt_at) + " ", [&] { target->request_interrupt(); });
    std::ostream console(&console_buf);
    training::Run run(entry.name, config, options("resumed", &console));
    target = &run;
    entry.train(run);
    CHECK(run.interrupted());
    log << console_buf.str();
  }
  const std::string ckpt = dir / "resumed/checkpoint.safetensors";
  CHECK(optim::read_checkpoint(ckpt).step == interrupt_at);
  CHECK_FALSE(std::filesystem::exists(dir.path / "resumed/report.json"));
  {
    training::Run run(entry.name, config, options("resumed", &log).set_resume());
    entry.train(run);
  }
  INFO(log.str());
  CHECK(log.str().find("resuming at step " + std::to_string(interrupt_at)) != std::string::npos);
  CHECK(optim::read_checkpoint(ckpt).step == final_step);
  const TensorDict a = optim::read_checkpoint(dir / "straight/checkpoint.safetensors").model;
  const TensorDict b = optim::read_checkpoint(ckpt).model;
  REQUIRE(a.keys() == b.keys());
  for (const auto& k : a.keys()) CHECK_MESSAGE(allclose(a.at(k), b.at(k), 0, 0), k);
  CHECK(std::filesystem::exists(dir.path / "resumed/report.json"));
  const optim::Checkpoint last = optim::read_checkpoint(ckpt);
  CHECK(last.metadata.at("amp") == amp);
  CHECK(last.grad_scaler.empty() == (amp != "fp16"));  // the loss scale is saved with fp16 only
  if (amp != "none")  // mixed precision keeps float32 master weights
    for (const auto& k : b.keys())
      if (b.at(k).is_floating_point()) CHECK_MESSAGE(b.at(k).dtype() == kFloat32, k);
  return log.str();
}

}  // namespace focus::testing
