// Checkpoints both ways between focus and PyTorch: a focus-format checkpoint written from
// PyTorch (model + AdamW state) resumes in focus, and a focus checkpoint resumes in PyTorch.
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>

#include "parity/parity.h"
#include "test_util.h"

using namespace focus;

namespace {

/// Same as gen_checkpoint.make_model.
std::shared_ptr<nn::Sequential> make_model() {
  return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(6, 16), std::make_shared<nn::ReLU>(),
                                          std::make_shared<nn::Dropout>(0.2), std::make_shared<nn::Linear>(16, 3),
                                          std::make_shared<nn::Dropout>(0.1));
}

void one_step(nn::Sequential& model, optim::Optimizer& opt, const Tensor& x, const Tensor& y) {
  opt.zero_grad();
  mse_loss(model.forward(x), y).backward();
  opt.step();
}

}  // namespace

TEST_SUITE("parity_checkpoint") {

TEST_CASE("a checkpoint written from PyTorch resumes in focus") {
  (void)parity::dir();
  const std::string path = parity::dir() + "/checkpoint_torch.safetensors";
  const TensorDict ref = parity::load("checkpoint_torch_ref");
  auto model = make_model();
  optim::AdamW opt(model->parameters(), optim::AdamWOptions().lr(1.0).weight_decay(0.0));  // replaced on load
  CHECK(optim::load_checkpoint(path, *model, &opt) == 5);
  CHECK(opt.lr() == 1e-2);
  model->eval();
  {
    NoGradGuard ng;
    CHECK(testing::allclose(model->forward(ref.at("x")), ref.at("out"), 1e-5, 1e-6));
  }
  one_step(*model, opt, ref.at("x"), ref.at("y"));
  for (const auto& [k, v] : model->state_dict()) {
    INFO(k);
    CHECK(testing::allclose(v, ref.at("after." + k), 1e-5, 1e-6));
  }
}

TEST_CASE("a focus checkpoint resumes in PyTorch") {
  manual_seed(11);
  auto model = make_model();
  optim::AdamW opt(model->parameters(), optim::AdamWOptions().lr(2e-2).weight_decay(0.05));
  for (int i = 0; i < 4; ++i) one_step(*model, opt, randn({8, 6}), randn({8, 3}));
  const std::string ckpt = parity::dir() + "/focus_checkpoint.safetensors";
  optim::save_checkpoint(ckpt, *model, &opt, nullptr, 4);

  model->eval();
  TensorDict ref;
  ref.insert("x", randn({4, 6}));
  ref.insert("y", randn({4, 3}));
  {
    NoGradGuard ng;
    ref.insert("out", model->forward(ref.at("x")));
  }
  one_step(*model, opt, ref.at("x"), ref.at("y"));
  ref.update(model->state_dict(), "after.");
  const std::string ref_path = parity::dir() + "/focus_checkpoint_ref.safetensors";
  save_safetensors(ref, ref_path);
  const std::string cmd = "/usr/bin/python3 " FOCUS_SOURCE_DIR "/tests/parity/check_focus_checkpoint.py '" + ckpt +
                          "' '" + ref_path + "'";
  const int rc = std::system(cmd.c_str());
  CHECK_MESSAGE(rc == 0, "python check failed: " << cmd);
}

}  // TEST_SUITE
