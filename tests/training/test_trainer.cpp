// training::Trainer (the loop of the zoo and of users' programs), BatchStream, and the old
// spellings of config keys (Config::rename).
#include <doctest/doctest.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include <focus/focus.h>
#include <nlohmann/json.hpp>

#include "models/zoo/registry.h"
#include "test_util.h"

using namespace focus;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<json> metrics_lines(const std::string& dir) {
  std::vector<json> out;
  std::istringstream in(focus::testing::read_file(fs::path(dir) / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// A tiny regression run through a Trainer: y = x . w_true, steps of 8 examples drawn from
// gen; interrupt_at > 0 presses Ctrl-C during that step. Returns the final weights.
struct TinyRun {
  std::string dir;
  std::ostringstream out;
  int64_t steps = 12;
  int validations = 0;
  std::vector<float> weights;
  bool done = false;

  void train(bool resume, int64_t interrupt_at = 0, double grad_clip = 0.5) {
    manual_seed(5);
    nn::Linear model(3, 1);
    optim::AdamW opt(model.parameters(), optim::AdamWOptions().lr(0.05));
    optim::StepLR sched(opt, 4, 0.5);
    training::RunOptions o;
    o.set_dir(dir).set_quiet().set_resume(resume).set_overwrite(!resume).set_streams(&out, &out);
    training::Run run("tiny", training::Config().set("steps", steps), o);
    training::Trainer trainer(run, model, opt, &sched,
                              training::TrainerOptions(steps)
                                  .steps_per_epoch(4)
                                  .log_every(3)
                                  .checkpoint_every(5)
                                  .grad_clip(grad_clip));
    Generator gen(11);
    trainer.generator(&gen).meta({{"note", "tiny"}});
    trainer.on_validate([&](int64_t s) {
      ++validations;
      run.log("valid", s, {{"loss", 0.0}});
    });
    const Tensor w_true = tensor(std::vector<float>{1.0f, -2.0f, 0.5f}).reshape({3, 1});
    done = trainer.fit([&](int64_t step) {
      if (step + 1 == interrupt_at) run.request_interrupt();
      const Tensor x = randn({8, 3}, {}, &gen);
      const Tensor y = matmul(x, w_true);
      training::StepOutput o((model.forward(x) - y).pow(2).mean(), 8);
      o.add("constant", full({}, 6.0), 2.0);  // shown as 6 / 2 = 3
      return o;
    });
    weights = model.weight().to_vector<float>();
  }
};

}  // namespace

TEST_SUITE("training") {
  TEST_CASE("Trainer: logs, validation, checkpoints; Ctrl-C and resume end as an uninterrupted run") {
    focus::testing::TempDir tmp("trainer");
    TinyRun whole;
    whole.dir = tmp / "whole";
    whole.train(false);
    CHECK(whole.done);
    const auto lines = metrics_lines(whole.dir);
    std::vector<int64_t> train_steps, valid_steps;
    for (const auto& j : lines) (j["split"] == "train" ? train_steps : valid_steps).push_back(j["step"]);
    CHECK(train_steps == std::vector<int64_t>{3, 6, 9, 12});
    CHECK(valid_steps == std::vector<int64_t>{4, 8, 12});  // eval_every 0: each epoch's end (4 steps)
    const json& first = lines.front();
    for (const char* key : {"loss", "lr", "grad_norm", "constant", "epoch", "items_per_s"})
      CHECK_MESSAGE(first.contains(key), key);
    CHECK(first["constant"] == 3.0);
    CHECK(first["epoch"] == 0.75);
    CHECK(first["lr"] == 0.05);
    const json& last_train = lines[lines.size() - 2];  // then "valid" at 12
    CHECK(last_train["step"] == 12);
    CHECK(last_train["lr"] == doctest::Approx(0.05 * 0.25));  // StepLR: halved after steps 4 and 8
    CHECK(training::checkpoint_meta(whole.dir + "/checkpoint.safetensors").at("note") == "tiny");

    // Ctrl-C in step 7: the checkpoint holds step 7, metrics after it are dropped on resume,
    // and the resumed run ends with the same weights and the same log.
    TinyRun cut;
    cut.dir = tmp / "cut";
    cut.train(false, 7);
    CHECK_FALSE(cut.done);
    CHECK(optim::read_checkpoint(cut.dir + "/checkpoint.safetensors").step == 7);
    cut.train(true);
    CHECK(cut.done);
    CHECK(cut.weights == whole.weights);
    const auto cut_lines = metrics_lines(cut.dir);
    REQUIRE(cut_lines.size() == lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      json a = lines[i], b = cut_lines[i];
      for (json* j : {&a, &b}) j->erase("time"), j->erase("items_per_s");
      CHECK(a == b);
    }
    // Without clipping there is no grad_norm.
    TinyRun plain;
    plain.dir = tmp / "plain";
    plain.train(false, 0, 0.0);
    CHECK_FALSE(metrics_lines(plain.dir).front().contains("grad_norm"));
  }

  TEST_CASE("Trainer: a non-finite loss stops the run with the steps that made it; bad options") {
    focus::testing::TempDir tmp("trainer_bad");
    std::ostringstream out;
    nn::Linear model(2, 1);
    optim::SGD opt(model.parameters(), optim::SGDOptions(0.1));
    training::RunOptions o;
    o.set_dir(tmp / "nan").set_quiet().set_streams(&out, &out);
    training::Run run("tiny", training::Config().set("steps", 5), o);
    training::Trainer trainer(run, model, opt, nullptr, training::TrainerOptions(5).log_every(2));
    CHECK_THROWS_WITH_AS(trainer.fit([&](int64_t step) {
      const Tensor loss = model.forward(ones({1, 2})).sum();
      return training::StepOutput(step == 2 ? loss * std::nan("") : loss, 1);
    }),
                         doctest::Contains("[tiny] the training loss is nan in steps 3 .. 4"), Error);

    auto make = [&](training::TrainerOptions opts) { training::Trainer t(run, model, opt, nullptr, opts); };
    CHECK_THROWS_WITH_AS(make(training::TrainerOptions(0)), doctest::Contains("[Trainer] steps must be >= 1, got 0"),
                         Error);
    CHECK_THROWS_WITH_AS(make(training::TrainerOptions(3).log_every(0)),
                         doctest::Contains("log_every must be >= 1, got 0"), Error);
    CHECK_THROWS_WITH_AS(make(training::TrainerOptions(3).grad_clip(-1)),
                         doctest::Contains("grad_clip must be >= 0 (0 = off), got -1"), Error);
    CHECK_THROWS_WITH_AS(make(training::TrainerOptions(3).checkpoint_every(-2)),
                         doctest::Contains("must be >= 0"), Error);
    training::Trainer t(run, model, opt, nullptr, training::TrainerOptions(3));
    CHECK_THROWS_WITH_AS(t.fit([](int64_t) { return training::StepOutput(); }),
                         doctest::Contains("[Trainer] step 1: the training step must return a one-element loss tensor"),
                         Error);
    CHECK_THROWS_WITH_AS(training::StepOutput().add("acc", ones({2}), 1),
                         doctest::Contains("add 'acc': the sum must be a one-element tensor"), Error);
  }

  TEST_CASE("BatchStream: epochs in the loader's order, and a resumed stream continues it") {
    auto dataset = std::make_shared<data::VectorDataset<int64_t>>(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});
    auto collate = [](std::vector<int64_t> v) { return v; };
    auto loader_of = [&] {
      return data::DataLoader<int64_t, std::vector<int64_t>>(dataset, collate,
                                                              data::DataLoaderOptions(3).shuffle(true).seed(9));
    };
    auto reference = loader_of();  // 3 batches an epoch (7 examples, batch 3)
    std::vector<std::vector<int64_t>> expected;
    for (int64_t e = 0; e < 3; ++e)
      for (const auto& b : reference.batch_indices(e)) expected.push_back(b);
    for (int64_t start : {0, 2, 3, 5}) {
      CAPTURE(start);
      auto loader = loader_of();
      std::vector<int64_t> epochs;
      training::BatchStream stream(loader, start, [&](int64_t e) { epochs.push_back(e); });
      for (size_t i = static_cast<size_t>(start); i < expected.size(); ++i) {
        CHECK(stream.next() == expected[i]);
        CHECK(stream.epoch() == static_cast<int64_t>(i) / 3);
      }
      CHECK(epochs.front() == start / 3);
      CHECK(epochs.back() == 2);
    }
    auto loader = loader_of();
    CHECK_THROWS_WITH_AS(training::BatchStream(loader, -1), doctest::Contains("start_step must be >= 0"), Error);
  }

  TEST_CASE("Config::rename: old spellings in --set, files and stored configs set the new key") {
    training::Config c;
    c.set("grad_clip", 1.0).set("warmup_steps", 10).set("batch_size", 4);
    c.rename("clip_grad", "grad_clip");
    c.rename("warmup_epochs", "warmup_steps", [](const std::string& v, const training::Config& config) {
      return std::to_string(std::stoll(v) * 100 / config.integer("batch_size"));
    });
    std::ostringstream err;
    std::streambuf* old = std::cerr.rdbuf(err.rdbuf());
    c.apply("clip_grad=0.5");
    c.merge_json(R"({"batch_size": 20, "warmup_epochs": 3})", "config.json");
    std::cerr.rdbuf(old);
    CHECK(c.real("grad_clip") == 0.5);
    CHECK(c.integer("warmup_steps") == 15);  // converted after batch_size of the same file: 3 * 100 / 20
    CHECK_FALSE(c.contains("clip_grad"));
    CHECK(c.to_json().find("clip_grad") == std::string::npos);
    CHECK(err.str().find("[config] note: --set: 'clip_grad' is now called 'grad_clip'") != std::string::npos);
    CHECK(err.str().find("'warmup_epochs' is now called 'warmup_steps' (warmup_epochs=3 is warmup_steps=15)") !=
          std::string::npos);
    CHECK_THROWS_WITH_AS(c.merge_json(R"({"clip_grad": 1, "grad_clip": 2})", "both.json"),
                         doctest::Contains("both.json: both 'clip_grad' and its new name 'grad_clip'"), Error);
    CHECK_THROWS_WITH_AS(c.set("clip_grad", 2.0), doctest::Contains("'clip_grad' is the old spelling of 'grad_clip'"),
                         Error);
    CHECK_THROWS_WITH_AS(c.rename("x", "nope"), doctest::Contains("rename x -> nope: no key 'nope'"), Error);
    CHECK_THROWS_WITH_AS(c.rename("batch_size", "grad_clip"), doctest::Contains("'batch_size' is a key"), Error);
    training::Config copy = c;
    CHECK(copy == c);
  }

  TEST_CASE("the zoo's old key spellings still load from a stored config (vit: warm-up epochs become steps)") {
    std::ostringstream err;
    std::streambuf* old = std::cerr.rdbuf(err.rdbuf());
    training::Config v = zoo::find_model("vit").default_config();
    v.merge_json(R"({"dim": 96, "heads": 6, "depth": 4, "mlp_dim": 192, "clip_grad": 0.5, "warmup_epochs": 2,
                     "batch_size": 100, "valid_size": 10000})",
                 "config.json");
    training::Config g = zoo::find_model("g2p").default_config();
    g.apply("clip=0.25");
    g.apply("encoder_layers=2");
    training::Config cg = zoo::find_model("char-gpt").default_config();
    cg.apply("n_embd=96");
    std::cerr.rdbuf(old);
    CHECK(v.integer("d_model") == 96);
    CHECK(v.integer("nhead") == 6);
    CHECK(v.integer("num_layers") == 4);
    CHECK(v.integer("dim_feedforward") == 192);
    CHECK(v.real("grad_clip") == 0.5);
    CHECK(v.integer("warmup_steps") == 1000);  // 2 epochs of (60000 - 10000) / 100 batches
    CHECK(g.real("grad_clip") == 0.25);
    CHECK(g.integer("num_encoder_layers") == 2);
    CHECK(cg.integer("d_model") == 96);
    // One spelling of the shared keys across the zoo.
    for (const auto& m : zoo::models()) {
      const training::Config c = m.default_config();
      for (const char* old_key : {"clip", "clip_grad", "heads", "n_head", "warmup", "warmup_epochs", "n_layer",
                                  "n_embd", "depth", "dim", "mlp_dim"})
        CHECK_MESSAGE(!c.contains(old_key), m.name << " has " << old_key);
    }
  }
}
