// training/: Config, Run (run directory rules, metrics.jsonl, checkpoints, report), Progress;
// and the zoo's config_from_checkpoint on top of them.
#include <doctest/doctest.h>

#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <focus/focus.h>

#include "models/zoo/registry.h"
#include "test_util.h"
#include "training/config.h"
#include "training/run.h"

using namespace focus;
namespace fs = std::filesystem;

namespace {

struct TempDir : focus::testing::TempDir {
  TempDir() : focus::testing::TempDir("training_test") {}
};

using focus::testing::read_file;

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

training::Config sample_config() {
  training::Config c;
  c.set("steps", 3000).set("lr", 3e-4).set("dataset", "cmudict").set("bias", false).set("warmup", 0.5);
  return c;
}

training::RunOptions quiet_options(const std::string& dir, std::ostream& out) {
  training::RunOptions o;
  o.set_dir(dir).set_quiet();
  o.set_streams(&out, &out);
  return o;
}

}  // namespace

TEST_SUITE("training") {
  TEST_CASE("Config: typed set and get") {
    training::Config c = sample_config();
    CHECK(c.integer("steps") == 3000);
    CHECK(c.real("lr") == doctest::Approx(3e-4));
    CHECK(c.real("steps") == 3000.0);  // an integer is a valid real
    CHECK(c.str("dataset") == "cmudict");
    CHECK_FALSE(c.boolean("bias"));
    CHECK(c.contains("lr"));
    CHECK_FALSE(c.contains("nope"));
    CHECK(c.keys() == std::vector<std::string>{"bias", "dataset", "lr", "steps", "warmup"});
    CHECK(c.type("steps") == training::Config::Type::Integer);
    CHECK(c.type("lr") == training::Config::Type::Real);
    CHECK(c.type("dataset") == training::Config::Type::String);
    CHECK(c.type("bias") == training::Config::Type::Boolean);
    CHECK_THROWS_WITH_AS(c.integer("nope"), doctest::Contains("unknown key 'nope'; the keys are: bias, dataset, lr"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(c.integer("lr"), doctest::Contains("lr is a real"), focus::Error);
    CHECK_THROWS_WITH_AS(c.str("steps"), doctest::Contains("not a string"), focus::Error);
    CHECK_THROWS_WITH_AS(c.boolean("dataset"), doctest::Contains("not a boolean"), focus::Error);
  }

  TEST_CASE("Config: --set overrides are type-checked against the existing key") {
    training::Config c = sample_config();
    c.apply("steps=500");
    CHECK(c.integer("steps") == 500);
    c.apply("lr=1");  // an integer text is a fine real
    CHECK(c.real("lr") == 1.0);
    CHECK(c.type("lr") == training::Config::Type::Real);
    c.apply("lr=2.5e-3");
    CHECK(c.real("lr") == doctest::Approx(2.5e-3));
    c.apply("bias=yes");
    CHECK(c.boolean("bias"));
    c.apply("bias=0");
    CHECK_FALSE(c.boolean("bias"));
    c.apply("dataset=synthetic");
    CHECK(c.str("dataset") == "synthetic");
    c.apply("dataset=a=b");  // only the first '=' splits
    CHECK(c.str("dataset") == "a=b");
    CHECK_THROWS_WITH_AS(c.apply("steps=0.5"), doctest::Contains("steps: expected an integer, got '0.5'"), focus::Error);
    CHECK_THROWS_WITH_AS(c.apply("steps=12abc"), doctest::Contains("expected an integer"), focus::Error);
    CHECK_THROWS_WITH_AS(c.apply("lr=fast"), doctest::Contains("lr: expected a number, got 'fast'"), focus::Error);
    CHECK_THROWS_WITH_AS(c.apply("lr=inf"), doctest::Contains("expected a number"), focus::Error);
    CHECK_THROWS_WITH_AS(c.apply("bias=maybe"), doctest::Contains("bias: expected true or false, got 'maybe'"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(c.apply("stpes=5"), doctest::Contains("unknown key 'stpes'; the keys are: bias, dataset"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(c.apply("steps"), doctest::Contains("--set expects key=value, got 'steps'"), focus::Error);
    CHECK_THROWS_WITH_AS(c.apply("=5"), doctest::Contains("--set expects key=value"), focus::Error);
    CHECK(c.integer("steps") == 500);  // failed applies changed nothing
  }

  TEST_CASE("Config: a string value that is not UTF-8 is refused (found by fuzz_config)") {
    // config.json and the checkpoint metadata are JSON: before, the bad byte only surfaced
    // as a nlohmann::json type_error when the run wrote them.
    training::Config c = sample_config();
    CHECK_THROWS_WITH_AS(c.apply("dataset=mea\xad"), doctest::Contains("dataset: the value is not valid UTF-8"),
                         focus::Error);
    CHECK(c.str("dataset") == sample_config().str("dataset"));
    CHECK_THROWS_WITH_AS(c.set("name", std::string("\xff")), doctest::Contains("not valid UTF-8"), focus::Error);
    c.apply("dataset=caf\xc3\xa9");  // valid UTF-8 is fine
    CHECK(training::Config::from_json(c.to_json()).str("dataset") == "caf\xc3\xa9");
  }

  TEST_CASE("Config: JSON round trip keeps the types") {
    training::Config c = sample_config();
    c.set("whole_real", 2.0);
    training::Config back = training::Config::from_json(c.to_json());
    CHECK(back == c);
    CHECK(back.type("whole_real") == training::Config::Type::Real);
    CHECK(back.type("steps") == training::Config::Type::Integer);
    CHECK_THROWS_WITH_AS(training::Config::from_json("[1, 2]"), doctest::Contains("expected a JSON object"), focus::Error);
    CHECK_THROWS_WITH_AS(training::Config::from_json("{\"a\": "), doctest::Contains("not valid JSON"), focus::Error);
    CHECK_THROWS_WITH_AS(training::Config::from_json("{\"a\": [1]}"), doctest::Contains("a must be a string, number or boolean"),
                         focus::Error);
  }

  TEST_CASE("Config: merge_file") {
    TempDir tmp;
    training::Config c = sample_config();
    std::ofstream(tmp / "good.json") << R"({"steps": 10, "lr": 0.01, "bias": true, "dataset": "synthetic", "warmup": 1})";
    c.merge_file(tmp / "good.json");
    CHECK(c.integer("steps") == 10);
    CHECK(c.real("lr") == doctest::Approx(0.01));
    CHECK(c.boolean("bias"));
    CHECK(c.str("dataset") == "synthetic");
    CHECK(c.real("warmup") == 1.0);
    std::ofstream(tmp / "strings.json") << R"({"steps": "20", "lr": "3e-4"})";
    c.merge_file(tmp / "strings.json");
    CHECK(c.integer("steps") == 20);

    std::ofstream(tmp / "unknown.json") << R"({"steps": 5, "layers": 4})";
    CHECK_THROWS_WITH_AS(c.merge_file(tmp / "unknown.json"), doctest::Contains("unknown key 'layers'"), focus::Error);
    CHECK(c.integer("steps") == 20);  // a bad file changes nothing
    std::ofstream(tmp / "type.json") << R"({"steps": 2.5})";
    CHECK_THROWS_WITH_AS(c.merge_file(tmp / "type.json"), doctest::Contains("steps is a integer, got 2.5"), focus::Error);
    std::ofstream(tmp / "bool.json") << R"({"bias": 1})";
    CHECK_THROWS_WITH_AS(c.merge_file(tmp / "bool.json"), doctest::Contains("bias is a boolean"), focus::Error);
    std::ofstream(tmp / "bad.json") << "{steps: 5}";
    CHECK_THROWS_WITH_AS(c.merge_file(tmp / "bad.json"), doctest::Contains("not valid JSON"), focus::Error);
    CHECK_THROWS_WITH_AS(c.merge_file(tmp / "missing.json"), doctest::Contains("cannot read config file"), focus::Error);
  }

  TEST_CASE("Run: fresh run writes config.json; metrics.jsonl gets one JSON object per line") {
    TempDir tmp;
    std::ostringstream out;
    const std::string dir = tmp / "run";
    {
      training::Run run("tiny", sample_config(), quiet_options(dir, out).set_overrides({"steps=7"}));
      CHECK(run.dir() == fs::path(dir));
      CHECK(run.device() == kCPU);
      CHECK(run.config().integer("steps") == 7);
      CHECK_FALSE(fs::exists(fs::path(dir) / "config.json"));  // written with the first write
      run.log("train", 1, {{"loss", 2.5}});
      CHECK(training::Config::from_json(read_file(fs::path(dir) / "config.json")).integer("steps") == 7);
      run.log("train", 2, {{"loss", 2.0}, {"lr", 1e-3}});
      run.log("valid", 2, {{"loss", 2.25}, {"acc", 0.5}});
      CHECK(out.str().find("valid  step 2  loss 2.2500  acc 0.5000") != std::string::npos);
      CHECK(out.str().find("train") == std::string::npos);  // train lines are not echoed
      CHECK_THROWS_WITH_AS(run.log("train", 3, {{"step", 1.0}}), doctest::Contains("reserved"), focus::Error);
      CHECK_FALSE(run.reported());
      run.report({{"test_acc", 0.75}}, "test accuracy 75.0%");
      CHECK(run.reported());
      CHECK(out.str().find("test accuracy 75.0%") != std::string::npos);
    }
    auto lines = lines_of(fs::path(dir) / "metrics.jsonl");
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].find("\"split\":\"train\"") != std::string::npos);
    CHECK(lines[0].find("\"step\":1") != std::string::npos);
    CHECK(lines[0].find("\"loss\":2.5") != std::string::npos);
    CHECK(lines[0].find("\"time\":") != std::string::npos);
    CHECK(lines[2].find("\"split\":\"valid\"") != std::string::npos);
    CHECK(lines[2].find("\"acc\":0.5") != std::string::npos);
    CHECK(read_file(fs::path(dir) / "report.txt").find("test accuracy 75.0%\n\ntest_acc 0.7500") != std::string::npos);
    CHECK(read_file(fs::path(dir) / "report.json").find("\"test_acc\": 0.75") != std::string::npos);
  }

  TEST_CASE("Run: checkpoint meta round trip, resume and overwrite rules") {
    TempDir tmp;
    std::ostringstream out;
    const std::string dir = tmp / "run";
    manual_seed(0);
    nn::Linear model(3, 2);
    optim::AdamW opt(model.parameters(), optim::AdamWOptions().lr(0.1));
    Generator gen(5);
    {
      training::Run run("tiny", sample_config(), quiet_options(dir, out));
      CHECK(run.restore(model, &opt, nullptr, &gen, 3000) == 0);  // fresh: nothing to restore
      run.log("train", 4, {{"loss", 1.0}});
      run.log("train", 6, {{"loss", 0.5}});
      run.save_checkpoint(model, &opt, nullptr, 4, &gen, {{"vocab", "[\"a\"]"}});
    }
    const std::string ckpt = (fs::path(dir) / "checkpoint.safetensors").string();
    auto meta = training::checkpoint_meta(ckpt);
    CHECK(meta.at("model") == "tiny");
    CHECK(meta.at("vocab") == "[\"a\"]");
    CHECK(meta.at("format") == "focus-checkpoint");
    CHECK(zoo::config_from_checkpoint(ckpt) == sample_config());
    CHECK(training::checkpoint_meta(ckpt, "tiny").at("model") == "tiny");
    CHECK_THROWS_WITH_AS(training::checkpoint_meta(ckpt, "g2p"), doctest::Contains("holds a 'tiny' model, not 'g2p'"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(training::checkpoint_meta(tmp / "none.safetensors"), doctest::Contains("no checkpoint at"),
                         focus::Error);
    std::ofstream(tmp / "junk.safetensors") << "this is not a checkpoint";
    CHECK_THROWS_WITH_AS(training::checkpoint_meta(tmp / "junk.safetensors"), doctest::Contains("not a safetensors checkpoint"),
                         focus::Error);

    // Training again into the same directory without --resume/--overwrite: refused, nothing lost.
    const auto before = fs::file_size(ckpt);
    CHECK_THROWS_WITH_AS(training::Run("tiny", sample_config(), quiet_options(dir, out)),
                         doctest::Contains("already holds a checkpoint of an earlier run"), focus::Error);
    CHECK(fs::file_size(ckpt) == before);
    CHECK(lines_of(fs::path(dir) / "metrics.jsonl").size() == 2);
    CHECK_THROWS_WITH_AS(training::Run("tiny", sample_config(), quiet_options(dir, out).set_resume().set_overwrite()),
                         doctest::Contains("contradict"), focus::Error);
    CHECK_THROWS_WITH_AS(training::Run("other", sample_config(), quiet_options(dir, out).set_resume()),
                         doctest::Contains("holds a checkpoint of model 'tiny', not 'other'"), focus::Error);

    // --resume: the stored config comes back, then the overrides; metrics after the step go.
    {
      training::Config changed = sample_config();
      changed.set("steps", 1);  // ignored on resume: the stored config wins
      training::Run run("tiny", changed, quiet_options(dir, out).set_resume().set_overrides({"lr=0.5"}));
      CHECK(run.config().integer("steps") == 3000);
      CHECK(run.config().real("lr") == 0.5);
      nn::Linear fresh(3, 2);
      optim::AdamW opt2(fresh.parameters(), optim::AdamWOptions().lr(0.1));
      Generator gen2(99);
      CHECK(run.restore(fresh, &opt2, nullptr, &gen2, 3000) == 4);
      CHECK(focus::testing::allclose(fresh.weight(), model.weight(), 0.0, 0.0));
      CHECK(gen2.get_state().offset == gen.get_state().offset);
      auto lines = lines_of(fs::path(dir) / "metrics.jsonl");
      REQUIRE(lines.size() == 1);  // step 6 came after the checkpoint
      CHECK(lines[0].find("\"step\":4") != std::string::npos);
    }
    // --resume with settings that end the run before the checkpoint's step: refused, nothing
    // written (it was accepted silently: config.json said 3 steps, the report the checkpoint's 4).
    {
      const std::string config_before = read_file(fs::path(dir) / "config.json");
      training::Run run("tiny", sample_config(), quiet_options(dir, out).set_resume().set_overrides({"steps=3"}));
      nn::Linear fresh(3, 2);
      optim::AdamW opt2(fresh.parameters(), optim::AdamWOptions().lr(0.1));
      CHECK_THROWS_WITH_AS(run.restore(fresh, &opt2, nullptr, nullptr, run.config().integer("steps")),
                           doctest::Contains("is at step 4, past the end of this run: its settings (after --set) "
                                             "train 3 steps in all"),
                           focus::Error);
      CHECK(read_file(fs::path(dir) / "config.json") == config_before);
    }
    // --overwrite: starts afresh (old pictures go too), but only once the new run writes: a
    // run that fails first (bad config, no dataset) leaves the earlier one as it was.
    std::ofstream(fs::path(dir) / "loss.png") << "png";
    {
      training::Config other = sample_config();
      other.set("steps", 7);
      training::Run run("tiny", other, quiet_options(dir, out).set_overwrite());
      CHECK(fs::exists(ckpt));  // e.g. the model's config check throws here: nothing is lost
      CHECK(fs::exists(fs::path(dir) / "loss.png"));
      CHECK(zoo::config_from_checkpoint(ckpt).integer("steps") == 3000);
    }
    CHECK(fs::exists(ckpt));
    CHECK(training::Config::from_json(read_file(fs::path(dir) / "config.json")).integer("steps") == 3000);  // the earlier run's
    {
      training::Run run("tiny", sample_config(), quiet_options(dir, out).set_overwrite());
      CHECK(run.restore(model, &opt, nullptr, &gen, 3000) == 0);  // the first write of a fresh run
      CHECK_FALSE(fs::exists(ckpt));
      CHECK_FALSE(fs::exists(fs::path(dir) / "metrics.jsonl"));
      CHECK_FALSE(fs::exists(fs::path(dir) / "loss.png"));
      CHECK(fs::exists(fs::path(dir) / "config.json"));
    }
    // a directory that held no run keeps its pictures
    std::filesystem::create_directories(tmp / "mine");
    std::ofstream(fs::path(tmp / "mine") / "holiday.png") << "png";
    {
      training::Run run("tiny", sample_config(), quiet_options(tmp / "mine", out));
      run.log("train", 1, {{"loss", 1.0}});
    }
    CHECK(fs::exists(fs::path(tmp / "mine") / "holiday.png"));
    CHECK(fs::exists(fs::path(tmp / "mine") / "config.json"));
    // --resume without a checkpoint.
    CHECK_THROWS_WITH_AS(training::Run("tiny", sample_config(), quiet_options(tmp / "empty", out).set_resume()),
                         doctest::Contains("no checkpoint to resume"), focus::Error);
    CHECK_FALSE(fs::exists(tmp / "empty"));
  }

  TEST_CASE("config_from_checkpoint: a zoo model's defaults fill keys the checkpoint predates") {
    TempDir tmp;
    std::ostringstream out;
    const std::string dir = tmp / "old";
    nn::Linear model(3, 2);
    training::Config stored;  // as if written before g2p had its other keys (e.g. "stress")
    stored.set("d_model", 64).set("lr", 0.01);
    {
      training::Run run("g2p", stored, quiet_options(dir, out));
      run.save_checkpoint(model, nullptr, nullptr, 1, nullptr, {});
    }
    const std::string ckpt = (fs::path(dir) / "checkpoint.safetensors").string();
    const training::Config c = zoo::config_from_checkpoint(ckpt);
    CHECK(c.integer("d_model") == 64);                            // stored values win
    CHECK(c.real("lr") == 0.01);
    CHECK(c.boolean("stress") == true);                           // missing: g2p's default
    CHECK(c.keys() == zoo::find_model("g2p").default_config().keys());
    // a key the model does not have (a stale or foreign checkpoint) is a clear error
    training::Config alien;
    alien.set("no_such_key", 1);
    {
      training::Run run("g2p", alien, quiet_options(tmp / "alien", out));
      run.save_checkpoint(model, nullptr, nullptr, 1, nullptr, {});
    }
    CHECK_THROWS_WITH_AS(zoo::config_from_checkpoint((fs::path(tmp / "alien") / "checkpoint.safetensors").string()),
                         doctest::Contains("unknown key 'no_such_key'"), focus::Error);
  }

  TEST_CASE("Run: devices and bad run directories") {
    TempDir tmp;
    std::ostringstream out;
    CHECK_THROWS_WITH_AS(training::Run("tiny", sample_config(), quiet_options(tmp / "r", out).set_device("cuda")),
                         doctest::Contains("--device cuda: this device cannot be used"), focus::Error);
    CHECK_THROWS_WITH_AS(training::Run("tiny", sample_config(), quiet_options(tmp / "r", out).set_device("tpu")),
                         doctest::Contains("expected 'cpu', 'cuda'"), focus::Error);
    std::ofstream(tmp / "file") << "x";
    CHECK_THROWS_WITH_AS(training::Run("tiny", sample_config(), quiet_options(tmp / "file", out)),
                         doctest::Contains("is not a directory"), focus::Error);
    CHECK_THROWS_WITH_AS(training::Run("tiny", sample_config(), quiet_options(tmp / "r", out).set_overrides({"nope=1"})),
                         doctest::Contains("unknown key 'nope'"), focus::Error);
    CHECK(training::default_run_dir("g2p") == fs::path("runs/g2p"));
  }

  TEST_CASE("Run: a run cleans up the temporaries a killed write left, and I/O errors say why") {
    TempDir tmp;
    std::ostringstream out;
    const fs::path dir = tmp / "run";
    manual_seed(0);
    nn::Linear model(3, 2);
    optim::SGD opt(model.parameters(), optim::SGDOptions(0.1));
    {
      training::Run run("tiny", sample_config(), quiet_options(dir, out));
      run.save_checkpoint(model, &opt, nullptr, 2, nullptr);
    }
    // What `kill -9` during writes leaves (it stayed for ever, up to a checkpoint's size each).
    const std::vector<std::string> stale = {".checkpoint.safetensors.tmp.a1B2c3", ".config.json.tmp.XyZ123",
                                            ".loss.png.tmp.000000"};
    for (const auto& f : stale) std::ofstream(dir / f) << "half a file";
    const std::vector<std::string> kept = {"notes.tmp.abcdef", ".hidden", "checkpoint.safetensors.tmp.abcdef"};
    for (const auto& f : kept) std::ofstream(dir / f) << "mine";
    {
      training::Run run("tiny", sample_config(), quiet_options(dir, out).set_resume());
      CHECK(run.restore(model, &opt, nullptr, nullptr, 3000) == 2);
    }
    for (const auto& f : stale) CHECK_FALSE(fs::exists(dir / f));
    for (const auto& f : kept) CHECK(fs::exists(dir / f));
    CHECK(out.str().find("removed " + (dir / ".checkpoint.safetensors.tmp.a1B2c3").string() +
                         ", left by an interrupted write") != std::string::npos);
    // A fresh run into a directory with leftovers (no checkpoint) cleans them up too.
    const fs::path fresh = tmp / "fresh", blocked = tmp / "blocked";
    fs::create_directories(fresh);
    std::ofstream(fresh / ".config.json.tmp.q1w2e3") << "x";
    {
      training::Run run("tiny", sample_config(), quiet_options(fresh, out));
      run.log("train", 1, {{"loss", 1.0}});
    }
    CHECK_FALSE(fs::exists(fresh / ".config.json.tmp.q1w2e3"));

    // Writing config.json fails: the message names the file and the system's reason (it said
    // only "[run] cannot write .../config.json.tmpNNN").
    fs::create_directories(blocked / "config.json" / "inside");
    {
      training::Run run("tiny", sample_config(), quiet_options(blocked, out));
      std::string message;
      try {
        run.log("train", 1, {{"loss", 1.0}});
      } catch (const focus::Error& e) {
        message = e.what();
      }
      INFO(message);
      CHECK(message.find("[run] cannot write '" + (blocked / "config.json").string() + "': renaming") !=
            std::string::npos);
      CHECK(message.find("Is a directory") != std::string::npos);
    }
    for (const auto& e : fs::directory_iterator(blocked))  // no temporary left behind
      CHECK(e.path().filename() == "config.json");
  }

  TEST_CASE("usable_device and device_description: the devices of --device and the run header") {
    CHECK(training::usable_device("cpu", "eval") == kCPU);
    CHECK(training::device_description(kCPU) == "cpu");
    CHECK_THROWS_WITH_AS(training::usable_device("cuda:99", "eval"),
                         doctest::Contains("[eval] --device cuda:99: this device cannot be used ("), focus::Error);
    CHECK_THROWS_WITH_AS(training::usable_device("cuda:99", "eval"), doctest::Contains("); use --device cpu"), focus::Error);
    CHECK_THROWS_WITH_AS(training::usable_device("gpu"), doctest::Contains("expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
                         focus::Error);
    if (cuda::is_available()) {
      CHECK(training::usable_device("cuda", "predict") == Device::cuda(0));
      CHECK(training::device_description(Device::cuda(0)) == "cuda:0 (" + cuda::get_device_name(0) + ")");
    } else {
      MESSAGE("no GPU: --device cuda is checked to be refused, the GPU's name in the header is not checked");
      CHECK_THROWS_WITH_AS(training::usable_device("cuda", "predict"),
                           doctest::Contains("[predict] --device cuda: this device cannot be used"), focus::Error);
      CHECK(training::device_description(Device::cuda(0)) == "cuda:0");  // no name to add, and no error
    }
  }

  TEST_CASE("Run: Ctrl-C sets interrupted() while a Run lives") {
    TempDir tmp;
    std::ostringstream out;
    training::Run run("tiny", sample_config(), quiet_options(tmp / "r", out));
    CHECK_FALSE(run.interrupted());
    std::raise(SIGINT);  // the first Ctrl-C only sets the flag
    CHECK(run.interrupted());
  }

  TEST_CASE("Progress: line contents, plain lines off a terminal, nothing when disabled") {
    std::ostringstream s;
    training::Progress p(s, /*tty=*/false);
    p.interval(0);
    p.start(10, "tok/s");
    p.update(1, 1, 2.5, 100);
    p.update(3, 1, 1.25, 200);
    CHECK(p.line().find("step 3/10 (30%)") != std::string::npos);
    CHECK(p.line().find("epoch 1") != std::string::npos);
    CHECK(p.line().find("loss 1.2500") != std::string::npos);
    CHECK(p.line().find("tok/s") != std::string::npos);
    CHECK(p.line().find("ETA") != std::string::npos);
    p.finish();
    auto text = s.str();
    CHECK(text.find("elapsed\n") != std::string::npos);  // the final line: time taken, no ETA
    CHECK(std::count(text.begin(), text.end(), '\n') == 3);  // two updates and the final line
    CHECK(text.find('\r') == std::string::npos);

    std::ostringstream t;
    training::Progress tty(t, /*tty=*/true);
    tty.start(5, "img/s");
    tty.update(1, 0, 1.0, 10);
    tty.clear();
    tty.update(5, 0, 0.5, 10);
    tty.finish();
    CHECK(t.str().find("\rstep 1/5 (20%)") != std::string::npos);
    CHECK(t.str().find("\r\x1b[K") != std::string::npos);
    CHECK(t.str().back() == '\n');

    // A loss given as a tensor is read when a line is drawn (the last one at finish).
    std::ostringstream u;
    training::Progress lazy(u, /*tty=*/false);
    lazy.interval(0);
    lazy.start(4, "tok/s");
    lazy.update(1, 1, scalar_tensor(0.75), 8);
    CHECK(lazy.line().find("loss 0.7500") != std::string::npos);
    lazy.update(2, 1, tensor<float>({1.5f}, {1, 1}), 8);
    CHECK(lazy.line().find("loss 1.5000") != std::string::npos);
    lazy.update(3, 1, 0.25, 8);  // a plain number still works, and replaces the tensor
    CHECK(lazy.line().find("loss 0.2500") != std::string::npos);
    lazy.update(4, 1, scalar_tensor(2.0).requires_grad_() * 1.0, 8);  // the graph behind it is not kept
    lazy.finish();
    CHECK(u.str().find("step 4/4 (100%) | epoch 1 | loss 2.0000") != std::string::npos);
    CHECK_THROWS_WITH_AS(lazy.update(5, 1, zeros({2}), 1), doctest::Contains("[progress] the loss must be a one-element"),
                         focus::Error);

    std::ostringstream q;
    training::Progress off(q, false, /*enabled=*/false);
    off.start(5, "tok/s");
    off.update(1, 0, 1.0, 10);
    off.finish();
    CHECK(q.str().empty());
  }
}
