// models/gpt against the PyTorch model of tools/bench/bench_gpt_torch.py (gen_gpt.py): the
// same initial weights and batches, 3 AdamW steps; losses, first gradients, final weights
// and logits match.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include "models/gpt/gpt.h"
#include "optim/adam.h"
#include "parity/parity.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

TensorDict with_prefix(const TensorDict& d, const std::string& prefix) { return d.with_prefix_removed(prefix); }

void check_close(const std::string& what, const Tensor& got, const Tensor& want, double rtol, double atol) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  CHECK(allclose(got, want, rtol, atol));
}

}  // namespace

TEST_SUITE("parity_gpt") {
  TEST_CASE("a tiny GPT trains 3 AdamW steps as PyTorch") {
    const TensorDict ref = parity::load("gpt_train");
    const TensorDict init = with_prefix(ref, "init.");
    const Tensor xs = ref.at("batch.x"), ys = ref.at("batch.y");
    models::GPTConfig cfg;
    cfg.n_layer(2).n_head(2).n_embd(32).block_size(16).vocab_size(65);
    models::GPT model(cfg);
    model.load_state_dict(init);
    auto [decay, no_decay] = model.decay_groups();
    optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                     optim::AdamWOptions().lr(3e-4).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1));
    const std::vector<float> want_loss = ref.at("loss").to_vector<float>();
    for (int64_t s = 0; s < 3; ++s) {
      Tensor loss = models::GPT::loss(model.forward(xs.select(0, s)), ys.select(0, s));
      opt.zero_grad();
      loss.backward();
      CHECK(loss.item<double>() == doctest::Approx(want_loss[static_cast<size_t>(s)]).epsilon(1e-5));
      if (s == 0)
        for (const auto& [name, p] : model.named_parameters())
          check_close("grad0." + name, p.grad(), ref.at("grad0." + name), 1e-4, 1e-6);
      opt.step();
    }
    const TensorDict final_sd = with_prefix(ref, "final.");
    const TensorDict got = model.state_dict();
    for (const auto& key : final_sd.keys()) check_close("final." + key, got.at(key), final_sd.at(key), 1e-5, 1e-6);
    NoGradGuard ng;
    check_close("logits", model.forward(xs.select(0, 0)), ref.at("logits"), 1e-5, 1e-5);
  }
}
