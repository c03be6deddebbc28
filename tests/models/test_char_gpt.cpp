// models/char_gpt and the generation parts of models/gpt: KV cache against the full forward,
// sampling (temperature, top-k, seeds), the corpus and batches, errors, and a tiny model that
// learns generated text.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>
#include <set>

#include "models/char_gpt/char_gpt.h"
#include "models/gpt/gpt.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using models::GPT;
using models::GPTConfig;
using models::KVCache;
using models::SampleOptions;
namespace cg = focus::models::char_gpt;

namespace {

GPTConfig tiny(int64_t vocab = 13) { return GPTConfig().n_layer(2).n_head(2).n_embd(16).block_size(12).vocab_size(vocab); }

}  // namespace

TEST_SUITE("models_char_gpt") {
  TEST_CASE("KV cache: incremental logits equal the full forward") {
    Generator gen(10);
    GPT model(tiny(), &gen);
    model.eval();
    NoGradGuard ng;
    const Tensor idx = randint(0, 13, {2, 12}, {}, &gen);
    const Tensor full = model.forward(idx);
    // Prompt of 5, then one position at a time.
    KVCache cache;
    const Tensor first = model.forward(idx.narrow(1, 0, 5).contiguous(), cache);
    CHECK(cache.length() == 5);
    REQUIRE(cache.keys.size() == 2);
    CHECK(cache.keys[0].shape() == Shape{2, 2, 5, 8});
    CHECK(allclose(first, full.narrow(1, 0, 5), 1e-5, 1e-5));
    for (int64_t t = 5; t < 9; ++t) {
      const Tensor step = model.forward(idx.narrow(1, t, 1).contiguous(), cache);
      CHECK(allclose(step, full.narrow(1, t, 1), 1e-5, 1e-5));
    }
    // A chunk of several positions after cached ones (the bottom-right causal mask).
    const Tensor chunk = model.forward(idx.narrow(1, 9, 3).contiguous(), cache);
    CHECK(cache.length() == 12);
    CHECK(allclose(chunk, full.narrow(1, 9, 3), 1e-5, 1e-5));
    // The cache is full: one more position is an error naming block_size.
    CHECK_THROWS_WITH_AS(model.forward(idx.narrow(1, 0, 1).contiguous(), cache),
                         doctest::Contains("block_size is only 12"), Error);
    // A different batch size than the cache's.
    KVCache c2;
    model.forward(idx.narrow(1, 0, 2).contiguous(), c2);
    CHECK_THROWS_WITH_AS(model.forward(zeros({3, 1}, kInt64), c2), doctest::Contains("batch size 2"), Error);
    c2.clear();
    CHECK(c2.length() == 0);
    CHECK(model.forward(zeros({3, 1}, kInt64), c2).shape() == Shape{3, 1, 13});
  }

  TEST_CASE("generate with the cache equals recomputing the full forward each step") {
    Generator init(11);
    GPT model(tiny(), &init);
    model.eval();
    const std::vector<int64_t> prompt{1, 2, 3};
    const auto opts = SampleOptions().temperature(0.9).top_k(5);
    Generator g1(7), g2(7);
    const std::vector<int64_t> fast = model.generate(prompt, 60, opts, &g1);  // 5 windows: the kept context is trimmed
    REQUIRE(fast.size() == 60);
    // Reference: nanoGPT's loop without a cache, with the same context rule (the context
    // is rebuilt from the last block_size / 2 tokens when it reaches block_size).
    NoGradGuard ng;
    std::vector<int64_t> ctx = prompt, slow;
    int64_t start = 0;  // first token of the window the model sees
    for (int i = 0; i < 60; ++i) {
      if (static_cast<int64_t>(ctx.size()) - start > 12) start = static_cast<int64_t>(ctx.size()) - 6;
      std::vector<int64_t> window(ctx.begin() + start, ctx.end());
      const auto n = static_cast<int64_t>(window.size());
      const Tensor logits = model.forward(tensor(window, Shape{1, n})).select(0, 0).select(0, n - 1);
      const int64_t next = models::sample_token(logits, opts, &g2);
      slow.push_back(next);
      ctx.push_back(next);
    }
    CHECK(fast == slow);
    // on_token streams every token in order.
    std::vector<int64_t> streamed;
    Generator g3(7);
    model.generate(prompt, 60, opts, &g3, [&](int64_t t) { streamed.push_back(t); });
    CHECK(streamed == fast);
    // generate_stream: the same tokens, none kept (`focus generate --length` of any size).
    std::vector<int64_t> stream_only;
    Generator g4(7);
    model.generate_stream(prompt, 60, opts, &g4, [&](int64_t t) { stream_only.push_back(t); });
    CHECK(stream_only == fast);
    CHECK_THROWS_WITH_AS(model.generate_stream(prompt, 1, opts, &g4, {}), doctest::Contains("needs an on_token"),
                         Error);
  }

  TEST_CASE("sampling: top_k = 1 is greedy, seeds reproduce, top_k restricts") {
    Generator gen(12);
    for (int trial = 0; trial < 20; ++trial) {
      const Tensor logits = randn({30}, {}, &gen);
      const int64_t argmax = logits.argmax().item<int64_t>();
      for (double temp : {0.1, 1.0, 5.0})
        CHECK(models::sample_token(logits, SampleOptions().temperature(temp).top_k(1), &gen) == argmax);
    }
    // Greedy generation = argmax of the full forward at every step.
    Generator init(13);
    GPT model(tiny(), &init);
    model.eval();
    std::vector<int64_t> ctx{4, 5};
    const std::vector<int64_t> greedy = model.generate(ctx, 8, SampleOptions().top_k(1), &gen);
    NoGradGuard ng;
    for (int64_t t : greedy) {
      const auto n = static_cast<int64_t>(ctx.size());
      CHECK(model.forward(tensor(ctx, Shape{1, n})).select(0, 0).select(0, n - 1).argmax().item<int64_t>() == t);
      ctx.push_back(t);
    }
    // Same seed, same text; top_k = 3 only ever picks the 3 largest logits.
    const Tensor logits = tensor(std::vector<float>{0.f, 3.f, 1.f, 2.9f, 2.8f, -1.f});
    Generator a(5), b(5);
    std::set<int64_t> seen;
    std::vector<int64_t> sa, sb;
    for (int i = 0; i < 300; ++i) {
      sa.push_back(models::sample_token(logits, SampleOptions().top_k(3), &a));
      sb.push_back(models::sample_token(logits, SampleOptions().top_k(3), &b));
      seen.insert(sa.back());
    }
    CHECK(sa == sb);
    CHECK(seen == std::set<int64_t>{1, 3, 4});
    // Without top-k every token shows up; a low temperature concentrates on the largest.
    std::set<int64_t> all;
    int top = 0;
    for (int i = 0; i < 2000; ++i) all.insert(models::sample_token(logits, SampleOptions(), &a));
    for (int i = 0; i < 200; ++i) top += models::sample_token(logits, SampleOptions().temperature(0.01), &a) == 1;
    CHECK(all.size() == 6);
    CHECK(top == 200);
    // The frequencies follow softmax(logits): token 1 has p = e^3 / sum.
    double sum = 0;
    for (float v : logits.to_vector<float>()) sum += std::exp(static_cast<double>(v));
    int ones = 0;
    for (int i = 0; i < 4000; ++i) ones += models::sample_token(logits, SampleOptions(), &a) == 1;
    CHECK(ones / 4000.0 == doctest::Approx(std::exp(3.0) / sum).epsilon(0.1));
  }

  TEST_CASE("sampling and generate argument errors") {
    const Tensor logits = zeros({5});
    CHECK_THROWS_WITH_AS(models::sample_token(logits, SampleOptions().temperature(0.0)),
                         doctest::Contains("temperature must be a finite number > 0, got 0"), Error);
    CHECK_THROWS_WITH_AS(models::sample_token(logits, SampleOptions().temperature(-1.0)),
                         doctest::Contains("temperature"), Error);
    CHECK_THROWS_WITH_AS(models::sample_token(logits, SampleOptions().temperature(std::nan(""))),
                         doctest::Contains("temperature"), Error);
    CHECK_THROWS_WITH_AS(models::sample_token(logits, SampleOptions().top_k(-2)),
                         doctest::Contains("top_k must be >= 0"), Error);
    CHECK_THROWS_WITH_AS(models::sample_token(zeros({2, 5}), SampleOptions()), doctest::Contains("[sample_token]"),
                         Error);
    CHECK_THROWS_WITH_AS(models::sample_token(zeros({5}, kInt64), SampleOptions()),
                         doctest::Contains("float logits"), Error);
    // top_k larger than the vocabulary keeps everything.
    Generator g(1);
    CHECK(models::sample_token(logits, SampleOptions().top_k(100), &g) < 5);
    GPT model(tiny());
    CHECK_THROWS_WITH_AS(model.generate({}, 3), doctest::Contains("non-empty prompt"), Error);
    CHECK_THROWS_WITH_AS(model.generate({1}, 3, SampleOptions().temperature(0)),
                         doctest::Contains("[GPT] generate: temperature"), Error);
    CHECK_THROWS_WITH_AS(model.generate({13}, 3), doctest::Contains("outside the vocabulary"), Error);
    CHECK_THROWS_WITH_AS(model.generate({1}, -1), doctest::Contains("max_new_tokens"), Error);
    CHECK(model.generate({1}, 0).empty());
  }

  TEST_CASE("corpus: characters, vocabulary, 90/10 split, encode errors") {
    const std::string text = "ab—c’ab—\nab";  // 11 characters, 3 of them non-ASCII or newline
    const cg::Corpus c = cg::make_corpus(text, 0.8);
    CHECK(c.vocab.size() == 6);  // a b — c ’ \n
    CHECK(c.vocab.token(0) == "a");  // most frequent first
    CHECK(c.train.numel() == 8);     // floor(11 * 0.8)
    CHECK(c.valid.numel() == 3);
    CHECK(cg::decode(c.vocab, c.train.to_vector<int64_t>()) == "ab—c’ab—");
    CHECK(cg::decode(c.vocab, c.valid.to_vector<int64_t>()) == "\nab");
    CHECK(cg::encode(c.vocab, "—a", "[test]") == std::vector<int64_t>{c.vocab.id("—"), 0});
    CHECK_THROWS_WITH_AS(cg::encode(c.vocab, "abz", "[generate]"),
                         doctest::Contains("[generate] the character 'z' (U+007A) at position 2"), Error);
    CHECK_THROWS_WITH_AS(cg::encode(c.vocab, "a“", "[generate]"), doctest::Contains("(U+201C)"), Error);
    CHECK_THROWS_WITH_AS(cg::encode(c.vocab, "a\t", "[generate]"), doctest::Contains("'\\t'"), Error);
    CHECK_THROWS_WITH_AS(cg::make_corpus("", 0.9), doctest::Contains("empty"), Error);
    CHECK_THROWS_WITH_AS(cg::make_corpus("abc", 0.9), doctest::Contains("too short"), Error);
    CHECK_THROWS_WITH_AS(cg::make_corpus(text, 1.0), doctest::Contains("train_frac"), Error);
    CHECK_THROWS_AS(cg::make_corpus("a\xff", 0.5), Error);  // bad UTF-8
    CHECK(cg::bits_per_char(std::log(2.0)) == doctest::Approx(1.0));
    const std::string syn = cg::synthetic_text(500, 3);
    CHECK(syn == cg::synthetic_text(500, 3));
    CHECK(syn != cg::synthetic_text(500, 4));
    CHECK(syn.find("—") != std::string::npos);
    CHECK_NOTHROW(data::split_utf8(syn));
  }

  TEST_CASE("get_batch takes random contiguous blocks; split_loss covers every character once") {
    const Tensor data = arange(50, TensorOptions(kInt64));
    Generator gen(3);
    auto [x, y] = cg::get_batch(data, 6, 8, gen);
    CHECK(x.shape() == Shape{6, 8});
    const auto xv = x.to_vector<int64_t>(), yv = y.to_vector<int64_t>();
    for (size_t b = 0; b < 6; ++b) {
      CHECK(xv[b * 8] <= 50 - 8 - 1);
      for (size_t t = 0; t < 8; ++t) {
        CHECK(xv[b * 8 + t] == xv[b * 8] + static_cast<int64_t>(t));
        CHECK(yv[b * 8 + t] == xv[b * 8 + t] + 1);
      }
    }
    CHECK_THROWS_WITH_AS(cg::get_batch(data, 2, 50, gen), doctest::Contains("too short for block_size 50"), Error);
    CHECK_THROWS_WITH_AS(cg::get_batch(zeros({50}), 2, 5, gen), doctest::Contains("int64"), Error);

    // split_loss = the per-character losses of a full forward over each window, averaged.
    Generator init(4);
    GPT model(tiny(50).block_size(8), &init);
    const double got = cg::split_loss(model, data, 2);  // 49 predictions: 6 windows of 8, then 1
    NoGradGuard ng;
    double total = 0;
    for (int64_t s = 0; s < 49; s += 8) {
      const int64_t n = std::min<int64_t>(8, 49 - s);
      const Tensor logits = model.forward(data.narrow(0, s, n).view({1, n}));
      total += GPT::loss(logits, data.narrow(0, s + 1, n).view({1, n})).item<double>() * static_cast<double>(n);
    }
    CHECK(got == doctest::Approx(total / 49).epsilon(1e-5));
    CHECK(cg::split_loss(model, data, 100) == doctest::Approx(got).epsilon(1e-5));
  }

  TEST_CASE("a tiny char GPT learns generated text (train and validation loss fall)") {
    // One thread: at this size thread wake-ups cost more than the work (and the suite runs
    // beside others).
    struct Threads {
      int prev = get_num_threads();
      Threads() { set_num_threads(1); }
      ~Threads() { set_num_threads(prev); }
    } one_thread;
    const cg::Corpus c = cg::make_corpus(cg::synthetic_text(6000, 1), 0.9);
    Generator gen(5);
    GPT model(GPTConfig().n_layer(2).n_head(2).n_embd(32).block_size(32).vocab_size(c.vocab.size()), &gen);
    model.train();
    auto [decay, no_decay] = model.decay_groups();
    optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                     optim::AdamWOptions().lr(3e-3).weight_decay(0.1));
    std::vector<std::pair<Tensor, Tensor>> valid;
    Generator vgen(6);
    for (int i = 0; i < 4; ++i) valid.push_back(cg::get_batch(c.valid, 8, 32, vgen));
    const double before = cg::mean_loss(model, valid);
    CHECK(before == doctest::Approx(std::log(static_cast<double>(c.vocab.size()))).epsilon(0.1));
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      auto [x, y] = cg::get_batch(c.train, 8, 32, gen);
      Tensor loss = GPT::loss(model.forward(x), y);
      opt.zero_grad();
      loss.backward();
      optim::clip_grad_norm_(model.parameters(), 1.0);
      opt.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    CHECK(model.is_training());  // mean_loss restored the mode
    const double after = cg::mean_loss(model, valid);
    MESSAGE("train " << first << " -> " << last << ", valid " << before << " -> " << after);
    CHECK(last < 0.6 * first);
    CHECK(after < 0.6 * before);
  }
}
