// `focus finetune char-gpt` end to end through the command line, in-process: a tiny char-gpt
// trained on generated text is adapted to the sotu test fixture (three short speeches) with
// LoRA and fully; the report, the PEFT adapter files, the frozen base weights, Ctrl-C and
// --resume (bit for bit), generate and eval from the result, and every bad input.
#include <doctest/doctest.h>

#include "test_util.h"

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include <focus/focus.h>

#include "models/char_gpt/program.h"
#include "optim/checkpoint.h"
#include "tools/focus/cli.h"

using namespace focus;
namespace fs = std::filesystem;

namespace {

struct Result {
  int rc;
  std::string out, err;
};

Result focus_cli(const std::vector<std::string>& args, std::ostream* console = nullptr) {
  std::ostringstream out, err;
  const int rc = focus::cli::run(args, console ? *console : out, err);
  return {rc, out.str(), err.str()};
}

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// FOCUS_DATA pointing at a temporary cache holding the sotu fixture, for a test's lifetime.
struct SotuCache {
  focus::testing::TempDir dir{"finetune_data"};
  std::optional<std::string> old;
  SotuCache() {
    if (const char* v = std::getenv("FOCUS_DATA")) old = v;
    setenv("FOCUS_DATA", dir.path.c_str(), 1);
    const fs::path fixture = fs::path(FOCUS_SOURCE_DIR) / "tests/fixtures/datasets/sotu/package";
    const Result r = focus_cli({"data", "fetch", "sotu", "--from", fixture.string()});
    INFO(r.err);
    REQUIRE(r.rc == 0);
  }
  ~SotuCache() {
    if (old) setenv("FOCUS_DATA", old->c_str(), 1);
    else unsetenv("FOCUS_DATA");
  }
};

// A tiny char-gpt on generated text: the base to fine-tune.
std::string train_base(const focus::testing::TempDir& tmp) {
  const std::string dir = tmp / "base";
  const Result r = focus_cli({"train", "char-gpt", "--run-dir", dir, "-q", "--set", "dataset=synthetic", "--set",
                              "num_layers=1", "--set", "nhead=2", "--set", "d_model=16", "--set", "block_size=16",
                              "--set", "batch_size=4", "--set", "steps=10", "--set", "warmup_steps=2", "--set",
                              "eval_every=5", "--set", "eval_batches=1", "--set", "sample_length=0"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  return dir;
}

// The fine-tuning command with a tiny budget.
std::vector<std::string> finetune_args(const std::string& from, const std::string& run_dir,
                                       std::vector<std::string> extra = {}) {
  std::vector<std::string> a{"finetune", "char-gpt", "--run-dir", run_dir, "--quiet", "--set", "steps=6", "--set",
                             "eval_every=3", "--set", "checkpoint_every=3", "--set", "eval_batches=1", "--set",
                             "batch_size=4", "--set", "warmup_steps=1", "--set", "sample_length=12"};
  if (!from.empty()) a.insert(a.begin() + 2, {"--from", from});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

nlohmann::json report_metrics(const std::string& run_dir) {
  return nlohmann::json::parse(read_text(fs::path(run_dir) / "report.json")).at("metrics");
}

// Bit for bit (quietly: the full fine-tune's check expects every weight to differ).
bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_vector<double>() == b.to_vector<double>();
}

}  // namespace

TEST_SUITE("cli_finetune") {
  TEST_CASE("LoRA and full fine-tuning: report, PEFT adapter files, frozen base weights, generate and eval") {
    SotuCache cache;
    focus::testing::TempDir tmp("finetune");
    const std::string base = train_base(tmp);
    const optim::Checkpoint base_ckpt = optim::read_checkpoint(fs::path(base) / "checkpoint.safetensors");

    // ---- LoRA ----
    const std::string lora = tmp / "lora";
    Result r = focus_cli(finetune_args(base, lora, {"--lora", "r=2,alpha=8"}));
    INFO(r.out);
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(has(r.out, "sotu: "));
    CHECK(has(r.out, "characters are not in the vocabulary"));  // the fixture has capitals the base never saw
    CHECK(has(r.out, "valid  step 0  loss"));                    // before fine-tuning
    CHECK(has(r.out, "LoRA r=2, lora_alpha=8 (scaling 4)"));
    CHECK(has(r.out, "validation loss     before"));
    CHECK(has(r.out, "adapter_model.safetensors"));
    for (const char* f : {"config.json", "metrics.jsonl", "checkpoint.safetensors", "report.txt", "report.json",
                          "adapter_model.safetensors", "adapter_config.json"})
      CHECK_MESSAGE(fs::exists(fs::path(lora) / f), f);
    const nlohmann::json lm = report_metrics(lora);
    // 1 layer of width 16, r = 2: c_attn 2x16 + 48x2, attn.c_proj 2x16 + 16x2, c_fc 2x16 + 64x2,
    // mlp.c_proj 2x64 + 16x2.
    const double adapters = (32 + 96) + (32 + 32) + (32 + 128) + (128 + 32);
    CHECK(lm.at("trainable_parameters").get<double>() == adapters);
    const double base_params = [&] {
      double n = 0;
      for (const auto& k : base_ckpt.model.keys()) n += static_cast<double>(base_ckpt.model.at(k).numel());
      return n;
    }();
    CHECK(lm.at("all_parameters").get<double>() == base_params + adapters);
    CHECK(lm.at("trainable_percent").get<double>() == doctest::Approx(100 * adapters / (base_params + adapters)));
    CHECK(lm.at("steps").get<double>() == 6);
    for (const char* k : {"valid_loss_before", "valid_loss", "peak_rss_mib", "train_seconds", "rss_before_training_mib"})
      CHECK_MESSAGE(lm.at(k).get<double>() > 0, k);
    CHECK(lm.at("valid_loss").get<double>() != lm.at("valid_loss_before").get<double>());
    CHECK(has(read_text(fs::path(lora) / "metrics.jsonl"), "\"step\":0"));

    // Only the adapters changed: every base weight is the base run's, bit for bit.
    const optim::Checkpoint lora_ckpt = optim::read_checkpoint(fs::path(lora) / "checkpoint.safetensors");
    CHECK(lora_ckpt.metadata.at("finetune") == "lora");
    int64_t adapter_keys = 0;
    for (const auto& k : lora_ckpt.model.keys()) {
      CAPTURE(k);
      if (has(k, ".lora_A.") || has(k, ".lora_B.")) {
        ++adapter_keys;
        continue;
      }
      REQUIRE(base_ckpt.model.contains(k));
      CHECK(same(lora_ckpt.model.at(k), base_ckpt.model.at(k)));
    }
    CHECK(adapter_keys == 8);
    CHECK(lora_ckpt.model.size() == base_ckpt.model.size() + 8);
    // The adapter in PEFT's layout: the checkpoint's adapters under PEFT's key names.
    SafetensorsMetadata adapter_meta;
    const TensorDict adapter = load_safetensors((fs::path(lora) / "adapter_model.safetensors").string(), &adapter_meta);
    CHECK(adapter.size() == 8);
    CHECK(adapter_meta.at("format") == "pt");
    for (const auto& k : adapter.keys()) {
      CAPTURE(k);
      REQUIRE(k.rfind("base_model.model.", 0) == 0);
      const std::string path = k.substr(std::string("base_model.model.").size());
      REQUIRE(lora_ckpt.model.contains(path));
      CHECK(same(adapter.at(k), lora_ckpt.model.at(path)));
    }
    CHECK(adapter.contains("base_model.model.h.0.attn.c_attn.lora_A.weight"));
    CHECK(adapter.contains("base_model.model.h.0.mlp.c_proj.lora_B.weight"));
    CHECK(max(abs(adapter.at("base_model.model.h.0.attn.c_attn.lora_B.weight"))).item<double>() > 0);  // trained
    const nn::LoraConfig peft =
        nn::LoraConfig::from_json(read_text(fs::path(lora) / "adapter_config.json"), "adapter_config.json");
    CHECK(peft.r_ == 2);
    CHECK(peft.lora_alpha_ == 8.0);
    CHECK(peft.task_type_ == "CAUSAL_LM");
    CHECK(peft.target_modules_ == std::vector<std::string>{"c_attn", "c_proj", "c_fc"});
    // PEFT's from_pretrained on the base gives the fine-tuned model: the same logits as the
    // checkpoint loaded (and merged) by generate/eval.
    {
      auto l = models::char_gpt::detail::load(fs::path(lora) / "checkpoint.safetensors", kCPU);
      auto b = models::char_gpt::detail::load(fs::path(base) / "checkpoint.safetensors", kCPU);
      nn::LoraModel adapted = nn::LoraModel::from_pretrained(b.model, lora);
      const Tensor idx = tensor(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, TensorOptions(kInt64)).reshape({1, 6});
      NoGradGuard no_grad;
      CHECK(focus::testing::allclose(l.model->forward(idx), b.model->forward(idx), 1e-5, 1e-6));
    }

    // generate and eval read the fine-tuned checkpoint as any char-gpt checkpoint.
    r = focus_cli({"generate", "char-gpt", "--checkpoint", lora + "/checkpoint.safetensors", "--length", "30",
                   "--prompt", "the"});
    CHECK(r.rc == 0);
    CHECK(r.out.size() >= 33);
    CHECK(r.out.rfind("the", 0) == 0);
    r = focus_cli({"eval", "char-gpt", "--checkpoint", lora + "/checkpoint.safetensors", "--split", "valid"});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "valid split of sotu (last 10%"));
    CHECK(has(r.out, fmt::format("loss {:.4f} nats", lm.at("valid_loss").get<double>())));

    // ---- full fine-tuning: every weight trains, no adapter ----
    const std::string full = tmp / "full";
    r = focus_cli(finetune_args(base, full));
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(has(r.out, "full fine-tuning"));
    CHECK_FALSE(fs::exists(fs::path(full) / "adapter_model.safetensors"));
    const nlohmann::json fm = report_metrics(full);
    CHECK(fm.at("trainable_parameters").get<double>() == base_params);
    CHECK(fm.at("all_parameters").get<double>() == base_params);
    CHECK(fm.at("trainable_percent").get<double>() == 100.0);
    CHECK(fm.at("valid_loss_before").get<double>() == lm.at("valid_loss_before").get<double>());  // the same base
    const optim::Checkpoint full_ckpt = optim::read_checkpoint(fs::path(full) / "checkpoint.safetensors");
    CHECK(full_ckpt.model.keys() == base_ckpt.model.keys());
    int changed = 0;
    for (const auto& k : full_ckpt.model.keys()) changed += same(full_ckpt.model.at(k), base_ckpt.model.at(k)) ? 0 : 1;
    CHECK(changed == static_cast<int>(full_ckpt.model.size()));
    CHECK(focus_cli({"generate", "char-gpt", "--checkpoint", full + "/checkpoint.safetensors", "--length", "10"}).rc == 0);
    // The config is the run's: the learning rate each method defaults to.
    CHECK(has(read_text(fs::path(lora) / "config.json"), "\"lr\": 0.002"));
    CHECK(has(read_text(fs::path(full) / "config.json"), "\"lr\": 0.0005"));

    // A directory holding a run needs --overwrite or --resume.
    r = focus_cli(finetune_args(base, full));
    CHECK(r.rc == 1);
    CHECK(has(r.err, "--overwrite"));
  }

  TEST_CASE("Ctrl-C saves and exits 130; --resume ends with the weights of a run straight through") {
    SotuCache cache;
    focus::testing::TempDir tmp("finetune_resume");
    const std::string base = train_base(tmp);
    const std::vector<std::string> lora{"--lora", "r=2,dropout=0.1"};  // dropout: the RNG state must resume too
    Result r = focus_cli(finetune_args(base, tmp / "straight", lora));
    REQUIRE(r.rc == 0);

    // Ctrl-C (a real SIGINT to this process, caught by the run) when step 3's validation is printed.
    const std::string dir = tmp / "resumed";
    focus::testing::CallOnText console_buf("valid  step 3 ", [] { ::raise(SIGINT); });
    std::ostream console(&console_buf);
    r = focus_cli(finetune_args(base, dir, lora), &console);
    INFO(console_buf.str());
    INFO(r.err);
    CHECK(r.rc == 130);
    CHECK(has(r.err, "focus: interrupted; the checkpoint is in"));
    CHECK(has(r.err, "--resume"));
    CHECK(optim::read_checkpoint(fs::path(dir) / "checkpoint.safetensors").step == 3);
    CHECK_FALSE(fs::exists(fs::path(dir) / "report.json"));

    // A resumed run keeps its settings: another --lora is refused, before anything is written.
    r = focus_cli(finetune_args(base, dir, {"--lora", "r=4", "--resume"}));
    CHECK(r.rc == 1);
    CHECK(has(r.err, "[finetune] char-gpt: --resume: the run in"));
    CHECK(has(r.err, "was started with lora_r=2, this command asks for 4"));
    fs::copy(base, tmp / "base2", fs::copy_options::recursive);
    r = focus_cli(finetune_args(tmp / "base2", dir, {"--lora", "r=2,dropout=0.1", "--resume"}));
    CHECK(r.rc == 1);  // another base (a copy, but another run)
    CHECK(has(r.err, "was started with from=" + base + "/checkpoint.safetensors"));
    // The same command with --resume continues it (the base spelled another way is the same).
    std::vector<std::string> again = finetune_args((fs::path(base) / "." / "checkpoint.safetensors").string(), dir, lora);
    again.push_back("--resume");
    r = focus_cli(again);
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(has(r.out, "resuming at step 3"));
    const TensorDict a = optim::read_checkpoint(tmp / "straight/checkpoint.safetensors").model;
    const TensorDict b = optim::read_checkpoint(fs::path(dir) / "checkpoint.safetensors").model;
    REQUIRE(a.keys() == b.keys());
    for (const auto& k : a.keys()) CHECK_MESSAGE(same(a.at(k), b.at(k)), k);
    CHECK(report_metrics(dir).at("valid_loss").get<double>() ==
          report_metrics(tmp / "straight").at("valid_loss").get<double>());
    CHECK(report_metrics(dir).at("valid_loss_before").get<double>() ==
          report_metrics(tmp / "straight").at("valid_loss_before").get<double>());
    // --resume with the run directory alone (the stored --from and --lora), past the end: more steps.
    r = focus_cli({"finetune", "char-gpt", "--run-dir", dir, "--resume", "--quiet", "--set", "steps=8"});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "resuming at step 6"));
    CHECK(report_metrics(dir).at("steps").get<double>() == 8);
  }

  TEST_CASE("bad inputs: each a clear error naming the command") {
    SotuCache cache;
    focus::testing::TempDir tmp("finetune_errors");
    const std::string base = train_base(tmp);
    const std::string run = tmp / "run";
    auto fails = [&](const std::vector<std::string>& args, const std::string& message) {
      const Result r = focus_cli(args);
      INFO(r.err);
      CHECK(r.rc == 1);
      CHECK(has(r.err, "focus: error: "));
      CHECK(has(r.err, message));
      CHECK_FALSE(fs::exists(fs::path(run) / "checkpoint.safetensors"));
    };
    fails({"finetune", "char-gpt", "--run-dir", run, "--lora", "r=8"},
          "[finetune] char-gpt: --from RUN_DIR is required: the run directory of a `focus train char-gpt` run");
    fails(finetune_args(tmp / "nowhere", run), "[finetune] char-gpt: --from " + (tmp / "nowhere") + ": no such run directory");
    fs::create_directories(tmp / "empty");
    fails(finetune_args(tmp / "empty", run), "not a char-gpt run directory (it has no checkpoint.safetensors");
    std::ofstream(tmp / "junk.safetensors") << "junk";
    fails(finetune_args(tmp / "junk.safetensors", run), "[finetune] char-gpt: --from " + (tmp / "junk.safetensors") +
                                                            ": not a char-gpt run: [checkpoint]");
    nn::Linear other(2, 1);
    optim::save_checkpoint(tmp / "other.safetensors", other, nullptr, nullptr, 0, nullptr,
                           {{"model", "g2p"}, {"config", "{}"}});
    fails(finetune_args(tmp / "other.safetensors", run), "not a char-gpt run (its checkpoint holds a 'g2p' model)");
    fails(finetune_args(base, run, {"--lora", "r=0"}), "[finetune] char-gpt: --lora 'r=0': r must be a positive integer");
    fails(finetune_args(base, run, {"--lora", "rank=8"}), "unknown key 'rank'");
    fails(finetune_args(base, run, {"--lora", "target=nothing_here"}), "[lora]");
    fails(finetune_args(base, run, {"--data", "moby-dick"}),
          "[finetune] char-gpt: --data moby-dick: the only fine-tuning dataset is sotu");
    fails(finetune_args(base, run, {"--set", "num_layers=3"}),
          "[finetune] char-gpt: --set num_layers=3: the architecture comes from the base run (num_layers=1)");
    fails(finetune_args(base, run, {"--set", "no_such_key=1"}), "no_such_key");
    fails(finetune_args(base, run, {"--set", "method=half"}), "method must be \"lora\" or \"full\", got \"half\"");
    fails(finetune_args(base, run, {"--resume"}), "[finetune] char-gpt: --resume: no checkpoint in " + run);
    fails(finetune_args(base, run, {"--resume", "--overwrite"}), "--resume and --overwrite exclude each other");
    // Usage errors are the parser's (exit status 2).
    const Result r = focus_cli({"finetune", "char-gpt", "--from"});
    CHECK(r.rc == 2);
    CHECK(focus_cli({"finetune", "char-gpt", "--checkpoint", "x"}).rc == 2);  // finetune reads --from, not --checkpoint
    CHECK(has(focus_cli({"finetune", "char-gpt", "--help"}).out, "--lora"));
  }
}
