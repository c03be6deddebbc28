// models/gpt: state_dict layout, causality, errors, and a tiny GPT that learns.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>

#include "models/gpt/gpt.h"
#include "optim/adam.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using models::GPT;
using models::GPTConfig;

namespace {

GPTConfig tiny() { return GPTConfig().n_layer(2).n_head(2).n_embd(16).block_size(8).vocab_size(11); }

}  // namespace

TEST_SUITE("models_gpt") {
  TEST_CASE("state_dict names and shapes are nanoGPT's") {
    Generator gen(0);
    GPT model(tiny(), &gen);
    const TensorDict sd = model.state_dict();
    std::vector<std::pair<std::string, Shape>> expected{{"wte.weight", {11, 16}}, {"wpe.weight", {8, 16}}};
    for (int i = 0; i < 2; ++i) {
      const std::string h = "h." + std::to_string(i) + ".";
      for (auto [n, s] : std::vector<std::pair<std::string, Shape>>{{"ln_1.weight", {16}},
                                                                   {"ln_1.bias", {16}},
                                                                   {"attn.c_attn.weight", {48, 16}},
                                                                   {"attn.c_attn.bias", {48}},
                                                                   {"attn.c_proj.weight", {16, 16}},
                                                                   {"attn.c_proj.bias", {16}},
                                                                   {"ln_2.weight", {16}},
                                                                   {"ln_2.bias", {16}},
                                                                   {"mlp.c_fc.weight", {64, 16}},
                                                                   {"mlp.c_fc.bias", {64}},
                                                                   {"mlp.c_proj.weight", {16, 64}},
                                                                   {"mlp.c_proj.bias", {16}}})
        expected.emplace_back(h + n, s);
    }
    expected.emplace_back("ln_f.weight", Shape{16});
    expected.emplace_back("ln_f.bias", Shape{16});
    expected.emplace_back("lm_head.weight", Shape{11, 16});
    REQUIRE(sd.keys().size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      CHECK(sd.keys()[i] == expected[i].first);
      CHECK(sd.at(expected[i].first).shape() == expected[i].second);
    }
    int64_t n = 0;
    for (const auto& [k, s] : expected) n += checked_numel(s, "test");
    CHECK(model.num_parameters() == n);

    // Without biases: no bias keys, and the LayerNorms keep only their weight.
    GPT nobias(tiny().bias(false), &gen);
    for (const auto& k : nobias.state_dict().keys()) CHECK(k.find("bias") == std::string::npos);
    CHECK(nobias.state_dict().contains("h.1.ln_2.weight"));
  }

  TEST_CASE("initialization follows nanoGPT") {
    Generator gen(1);
    GPT model(GPTConfig().n_layer(4).n_head(4).n_embd(64).block_size(16).vocab_size(50), &gen);
    const TensorDict sd = model.state_dict();
    auto stdev = [](const Tensor& t) { return std::sqrt(t.pow(2).mean().item<double>()); };
    CHECK(stdev(sd.at("h.0.mlp.c_fc.weight")) == doctest::Approx(0.02).epsilon(0.05));
    CHECK(stdev(sd.at("h.3.attn.c_proj.weight")) == doctest::Approx(0.02 / std::sqrt(8.0)).epsilon(0.05));
    CHECK(stdev(sd.at("wte.weight")) == doctest::Approx(0.02).epsilon(0.1));
    CHECK(sd.at("h.0.attn.c_attn.bias").abs().sum().item<double>() == 0.0);
    CHECK(sd.at("ln_f.weight").sum().item<double>() == 64.0);
  }

  TEST_CASE("forward shapes, causality and batch independence") {
    Generator gen(2);
    GPT model(tiny(), &gen);
    const Tensor idx = randint(0, 11, {3, 8}, {}, &gen);
    const Tensor logits = model.forward(idx);
    CHECK(logits.shape() == Shape{3, 8, 11});
    // A shorter sequence is the prefix's result (positions < T only see positions <= t).
    const Tensor short_logits = model.forward(idx.narrow(1, 0, 5).contiguous());
    CHECK(allclose(short_logits, logits.narrow(1, 0, 5), 1e-5, 1e-6));
    // Changing the last token leaves every earlier position's logits unchanged.
    Tensor idx2 = idx.clone();
    { NoGradGuard ng; idx2.select(1, 7).fill_(3); }
    const Tensor logits2 = model.forward(idx2);
    CHECK(allclose(logits2.narrow(1, 0, 7), logits.narrow(1, 0, 7), 1e-5, 1e-6));
    // One row alone gives the same logits as in the batch.
    CHECK(allclose(model.forward(idx.narrow(0, 1, 1).contiguous()), logits.narrow(0, 1, 1), 1e-5, 1e-6));
  }

  TEST_CASE("errors name the model") {
    Generator gen(3);
    GPT model(tiny(), &gen);
    CHECK_THROWS_WITH_AS(model.forward(zeros({2, 9}, kInt64)), doctest::Contains("block_size is only 8"), Error);
    CHECK_THROWS_WITH_AS(model.forward(zeros({2, 4})), doctest::Contains("[GPT] expected idx"), Error);
    CHECK_THROWS_WITH_AS(GPT(tiny().n_head(3)), doctest::Contains("divisible by n_head"), Error);
    CHECK_THROWS_WITH_AS(GPT::loss(zeros({2, 4, 11}), zeros({2, 5}, kInt64)), doctest::Contains("[GPT]"), Error);
  }

  TEST_CASE("a tiny GPT learns a periodic sequence") {
    Generator gen(4);
    GPT model(tiny(), &gen);
    // Token t+1 follows t (mod 11): windows of 9 tokens from random starts.
    auto batch = [&](Tensor& x, Tensor& y) {
      const std::vector<int64_t> start = randint(0, 11, {4}, {}, &gen).to_vector<int64_t>();
      std::vector<int64_t> v;
      for (int64_t b = 0; b < 4; ++b)
        for (int64_t t = 0; t < 9; ++t) v.push_back((start[static_cast<size_t>(b)] + t) % 11);
      const Tensor seq = tensor(v, {4, 9});
      x = seq.narrow(1, 0, 8).contiguous();
      y = seq.narrow(1, 1, 8).contiguous();
    };
    auto [decay, no_decay] = model.decay_groups();
    CHECK(decay.size() == 2 + 2 * 4 + 1);  // wte, wpe, 4 matrices per block, lm_head
    optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                     optim::AdamWOptions().lr(1e-2).weight_decay(0.1));
    double first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
      Tensor x, y;
      batch(x, y);
      Tensor loss = GPT::loss(model.forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      if (step == 0) first = loss.item<double>();
      last = loss.item<double>();
    }
    CHECK(first == doctest::Approx(std::log(11.0)).epsilon(0.1));
    CHECK(last < 0.25 * first);
  }
}
