// Checkpoints: exact resume, atomic replace, clear errors.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <memory>

#include "test_util.h"

using namespace focus;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "focus_ckpt_XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

/// Linear -> ReLU -> Dropout -> Linear -> Dropout: dropout makes the default generator's
/// state part of the trajectory.
std::shared_ptr<nn::Sequential> make_model(int64_t hidden = 16) {
  return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(6, hidden), std::make_shared<nn::ReLU>(),
                                          std::make_shared<nn::Dropout>(0.2), std::make_shared<nn::Linear>(hidden, 3),
                                          std::make_shared<nn::Dropout>(0.1));
}

/// Model, AdamW with two param groups (no decay for biases), warmup then cosine schedule.
struct Trainer {
  std::shared_ptr<nn::Sequential> model = make_model();
  std::unique_ptr<optim::AdamW> opt;
  std::unique_ptr<optim::SequentialLR> sched;
  Generator data_gen{42};  // an extra generator for the batches
  Trainer() {
    std::vector<Tensor> decay, no_decay;
    for (const auto& [name, p] : model->named_parameters()) (p.dim() > 1 ? decay : no_decay).push_back(p);
    opt = std::make_unique<optim::AdamW>(
        std::vector<optim::ParamGroup>{optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
        optim::AdamWOptions().lr(1e-2).weight_decay(0.1));
    auto warm = std::make_shared<optim::LinearLR>(*opt, 0.1, 1.0, 5);
    auto cos = std::make_shared<optim::CosineAnnealingLR>(*opt, 30, 1e-4);
    sched = std::make_unique<optim::SequentialLR>(*opt, std::vector<std::shared_ptr<optim::LRScheduler>>{warm, cos},
                                                  std::vector<int64_t>{5});
  }
  void train_steps(int n) {
    model->train();
    for (int i = 0; i < n; ++i) {
      Tensor x = randn({8, 6}, {}, &data_gen);
      Tensor y = randn({8, 3}, {}, &data_gen);
      opt->zero_grad();
      Tensor loss = mse_loss(model->forward(x), y);
      loss.backward();
      opt->step();
      sched->step();
    }
  }
  std::vector<std::vector<float>> weights() const {
    std::vector<std::vector<float>> out;
    for (const auto& [k, v] : model->state_dict()) out.push_back(v.to_vector<float>());
    return out;
  }
};

}  // namespace

TEST_SUITE("checkpoint") {

TEST_CASE("20 steps in one go == 10 steps + save + load into fresh objects + 10 steps, bit for bit") {
  TempDir dir;
  manual_seed(7);
  Trainer a;
  a.train_steps(20);

  manual_seed(7);
  const std::string path = dir.file("ckpt.safetensors");
  {
    Trainer b;
    b.train_steps(10);
    optim::save_checkpoint(path, *b.model, b.opt.get(), b.sched.get(), 10, &b.data_gen, {{"run", "test"}});
  }
  manual_seed(12345);  // fresh objects start from different weights and RNG states
  Trainer c;
  CHECK(c.weights() != a.weights());
  const int64_t step = optim::load_checkpoint(path, *c.model, c.opt.get(), c.sched.get(), &c.data_gen);
  CHECK(step == 10);
  c.train_steps(10);
  CHECK(c.weights() == a.weights());
  CHECK(c.sched->get_last_lr() == a.sched->get_last_lr());
  CHECK(c.opt->lr(0) == a.opt->lr(0));
  CHECK(c.opt->lr(1) == a.opt->lr(1));

  const optim::Checkpoint ck = optim::read_checkpoint(path);
  CHECK(ck.metadata.at("format") == "focus-checkpoint");
  CHECK(ck.metadata.at("version") == "1");
  CHECK(ck.metadata.at("optimizer") == "AdamW");
  CHECK(ck.metadata.at("scheduler") == "SequentialLR");
  CHECK(ck.metadata.at("run") == "test");
  CHECK(ck.model.keys() == a.model->state_dict().keys());
  CHECK(ck.model.contains("0.weight"));
  CHECK(ck.optimizer.contains("state.0.exp_avg"));
  CHECK(ck.step == 10);
  CHECK(ck.generator_rng.has_value());
}

TEST_CASE("optimizer steps in files: 0-d float32 as before, and any one number loads") {
  // The files hold `optimizer.state.<i>.step` as a 0-d float32 tensor, as focus wrote it when
  // the count lived in that tensor (and as PyTorch 2.x writes it): files from before the
  // host step count load, and files that store the step another way (float64) do too.
  TempDir dir;
  manual_seed(3);
  Trainer a;
  a.train_steps(12);
  manual_seed(3);
  const std::string path = dir.file("ckpt.safetensors");
  {
    Trainer b;
    b.train_steps(6);
    optim::save_checkpoint(path, *b.model, b.opt.get(), b.sched.get(), 6, &b.data_gen);
  }
  SafetensorsMetadata meta;
  const TensorDict raw = load_safetensors(path, &meta);
  int64_t steps = 0;
  TensorDict as_float64;
  for (const auto& [k, v] : raw) {
    if (k.starts_with("optimizer.state.") && k.ends_with(".step")) {
      CAPTURE(k);
      CHECK(v.dtype() == kFloat32);
      CHECK(v.dim() == 0);
      CHECK(v.item<double>() == 6.0);
      ++steps;
      as_float64.insert(k, v.to(kFloat64));
    } else {
      as_float64.insert(k, v);
    }
  }
  CHECK(steps == 4);  // 2 weights + 2 biases
  const std::string path64 = dir.file("ckpt64.safetensors");
  save_safetensors(as_float64, path64, meta);
  for (const std::string& p : {path, path64}) {
    CAPTURE(p);
    manual_seed(999);
    Trainer c;
    CHECK(optim::load_checkpoint(p, *c.model, c.opt.get(), c.sched.get(), &c.data_gen) == 6);
    CHECK(c.opt->step_count(c.model->parameters()[0]) == 6.0);
    c.train_steps(6);
    CHECK(c.weights() == a.weights());
  }
}

TEST_CASE("model-only checkpoints and PyTorch-style names") {
  TempDir dir;
  auto m = make_model();
  const std::string path = dir.file("m.safetensors");
  optim::save_checkpoint(path, *m, nullptr, nullptr, 3);
  // The weights are plain safetensors entries under "model.".
  TensorDict raw = load_safetensors(path);
  CHECK(raw.at("model.3.bias").to_vector<float>() == m->state_dict().at("3.bias").to_vector<float>());
  auto m2 = make_model();
  CHECK(optim::load_checkpoint(path, *m2) == 3);
  CHECK(m2->state_dict().at("0.weight").to_vector<float>() == m->state_dict().at("0.weight").to_vector<float>());
  // Asking for parts the file lacks is an error, and nothing changes.
  Trainer t;
  const auto before = t.weights();
  CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *t.model, t.opt.get()),
                       doctest::Contains("holds no optimizer state"), Error);
  CHECK(t.weights() == before);
}

TEST_CASE("a crash mid-write leaves the previous checkpoint intact") {
  TempDir dir;
  manual_seed(1);
  Trainer t;
  t.train_steps(3);
  const std::string path = dir.file("ckpt.safetensors");
  optim::save_checkpoint(path, *t.model, t.opt.get(), t.sched.get(), 3);
  const auto saved = t.weights();
  t.train_steps(3);
  for (int64_t fault : {0, 16, 200, 2000}) {
    INFO(fault);
    detail::set_safetensors_write_fault(fault);
    CHECK_THROWS_WITH_AS(optim::save_checkpoint(path, *t.model, t.opt.get(), t.sched.get(), 6),
                         doctest::Contains("[checkpoint] saving"), Error);
  }
  detail::set_safetensors_write_fault(-1);
  size_t files = 0;
  for (const auto& ent : std::filesystem::directory_iterator(dir.path)) files += ent.is_regular_file();
  CHECK(files == 1);
  Trainer fresh;
  CHECK(optim::load_checkpoint(path, *fresh.model, fresh.opt.get(), fresh.sched.get()) == 3);
  CHECK(fresh.weights() == saved);
  // Writing into a directory that does not exist fails the same way.
  CHECK_THROWS_WITH_AS(optim::save_checkpoint(dir.file("no/such/dir/c.safetensors"), *t.model),
                       doctest::Contains("cannot create a temporary file"), Error);
}

TEST_CASE("mismatches give clear errors and change nothing") {
  TempDir dir;
  manual_seed(2);
  Trainer t;
  t.train_steps(2);
  const std::string path = dir.file("ckpt.safetensors");
  optim::save_checkpoint(path, *t.model, t.opt.get(), t.sched.get(), 2);

  auto other = make_model(/*hidden=*/9);
  const auto before = other->state_dict().at("0.weight").to_vector<float>();
  CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *other), doctest::Contains("[checkpoint] loading the model from"),
                       Error);
  CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *other), doctest::Contains("0.weight"), Error);
  CHECK(other->state_dict().at("0.weight").to_vector<float>() == before);

  auto smaller = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(6, 16));
  CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *smaller), doctest::Contains("3.weight"), Error);

  // The right model but another optimizer type.
  Trainer u;
  optim::SGD sgd(u.model->parameters(), optim::SGDOptions(0.1));
  CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *u.model, &sgd), doctest::Contains("holds AdamW state"), Error);
  // The file lacks the extra generator.
  Generator g;
  CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *u.model, nullptr, nullptr, &g),
                       doctest::Contains("no state for the extra generator"), Error);
  // An optimizer over fewer parameters: the model was loaded first, and is restored.
  const auto u_before = u.weights();
  optim::AdamW small_opt(std::vector<Tensor>{u.model->parameters()[0]});
  CHECK_THROWS_WITH_AS(optim::load_checkpoint(path, *u.model, &small_opt),
                       doctest::Contains("[checkpoint] loading the optimizer"), Error);
  CHECK(u.weights() == u_before);

  // Not a checkpoint at all.
  const std::string plain = dir.file("plain.safetensors");
  save_safetensors({{"w", zeros({2})}}, plain);
  CHECK_THROWS_WITH_AS(optim::read_checkpoint(plain), doctest::Contains("is not a focus checkpoint"), Error);
  CHECK_THROWS_WITH_AS(optim::read_checkpoint(dir.file("missing")), doctest::Contains("[checkpoint] reading"), Error);
  CHECK_THROWS_WITH_AS(optim::save_checkpoint(path, *t.model, nullptr, nullptr, 0, nullptr, {{"format", "x"}}),
                       doctest::Contains("reserved"), Error);
}

}  // TEST_SUITE
