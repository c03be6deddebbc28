#include "models/g2p/program.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <filesystem>
#include <numeric>
#include <ostream>
#include <set>
#include <sstream>

#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/split.h"
#include "models/datasets/datasets.h"
#include "models/zoo/pictures.h"
#include "training/run.h"
#include "training/trainer.h"

namespace focus::models::g2p {

namespace {

// One training pair: letter ids and phoneme ids (neither with bos / eos).
struct Example {
  std::vector<int64_t> src, tgt;
};

struct Batch {
  Tensor src, tgt_in, tgt_out;  // [B, S], [B, T], [B, T]
  int64_t tokens = 0;           // letters + phonemes + eos: the unit of tok/s
  // Page-locked, for asynchronous copies to a GPU (DataLoaderOptions::pin_memory).
  void pin_memory() {
    src = src.pin_memory();
    tgt_in = tgt_in.pin_memory();
    tgt_out = tgt_out.pin_memory();
  }
};

Batch collate(const std::vector<Example>& examples, int64_t pad) {
  const int64_t B = static_cast<int64_t>(examples.size());
  int64_t S = 0, T = 0;
  for (const auto& e : examples) {
    S = std::max<int64_t>(S, static_cast<int64_t>(e.src.size()));
    T = std::max<int64_t>(T, static_cast<int64_t>(e.tgt.size()) + 1);
  }
  std::vector<int64_t> src(static_cast<size_t>(B * S), pad), in(static_cast<size_t>(B * T), pad),
      out(static_cast<size_t>(B * T), pad);
  Batch batch;
  for (int64_t b = 0; b < B; ++b) {
    const Example& e = examples[static_cast<size_t>(b)];
    std::copy(e.src.begin(), e.src.end(), src.begin() + b * S);
    in[static_cast<size_t>(b * T)] = 1;  // bos
    std::copy(e.tgt.begin(), e.tgt.end(), in.begin() + b * T + 1);
    std::copy(e.tgt.begin(), e.tgt.end(), out.begin() + b * T);
    out[static_cast<size_t>(b * T) + e.tgt.size()] = 2;  // eos
    batch.tokens += static_cast<int64_t>(e.src.size() + e.tgt.size() + 1);
  }
  batch.src = tensor(src, {B, S});
  batch.tgt_in = tensor(in, {B, T});
  batch.tgt_out = tensor(out, {B, T});
  return batch;
}

G2PVocabs build_vocabs(const std::vector<G2PWord>& words) {
  std::set<std::string> letters, phonemes;
  for (const auto& w : words) {
    for (const auto& l : word_letters(w.word)) letters.insert(l);
    for (const auto& p : w.pronunciations) phonemes.insert(p.begin(), p.end());
  }
  return {data::Vocab::from_tokens({letters.begin(), letters.end()}),
          data::Vocab::from_tokens({phonemes.begin(), phonemes.end()})};
}

G2POptions model_options(const training::Config& c, const G2PVocabs& v) {
  return G2POptions(v.letters.size(), v.phonemes.size())
      .d_model(c.integer("d_model"))
      .nhead(c.integer("nhead"))
      .num_encoder_layers(c.integer("num_encoder_layers"))
      .num_decoder_layers(c.integer("num_decoder_layers"))
      .dim_feedforward(c.integer("dim_feedforward"))
      .dropout(c.real("dropout"))
      .max_len(c.integer("max_len"))
      .pad_id(v.phonemes.pad_id())
      .bos_id(v.phonemes.bos_id())
      .eos_id(v.phonemes.eos_id())
      .unk_id(v.phonemes.unk_id());
}

// Letter ids of a normalized word; a letter the model never saw -> error naming op.
std::vector<int64_t> encode_word(const data::Vocab& letters, const std::string& word, const char* op) {
  std::vector<int64_t> ids;
  for (const auto& l : word_letters(word)) {
    FOCUS_CHECK(letters.contains(l), "[{}] '{}': the letter '{}' is not in the model's alphabet", op, word, l);
    ids.push_back(letters.id(l));
  }
  return ids;
}

std::vector<Example> make_examples(const std::vector<G2PWord>& words, const G2PVocabs& v, int64_t max_len,
                                   int64_t* skipped) {
  std::vector<Example> out;
  *skipped = 0;
  for (const auto& w : words) {
    const auto src = encode_word(v.letters, w.word, "g2p");
    for (const auto& p : w.pronunciations) {
      if (static_cast<int64_t>(src.size()) > max_len || static_cast<int64_t>(p.size()) + 1 > max_len) {
        ++*skipped;
        continue;
      }
      out.push_back({src, v.phonemes.encode(p)});
    }
  }
  return out;
}

void check_config(const training::Config& c) {
  const std::string ds = c.str("dataset");
  FOCUS_CHECK(ds == "cmudict" || ds == "synthetic", "[g2p] dataset must be cmudict or synthetic, got '{}'", ds);
  for (const char* key : {"steps", "batch_size", "eval_every", "checkpoint_every", "log_every", "beam"})
    FOCUS_CHECK(c.integer(key) >= 1, "[g2p] {} must be at least 1, got {}", key, c.integer(key));
  FOCUS_CHECK(c.integer("warmup_steps") >= 0, "[g2p] warmup must be >= 0, got {}", c.integer("warmup_steps"));
  const std::string sched = c.str("schedule");
  FOCUS_CHECK(sched == "cosine" || sched == "inverse_sqrt", "[g2p] schedule must be cosine or inverse_sqrt, got '{}'", sched);
  FOCUS_CHECK(c.real("lr") > 0, "[g2p] lr must be positive, got {}", c.real("lr"));
  FOCUS_CHECK(c.real("label_smoothing") >= 0 && c.real("label_smoothing") < 1, "[g2p] label_smoothing must be in [0, 1), got {}",
              c.real("label_smoothing"));
}

// Mean teacher-forced loss (no label smoothing) over examples, on the model's device.
double mean_loss(G2PTransformer& model, const std::vector<Example>& examples, int64_t batch_size, int64_t pad) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const Device device = model.device();
  // The sum stays on the device (float64, as a host double would add the float losses) and
  // is read once at the end.
  Tensor total = zeros({}, TensorOptions(kFloat64).device(device));
  int64_t count = 0;
  for (size_t i = 0; i < examples.size(); i += static_cast<size_t>(batch_size)) {
    const std::vector<Example> chunk(examples.begin() + static_cast<std::ptrdiff_t>(i),
                                     examples.begin() + static_cast<std::ptrdiff_t>(std::min(examples.size(), i + static_cast<size_t>(batch_size))));
    const Batch b = collate(chunk, pad);
    const Tensor logits = model.forward(b.src.to(device), b.tgt_in.to(device));
    const int64_t V = logits.size(2);
    const Tensor loss = cross_entropy(logits.reshape({-1, V}), b.tgt_out.to(device).reshape({-1}),
                                      CrossEntropyOptions().ignore_index(pad).reduction(Reduction::Sum));
    total = total + loss.to(kFloat64);
    int64_t n = 0;
    for (const auto& e : chunk) n += static_cast<int64_t>(e.tgt.size()) + 1;
    count += n;
  }
  model.train(was_training);
  return count ? total.item<double>() / static_cast<double>(count) : 0.0;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// A few predictions spread over the split, with the references: "WORD  predicted  [ok | ref]".
std::string example_lines(const std::vector<G2PWord>& words, const std::vector<Prediction>& preds, int64_t count) {
  std::ostringstream out;
  if (preds.empty() || count <= 0) return "";
  const size_t n = std::min(preds.size(), static_cast<size_t>(count));
  for (size_t i = 0; i < n; ++i) {
    const size_t k = i * preds.size() / n;
    const auto& refs = words[k].pronunciations;
    const bool ok = std::find(refs.begin(), refs.end(), preds[k].phonemes) != refs.end();
    out << fmt::format("  {:<16} {:<32} {}\n", words[k].word, join(preds[k].phonemes),
                       ok ? "ok" : "expected " + join(refs[0]));
  }
  return out.str();
}

// The words made only of letters the model has (the others cannot be encoded).
std::vector<G2PWord> known_words(const std::vector<G2PWord>& words, const data::Vocab& letters) {
  std::vector<G2PWord> out;
  for (const auto& w : words) {
    const auto ls = word_letters(w.word);
    if (std::all_of(ls.begin(), ls.end(), [&](const std::string& l) { return letters.contains(l); })) out.push_back(w);
  }
  return out;
}

// The rates with stress digits stripped from predictions and references alike: the setup of the
// published CMUdict results, for a model that predicts stress.
ErrorRates stress_free_rates(const std::vector<G2PWord>& words, const std::vector<Prediction>& preds) {
  const std::vector<G2PWord> plain = without_stress(words);
  ErrorRates rates;
  for (size_t i = 0; i < plain.size(); ++i) {
    std::vector<std::string> p;
    for (const auto& ph : preds[i].phonemes) p.push_back(strip_stress(ph));
    rates.add(p, plain[i].pronunciations);
  }
  return rates;
}

std::string with_suffix(const std::string& path, const std::string& word, bool several) {
  if (!several) return path;
  std::filesystem::path p(path);
  std::string lower = word;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::replace(lower.begin(), lower.end(), '\'', '_');
  return (p.parent_path() / (p.stem().string() + "-" + lower + p.extension().string())).string();
}

void draw_attention(G2PTransformer& model, const G2PVocabs& vocabs, const Prediction& pred, const std::string& path) {
  const auto letters = word_letters(pred.word);
  const auto ids = encode_word(vocabs.letters, pred.word, "predict");
  const Tensor src = tensor(ids, {1, static_cast<int64_t>(ids.size())}, TensorOptions(kInt64).device(model.device()));
  const Tensor map = cross_attention_map(model, src, pred.hypothesis.tokens);
  std::vector<std::string> rows = pred.phonemes;
  rows.push_back("<eos>");
  const int T = static_cast<int>(map.size(0)), S = static_cast<int>(map.size(1));
  zoo::plot_heatmap(path, fmt::format("g2p cross-attention: {} -> {}", pred.word, join(pred.phonemes)), map.contiguous().to_vector<float>(),
                    T, S, rows, letters, "predicted phoneme", "letter");
}

// ---- the zoo functions ----------------------------------------------------------------------

void train(training::Run& run) {
  const training::Config& c = run.config();
  check_config(c);
  training::apply_threads(c, "g2p");
  const uint64_t seed = static_cast<uint64_t>(c.integer("seed"));
  manual_seed(seed);
  std::ostream& out = run.out();

  const auto train_words = load_split(c, "train");
  const auto valid_words_all = load_split(c, "valid");
  FOCUS_CHECK(!train_words.empty() && !valid_words_all.empty(), "[g2p] the {} dataset gave an empty train or valid split",
              c.str("dataset"));
  const G2PVocabs vocabs = build_vocabs(train_words);
  const int64_t pad = vocabs.phonemes.pad_id();
  int64_t skipped = 0, valid_skipped = 0;
  std::vector<Example> examples = make_examples(train_words, vocabs, c.integer("max_len") - 1, &skipped);
  // the periodic validation uses the first eval_words valid words (all when -1)
  std::vector<G2PWord> valid_words = valid_words_all;
  if (c.integer("eval_words") >= 0 && static_cast<size_t>(c.integer("eval_words")) < valid_words.size())
    valid_words.resize(static_cast<size_t>(c.integer("eval_words")));
  const std::vector<G2PWord> valid_known = known_words(valid_words, vocabs.letters);
  const std::vector<Example> valid_examples = make_examples(valid_known, vocabs, c.integer("max_len") - 1, &valid_skipped);
  out << fmt::format("g2p: {} train words ({} pronunciations, {} too long skipped), {} valid words ({} used for validation); "
                     "{} letters, {} phonemes\n",
                     train_words.size(), examples.size(), skipped, valid_words_all.size(), valid_known.size(),
                     vocabs.letters.size() - 4, vocabs.phonemes.size() - 4);

  auto dataset = std::make_shared<data::VectorDataset<Example>>(std::move(examples));
  const int world = run.world_size();
  data::DataLoaderOptions loader_opts = data::DataLoaderOptions(c.integer("batch_size"))
                                            .seed(seed)
                                            .bucket(c.integer("bucket"))
                                            .pin_memory(run.device().is_cuda());  // async copies to the GPU
  run.shuffle_for_ranks(loader_opts, dataset->size());  // --nproc: each rank its share of every epoch
  data::DataLoader<Example, Batch> loader(
      dataset, [pad](std::vector<Example> ex) { return collate(ex, pad); }, loader_opts,
      [](const Example& e) { return static_cast<int64_t>(e.src.size()); });

  Generator init_gen(seed);
  auto model = std::make_shared<G2PTransformer>(model_options(c, vocabs), &init_gen);
  model->to(run.device());
  run.data_parallel(model);  // --nproc: gradients averaged over the ranks
  auto [decay, no_decay] = model->decay_groups();
  optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                   optim::AdamWOptions().lr(c.real("lr")).betas({0.9, 0.98}).weight_decay(c.real("weight_decay")));
  const int64_t steps = c.integer("steps"), warmup = std::min(c.integer("warmup_steps"), steps - 1);
  std::unique_ptr<optim::LRScheduler> sched;
  if (c.str("schedule") == "inverse_sqrt") {
    sched = std::make_unique<optim::InverseSqrtLR>(opt, std::max<int64_t>(1, warmup));
  } else {
    std::vector<std::shared_ptr<optim::LRScheduler>> parts;
    std::vector<int64_t> milestones;
    if (warmup > 0) {
      parts.push_back(std::make_shared<optim::LinearLR>(opt, 1.0 / static_cast<double>(warmup), 1.0, warmup));
      milestones.push_back(warmup);
    }
    parts.push_back(std::make_shared<optim::CosineAnnealingLR>(opt, std::max<int64_t>(1, steps - warmup),
                                                               c.real("lr") * c.real("min_lr_factor")));
    sched = std::make_unique<optim::SequentialLR>(opt, parts, milestones);
  }
  const int64_t nb = loader.num_batches();
  FOCUS_CHECK(nb >= 1, "[g2p] no training batch: {} pronunciations fit max_len {} (batch_size {}); raise max_len",
              dataset->size(), c.integer("max_len"), c.integer("batch_size"));
  training::Trainer trainer(run, *model, opt, sched.get(),
                            training::TrainerOptions::from_config(c, steps)
                                .steps_per_epoch(nb)
                                .unit("tok/s"));
  trainer.meta({{"letters", vocabs.letters.to_json()}, {"phonemes", vocabs.phonemes.to_json()}});
  trainer.on_validate([&](int64_t s) {
    const double vl = mean_loss(*model, valid_examples, 256, pad);
    const ErrorRates r = evaluate_words(*model, vocabs, valid_known, 1);
    run.log("valid", s, {{"loss", vl}, {"per", r.per()}, {"wer", r.wer()}});
  });
  const int64_t start = trainer.restore();
  out << fmt::format("g2p: {} parameters, d_model {}, {}+{} layers; {} steps of {}{} pronunciations ({:.1f} epochs){}\n",
                     model->num_parameters(), c.integer("d_model"), c.integer("num_encoder_layers"), c.integer("num_decoder_layers"),
                     steps, world > 1 ? fmt::format("{} ranks x ", world) : "", c.integer("batch_size"),
                     static_cast<double>(steps) / static_cast<double>(nb),
                     start ? fmt::format(", resuming at step {}", start) : "");
  training::BatchStream batches(loader, start);
  const double ls = c.real("label_smoothing");
  if (!trainer.fit([&](int64_t) {
        Batch& b = batches.next();
        const Device dev = run.device();
        const Tensor src = b.src.to(dev, true), tgt_in = b.tgt_in.to(dev, true), tgt_out = b.tgt_out.to(dev, true);
        return training::StepOutput(model->loss(model->forward(src, tgt_in), tgt_out, ls), b.tokens);
      }))
    return;
  const int64_t step = trainer.step();

  // the test split, greedy and beam
  const auto test_words = load_split(c, "test");
  const std::vector<G2PWord> test_known = known_words(test_words, vocabs.letters);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Prediction> greedy_preds, beam_preds;
  const ErrorRates greedy = evaluate_words(*model, vocabs, test_known, 1, 1.0, &greedy_preds);
  const auto t1 = std::chrono::steady_clock::now();
  const int64_t beam = c.integer("beam");
  const ErrorRates beamed = evaluate_words(*model, vocabs, test_known, beam, c.real("length_penalty"), &beam_preds);
  const auto t2 = std::chrono::steady_clock::now();
  const double greedy_s = std::chrono::duration<double>(t1 - t0).count(), beam_s = std::chrono::duration<double>(t2 - t1).count();
  const bool stress = c.boolean("stress");
  const ErrorRates plain = stress ? stress_free_rates(test_known, beam_preds) : beamed;
  std::vector<std::pair<std::string, double>> metrics{
      {"per_greedy", greedy.per()}, {"wer_greedy", greedy.wer()}, {"per_beam", beamed.per()}, {"wer_beam", beamed.wer()}};
  if (stress) {  // without stress digits the plain figures already are these
    metrics.emplace_back("per_beam_no_stress", plain.per());
    metrics.emplace_back("wer_beam_no_stress", plain.wer());
  }
  run.log("test", step, metrics);
  std::string text = fmt::format(
      "g2p on {} ({} test words{}; phonemes {}), after {} steps:\n"
      "  greedy       PER {:.2f}%  WER {:.2f}%  ({:.1f} s)\n"
      "  beam {:<2}      PER {:.2f}%  WER {:.2f}%  ({:.1f} s)\n{}"
      "  anchors (CMUdict without stress): LSTM encoder-decoder PER 5.45% / WER 23.55%;\n"
      "  3-layer width-256 Transformer WER 20.6%; Phonetisaurus WER 24.4%\n"
      "examples (beam {}):\n{}",
      c.str("dataset"), test_known.size(),
      test_known.size() < test_words.size() ? fmt::format(", {} with unseen letters left out", test_words.size() - test_known.size()) : "",
      stress ? "with stress" : "without stress", step, 100 * greedy.per(), 100 * greedy.wer(), greedy_s, beam, 100 * beamed.per(),
      100 * beamed.wer(), beam_s,
      stress ? fmt::format("  beam {:<2}      PER {:.2f}%  WER {:.2f}%  with stress digits stripped\n", beam, 100 * plain.per(), 100 * plain.wer())
             : "",
      beam, example_lines(test_known, beam_preds, c.integer("examples")));
  std::vector<std::pair<std::string, double>> report;
  for (const auto& [name, value] : metrics) report.emplace_back("test_" + name, value);
  report.emplace_back("test_words", static_cast<double>(test_known.size()));
  report.emplace_back("steps", static_cast<double>(step));
  report.emplace_back("parameters", static_cast<double>(model->num_parameters()));
  run.report(report, text);
}

void evaluate(const zoo::EvalArgs& args, std::ostream& out) {
  LoadedModel lm = load_model(args.checkpoint, args.overrides, args.device);
  zoo::quantize_if_asked(args.int8, *lm.model, args.device, "eval", out);
  const training::Config& c = lm.config;
  training::apply_threads(c, "g2p");
  const auto words = load_split(c, args.split);
  const std::vector<G2PWord> known = known_words(words, lm.vocabs.letters);
  FOCUS_CHECK(!known.empty(), "[eval] the {} split of {} is empty", args.split, c.str("dataset"));
  std::vector<Prediction> greedy_preds, beam_preds;
  const ErrorRates greedy = evaluate_words(*lm.model, lm.vocabs, known, 1, 1.0, &greedy_preds);
  const int64_t beam = c.integer("beam");
  const ErrorRates beamed = evaluate_words(*lm.model, lm.vocabs, known, beam, c.real("length_penalty"), &beam_preds);
  out << fmt::format("g2p {} split of {}: {} words{}\n", args.split, c.str("dataset"), known.size(),
                     known.size() < words.size() ? fmt::format(" ({} with unseen letters left out)", words.size() - known.size()) : "");
  out << fmt::format("  greedy   PER {:.2f}%  WER {:.2f}%\n", 100 * greedy.per(), 100 * greedy.wer());
  out << fmt::format("  beam {:<2}  PER {:.2f}%  WER {:.2f}%\n", beam, 100 * beamed.per(), 100 * beamed.wer());
  if (c.boolean("stress")) {
    const ErrorRates plain = stress_free_rates(known, beam_preds);
    out << fmt::format("  beam {:<2}  PER {:.2f}%  WER {:.2f}%  with stress digits stripped\n", beam, 100 * plain.per(), 100 * plain.wer());
  }
  out << "examples (beam " << beam << "):\n" << example_lines(known, beam_preds, c.integer("examples"));
}

void predict(const zoo::CommandArgs& args, std::ostream& out) {
  LoadedModel lm = load_model(args.checkpoint, {}, args.device);
  zoo::quantize_if_asked(zoo::int8_requested(args), *lm.model, args.device, "predict", std::cerr);
  const int64_t beam = args.integer("beam");
  FOCUS_CHECK(beam >= 1 && beam <= 64, "[predict] --beam must be in 1 .. 64, got {}", beam);
  const std::string attention = args.option("attention");
  std::vector<std::string> words;
  for (const auto& raw : args.inputs) {
    const auto w = normalize_word(raw);
    FOCUS_CHECK(w.has_value(), "[predict] '{}' is not a word: g2p reads only the letters A-Z and apostrophes", raw);
    FOCUS_CHECK(static_cast<int64_t>(w->size()) <= lm.model->options().max_len_,
                "[predict] '{}' is longer than the model's {} letters", raw, lm.model->options().max_len_);
    encode_word(lm.vocabs.letters, *w, "predict");
    words.push_back(*w);
  }
  const auto preds = predict_words(*lm.model, lm.vocabs, words, beam, lm.config.real("length_penalty"));
  for (const auto& p : preds) out << fmt::format("{:<16} {}\n", p.word, join(p.phonemes));
  if (!attention.empty()) {
    for (const auto& p : preds) {
      const std::string path = with_suffix(attention, p.word, preds.size() > 1);
      draw_attention(*lm.model, lm.vocabs, p, path);
      out << "attention: " << path << "\n";
    }
  }
}

}  // namespace

training::Config default_config() {
  training::Config c;
  c.set("dataset", "cmudict")
      .set("synthetic_words", 2000)
      .set("d_model", 128)
      .set("nhead", 4)
      .set("num_encoder_layers", 2)
      .set("num_decoder_layers", 2)
      .set("dim_feedforward", 512)
      .set("dropout", 0.1)
      .set("max_len", 48)
      // true: phonemes carry CMUdict's stress digits (AH0, EY1; 69 symbols); false: stripped
      // (39 phonemes), the setup of the published CMUdict results
      .set("stress", true)
      .set("batch_size", 128)
      .set("bucket", 50)
      .set("steps", 1500)
      .set("lr", 2e-3)
      .set("schedule", "cosine")
      .set("warmup_steps", 200)
      .set("min_lr_factor", 0.02)
      .set("weight_decay", 0.01)
      .set("label_smoothing", 0.1)
      .set("grad_clip", 1.0)
      .set("log_every", 50)
      .set("eval_every", 500)
      .set("eval_words", 1000)
      .set("checkpoint_every", 500)
      .set("seed", 0)
      .set("threads", 0)  // 0 = focus's default: every core
      .set("beam", 5)
      .set("length_penalty", 1.0)
      .set("examples", 10);
  // The spellings before the zoo shared one set of keys (PyTorch's nn.Transformer names).
  c.rename("clip", "grad_clip").rename("warmup", "warmup_steps");
  c.rename("encoder_layers", "num_encoder_layers").rename("decoder_layers", "num_decoder_layers");
  return c;
}

training::Config full_config() {
  training::Config c = default_config();
  // The anchors' setup (39 phonemes, no stress digits) and the anchor Transformer's size
  // (3 + 3 layers of width 256). 9500 steps (~10 epochs): 1 h 38 min on 2 quiet cores, test
  // PER 7.27% / WER 29.85% with beam 5 (RESULTS.md); 7000 steps gave 7.70% / 31.31%.
  c.set("stress", false)
      .set("d_model", 256)
      .set("num_encoder_layers", 3)
      .set("num_decoder_layers", 3)
      .set("dim_feedforward", 1024)
      .set("steps", 9500)
      .set("lr", 1e-3)
      .set("warmup_steps", 1000)
      .set("eval_every", 1000)
      .set("checkpoint_every", 500);
  return c;
}

std::vector<G2PWord> load_split(const training::Config& c, const std::string& split) {
  const data::Split want = data::parse_split(split);
  std::vector<G2PWord> words;
  if (c.str("dataset") == "synthetic") {
    words = synthetic_words(c.integer("synthetic_words"), 1234);
  } else {
    FOCUS_CHECK(c.str("dataset") == "cmudict", "[g2p] dataset must be cmudict or synthetic, got '{}'", c.str("dataset"));
    const auto entries = datasets::load_cmudict();
    std::vector<std::pair<std::string, std::vector<std::string>>> pairs;
    pairs.reserve(entries.size());
    for (const auto& e : entries) pairs.emplace_back(e.word, e.phonemes);
    words = group_pronunciations(pairs);
  }
  if (!c.boolean("stress")) words = without_stress(std::move(words));
  std::vector<G2PWord> out;
  for (auto& w : words)
    if (data::hash_split(w.word, 0.90, 0.05) == want) out.push_back(std::move(w));
  return out;
}

LoadedModel load_model(const std::string& path, const std::vector<std::string>& config_overrides, Device device) {
  const auto meta = training::checkpoint_meta(path, "g2p");
  for (const char* key : {"config", "letters", "phonemes"})
    FOCUS_CHECK(meta.count(key), "[g2p] {} has no '{}' in its metadata: not a g2p checkpoint written by `focus train g2p`", path, key);
  LoadedModel lm;
  lm.config = zoo::config_from_checkpoint(path);
  for (const auto& o : config_overrides) lm.config.apply(o);
  lm.vocabs = {data::Vocab::from_json(meta.at("letters")), data::Vocab::from_json(meta.at("phonemes"))};
  lm.model = std::make_shared<G2PTransformer>(model_options(lm.config, lm.vocabs));
  optim::load_checkpoint(path, *lm.model);
  lm.model->to(device);
  lm.model->eval();
  return lm;
}

std::vector<Prediction> predict_words(G2PTransformer& model, const G2PVocabs& vocabs, const std::vector<std::string>& words,
                                      int64_t beam, double length_penalty, int64_t batch_size) {
  std::vector<Prediction> out(words.size());
  std::vector<std::vector<int64_t>> ids(words.size());
  for (size_t i = 0; i < words.size(); ++i) {
    ids[i] = encode_word(vocabs.letters, words[i], "predict");
    out[i].word = words[i];
  }
  // longest first, so each chunk pads little
  std::vector<size_t> order(words.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a].size() > ids[b].size(); });
  const int64_t pad = vocabs.letters.pad_id();
  // beam search decodes batch * beam rows at once
  const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, beam > 1 ? batch_size / std::min<int64_t>(beam, 4) : batch_size));
  for (size_t i = 0; i < order.size(); i += chunk) {
    const size_t j = std::min(order.size(), i + chunk);
    const int64_t B = static_cast<int64_t>(j - i), S = static_cast<int64_t>(ids[order[i]].size());
    std::vector<int64_t> src(static_cast<size_t>(B * S), pad);
    for (size_t k = i; k < j; ++k) std::copy(ids[order[k]].begin(), ids[order[k]].end(), src.begin() + static_cast<std::ptrdiff_t>((k - i) * S));
    const Tensor s = tensor(src, {B, S}, TensorOptions(kInt64).device(model.device()));
    std::vector<Hypothesis> hyps;
    if (beam <= 1) {
      hyps = greedy_decode(model, s);
    } else {
      for (auto& h : beam_search(model, s, BeamOptions().beam_size(beam).length_penalty(length_penalty))) hyps.push_back(h[0]);
    }
    for (size_t k = i; k < j; ++k) {
      Prediction& p = out[order[k]];
      p.hypothesis = hyps[k - i];
      p.phonemes = vocabs.phonemes.decode(p.hypothesis.tokens);
    }
  }
  return out;
}

ErrorRates evaluate_words(G2PTransformer& model, const G2PVocabs& vocabs, const std::vector<G2PWord>& words, int64_t beam,
                          double length_penalty, std::vector<Prediction>* predictions) {
  std::vector<std::string> spelled;
  spelled.reserve(words.size());
  for (const auto& w : words) spelled.push_back(w.word);
  std::vector<Prediction> preds = predict_words(model, vocabs, spelled, beam, length_penalty);
  ErrorRates rates;
  for (size_t i = 0; i < words.size(); ++i) rates.add(preds[i].phonemes, words[i].pronunciations);
  if (predictions) *predictions = std::move(preds);
  return rates;
}

zoo::ModelEntry model_entry() {
  zoo::ModelEntry e;
  e.name = "g2p";
  e.description = "grapheme-to-phoneme translation (letters -> ARPAbet) with an encoder-decoder Transformer on CMUdict";
  e.default_config = default_config;
  e.presets = {{"default", default_config}, {"full", full_config}};
  e.train = train;
  e.evaluate = evaluate;
  zoo::ModelCommand p;
  p.help = "print the phonemes of each WORD (letters A-Z and apostrophes)";
  p.inputs = "WORD";
  p.options = {{"beam", "beam width (1 = greedy)", "5", false},
               {"attention", "write the cross-attention heatmap (phonemes x letters) to this PNG file "
                             "(several words: FILE-word.png)", "", false},
               zoo::int8_option()};
  p.run = predict;
  e.commands["predict"] = std::move(p);
  return e;
}

}  // namespace focus::models::g2p
