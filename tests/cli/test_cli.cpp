// The `focus` command line, run in-process through focus::cli::run with a tiny test model
// registered by zoo::add_model (the real models get their own smoke tests).
#include <doctest/doctest.h>

#include "test_util.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <signal.h>
#include <sys/wait.h>

#include <focus/focus.h>

#include "../models/device_check.h"
#include "models/zoo/registry.h"
#include "tools/focus/cli.h"

using namespace focus;
namespace fs = std::filesystem;

namespace {

struct TempDir : focus::testing::TempDir {
  TempDir() : focus::testing::TempDir("cli_test") {}
};

struct Result {
  int rc;
  std::string out, err;
};

Result run_cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int rc = focus::cli::run(args, out, err);
  return {rc, out.str(), err.str()};
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// ---- a tiny model: linear regression y = x0 - 2 x1 + 0.5 on generated data ----------------

std::pair<Tensor, Tensor> tiny_batch(Generator& gen, int64_t n) {
  Tensor x = randn({n, 2}, {}, &gen);
  auto xs = x.to_vector<float>();
  std::vector<float> ys(n);
  for (int64_t i = 0; i < n; ++i) ys[i] = xs[2 * i] - 2 * xs[2 * i + 1] + 0.5f;
  return {x, tensor<float>(ys, {n, 1})};
}

training::Config tiny_config() {
  training::Config c;
  c.set("dataset", "synthetic").set("steps", 6).set("lr", 0.05).set("checkpoint_every", 2).set("eval_every", 3);
  c.set("seed", 1).set("interrupt_at", 0).set("step_ms", 0).set("nan_at", 0);
  return c;
}

void tiny_train(training::Run& run) {
  const training::Config& c = run.config();
  FOCUS_CHECK(c.str("dataset") == "synthetic", "[tiny] unknown dataset '{}'", c.str("dataset"));
  manual_seed(c.integer("seed"));
  nn::Linear model(2, 1);
  optim::SGD opt(model.parameters(), optim::SGDOptions(c.real("lr")));
  Generator gen(c.integer("seed") + 1);
  const int64_t steps = c.integer("steps");
  int64_t step = run.restore(model, &opt, nullptr, &gen, steps);
  run.progress().start(steps, "rows/s");
  while (step < steps && !run.interrupted()) {
    auto [x, y] = tiny_batch(gen, 16);
    if (step + 1 == c.integer("nan_at")) y = y * tensor(std::vector<float>{std::nanf("")});  // a broken target
    opt.zero_grad();
    Tensor loss = mse_loss(model.forward(x), y);
    loss.backward();
    opt.step();
    ++step;
    run.progress().update(step, 1, loss.item<double>(), 16);
    run.log("train", step, {{"loss", loss.item<double>()}});
    if (step % c.integer("eval_every") == 0) run.log("valid", step, {{"loss", loss.item<double>()}});
    if (step % c.integer("checkpoint_every") == 0) run.save_checkpoint(model, &opt, nullptr, step, &gen);
    if (step == c.integer("interrupt_at")) run.request_interrupt();
    if (c.integer("step_ms") > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c.integer("step_ms")));
  }
  run.progress().finish();
  run.save_checkpoint(model, &opt, nullptr, step, &gen, {{"note", "tiny"}});
  if (run.interrupted()) return;
  run.report({{"steps", static_cast<double>(step)}}, fmt::format("tiny trained {} steps", step));
}

void tiny_evaluate(const zoo::EvalArgs& args, std::ostream& out) {
  training::Config c = args.config();
  FOCUS_CHECK(c.str("dataset") == "synthetic", "[tiny] unknown dataset '{}'", c.str("dataset"));
  nn::Linear model(2, 1);
  int64_t step = optim::load_checkpoint(args.checkpoint, model);
  Generator gen(args.split == "test" ? 100 : 200);
  auto [x, y] = tiny_batch(gen, 64);
  NoGradGuard no_grad;
  out << fmt::format("{} loss {:.4f} after {} steps\n", args.split, mse_loss(model.forward(x), y).item<double>(), step);
}

void tiny_predict(const zoo::CommandArgs& args, std::ostream& out) {
  nn::Linear model(2, 1);
  optim::load_checkpoint(args.checkpoint, model);
  const double scale = args.real("scale");
  NoGradGuard no_grad;
  for (const auto& input : args.inputs) {
    auto comma = input.find(',');
    FOCUS_CHECK(comma != std::string::npos, "[predict] tiny expects inputs like 1.5,2 (two numbers), got '{}'", input);
    float a = std::stof(input.substr(0, comma)), b = std::stof(input.substr(comma + 1));
    double y = model.forward(tensor<float>({a, b}, {1, 2})).item<double>() * scale;
    out << fmt::format("{} -> {:.3f}{}\n", input, y, args.flag("verbose") ? " (verbose)" : "");
  }
}

void ensure_tiny_model() {
  for (const auto& m : zoo::models())
    if (m.name == "tiny-test") return;
  zoo::ModelEntry e;
  e.name = "tiny-test";
  e.description = "a linear regression for the command line's tests";
  e.default_config = tiny_config;
  e.presets["full"] = [] { return tiny_config().set("steps", 8); };
  e.train = tiny_train;
  e.evaluate = tiny_evaluate;
  zoo::ModelCommand p;
  p.help = "Predict y for pairs x0,x1";
  p.inputs = "PAIR";
  p.options = {{"scale", "multiply the prediction", "1", false}, {"verbose", "say more", "false", true}};
  p.run = tiny_predict;
  e.commands["predict"] = p;
  zoo::add_model(std::move(e));
}

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("help, unknown commands and bad flags") {
    ensure_tiny_model();
    auto r = run_cli({"--help"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "train"));
    CHECK(has(r.out, "data"));
    CHECK(has(r.out, "tiny-test"));
    r = run_cli({"train", "--help"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "--resume"));
    CHECK(has(r.out, "--set KEY=VALUE"));
    CHECK(has(r.out, "--device"));
    r = run_cli({"eval", "--help"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "--device"));
    r = run_cli({"predict", "tiny-test", "--help"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "--scale"));
    CHECK(has(r.out, "--checkpoint"));
    CHECK(has(r.out, "--device"));
    r = run_cli({});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "focus: error:"));
    CHECK(has(r.err, "focus --help"));
    r = run_cli({"frobnicate"});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "frobnicate"));
    r = run_cli({"train", "tiny-test", "--bogus"});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "--bogus"));
    CHECK(has(r.err, "focus train --help"));
    r = run_cli({"train"});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "MODEL"));
    r = run_cli({"eval", "tiny-test", "--split", "dev"});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "dev"));
  }

  TEST_CASE("unknown models and commands list what exists") {
    ensure_tiny_model();
    auto r = run_cli({"train", "nosuch"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "focus: error: [models] unknown model 'nosuch'; the models are:"));
    CHECK(has(r.err, "tiny-test"));
    r = run_cli({"eval", "nosuch"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "unknown model 'nosuch'"));
    r = run_cli({"predict", "nosuch", "x"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "unknown model 'nosuch'"));
    r = run_cli({"generate", "tiny-test"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "model 'tiny-test' has no `generate` command"));
    r = run_cli({"models"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "tiny-test  a linear regression"));
    CHECK(has(r.out, "[predict]"));
    r = run_cli({"models", "tiny-test"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "interrupt_at"));
    CHECK(has(r.out, "presets (--config NAME): default, full"));
    r = run_cli({"models", "nosuch"});
    CHECK(r.rc == 1);
  }

  TEST_CASE("train, resume, eval and a model command end to end") {
    ensure_tiny_model();
    TempDir tmp;
    const std::string dir = tmp / "run";
    auto r = run_cli({"train", "tiny-test", "--run-dir", dir, "--set", "steps=3", "-q"});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(has(r.out, "tiny trained 3 steps"));
    CHECK(r.out.rfind("training tiny-test in " + dir + ", device cpu\n", 0) == 0);  // the header names the device
    for (const char* f : {"config.json", "metrics.jsonl", "checkpoint.safetensors", "report.json", "report.txt"})
      CHECK(fs::exists(fs::path(dir) / f));
    CHECK(zoo::config_from_checkpoint((fs::path(dir) / "checkpoint.safetensors").string()).integer("steps") == 3);

    // Again without --resume: refused, and the checkpoint is untouched.
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "-q"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "already holds a checkpoint"));
    CHECK(has(r.err, "--resume"));
    CHECK(has(r.err, "--overwrite"));

    // --resume continues at step 3 up to the new step count.
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--resume", "--set", "steps=6", "-q", "--device", "cpu"});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.rfind("training tiny-test in " + dir + " (resuming), device cpu\n", 0) == 0);
    CHECK(has(r.out, "at step 3"));
    CHECK(has(r.out, "tiny trained 6 steps"));
    int train_lines = 0;
    for (const auto& line : lines_of(fs::path(dir) / "metrics.jsonl"))
      if (has(line, "\"split\":\"train\"")) ++train_lines;
    CHECK(train_lines == 6);

    // --resume with fewer steps than the checkpoint's: refused (it was accepted silently, the
    // header saying 2 steps, the report 6, config.json 2); nothing in the run changes.
    const std::string config_before = focus::testing::read_file(fs::path(dir) / "config.json");
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--resume", "--set", "steps=2", "-q"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "is at step 6, past the end of this run: its settings (after --set) train 2 steps in all"));
    CHECK(focus::testing::read_file(fs::path(dir) / "config.json") == config_before);
    CHECK(zoo::config_from_checkpoint((fs::path(dir) / "checkpoint.safetensors").string()).integer("steps") == 6);
    // ... while steps equal to the checkpoint's resumes to the report.
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--resume", "-q"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "tiny trained 6 steps"));

    // eval reads the checkpoint (given, or from the run dir).
    const std::string ckpt = (fs::path(dir) / "checkpoint.safetensors").string();
    r = run_cli({"eval", "tiny-test", "--checkpoint", ckpt});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "test loss"));
    CHECK(has(r.out, "after 6 steps"));
    r = run_cli({"eval", "tiny-test", "--run-dir", dir, "--split", "valid"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "valid loss"));
    r = run_cli({"eval", "tiny-test", "--run-dir", dir, "--split", "valid", "--device", "cpu"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "valid loss"));
    r = run_cli({"eval", "tiny-test", "--checkpoint", ckpt, "--set", "dataset=real"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "unknown dataset 'real'"));
    r = run_cli({"eval", "tiny-test", "--checkpoint", ckpt, "--run-dir", dir});
    CHECK(r.rc == 2);  // one or the other
    CHECK(has(r.err, "excludes"));
    r = run_cli({"eval", "tiny-test", "--checkpoint", ckpt, "--set", "nokey=1"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "unknown key 'nokey'"));

    // The model's own command, with its options; unknown options are usage errors.
    r = run_cli({"predict", "tiny-test", "1,0", "0,1", "--checkpoint", ckpt, "--scale", "2", "--verbose"});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "1,0 -> "));
    CHECK(has(r.out, "0,1 -> "));
    CHECK(has(r.out, "(verbose)"));
    r = run_cli({"predict", "tiny-test", "1,0", "--checkpoint", ckpt, "--device", "cpu"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "1,0 -> "));
    r = run_cli({"predict", "tiny-test", "1,0", "--checkpoint", ckpt, "--beam", "3"});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "--beam"));
    r = run_cli({"predict", "tiny-test", "1,0", "--checkpoint", ckpt, "--scale", "big"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "--scale: expected a number, got 'big'"));
    r = run_cli({"predict", "tiny-test", "--checkpoint", ckpt});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "PAIR"));
    r = run_cli({"predict", "tiny-test", "oops", "--checkpoint", ckpt});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "expects inputs like"));

    // focus plot draws the run's curves.
    r = run_cli({"plot", dir});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "loss.png"));
    CHECK(fs::exists(fs::path(dir) / "loss.png"));

    // --overwrite starts afresh (pictures of the old run go too).

    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--overwrite", "--config", "full", "-q"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "tiny trained 8 steps"));
    CHECK(has(r.out, "curves "));  // a finished run draws its curves
    CHECK(fs::exists(fs::path(dir) / "loss.png"));
  }

  TEST_CASE("train --detect-anomaly: on for the run only; a NaN gradient stops it naming the node and forward op") {
    ensure_tiny_model();
    TempDir tmp;
    const std::string dir = tmp / "run";
    REQUIRE_FALSE(autograd::is_anomaly_enabled());
    auto r = run_cli({"train", "tiny-test", "--run-dir", dir, "--set", "steps=3", "-q", "--detect-anomaly"});
    INFO(r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.rfind("training tiny-test in " + dir + ", device cpu, anomaly detection on\n", 0) == 0);
    CHECK(has(r.out, "tiny trained 3 steps"));
    CHECK_FALSE(autograd::is_anomaly_enabled());  // the Run's guard restored the mode

    // A NaN target at step 2: without the flag, training goes on with NaN gradients...
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--overwrite", "--set", "steps=3", "--set", "nan_at=2", "-q"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "tiny trained 3 steps"));
    // ... with it, the first backward that makes a NaN is an error naming it.
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--overwrite", "--set", "steps=3", "--set", "nan_at=2", "-q",
                 "--detect-anomaly"});
    INFO(r.err);
    CHECK(r.rc == 1);
    CHECK(r.err.rfind("focus: error: [backward] function 'MseLossBackward0' returned nan values in its output 0", 0) ==
          0);
    CHECK(has(r.err, "(the gradient for input 0 of its forward op, [16, 1] float32: 16 nan and 0 inf of 16 elements, "
                     "the first at [0, 0]); it was created by the forward op mse_loss([16, 1] float32, [16, 1] "
                     "float32) -> [] float32 on cpu. Raised because anomaly detection is on"));
    CHECK_FALSE(has(r.out, "tiny trained"));
    CHECK_FALSE(autograd::is_anomaly_enabled());

    // The flag is listed in the help.
    r = run_cli({"train", "--help"});
    CHECK(has(r.out, "--detect-anomaly"));
  }

  TEST_CASE("Ctrl-C: a checkpoint is saved, the exit status is 130, --resume continues") {
    ensure_tiny_model();
    TempDir tmp;
    const std::string dir = tmp / "run";
    auto r = run_cli({"train", "tiny-test", "--run-dir", dir, "--set", "interrupt_at=3", "-q"});
    CHECK(r.rc == 130);
    CHECK(has(r.err, "interrupted"));
    CHECK(has(r.err, "--resume"));
    CHECK_FALSE(fs::exists(fs::path(dir) / "report.txt"));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--resume", "--set", "interrupt_at=0", "-q"});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "at step 3"));
    CHECK(has(r.out, "tiny trained 6 steps"));
  }

  TEST_CASE("train --nproc: bad counts and what an in-process call cannot do") {
    ensure_tiny_model();
    TempDir tmp;
    const std::string dir = tmp / "run";
    auto r = run_cli({"train", "tiny-test", "--run-dir", dir, "--nproc", "0"});
    CHECK(r.rc == focus::cli::kExitUsage);
    CHECK(has(r.err, "--nproc"));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--nproc", "two"});
    CHECK(r.rc == focus::cli::kExitUsage);
    // In-process (no focus executable to start under mpirun), or a build without MPI: a clear
    // error naming --nproc, and nothing written.
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--nproc", "2"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "--nproc"));
    CHECK_FALSE(fs::exists(fs::path(dir) / "config.json"));
    // --nproc 1 is an ordinary run.
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--nproc", "1", "--set", "steps=2", "-q"});
    CHECK(r.rc == 0);
  }

  TEST_CASE("train errors: config, device, resume") {
    ensure_tiny_model();
    TempDir tmp;
    const std::string dir = tmp / "run";
    auto r = run_cli({"train", "tiny-test", "--run-dir", dir, "--set", "stesp=3"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "unknown key 'stesp'; the keys are: checkpoint_every, dataset"));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--set", "steps=many"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "steps: expected an integer, got 'many'"));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--set", "steps"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "--set expects key=value"));
    // A thread count far above the machine's: a clear error before any work (100000 was
    // accepted and ended in libgomp's own message under a memory limit).
    r = run_cli({"train", "char-gpt", "--run-dir", tmp / "threads", "--set", "threads=100000"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "[char-gpt] threads must be 0 (every core) to "));
    CHECK(has(r.err, "got 100000"));
    r = run_cli({"train", "g2p", "--run-dir", tmp / "threads", "--set", "threads=-1"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "[g2p] threads must be 0 (every core) to "));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--device", "cuda"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "--device cuda"));
    CHECK(has(r.err, "use --device cpu"));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--resume"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "no checkpoint to resume"));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--config", "huge"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "--config huge: no such file, and no preset of that name; presets of tiny-test: default, full"));
    std::ofstream(tmp / "cfg.json") << R"({"steps": 2, "lr": 0.1})";
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--config", tmp / "cfg.json", "-q"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "tiny trained 2 steps"));
    std::ofstream(tmp / "bad.json") << R"({"steps": "x"})";
    r = run_cli({"train", "tiny-test", "--run-dir", tmp / "other", "--config", tmp / "bad.json"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "bad.json"));
    CHECK(has(r.err, "expected an integer"));
    r = run_cli({"train", "tiny-test", "--run-dir", dir, "--resume", "--config", "full"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "--config cannot be combined with --resume"));
  }

  TEST_CASE("--device: every command of every model refuses a device it cannot use, before any work") {
    ensure_tiny_model();
    TempDir tmp;
    const std::string missing = tmp / "none.safetensors";
    for (const auto& m : zoo::models()) {
      CAPTURE(m.name);
      // train: refused before the run directory is made or touched
      const fs::path run_dir = tmp / ("run-" + m.name);
      focus::testing::check_device_refused({"train", m.name, "--run-dir", run_dir.string(), "-q"});
      CHECK_FALSE(fs::exists(run_dir));
      // eval and the model's commands: the device is checked before the checkpoint is looked for
      focus::testing::check_device_refused({"eval", m.name, "--checkpoint", missing});
      for (const auto& [name, cmd] : m.commands) {
        std::vector<std::string> args{name, m.name};
        if (cmd.reads_checkpoint) args.insert(args.end(), {"--checkpoint", missing});
        if (!cmd.inputs.empty()) args.insert(args.begin() + 2, "1");
        focus::testing::check_device_refused(args);
      }
    }
    // ... and with a checkpoint there: still refused, nothing printed; --device cpu works
    const std::string dir = tmp / "tiny";
    REQUIRE(run_cli({"train", "tiny-test", "--run-dir", dir, "-q"}).rc == 0);
    const std::string ckpt = (fs::path(dir) / "checkpoint.safetensors").string();
    focus::testing::check_device_refused({"eval", "tiny-test", "--checkpoint", ckpt});
    focus::testing::check_device_refused({"predict", "tiny-test", "1,2", "--checkpoint", ckpt});
    focus::testing::check_device_refused({"train", "tiny-test", "--run-dir", dir, "--resume", "-q"});
    focus::testing::check_cpu_same({"eval", "tiny-test", "--checkpoint", ckpt});
    focus::testing::check_cpu_same({"predict", "tiny-test", "1,2", "--checkpoint", ckpt});
    // a spec that names no device is the parser's error, for every command
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"train", "tiny-test", "--run-dir", tmp / "tpu", "--device", "tpu"},
             {"eval", "tiny-test", "--checkpoint", ckpt, "--device", "tpu"},
             {"predict", "tiny-test", "1,2", "--checkpoint", ckpt, "--device", "gpu:0"}}) {
      auto r = run_cli(args);
      CHECK(r.rc == 1);
      CHECK(has(r.err, "expected 'cpu', 'cuda' or 'cuda:N'"));
    }
  }

  TEST_CASE("a model command cannot declare an option the command line adds (--device, --checkpoint)") {
    for (const char* reserved : {"device", "checkpoint"}) {
      zoo::ModelEntry e;
      e.name = "reserved-option-test";
      e.description = "declares a reserved option name";
      e.default_config = tiny_config;
      e.train = tiny_train;
      e.evaluate = tiny_evaluate;
      zoo::ModelCommand p;
      p.help = "predict";
      p.options = {{reserved, "clashes", "", false}};
      p.run = tiny_predict;
      e.commands["predict"] = p;
      zoo::add_model(std::move(e));
      auto r = run_cli({"models"});
      zoo::remove_model("reserved-option-test");
      CHECK(r.rc == 1);
      CHECK(has(r.err, fmt::format("bad option name '{}'", reserved)));
    }
  }

  TEST_CASE("missing checkpoints, the default run directory") {
    ensure_tiny_model();
    TempDir tmp;
    auto r = run_cli({"eval", "tiny-test", "--checkpoint", tmp / "nope.safetensors"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "checkpoint file"));
    CHECK(has(r.err, "does not exist"));
    r = run_cli({"predict", "tiny-test", "1,2", "--checkpoint", tmp / "nope.safetensors"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "does not exist"));
    std::ofstream(tmp / "junk.safetensors") << "junk";
    r = run_cli({"eval", "tiny-test", "--checkpoint", tmp / "junk.safetensors"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "not a safetensors checkpoint"));

    // Without --checkpoint / --run-dir: runs/<model> under the current directory.
    const fs::path old = fs::current_path();
    fs::current_path(tmp.path);
    r = run_cli({"eval", "tiny-test"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "no checkpoint at runs/tiny-test/checkpoint.safetensors: train one with `focus train tiny-test`"));
    auto t = run_cli({"train", "tiny-test", "-q"});
    auto e = run_cli({"eval", "tiny-test"});
    auto p = run_cli({"predict", "tiny-test", "3,4"});
    fs::current_path(old);
    CHECK(t.rc == 0);
    CHECK(fs::exists(tmp.path / "runs/tiny-test/checkpoint.safetensors"));
    CHECK(e.rc == 0);
    CHECK(has(e.out, "after 6 steps"));
    CHECK(p.rc == 0);
    CHECK(has(p.out, "3,4 -> "));
  }

  TEST_CASE("data and plot errors") {
    TempDir tmp;
    auto r = run_cli({"plot", tmp / "missing"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "is not a run directory"));
    r = run_cli({"plot", tmp.path.string()});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "has no metrics.jsonl"));
    r = run_cli({"plot"});
    CHECK(r.rc == 2);
    r = run_cli({"data"});
    CHECK(r.rc == 2);
    r = run_cli({"data", "fetch"});
    CHECK(r.rc == 2);
    CHECK(has(r.err, "NAME"));
    r = run_cli({"data", "fetch", "no-such-dataset"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "no-such-dataset"));
  }

  TEST_CASE("data list and data fetch --from a local copy") {
    TempDir tmp;
    std::optional<std::string> old;
    if (const char* v = std::getenv("FOCUS_DATA")) old = v;
    setenv("FOCUS_DATA", tmp.path.c_str(), 1);
    auto r = run_cli({"data", "list"});
    CHECK(r.rc == 0);
    CHECK(has(r.out, "cmudict"));
    CHECK(has(r.out, "not fetched (focus data fetch cmudict)"));
    CHECK(has(r.out, "fashion-mnist"));
    const fs::path fixture = fs::path(FOCUS_SOURCE_DIR) / "tests/fixtures/datasets/cmudict/dict.txt";
    r = run_cli({"data", "fetch", "cmudict", "--from", fixture.string()});
    INFO(r.err);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "cmudict is ready in"));
    r = run_cli({"data", "list"});
    CHECK(has(r.out, "ready ("));
    r = run_cli({"data", "fetch", "cmudict", "--from", tmp / "nowhere", "--force"});
    CHECK(r.rc == 1);
    CHECK(has(r.err, "focus: error: [data fetch]"));
    if (old) setenv("FOCUS_DATA", old->c_str(), 1);
    else unsetenv("FOCUS_DATA");
  }

  TEST_CASE("real SIGINT in a child process: one saves and exits 130, two quit at once") {
    ensure_tiny_model();
    TempDir tmp;
    // Runs `focus train` in a child; returns its pid.
    auto spawn = [&](const std::string& dir, int step_ms) {
      std::fflush(nullptr);
      pid_t pid = ::fork();
      if (pid == 0) {
        std::ostringstream out, err;
        int rc = focus::cli::run({"train", "tiny-test", "--run-dir", dir, "-q", "--set", "steps=100000", "--set",
                                  fmt::format("step_ms={}", step_ms)},
                                 out, err);
        ::_exit(rc);
      }
      return pid;
    };
    auto wait_for = [](const fs::path& file) {
      for (int i = 0; i < 1000 && !fs::exists(file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return fs::exists(file);
    };
    auto exit_status = [](pid_t pid) {
      for (int i = 0; i < 1000; ++i) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return -2;  // did not stop within 10 s
    };

    const std::string dir = tmp / "one";
    pid_t pid = spawn(dir, 5);
    REQUIRE(pid > 0);
    REQUIRE(wait_for(fs::path(dir) / "metrics.jsonl"));
    ::kill(pid, SIGINT);
    CHECK(exit_status(pid) == 130);
    CHECK(fs::exists(fs::path(dir) / "checkpoint.safetensors"));
    CHECK_FALSE(fs::exists(fs::path(dir) / "report.txt"));
    // The saved step is where the run stopped; --resume picks it up.
    auto r = run_cli({"eval", "tiny-test", "--run-dir", dir});
    CHECK(r.rc == 0);

    const std::string dir2 = tmp / "two";
    pid = spawn(dir2, 3000);  // a slow step: the first Ctrl-C waits for it, the second does not
    REQUIRE(pid > 0);
    REQUIRE(wait_for(fs::path(dir2) / "config.json"));
    ::kill(pid, SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::kill(pid, SIGINT);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(exit_status(pid) == 130);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2500));
  }
}
