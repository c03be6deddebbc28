#include "models/spam/program.h"

#include "training/trainer.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <memory>
#include <ostream>
#include <random>
#include <sstream>
#include <unordered_set>

#include <fmt/format.h>

#include "data/collate.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/split.h"
#include "models/datasets/datasets.h"
#include "models/spam/email.h"
#include "models/zoo/pictures.h"
#include "training/run.h"

namespace focus::models::spam {
namespace {

constexpr const char* kModel = "spam";

struct Batch {
  data::PaddedBatch padded;
  Tensor labels;       // [B] int64
  int64_t tokens = 0;  // real (unpadded) tokens
  // Page-locked, for asynchronous copies to a GPU (DataLoaderOptions::pin_memory).
  void pin_memory() {
    padded.pin_memory();
    labels = labels.pin_memory();
  }
};

Batch collate(const std::vector<Example>& examples, int64_t pad_id) {
  std::vector<std::vector<int64_t>> seqs;
  std::vector<int64_t> labels;
  seqs.reserve(examples.size());
  int64_t tokens = 0;
  for (const Example& e : examples) {
    seqs.push_back(e.ids);
    labels.push_back(e.label);
    tokens += static_cast<int64_t>(e.ids.size());
  }
  Batch b;
  b.padded = data::pad_sequences(seqs, pad_id);
  b.labels = tensor<int64_t>(labels);
  b.tokens = tokens;
  return b;
}

std::vector<Example> encode_messages(const std::vector<Message>& messages, const data::Vocab& vocab,
                                     int64_t max_len) {
  std::vector<Example> out;
  out.reserve(messages.size());
  for (const Message& m : messages) out.push_back({encode_words(email_words(m.raw), vocab, max_len), m.spam ? 1 : 0});
  return out;
}

std::string format_metrics(const std::string& split, const Evaluation& ev) {
  const BinaryMetrics& m = ev.metrics;
  return fmt::format(
      "{} split: {} messages ({} spam)\n"
      "  accuracy  {:.2f}%\n  precision {:.2f}%\n  recall    {:.2f}%\n  F1        {:.2f}%\n  loss      {:.4f}\n"
      "  confusion: tp {} fp {} tn {} fn {} (spam = positive)\n",
      split, m.total(), m.tp + m.fn, 100.0 * m.accuracy(), 100.0 * m.precision(), 100.0 * m.recall(),
      100.0 * m.f1(), ev.loss, m.tp, m.fp, m.tn, m.fn);
}

const std::vector<Message>& pick(const SplitMessages& s, const std::string& split) {
  const data::Split which = data::parse_split(split);
  return which == data::Split::Train ? s.train : which == data::Split::Valid ? s.valid : s.test;
}

struct Loaded {
  std::shared_ptr<SpamClassifier> model;
  data::Vocab vocab;
  training::Config config;
};

Loaded load_model(const std::string& checkpoint, const training::Config& config, Device device) {
  const auto meta = training::checkpoint_meta(checkpoint, kModel);
  const auto it = meta.find("vocab");
  FOCUS_CHECK(it != meta.end(), "[spam] checkpoint '{}' has no vocabulary (meta \"vocab\")", checkpoint);
  Loaded l;
  l.vocab = data::Vocab::from_json(it->second);
  l.config = config;
  l.model = std::make_shared<SpamClassifier>(model_config(config, l.vocab));
  optim::load_checkpoint(checkpoint, *l.model);
  l.model->to(device);
  l.model->eval();
  return l;
}

// What classify reads of one file: e-mails are small, so the first kMaxMessageBytes are
// plenty for the words the model sees and bound the memory a huge input could take.
constexpr size_t kMaxMessageBytes = size_t{16} << 20;
struct InputFile {
  std::string text;
  uint64_t file_size = 0;  // > text.size() when only the start was read
};

InputFile read_message(const std::string& path, const std::string& op) {
  std::error_code ec;
  FOCUS_CHECK(std::filesystem::exists(path, ec), "[{}] cannot read '{}': no such file", op, path);
  FOCUS_CHECK(!std::filesystem::is_directory(path, ec), "[{}] cannot read '{}': it is a directory", op, path);
  std::ifstream in(path, std::ios::binary);
  FOCUS_CHECK(in.good(), "[{}] cannot read '{}': {}", op, path, std::strerror(errno));
  InputFile m;
  m.text.resize(kMaxMessageBytes);
  in.read(m.text.data(), static_cast<std::streamsize>(kMaxMessageBytes));
  FOCUS_CHECK(!in.bad(), "[{}] error reading '{}': {}", op, path, std::strerror(errno));
  m.text.resize(static_cast<size_t>(in.gcount()));
  m.file_size = m.text.size();
  if (m.text.size() == kMaxMessageBytes) {
    const auto size = std::filesystem::file_size(path, ec);
    m.file_size = ec ? m.text.size() + 1 : size;  // a pipe or device: "more than was read"
  }
  // Text has no NUL bytes (git's test for binary files, over the same 8000 bytes): an
  // executable, an image or an archive is not an e-mail, and its "words" mean nothing.
  const size_t nul = m.text.find('\0');
  FOCUS_CHECK(nul == std::string::npos || nul >= 8000,
              "[{}] '{}' is not a text file (a NUL byte at offset {}): spam classifies e-mail messages (RFC 822 "
              "text)",
              op, path, nul);
  return m;
}

// "pic.png" -> "pic-2.png" for the i-th of several inputs.
std::string numbered_path(const std::string& path, size_t i, size_t n) {
  if (n <= 1) return path;
  std::filesystem::path p(path);
  const std::string stem = p.stem().string() + "-" + std::to_string(i + 1);
  return (p.parent_path() / (stem + p.extension().string())).string();
}

void classify_command(const zoo::CommandArgs& args, std::ostream& out) {
  const std::string attention = args.option("attention");
  // Read every input first so that an unreadable file fails before any output.
  std::vector<InputFile> messages;
  for (const std::string& f : args.inputs) messages.push_back(read_message(f, "classify"));
  Loaded l = load_model(args.checkpoint, zoo::config_from_checkpoint(args.checkpoint), args.device);
  zoo::quantize_if_asked(zoo::int8_requested(args), *l.model, args.device, "classify", std::cerr);
  const int64_t max_len = l.model->config().max_len_;
  NoGradGuard no_grad;
  for (size_t i = 0; i < messages.size(); ++i) {
    std::vector<std::string> words = email_words(messages[i].text);
    // Say when the model saw only part of the message: the first max_len - 1 words, or the
    // first kMaxMessageBytes of the file.
    const size_t total_words = words.size();
    if (static_cast<int64_t>(words.size()) > max_len - 1) words.resize(static_cast<size_t>(max_len - 1));
    std::string seen = words.size() < total_words ? fmt::format("the first {} of {}{} words", words.size(),
                                                                messages[i].file_size > messages[i].text.size() ? "more than " : "",
                                                                total_words)
                                                  : fmt::format("{} word{}", words.size(), words.size() == 1 ? "" : "s");
    if (words.empty()) seen += ", no text";
    if (messages[i].file_size > messages[i].text.size())
      seen += fmt::format("; read the first {} MiB of a {:.1f} MiB file", kMaxMessageBytes >> 20,
                          static_cast<double>(messages[i].file_size) / (1 << 20));
    const std::vector<int64_t> ids = encode_words(words, l.vocab, max_len);
    const Tensor tokens =
        tensor<int64_t>(ids, Shape{1, static_cast<int64_t>(ids.size())}, TensorOptions(kInt64).device(l.model->device()));
    const double p_spam = softmax(l.model->forward(tokens), -1).select(1, 1).item<double>();
    const bool spam = p_spam >= 0.5;
    out << fmt::format("{}  {}  p(spam) = {:.4f}  ({})\n", args.inputs[i], spam ? "spam" : "ham ", p_spam, seen);
    if (!attention.empty()) {
      const std::vector<float> w = l.model->attention_rollout(tokens);
      // Show the message's own words (unknown words as written), without the <bos> position.
      std::vector<float> weights(w.begin() + 1, w.end());
      std::vector<std::string> shown = words;
      if (shown.empty()) {
        shown = {"<bos>"};
        weights = {w[0]};
      }
      const std::string path = numbered_path(attention, i, messages.size());
      zoo::plot_token_weights(
          path,
          fmt::format("{}: {} (p(spam) = {:.3f}) - attention rollout into the pooled representation, heads averaged",
                      std::filesystem::path(args.inputs[i]).filename().string(), spam ? "spam" : "ham", p_spam),
          shown, weights);
      out << fmt::format("  attention picture: {}\n", path);
    }
  }
}

void evaluate_command(const zoo::EvalArgs& args, std::ostream& out) {
  const training::Config config = args.config();
  Loaded l = load_model(args.checkpoint, config, args.device);
  zoo::quantize_if_asked(args.int8, *l.model, args.device, "eval", out);
  const SplitMessages splits = split_messages(load_messages(config));
  const std::vector<Example> examples = encode_messages(pick(splits, args.split), l.vocab, l.model->config().max_len_);
  FOCUS_CHECK(!examples.empty(), "[eval] the {} split of {} is empty", args.split, config.str("dataset"));
  const Evaluation ev = evaluate_examples(*l.model, examples, config.integer("batch_size"));
  out << format_metrics(args.split, ev);
}

void train_program(training::Run& run) {
  const training::Config& c = run.config();
  training::apply_threads(c, "spam");
  const int64_t batch_size = c.integer("batch_size");
  FOCUS_CHECK(batch_size >= 1, "[spam] batch_size must be >= 1, got {}", batch_size);
  FOCUS_CHECK(c.integer("max_len") >= 2, "[spam] max_len must be >= 2, got {}", c.integer("max_len"));

  // Data: messages -> splits -> words -> vocabulary (train split only) -> ids.
  const SplitMessages splits = split_messages(load_messages(c));
  FOCUS_CHECK(!splits.train.empty() && !splits.valid.empty() && !splits.test.empty(),
              "[spam] a split is empty (train {}, valid {}, test {})", splits.train.size(), splits.valid.size(),
              splits.test.size());
  std::vector<std::string> corpus;
  for (const Message& m : splits.train) {
    std::vector<std::string> w = email_words(m.raw);
    corpus.insert(corpus.end(), std::make_move_iterator(w.begin()), std::make_move_iterator(w.end()));
  }
  const data::Vocab vocab = data::Vocab::build(corpus, c.integer("min_freq"), c.integer("vocab_size"));
  corpus.clear();
  corpus.shrink_to_fit();
  const int64_t max_len = c.integer("max_len");
  auto train_set = std::make_shared<data::VectorDataset<Example>>(encode_messages(splits.train, vocab, max_len));
  const std::vector<Example> valid = encode_messages(splits.valid, vocab, max_len);
  const std::vector<Example> test = encode_messages(splits.test, vocab, max_len);
  int64_t train_spam = 0;
  for (const Example& e : train_set->items()) train_spam += e.label;
  run.out() << fmt::format(
      "spam: {} messages after dropping {} repeated bodies: train {} ({} spam), valid {}, test {}; vocabulary {} "
      "words\n",
      splits.train.size() + splits.valid.size() + splits.test.size(), splits.duplicates_dropped, splits.train.size(),
      train_spam, splits.valid.size(), splits.test.size(), vocab.size());

  // Model, optimizer, schedule.
  const uint64_t seed = static_cast<uint64_t>(c.integer("seed"));
  manual_seed(seed);
  Generator init_gen(seed);
  auto model = std::make_shared<SpamClassifier>(model_config(c, vocab), &init_gen);
  model->to(run.device());  // before the optimizer sees the parameters
  run.data_parallel(model);  // --nproc: gradients averaged over the ranks
  const int world = run.world_size();
  auto [decay, no_decay] = model->decay_groups();
  optim::AdamW opt(std::vector<optim::ParamGroup>{optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                   optim::AdamWOptions(c.real("lr")).weight_decay(c.real("weight_decay")));

  const int64_t pad_id = vocab.pad_id();
  data::DataLoaderOptions loader_opts = data::DataLoaderOptions(batch_size)
                                            .seed(seed)
                                            .bucket(c.integer("bucket"))
                                            .pin_memory(run.device().is_cuda());  // async copies to the GPU
  run.shuffle_for_ranks(loader_opts, train_set->size());  // --nproc: each rank its share of every epoch
  data::DataLoader<Example, Batch> loader(
      train_set, [pad_id](std::vector<Example> ex) { return collate(ex, pad_id); }, loader_opts,
      [](const Example& e) { return static_cast<int64_t>(e.ids.size()); });
  const int64_t per_epoch = loader.num_batches();
  const int64_t steps = c.integer("steps") > 0 ? c.integer("steps") : c.integer("epochs") * per_epoch;
  FOCUS_CHECK(steps >= 1, "[spam] nothing to train: steps {} epochs {}", c.integer("steps"), c.integer("epochs"));
  const int64_t warmup = std::clamp<int64_t>(c.integer("warmup_steps"), 1, std::max<int64_t>(1, steps - 1));
  auto warm = std::make_shared<optim::LinearLR>(opt, 0.01, 1.0, warmup);
  auto cosine = std::make_shared<optim::CosineAnnealingLR>(opt, std::max<int64_t>(1, steps - warmup));
  optim::SequentialLR sched(opt, {warm, cosine}, {warmup});

  training::Trainer trainer(run, *model, opt, &sched,
                            training::TrainerOptions::from_config(c, steps)
                                .steps_per_epoch(per_epoch)
                                .unit("tok/s"));
  trainer.meta({{"vocab", vocab.to_json()}});
  trainer.on_validate([&](int64_t s) {
    const Evaluation ev = evaluate_examples(*model, valid, std::max<int64_t>(batch_size, 64));
    run.log("valid", s, {{"loss", ev.loss}, {"accuracy", ev.metrics.accuracy()}, {"f1", ev.metrics.f1()}});
  });
  const int64_t start = trainer.restore();
  run.out() << fmt::format("spam: {} parameters; {} steps ({} per epoch of batch {}{}){}\n", model->num_parameters(),
                           steps, per_epoch, world > 1 ? fmt::format("{} ranks x ", world) : "", batch_size,
                           start > 0 ? fmt::format(", resuming at step {}", start) : std::string());
  nn::CrossEntropyLoss criterion;
  const Device device = run.device();
  training::BatchStream batches(loader, start);
  if (!trainer.fit([&](int64_t) {
        Batch& b = batches.next();
        const Tensor tokens = b.padded.tokens.to(device, true), padding = b.padded.key_padding_mask.to(device, true),
                     labels = b.labels.to(device, true);
        const Tensor logits = model->forward(tokens, padding);
        training::StepOutput out(criterion(logits, labels), b.tokens);
        out.add("accuracy", eq(logits.detach().argmax(-1), labels).to(kInt64).sum(), double(labels.size(0)));
        return out;
      }))
    return;
  const int64_t step = trainer.step();

  const Evaluation ev = evaluate_examples(*model, test, std::max<int64_t>(batch_size, 64));
  const BinaryMetrics& m = ev.metrics;
  run.log("test", step, {{"loss", ev.loss}, {"accuracy", m.accuracy()}, {"precision", m.precision()},
                         {"recall", m.recall()}, {"f1", m.f1()}});
  std::string text = format_metrics("test", ev);
  text += "anchor: logistic regression on a bag of words, 98.7% accuracy; target >= 98%\n";
  run.report({{"test_accuracy", m.accuracy()},
              {"test_precision", m.precision()},
              {"test_recall", m.recall()},
              {"test_f1", m.f1()},
              {"test_loss", ev.loss},
              {"test_messages", double(m.total())},
              {"steps", double(step)}},
             text);
}

// Word lists of the synthetic corpus.
const std::vector<std::string> kSpamWords{"free",   "money",    "offer", "click",   "winner",  "cash",
                                          "credit", "cheap",    "prize", "urgent",  "discount", "guaranteed",
                                          "order",  "viagra",   "loan",  "bonus",   "casino",   "unsubscribe"};
const std::vector<std::string> kHamWords{"meeting", "patch",  "kernel",   "release", "thanks", "review",
                                         "build",   "bug",    "list",     "debian",  "code",   "question",
                                         "python",  "agenda", "tomorrow", "config",  "commit", "lunch"};
const std::vector<std::string> kCommonWords{"the", "and", "to",   "of",   "you", "a",    "for",  "is",
                                            "this", "we", "with", "on",   "it",  "your", "please", "today"};

}  // namespace

training::Config default_config() {
  training::Config c;
  c.set("dataset", "spam-assassin");
  c.set("max_len", 256);
  c.set("min_freq", 2);
  c.set("vocab_size", 20000);
  c.set("d_model", 64);
  c.set("nhead", 4);
  c.set("num_layers", 2);
  c.set("dim_feedforward", 256);
  c.set("dropout", 0.1);
  c.set("pool", "mean");
  c.set("batch_size", 32);
  c.set("epochs", 2);
  c.set("steps", 0);
  c.set("lr", 1e-3);
  c.set("weight_decay", 0.01);
  c.set("warmup_steps", 50);
  c.set("grad_clip", 1.0);
  c.set("bucket", 50);
  c.set("eval_every", 100);
  c.set("log_every", 10);
  c.set("checkpoint_every", 200);
  c.set("seed", 0);
  c.set("threads", 0);
  // The spelling before the zoo shared one set of keys.
  c.rename("clip_grad", "grad_clip");
  return c;
}

training::Config full_config() {
  training::Config c = default_config();
  c.set("max_len", 384);
  c.set("vocab_size", 30000);
  c.set("d_model", 128);
  c.set("dim_feedforward", 512);
  c.set("epochs", 4);
  c.set("warmup_steps", 100);
  c.set("eval_every", 200);
  c.set("checkpoint_every", 300);
  return c;
}

std::vector<Message> synthetic_messages(int64_t n, uint64_t seed) {
  FOCUS_CHECK(n >= 0, "[spam] synthetic_messages: n must be >= 0, got {}", n);
  std::mt19937_64 rng(seed);
  auto pick_word = [&](const std::vector<std::string>& list) { return list[rng() % list.size()]; };
  std::vector<Message> out;
  for (int64_t i = 0; i < n; ++i) {
    const bool spam = i % 2 == 1;
    const auto& own = spam ? kSpamWords : kHamWords;
    const auto& other = spam ? kHamWords : kSpamWords;
    auto words = [&](int64_t count) {
      std::string s;
      for (int64_t k = 0; k < count; ++k) {
        const uint64_t r = rng() % 20;
        const std::string w = r < 8 ? pick_word(own) : r < 9 ? pick_word(other) : pick_word(kCommonWords);
        s += (k ? " " : "") + w;
      }
      return s;
    };
    std::string raw = fmt::format("From: {} <{}@{}.example>\n", spam ? "Best Deals" : "A Developer",
                                  spam ? "offers" : "dev", spam ? "deals" : "lists");
    raw += fmt::format("Subject: {}\nMessage-Id: <{}@synthetic>\n", words(3 + static_cast<int64_t>(rng() % 4)), i);
    const std::string body = words(8 + static_cast<int64_t>(rng() % 24));
    switch (rng() % 3) {
      case 0:
        raw += "Content-Type: text/plain\n\n" + body + "\n";
        break;
      case 1:
        raw += "Content-Type: text/html\n\n<html><body><p>" + body + "</p></body></html>\n";
        break;
      default:
        raw += "Content-Type: multipart/alternative; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n"
               "Content-Transfer-Encoding: quoted-printable\n\n" +
               body + "=\n!\n--b1\nContent-Type: text/html\n\n<b>" + body + "</b>\n--b1--\n";
    }
    out.push_back({fmt::format("synthetic/{:05d}", i), spam, std::move(raw)});
  }
  return out;
}

std::vector<Message> load_messages(const training::Config& config) {
  const std::string name = config.str("dataset");
  if (name == "synthetic") return synthetic_messages(400, static_cast<uint64_t>(config.integer("seed")));
  FOCUS_CHECK(name == "spam-assassin", "[spam] unknown dataset \"{}\" (expected \"spam-assassin\" or \"synthetic\")",
              name);
  std::vector<Message> out;
  for (datasets::Email& e : datasets::load_spam_assassin()) out.push_back({e.id, e.spam, std::move(e.raw)});
  return out;
}

SplitMessages split_messages(const std::vector<Message>& messages, double train_frac, double valid_frac) {
  SplitMessages s;
  std::unordered_set<std::string> bodies;
  for (const Message& m : messages) {
    if (!bodies.insert(split_headers(m.raw).body).second) {
      ++s.duplicates_dropped;
      continue;
    }
    switch (data::hash_split(m.id, train_frac, valid_frac)) {
      case data::Split::Train: s.train.push_back(m); break;
      case data::Split::Valid: s.valid.push_back(m); break;
      case data::Split::Test: s.test.push_back(m); break;
    }
  }
  return s;
}

std::vector<int64_t> encode_words(const std::vector<std::string>& words, const data::Vocab& vocab,
                                  int64_t max_len) {
  FOCUS_CHECK(max_len >= 1, "[spam] max_len must be >= 1, got {}", max_len);
  std::vector<int64_t> ids{vocab.bos_id()};
  const size_t n = std::min(words.size(), static_cast<size_t>(max_len - 1));
  ids.reserve(n + 1);
  for (size_t i = 0; i < n; ++i) ids.push_back(vocab.id(words[i]));
  return ids;
}

SpamConfig model_config(const training::Config& c, const data::Vocab& vocab) {
  return SpamConfig()
      .vocab_size(vocab.size())
      .max_len(c.integer("max_len"))
      .d_model(c.integer("d_model"))
      .nhead(c.integer("nhead"))
      .num_layers(c.integer("num_layers"))
      .dim_feedforward(c.integer("dim_feedforward"))
      .dropout(c.real("dropout"))
      .pool(c.str("pool"))
      .pad_id(vocab.pad_id());
}

Evaluation evaluate_examples(SpamClassifier& model, const std::vector<Example>& examples, int64_t batch_size) {
  FOCUS_CHECK(batch_size >= 1, "[spam] evaluation batch size must be >= 1, got {}", batch_size);
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  // Batches of similar lengths: little padding.
  std::vector<size_t> order(examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return examples[a].ids.size() < examples[b].ids.size(); });
  Evaluation ev;
  double loss_sum = 0.0;
  const int64_t pad_id = model.config().pad_id_;
  const Device device = model.device();
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<Example> chunk;
    for (size_t k = start; k < std::min(order.size(), start + static_cast<size_t>(batch_size)); ++k)
      chunk.push_back(examples[order[k]]);
    const Batch b = collate(chunk, pad_id);
    const Tensor labels = b.labels.to(device);
    Tensor logits = model.forward(b.padded.tokens.to(device), b.padded.key_padding_mask.to(device));
    // The host reads of an evaluation: the batch's summed loss and its predictions (the counts).
    loss_sum += cross_entropy(logits, labels, CrossEntropyOptions().reduction(Reduction::Sum)).item<double>();
    ev.metrics.add(logits.argmax(-1), b.labels);
  }
  ev.loss = examples.empty() ? 0.0 : loss_sum / static_cast<double>(examples.size());
  if (was_training) model.train();
  return ev;
}

zoo::ModelEntry model_entry() {
  zoo::ModelEntry e;
  e.name = kModel;
  e.description = "Transformer-encoder spam classifier on the SpamAssassin corpus (accuracy, precision, recall, F1)";
  e.default_config = default_config;
  e.presets = {{"default", default_config}, {"full", full_config}};
  e.train = train_program;
  e.evaluate = evaluate_command;
  zoo::ModelCommand classify;
  classify.help = "Classify raw e-mail files (RFC-822 text) as spam or ham, with the probability of spam";
  classify.inputs = "FILE";
  classify.inputs_required = true;
  classify.options = {{"attention",
                       "write a PNG of the words the classifier attended to (attention rollout); with several "
                       "files, PATH-1.png, PATH-2.png, ...",
                       "", false},
                      zoo::int8_option()};
  classify.run = classify_command;
  e.commands["classify"] = classify;
  return e;
}

}  // namespace focus::models::spam
