// models/char_gpt/program: the zoo entry end to end on generated text (train through a
// training::Run, evaluate, generate) and the generate command's argument errors.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "models/char_gpt/program.h"
#include "models/zoo/registry.h"
#include "training/run.h"
#include "device_check.h"
#include "resume_check.h"
#include "test_util.h"

using namespace focus;
namespace fs = std::filesystem;

namespace {

training::Config tiny_config() {
  training::Config c = models::char_gpt::default_config();
  c.set("dataset", "synthetic")
      .set("num_layers", 1)
      .set("nhead", 2)
      .set("d_model", 16)
      .set("block_size", 16)
      .set("batch_size", 8)
      .set("steps", 40)
      .set("warmup_steps", 4)
      .set("lr", 1e-2)
      .set("min_lr", 1e-3)
      .set("eval_every", 20)
      .set("eval_batches", 2)
      .set("checkpoint_every", 25)
      .set("sample_length", 30);
  return c;
}

zoo::CommandArgs gen_args(const std::string& ckpt, std::map<std::string, std::string> over = {}) {
  zoo::CommandArgs a;
  a.checkpoint = ckpt;
  a.command = "generate";
  a.options = {{"prompt", "The whale"}, {"length", "40"}, {"temperature", "0.8"}, {"top-k", "0"}, {"seed", "1"}};
  for (auto& [k, v] : over) a.options[k] = v;
  return a;
}

}  // namespace

TEST_SUITE("models_char_gpt") {
  TEST_CASE("program: train on synthetic text, evaluate, generate; command errors") {
    const fs::path dir = fs::temp_directory_path() / fmt::format("focus_char_gpt_test_{}", ::getpid());
    fs::remove_all(dir);
    const zoo::ModelEntry entry = models::char_gpt::model_entry();
    CHECK(entry.name == "char-gpt");
    CHECK(entry.presets.count("full") == 1);
    CHECK(entry.commands.count("generate") == 1);
    std::ostringstream out, err;
    {
      training::Run run("char-gpt", tiny_config(), training::RunOptions().set_dir(dir.string()).set_quiet().set_streams(&out, &err));
      entry.train(run);
    }
    const std::string ckpt = (dir / training::kCheckpointFile).string();
    REQUIRE(fs::exists(ckpt));
    REQUIRE(fs::exists(dir / training::kReportJsonFile));
    const std::string report = out.str();
    MESSAGE(report);
    CHECK(report.find("validation loss") != std::string::npos);
    CHECK(report.find("bits/char") != std::string::npos);
    // Validation lines were logged at steps 20 and 40, and the loss fell below uniform guessing.
    std::ifstream metrics(dir / training::kMetricsFile);
    std::string line, all;
    int valid_lines = 0;
    while (std::getline(metrics, line)) valid_lines += line.find("\"valid\"") != std::string::npos;
    CHECK(valid_lines == 2);
    const std::string report_json = focus::testing::read_file(dir / training::kReportJsonFile);
    CHECK(report_json.find("valid_bpc") != std::string::npos);
    // The final validation loss is well below uniform guessing over the vocabulary.
    const size_t at = report_json.find("\"valid_loss\":");
    REQUIRE(at != std::string::npos);
    const double valid_loss = std::stod(report_json.substr(at + 13));
    const size_t vocab_at = report.find("characters (");
    REQUIRE(vocab_at != std::string::npos);
    const double vocab = std::stod(report.substr(vocab_at + 12));
    CHECK(valid_loss < 0.75 * std::log(vocab));

    // eval
    std::ostringstream ev;
    entry.evaluate(zoo::EvalArgs{ckpt, "valid", {}}, ev);
    CHECK(ev.str().find("bits/char") != std::string::npos);
    CHECK_THROWS_WITH_AS(entry.evaluate(zoo::EvalArgs{ckpt, "dev", {}}, ev), doctest::Contains("split must be"), Error);

    // generate: the prompt, then exactly 40 characters; the same seed gives the same text
    const auto& cmd = entry.commands.at("generate");
    std::ostringstream g1, g2, g3;
    cmd.run(gen_args(ckpt), g1);
    cmd.run(gen_args(ckpt), g2);
    cmd.run(gen_args(ckpt, {{"seed", "2"}}), g3);
    CHECK(g1.str() == g2.str());
    CHECK(g1.str() != g3.str());
    CHECK(g1.str().rfind("The whale", 0) == 0);
    CHECK(data::split_utf8(g1.str()).size() == 9 + 40 + 1);  // prompt, 40 characters, newline
    std::ostringstream greedy1, greedy2;
    cmd.run(gen_args(ckpt, {{"top-k", "1"}, {"seed", "5"}}), greedy1);
    cmd.run(gen_args(ckpt, {{"top-k", "1"}, {"seed", "6"}}), greedy2);
    CHECK(greedy1.str() == greedy2.str());  // greedy: the seed does not matter

    std::ostringstream sink;
    CHECK_THROWS_WITH_AS(cmd.run(gen_args(ckpt, {{"prompt", "The @whale"}}), sink),
                         doctest::Contains("[generate] --prompt: the character '@' (U+0040) at position 4"), Error);
    CHECK_THROWS_WITH_AS(cmd.run(gen_args(ckpt, {{"temperature", "0"}}), sink),
                         doctest::Contains("--temperature must be a number > 0"), Error);
    CHECK_THROWS_WITH_AS(cmd.run(gen_args(ckpt, {{"temperature", "hot"}}), sink), doctest::Contains("temperature"),
                         Error);
    CHECK_THROWS_WITH_AS(cmd.run(gen_args(ckpt, {{"top-k", "-1"}}), sink), doctest::Contains("--top-k must be >= 0"),
                         Error);
    CHECK_THROWS_WITH_AS(cmd.run(gen_args(ckpt, {{"length", "-5"}}), sink),
                         doctest::Contains("--length must be 0 to 100000000, got -5"), Error);
    // 2e9 failed with a bare std::bad_alloc (8 bytes per character reserved up front).
    CHECK_THROWS_WITH_AS(cmd.run(gen_args(ckpt, {{"length", "2000000000"}}), sink),
                         doctest::Contains("--length must be 0 to 100000000, got 2000000000"), Error);

    // --device: a device this machine cannot use is refused before any work (train touches no
    // directory); --device cpu gives what the commands give without it
    focus::testing::check_device_refused({"eval", "char-gpt", "--checkpoint", ckpt});
    focus::testing::check_device_refused({"generate", "char-gpt", "--checkpoint", ckpt});
    focus::testing::check_device_refused(
        {"train", "char-gpt", "--run-dir", (dir / "gpu").string(), "--set", "dataset=synthetic"});
    CHECK_FALSE(fs::exists(dir / "gpu"));
    focus::testing::check_cpu_same({"generate", "char-gpt", "--checkpoint", ckpt, "--prompt", "The whale", "--length", "30"});
    focus::testing::check_cpu_same({"eval", "char-gpt", "--checkpoint", ckpt, "--split", "valid"});

    // A bad dataset name in the config.
    training::Config bad = tiny_config();
    bad.set("dataset", "moby");
    {
      std::ostringstream o2, e2;
      training::Run run("char-gpt", bad, training::RunOptions().set_dir((dir / "bad").string()).set_quiet().set_streams(&o2, &e2));
      CHECK_THROWS_WITH_AS(entry.train(run), doctest::Contains("dataset must be \"moby-dick\", \"sotu\" or \"synthetic\""), Error);
    }
    fs::remove_all(dir);
  }

  TEST_CASE("an interrupted run with dropout resumes to the same weights as an uninterrupted one") {
    focus::testing::TempDir tmp("char_gpt_resume");
    training::Config c = tiny_config();
    c.set("dropout", 0.1).set("threads", 1).set("sample_length", 0);
    // interrupted at the validation of step 20, before the periodic checkpoint of step 25:
    // the batch sampler, dropout and the learning-rate schedule must continue from there
    focus::testing::check_exact_resume(models::char_gpt::model_entry(), c, tmp, 20, 40);
  }

  TEST_CASE("--amp bf16 and fp16: mixed-precision runs train and resume exactly (loss scale in the checkpoint)") {
    focus::testing::TempDir tmp("char_gpt_amp");
    training::Config c = tiny_config();
    c.set("dropout", 0.1).set("threads", 1).set("sample_length", 0).set("steps", 20).set("eval_every", 10);
    for (const char* amp : {"bf16", "fp16"}) {
      CAPTURE(amp);
      focus::testing::TempDir sub(std::string("char_gpt_amp_") + amp);
      const std::string log = focus::testing::check_exact_resume(models::char_gpt::model_entry(), c, sub, 10, 20, amp);
      CHECK(log.find("nan") == std::string::npos);
    }
  }
}
