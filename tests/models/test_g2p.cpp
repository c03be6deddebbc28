// models/g2p: the decoder layer against nn::TransformerDecoderLayer, cached vs teacher-forced
// decoding, greedy vs beam search, the metrics, the data helpers, and a tiny model that learns.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>
#include <set>
#include <filesystem>
#include <map>
#include <sstream>

#include "models/g2p/data.h"
#include "models/g2p/g2p.h"
#include "models/g2p/metrics.h"
#include "models/g2p/program.h"
#include "data/split.h"
#include "device_check.h"
#include "resume_check.h"
#include "test_util.h"

using namespace focus;
using namespace focus::models::g2p;
using focus::testing::allclose;

namespace {

// ids: 0 pad, 1 bos, 2 eos, 3 unk, then the letters A-H / the synthetic phonemes
const std::vector<std::string> kPhonemes{"AE1", "B", "K", "CH", "D", "IY0", "F", "G", "HH"};

int64_t letter_id(char c) { return 4 + (c - 'A'); }
int64_t phoneme_id(const std::string& p) {
  for (size_t i = 0; i < kPhonemes.size(); ++i)
    if (kPhonemes[i] == p) return 4 + static_cast<int64_t>(i);
  FAIL("unknown phoneme " << p);
  return -1;
}

G2POptions tiny_options() {
  return G2POptions(12, 4 + static_cast<int64_t>(kPhonemes.size()))
      .d_model(32)
      .nhead(4)
      .num_encoder_layers(1)
      .num_decoder_layers(2)
      .dim_feedforward(64)
      .dropout(0.0)
      .max_len(24);
}

struct Batch {
  Tensor src, tgt_in, tgt_out;
};

// Pads words and their (first) pronunciations into a batch.
Batch make_batch(const std::vector<G2PWord>& words) {
  const int64_t B = static_cast<int64_t>(words.size());
  int64_t S = 0, T = 0;
  for (const auto& w : words) {
    S = std::max<int64_t>(S, static_cast<int64_t>(w.word.size()));
    T = std::max<int64_t>(T, static_cast<int64_t>(w.pronunciations[0].size()) + 1);
  }
  std::vector<int64_t> src(static_cast<size_t>(B * S), 0), in(static_cast<size_t>(B * T), 0), out(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& w = words[static_cast<size_t>(b)];
    for (size_t i = 0; i < w.word.size(); ++i) src[static_cast<size_t>(b * S) + i] = letter_id(w.word[i]);
    const auto& p = w.pronunciations[0];
    in[static_cast<size_t>(b * T)] = 1;
    for (size_t i = 0; i < p.size(); ++i) {
      in[static_cast<size_t>(b * T) + i + 1] = phoneme_id(p[i]);
      out[static_cast<size_t>(b * T) + i] = phoneme_id(p[i]);
    }
    out[static_cast<size_t>(b * T) + p.size()] = 2;
  }
  return {tensor(src, {B, S}), tensor(in, {B, T}), tensor(out, {B, T})};
}

// Tiny models are fastest on one thread (and much slower on two when the machine is busy).
struct OneThread {
  int saved = get_num_threads();
  OneThread() { set_num_threads(1); }
  ~OneThread() { set_num_threads(saved); }
};

// Trains the tiny model on the synthetic language; returns the losses of each step.
std::vector<double> train(G2PTransformer& model, int64_t steps, uint64_t seed) {
  OneThread one_thread;
  const auto words = synthetic_words(256, seed);
  auto [decay, no_decay] = model.decay_groups();
  optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                   optim::AdamWOptions().lr(3e-3).weight_decay(0.01));
  model.train();
  std::vector<double> losses;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<G2PWord> chunk;
    for (int64_t i = 0; i < 32; ++i) chunk.push_back(words[static_cast<size_t>((s * 32 + i) % 256)]);
    const Batch b = make_batch(chunk);
    opt.zero_grad();
    Tensor loss = model.loss(model.forward(b.src, b.tgt_in), b.tgt_out, 0.1);
    loss.backward();
    optim::clip_grad_norm_(model.parameters(), 1.0);
    opt.step();
    losses.push_back(loss.item<double>());
  }
  model.eval();
  return losses;
}

double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<double>(to - from);
}

// The synthetic language and a tiny model: trains through the zoo in a few seconds.
training::Config tiny_run_config() {
  training::Config c = default_config();
  for (const char* kv : {"dataset=synthetic", "synthetic_words=600", "d_model=32", "nhead=4", "num_encoder_layers=1",
                         "num_decoder_layers=1", "dim_feedforward=64", "dropout=0.0", "batch_size=32", "steps=120",
                         "warmup_steps=10", "lr=0.003", "eval_every=60", "checkpoint_every=50", "log_every=20", "threads=1",
                         "beam=3", "examples=3"})
    c.apply(kv);
  return c;
}

}  // namespace

TEST_SUITE("models_g2p") {
  TEST_CASE("the decoder layer computes nn::TransformerDecoderLayer (pre-norm) from the same weights") {
    manual_seed(3);
    const auto lo = nn::TransformerLayerOptions(16, 4).dim_feedforward(32).dropout(0.0).batch_first(true).norm_first(true);
    nn::TransformerDecoderLayer reference(lo);
    G2PDecoderLayer layer(lo);
    layer.load_state_dict(reference.state_dict());  // same names, so strict loading works
    const Tensor x = randn({2, 5, 16}), memory = randn({2, 7, 16});
    // the second source has 3 padded positions
    const Tensor kpm = tensor<bool>({false, false, false, false, false, false, false, false, false, false, false, true, true, true},
                                    {2, 7});
    const Tensor expected = reference.forward(x, memory, nn::generate_square_subsequent_mask(5), Tensor(), Tensor(), kpm);
    const Tensor got = layer.forward(x, memory, logical_not(kpm).view({2, 1, 1, 7}));
    CHECK(allclose(got, expected, 1e-5, 1e-5));
  }

  TEST_CASE("state_dict names follow nn::Transformer's") {
    G2PTransformer model(tiny_options());
    const TensorDict sd = model.state_dict();
    for (const char* key : {"src_embed.weight", "tgt_embed.weight", "encoder.layers.0.self_attn.in_proj_weight",
                            "encoder.norm.weight", "decoder.layers.1.multihead_attn.in_proj_weight",
                            "decoder.layers.1.norm3.bias", "decoder_norm.weight", "generator.weight", "generator.bias"})
      CHECK_MESSAGE(sd.contains(key), key);
    CHECK(sd.at("tgt_embed.weight").shape() == Shape{13, 32});
    // the pad rows start at zero
    CHECK(sd.at("src_embed.weight").select(0, 0).abs().sum().item<double>() == 0.0);
  }

  TEST_CASE("incremental decoding with the key-value cache gives the teacher-forced logits") {
    manual_seed(5);
    G2PTransformer model(tiny_options().dropout(0.1));
    model.eval();
    NoGradGuard no_grad;
    // a padded batch: the second word is shorter
    const Tensor src = tensor<int64_t>({4, 5, 6, 7, 8, 9, 5, 4, 0, 0}, {2, 5});
    const Tensor tgt_in = tensor<int64_t>({1, 4, 5, 6, 7, 8, 1, 9, 10, 11, 12, 4}, {2, 6});
    const Tensor memory = model.encode(src);
    const Tensor mask = model.memory_mask(src);
    REQUIRE(mask.defined());
    const Tensor full = model.decode(tgt_in, memory, mask);  // [2, 6, V]
    // one token at a time
    DecoderState state = model.start(memory, mask);
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < 6; ++t) steps.push_back(model.step(state, tgt_in.narrow(1, t, 1)));
    CHECK(state.length == 6);
    CHECK(allclose(cat(steps, 1), full, 1e-4, 1e-5));
    // a chunk of 3, then 1, then 2 (the causal mask with an offset)
    DecoderState chunked = model.start(memory, mask);
    const Tensor a = model.step(chunked, tgt_in.narrow(1, 0, 3));
    const Tensor b = model.step(chunked, tgt_in.narrow(1, 3, 1));
    const Tensor c = model.step(chunked, tgt_in.narrow(1, 4, 2));
    CHECK(allclose(cat({a, b, c}, 1), full, 1e-4, 1e-5));
    // and the full forward pass agrees with encode + decode
    CHECK(allclose(model.forward(src, tgt_in), full, 1e-5, 1e-6));
    // reordering the cache keeps each row's continuation
    DecoderState swapped = model.start(memory, mask);
    model.step(swapped, tgt_in.narrow(1, 0, 2));
    swapped.reorder({1, 0});
    const Tensor next = model.step(swapped, index_select(tgt_in, 0, tensor<int64_t>({1, 0})).narrow(1, 2, 1));
    CHECK(allclose(next.select(0, 0), full.select(0, 1).narrow(0, 2, 1), 1e-4, 1e-5));
  }

  TEST_CASE("grouped decoding: a group of rows reads its source's memory once; reorder keeps groups, drops sources") {
    manual_seed(6);
    G2PTransformer model(tiny_options());
    model.eval();
    NoGradGuard no_grad;
    const Tensor src = tensor<int64_t>({4, 5, 6, 7, 8, 9, 5, 4, 0, 0}, {2, 5});
    const Tensor memory = model.encode(src), mask = model.memory_mask(src);
    // the reference: each source's memory copied for its 3 rows (group 1)
    const Tensor expand = tensor<int64_t>({0, 0, 0, 1, 1, 1});
    DecoderState ref = model.start(index_select(memory, 0, expand), index_select(mask, 0, expand));
    DecoderState grouped = model.start(memory, mask, 3, 4);
    CHECK(grouped.rows() == 6);
    CHECK(grouped.cross_attn[0].k.size(0) == 2);
    auto step_both = [&](const std::vector<int64_t>& tokens) {
      const Tensor t = tensor(tokens, {static_cast<int64_t>(tokens.size()), 1});
      std::vector<Tensor> wr, wg;
      const Tensor lr = model.step(ref, t, &wr), lg = model.step(grouped, t, &wg);
      CHECK(allclose(lg, lr, 1e-5, 1e-6));
      REQUIRE(wg.size() == wr.size());
      for (size_t i = 0; i < wg.size(); ++i) {
        CHECK(wg[i].shape() == wr[i].shape());  // [N, H, 1, S]
        CHECK(allclose(wg[i], wr[i], 1e-5, 1e-6));
      }
    };
    step_both({1, 1, 1, 1, 1, 1});
    CHECK(grouped.self_attn[0].capacity() == 4);  // reserved at once
    step_both({4, 5, 6, 7, 8, 9});
    // beams change places within their sources
    ref.reorder({2, 2, 0, 4, 3, 3});
    grouped.reorder({2, 2, 0, 4, 3, 3});
    step_both({10, 11, 12, 4, 5, 6});
    // a copy of the state shares its buffers: when the original has written a position
    // since, the copy's step moves to buffers of its own instead of overwriting it
    DecoderState copy = grouped;
    step_both({7, 8, 9, 10, 11, 12});
    model.step(copy, tensor<int64_t>({9, 9, 9, 9, 9, 9}, {6, 1}));
    CHECK(copy.self_attn[0].capacity() == 8);
    CHECK(grouped.length == 4);
    CHECK(grouped.self_attn[0].capacity() == 4);
    // source 0 is done: its rows leave, and with them its cross keys and mask
    ref.reorder({5, 4, 3});
    grouped.reorder({5, 4, 3});
    CHECK(grouped.rows() == 3);
    CHECK(grouped.cross_attn[1].k.size(0) == 1);
    CHECK(grouped.memory_mask.size(0) == 1);
    step_both({4, 6, 8});  // past the 4 positions reserved: the buffers grow to 2 x 5
    CHECK(grouped.self_attn[0].length() == 5);
    CHECK(grouped.self_attn[0].capacity() == 10);
    step_both({5, 7, 9});
    // errors
    CHECK_THROWS_WITH_AS(grouped.reorder({0, 1}), "[DecoderState] reorder: 2 rows are not whole groups of 3", Error);
    CHECK_THROWS_WITH_AS(grouped.reorder({0, 1, 3}), "[DecoderState] reorder: row 3 is outside 0 .. 2", Error);
    DecoderState two = model.start(memory, mask, 3);
    model.step(two, tensor<int64_t>({1, 1, 1, 1, 1, 1}, {6, 1}));
    CHECK_THROWS_WITH_AS(two.reorder({0, 1, 3, 3, 4, 5}),
                         "[DecoderState] reorder: new rows 0 .. 2 form one group and must come from one old group of 3 "
                         "rows, but they take rows 0 and 3",
                         Error);
    CHECK_THROWS_WITH_AS(model.step(two, tensor<int64_t>({1, 1, 1}, {3, 1})),
                         "[G2PTransformer] the state holds 6 rows but tokens have 3", Error);
    CHECK_THROWS_WITH_AS(model.start(memory, mask, 0), "[G2PTransformer] start: group must be at least 1, got 0", Error);
    CHECK_THROWS_WITH_AS(DecoderState().rows(), "[DecoderState] the state was not made by start()", Error);
  }

  TEST_CASE("training a few steps on the synthetic language lowers the loss") {
    manual_seed(7);
    Generator gen(7);
    G2PTransformer model(tiny_options(), &gen);
    const auto losses = train(model, 60, 1);
    const double first = mean_of(losses, 0, 5), last = mean_of(losses, losses.size() - 5, losses.size());
    MESSAGE("loss " << first << " -> " << last);
    CHECK(last < 0.6 * first);
    CHECK(std::isfinite(last));
  }

  TEST_CASE("beam width 1 gives greedy's hypotheses; beam scores are teacher-forced log-probabilities") {
    manual_seed(11);
    Generator gen(11);
    G2PTransformer model(tiny_options(), &gen);
    train(model, 40, 2);  // partly trained: outputs end at different steps
    const auto words = synthetic_words(12, 99);
    const Batch b = make_batch(words);
    const auto greedy = greedy_decode(model, b.src);
    const auto beam1 = beam_search(model, b.src, BeamOptions().beam_size(1));
    REQUIRE(greedy.size() == 12);
    REQUIRE(beam1.size() == 12);
    int64_t finished = 0;
    for (size_t i = 0; i < greedy.size(); ++i) {
      REQUIRE(beam1[i].size() == 1);
      CHECK(beam1[i][0].tokens == greedy[i].tokens);
      CHECK(beam1[i][0].finished == greedy[i].finished);
      CHECK(beam1[i][0].log_prob == doctest::Approx(greedy[i].log_prob).epsilon(1e-9));
      finished += greedy[i].finished;
    }
    CHECK(finished > 0);
    // decoding one word alone gives the same as in the padded batch
    const auto alone = greedy_decode(model, make_batch({words[3]}).src);
    CHECK(alone[0].tokens == greedy[3].tokens);

    const auto beams = beam_search(model, b.src, BeamOptions().beam_size(4).nbest(3).length_penalty(1.0));
    NoGradGuard no_grad;
    for (size_t i = 0; i < beams.size(); ++i) {
      REQUIRE(beams[i].size() >= 1);
      for (size_t j = 0; j < beams[i].size(); ++j) {
        const Hypothesis& h = beams[i][j];
        if (j > 0) CHECK(beams[i][j - 1].score >= h.score);
        if (!h.finished) continue;
        // the hypothesis' log-probability, recomputed by teacher forcing
        std::vector<int64_t> in{1}, out;
        for (int64_t t : h.tokens) {
          in.push_back(t);
          out.push_back(t);
        }
        out.push_back(2);
        const int64_t T = static_cast<int64_t>(in.size());
        const Tensor lp = log_softmax(model.forward(b.src.narrow(0, static_cast<int64_t>(i), 1), tensor(in, {1, T})), -1);
        double total = 0;
        for (int64_t t = 0; t < T; ++t) total += lp.select(0, 0).select(0, t).select(0, out[static_cast<size_t>(t)]).item<double>();
        CHECK(h.log_prob == doctest::Approx(total).epsilon(1e-4));
        CHECK(h.score == doctest::Approx(total / static_cast<double>(T)).epsilon(1e-4));
      }
    }
  }

  TEST_CASE("a trained tiny model translates the synthetic language; the attention map is a distribution") {
    manual_seed(13);
    Generator gen(13);
    G2PTransformer model(tiny_options(), &gen);
    train(model, 300, 3);
    const auto words = synthetic_words(64, 3);  // training words
    const auto hyps = beam_search(model, make_batch(words).src, BeamOptions().beam_size(3));
    ErrorRates rates;
    for (size_t i = 0; i < words.size(); ++i) {
      std::vector<std::string> predicted;
      for (int64_t t : hyps[i][0].tokens) predicted.push_back(kPhonemes[static_cast<size_t>(t - 4)]);
      rates.add(predicted, words[i].pronunciations);
    }
    MESSAGE("PER " << rates.per() << " WER " << rates.wer());
    CHECK(rates.per() < 0.2);
    const Tensor src = make_batch({words[0]}).src;
    const Tensor map = cross_attention_map(model, src, hyps[0][0].tokens);
    CHECK(map.shape() == Shape{static_cast<int64_t>(hyps[0][0].tokens.size()) + 1, src.size(1)});
    CHECK(allclose(map.sum({1}), ones({map.size(0)}), 1e-5, 1e-5));
    CHECK_THROWS_WITH_AS(cross_attention_map(model, src, {}, 5), doctest::Contains("[cross_attention_map] layer"), focus::Error);
  }

  TEST_CASE("edit distance, PER and WER on hand examples") {
    using P = std::vector<std::string>;
    CHECK(edit_distance(P{}, P{}) == 0);
    CHECK(edit_distance(P{"K", "AE1", "T"}, P{"K", "AE1", "T"}) == 0);
    CHECK(edit_distance(P{"K", "AE1", "T"}, P{"K", "AH0", "T"}) == 1);     // substitution
    CHECK(edit_distance(P{"K", "AE1", "T"}, P{"K", "AE1", "T", "S"}) == 1);  // insertion
    CHECK(edit_distance(P{}, P{"AH0", "B"}) == 2);
    CHECK(edit_distance(P{"A", "B", "C", "D"}, P{"B", "C", "D", "A"}) == 2);
    CHECK(edit_distance(P{"AE1"}, P{"AE0"}) == 1);  // stress counts
    ErrorRates r;
    // correct against the second pronunciation
    CHECK(r.add(P{"T", "AH0", "M", "EY1", "T", "OW2"}, {{"T", "AH0", "M", "AA1", "T", "OW2"}, {"T", "AH0", "M", "EY1", "T", "OW2"}}) == 0);
    // one substitution against a 3-phoneme reference
    CHECK(r.add(P{"K", "AH0", "T"}, {{"K", "AE1", "T"}}) == 1);
    // empty prediction: every phoneme of the closest (shorter) reference is an error
    CHECK(r.add(P{}, {{"EY1", "Z"}, {"EY1"}}) == 1);
    CHECK(r.words == 3);
    CHECK(r.word_errors == 2);
    CHECK(r.phoneme_errors == 2);
    CHECK(r.reference_phonemes == 6 + 3 + 1);
    CHECK(r.per() == doctest::Approx(0.2));
    CHECK(r.wer() == doctest::Approx(2.0 / 3.0));
    CHECK(ErrorRates{}.per() == 0.0);
    CHECK_THROWS_WITH_AS(r.add(P{"A"}, {}), doctest::Contains("at least one reference"), focus::Error);
  }

  TEST_CASE("words: normalization, grouping and the synthetic language") {
    CHECK(normalize_word("don't") == std::optional<std::string>("DON'T"));
    CHECK(normalize_word("Cat") == std::optional<std::string>("CAT"));
    CHECK_FALSE(normalize_word("A.").has_value());
    CHECK_FALSE(normalize_word("AD-HOC").has_value());
    CHECK_FALSE(normalize_word("A42128").has_value());
    CHECK_FALSE(normalize_word("'").has_value());
    CHECK_FALSE(normalize_word("").has_value());
    CHECK(word_letters("DON'T") == std::vector<std::string>{"D", "O", "N", "'", "T"});
    int64_t dropped = 0;
    const auto words = group_pronunciations({{"A", {"AH0"}}, {"A", {"EY1"}}, {"A.", {"EY1"}}, {"ABC", {"EY1", "B", "IY1"}},
                                             {"A", {"AH0"}}},
                                            &dropped);
    REQUIRE(words.size() == 2);
    CHECK(words[0].word == "A");
    CHECK(words[0].pronunciations.size() == 2);
    CHECK(words[1].pronunciations[0][2] == "IY1");
    CHECK(dropped == 1);
    CHECK(synthetic_pronunciation("CHEF") == std::vector<std::string>{"CH", "IY0", "F"});
    CHECK(synthetic_pronunciation("BEE") == std::vector<std::string>{"B", "IY0"});
    CHECK(synthetic_pronunciation("BE") == std::vector<std::string>{"B", "IY0"});
    CHECK(synthetic_words(50, 4).size() == 50);
    CHECK(synthetic_words(50, 4)[17].word == synthetic_words(50, 4)[17].word);
    CHECK_THROWS_WITH_AS(synthetic_pronunciation("XYZ"), doctest::Contains("not in A-H"), focus::Error);
  }

  TEST_CASE("stress digits: stripped per phoneme, coinciding pronunciations merged") {
    CHECK(strip_stress("AH0") == "AH");
    CHECK(strip_stress("EY1") == "EY");
    CHECK(strip_stress("B") == "B");
    CHECK(strip_stress("") == "");
    // PROJECT is listed as noun and verb (stress differs only): one pronunciation remains
    const auto plain = without_stress({{"PROJECT", {{"P", "R", "AA1", "JH", "EH0", "K", "T"}, {"P", "R", "AA0", "JH", "EH1", "K", "T"},
                                                    {"P", "R", "AH0", "JH", "EH1", "K", "T"}}},
                                       {"B", {{"B", "IY1"}}}});
    REQUIRE(plain.size() == 2);
    CHECK(plain[0].pronunciations ==
          std::vector<std::vector<std::string>>{{"P", "R", "AA", "JH", "EH", "K", "T"}, {"P", "R", "AH", "JH", "EH", "K", "T"}});
    CHECK(plain[1].pronunciations == std::vector<std::vector<std::string>>{{"B", "IY"}});
    // the stress key of the config: no digit is left in any split
    training::Config c = model_entry().default_config();
    c.apply("dataset=synthetic");
    c.apply("synthetic_words=300");
    c.apply("stress=false");
    for (const char* split : {"train", "valid", "test"})
      for (const auto& w : load_split(c, split))
        for (const auto& pron : w.pronunciations)
          for (const auto& ph : pron) CHECK(ph == strip_stress(ph));
    CHECK(model_entry().presets.at("full")().boolean("stress") == false);
  }

  TEST_CASE("bad inputs are clear errors") {
    G2PTransformer model(tiny_options());
    CHECK_THROWS_WITH_AS(G2PTransformer(tiny_options().nhead(5)), doctest::Contains("multiple of nhead"), focus::Error);
    CHECK_THROWS_WITH_AS(model.encode(zeros({2, 3})), doctest::Contains("dtype int64"), focus::Error);
    CHECK_THROWS_WITH_AS(model.encode(full({1, 30}, 4, kInt64)), doctest::Contains("max_len"), focus::Error);
    CHECK_THROWS_WITH_AS(beam_search(model, full({1, 3}, 4, kInt64), BeamOptions().beam_size(0)),
                         doctest::Contains("beam_size"), focus::Error);
    CHECK_THROWS_WITH_AS(beam_search(model, full({1, 3}, 4, kInt64), BeamOptions().beam_size(2).nbest(3)),
                         doctest::Contains("nbest"), focus::Error);
    CHECK_THROWS_WITH_AS(model.forward(full({2, 3}, 4, kInt64), full({3, 3}, 4, kInt64)), doctest::Contains("batch size"),
                         focus::Error);
  }

  TEST_CASE("the split is by word, stable, and about 90/5/5") {
    // every pronunciation of a word lands in the word's split
    const auto words = group_pronunciations({{"READ", {"R", "EH1", "D"}}, {"READ", {"R", "IY1", "D"}}, {"LIVE", {"L", "IH1", "V"}},
                                             {"LIVE", {"L", "AY1", "V"}}});
    REQUIRE(words.size() == 2);
    CHECK(words[0].pronunciations.size() == 2);
    // the hash is FNV-1a: fixed values, the same on every machine
    CHECK(data::stable_hash("") == 14695981039346656037ull);
    CHECK(data::stable_hash("a") == 0xaf63dc4c8601ec8cull);
    training::Config c = default_config();
    c.set("dataset", "synthetic").set("synthetic_words", 2000);
    const auto train_words = load_split(c, "train"), valid = load_split(c, "valid"), test = load_split(c, "test");
    CHECK(train_words.size() + valid.size() + test.size() == 2000);
    CHECK(train_words.size() > 1700);
    CHECK(valid.size() > 60);
    CHECK(test.size() > 60);
    std::set<std::string> seen;
    for (const auto* split : {&train_words, &valid, &test})
      for (const auto& w : *split) CHECK(seen.insert(w.word).second);  // disjoint
    for (const auto& w : test) CHECK(data::hash_split(w.word, 0.90, 0.05) == data::Split::Test);
    const auto again = load_split(c, "test");  // stable
    REQUIRE(again.size() == test.size());
    for (size_t i = 0; i < test.size(); ++i) CHECK(again[i].word == test[i].word);
  }

  TEST_CASE("train, eval and predict through the zoo on the synthetic dataset") {
    OneThread one_thread;
    const auto dir = std::filesystem::temp_directory_path() / "focus_test_g2p_run";
    std::filesystem::remove_all(dir);
    const zoo::ModelEntry entry = model_entry();
    CHECK(entry.name == "g2p");
    CHECK(entry.presets.count("full") == 1);
    training::Config c = tiny_run_config();
    std::ostringstream out, err;
    {
      training::Run run("g2p", c, training::RunOptions().set_dir(dir.string()).set_quiet().set_streams(&out, &err));
      entry.train(run);
    }
    MESSAGE(out.str());
    CHECK(out.str().find("PER") != std::string::npos);
    CHECK(out.str().find("with stress digits stripped") != std::string::npos);  // the model predicts stress
    const std::string ckpt = (dir / training::kCheckpointFile).string();
    REQUIRE(std::filesystem::exists(ckpt));
    REQUIRE(std::filesystem::exists(dir / training::kReportJsonFile));
    CHECK(focus::testing::read_file(dir / training::kReportJsonFile).find("test_wer_beam_no_stress") != std::string::npos);

    std::ostringstream eval_out;
    zoo::EvalArgs ea;
    ea.checkpoint = ckpt;
    ea.split = "valid";
    entry.evaluate(ea, eval_out);
    CHECK(eval_out.str().find("greedy   PER") != std::string::npos);
    CHECK(eval_out.str().find("beam 3") != std::string::npos);
    CHECK(eval_out.str().find("with stress digits stripped") != std::string::npos);

    // the loaded model predicts the synthetic language well after 120 steps
    LoadedModel lm = load_model(ckpt);
    ErrorRates rates = evaluate_words(*lm.model, lm.vocabs, load_split(lm.config, "valid"), 1);
    MESSAGE("valid PER " << rates.per() << " WER " << rates.wer());
    CHECK(rates.per() < 0.5);

    const zoo::ModelCommand& predict = entry.commands.at("predict");
    zoo::CommandArgs args;
    args.command = "predict";
    args.checkpoint = ckpt;
    args.inputs = {"cab", "HEAD"};
    args.options = {{"beam", "2"}, {"attention", (dir / "attention.png").string()}};
    std::ostringstream pred_out;
    predict.run(args, pred_out);
    MESSAGE(pred_out.str());
    CHECK(pred_out.str().find("CAB ") == 0);
    CHECK(pred_out.str().find("HEAD ") != std::string::npos);
    CHECK(std::filesystem::exists(dir / "attention-cab.png"));
    CHECK(std::filesystem::exists(dir / "attention-head.png"));
    args.options["attention"] = "";
    args.inputs = {"AD-HOC"};
    CHECK_THROWS_WITH_AS(predict.run(args, pred_out), doctest::Contains("[predict] 'AD-HOC' is not a word"), focus::Error);
    args.inputs = {"XYZ"};
    CHECK_THROWS_WITH_AS(predict.run(args, pred_out), doctest::Contains("the letter 'X' is not in the model's alphabet"),
                         focus::Error);
    args.inputs = {"ABC"};
    args.options["beam"] = "0";
    CHECK_THROWS_WITH_AS(predict.run(args, pred_out), doctest::Contains("--beam must be in 1 .. 64"), focus::Error);
    // --device: a device this machine cannot use is refused before any work (train touches no
    // directory); --device cpu gives what the commands give without it
    focus::testing::check_device_refused({"eval", "g2p", "--checkpoint", ckpt});
    focus::testing::check_device_refused({"predict", "g2p", "CAB", "--checkpoint", ckpt});
    focus::testing::check_device_refused({"train", "g2p", "--run-dir", (dir / "gpu").string(), "--set", "dataset=synthetic"});
    CHECK_FALSE(std::filesystem::exists(dir / "gpu"));
    focus::testing::check_cpu_same({"predict", "g2p", "CAB", "HEAD", "--checkpoint", ckpt, "--beam", "2"});
    focus::testing::check_cpu_same({"eval", "g2p", "--checkpoint", ckpt, "--split", "valid", "--set", "beam=2"});
    // a bad config value is a clear error
    training::Config bad = c;
    bad.apply("dataset=timit");
    training::Run run2("g2p", bad, training::RunOptions().set_dir((dir / "bad").string()).set_quiet().set_streams(&out, &err));
    CHECK_THROWS_WITH_AS(entry.train(run2), doctest::Contains("dataset must be cmudict or synthetic"), focus::Error);
    training::Config tiny_len = c;
    tiny_len.apply("max_len=2");  // no pronunciation fits: an error, not a division by zero
    training::Run run3("g2p", tiny_len, training::RunOptions().set_dir((dir / "short").string()).set_quiet().set_streams(&out, &err));
    CHECK_THROWS_WITH_AS(entry.train(run3), doctest::Contains("no training batch"), focus::Error);
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("an interrupted run with dropout resumes to the same weights; stress-free reports") {
    OneThread one_thread;
    focus::testing::TempDir tmp("g2p_resume");
    training::Config c = tiny_run_config();
    c.apply("dropout=0.1");
    c.apply("stress=false");
    c.apply("steps=40");
    c.apply("eval_every=15");  // 16 batches per epoch: the interruption lands mid-epoch
    focus::testing::check_exact_resume(model_entry(), c, tmp, 15, 40);
    focus::testing::TempDir amp_dir("g2p_resume_amp");
    focus::testing::check_exact_resume(model_entry(), c, amp_dir, 15, 40, "bf16");
    const std::string report = focus::testing::read_file(tmp / "straight/report.json");
    CHECK(report.find("test_wer_beam") != std::string::npos);
    CHECK(report.find("no_stress") == std::string::npos);  // the plain figures are stress-free already
  }
}
