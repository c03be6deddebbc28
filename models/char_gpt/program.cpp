#include "models/char_gpt/program.h"

#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <ostream>
#include <sstream>

#include "models/char_gpt/char_gpt.h"
#include "models/char_gpt/finetune.h"
#include "models/datasets/datasets.h"
#include "training/run.h"
#include "training/trainer.h"

namespace focus::models::char_gpt {

namespace detail {

constexpr const char* kModel = "char-gpt";
constexpr double kTrainFrac = 0.9;  // first 90% of the characters train, last 10% validation

GPTConfig gpt_config(const training::Config& c, int64_t vocab_size) {
  return GPTConfig()
      .n_layer(c.integer("num_layers"))
      .n_head(c.integer("nhead"))
      .n_embd(c.integer("d_model"))
      .block_size(c.integer("block_size"))
      .vocab_size(vocab_size)
      .dropout(c.real("dropout"))
      .bias(c.boolean("bias"));
}

void check_config(const training::Config& c) {
  for (const char* k : {"batch_size", "steps", "eval_every", "eval_batches", "checkpoint_every"})
    FOCUS_CHECK(c.integer(k) >= 1, "[char-gpt] {} must be >= 1, got {}", k, c.integer(k));
  FOCUS_CHECK(c.integer("warmup_steps") >= 0 && c.integer("sample_length") >= 0,
              "[char-gpt] warmup_steps and sample_length must be >= 0, got {}, {}", c.integer("warmup_steps"),
              c.integer("sample_length"));
  FOCUS_CHECK(c.real("lr") > 0 && c.real("min_lr") >= 0 && c.real("min_lr") <= c.real("lr"),
              "[char-gpt] need lr > 0 and 0 <= min_lr <= lr, got lr {} min_lr {}", c.real("lr"), c.real("min_lr"));
  FOCUS_CHECK(c.real("grad_clip") >= 0, "[char-gpt] grad_clip must be >= 0 (0 = off), got {}", c.real("grad_clip"));
}

// nanoGPT's get_lr as a multiple of lr (for LambdaLR): linear warm-up, cosine to min_lr.
double lr_factor(int64_t it, const training::Config& c) {
  const double lr = c.real("lr"), min_lr = c.real("min_lr");
  const int64_t warmup = c.integer("warmup_steps"), steps = c.integer("steps");
  if (it < warmup) return static_cast<double>(it + 1) / static_cast<double>(warmup + 1);
  if (it >= steps) return min_lr / lr;
  const double ratio = static_cast<double>(it - warmup) / static_cast<double>(std::max<int64_t>(1, steps - warmup));
  return (min_lr + 0.5 * (1.0 + std::cos(M_PI * ratio)) * (lr - min_lr)) / lr;
}

Loaded load(const std::string& path, Device device, const training::Config* override_config) {
  const auto meta = training::checkpoint_meta(path, kModel);
  const auto vocab_json = meta.find("vocab");
  FOCUS_CHECK(vocab_json != meta.end(), "[char-gpt] checkpoint {} has no vocabulary (meta \"vocab\")", path);
  Loaded l{override_config ? *override_config : zoo::config_from_checkpoint(path),
           data::Vocab::from_json(vocab_json->second), nullptr};
  l.model = std::make_shared<GPT>(gpt_config(l.config, l.vocab.size()));
  load_weights(*l.model, path, meta);
  l.model->to(device);
  l.model->eval();
  return l;
}

void load_weights(GPT& model, const std::string& path, const std::map<std::string, std::string>& meta) {
  const auto lora = meta.find("lora");
  if (lora == meta.end()) {
    model.load_state_dict(optim::read_checkpoint(path).model);
    return;
  }
  // A LoRA fine-tune's checkpoint: the base weights and the adapters (unmerged, as trained).
  // Loaded into an adapted model and merged, the model is a plain GPT again.
  std::shared_ptr<nn::Module> handle(&model, [](nn::Module*) {});  // LoraModel holds a shared_ptr; model outlives it
  nn::LoraModel adapted(handle, nn::LoraConfig::from_json(lora->second, path + " (meta \"lora\")"));
  model.load_state_dict(optim::read_checkpoint(path).model);
  adapted.merge_and_unload();
  for (auto& p : model.parameters()) p.requires_grad_(true);  // as a plain checkpoint loads
}

}  // namespace detail

using namespace detail;

namespace {


// The text of the configured dataset.
std::string load_text(const training::Config& c) {
  const std::string name = c.str("dataset");
  if (name == "synthetic") return synthetic_text(20000, static_cast<uint64_t>(c.integer("seed")));
  if (name == "sotu") return speeches_text(datasets::load_sotu());
  FOCUS_CHECK(name == "moby-dick", "[char-gpt] dataset must be \"moby-dick\", \"sotu\" or \"synthetic\", got \"{}\"",
              name);
  return datasets::load_moby_dick();
}

std::vector<std::pair<Tensor, Tensor>> fixed_batches(const Tensor& data, const training::Config& c, Generator& gen) {
  std::vector<std::pair<Tensor, Tensor>> out;
  for (int64_t i = 0; i < c.integer("eval_batches"); ++i)
    out.push_back(get_batch(data, c.integer("batch_size"), c.integer("block_size"), gen));
  return out;
}

std::string fmt_seconds(double s) {
  return s < 120 ? fmt::format("{:.0f}s", s) : fmt::format("{:.0f}m{:02.0f}s", std::floor(s / 60), std::fmod(s, 60));
}

void train(training::Run& run) {
  const training::Config& c = run.config();
  check_config(c);
  training::apply_threads(c, "char-gpt");
  const Corpus corpus = make_corpus(load_text(c), kTrainFrac);
  const int64_t B = c.integer("batch_size"), T = c.integer("block_size"), steps = c.integer("steps");
  FOCUS_CHECK(corpus.valid.size(0) > T, "[char-gpt] the validation split ({} characters) is shorter than block_size {}",
              corpus.valid.size(0), T);
  const auto seed = static_cast<uint64_t>(c.integer("seed"));
  manual_seed(seed);  // dropout draws from the default generator: the same run twice in one process is the same
  Generator init_gen(seed);
  auto model = std::make_shared<GPT>(gpt_config(c, corpus.vocab.size()), &init_gen);
  model->to(run.device());
  run.data_parallel(model);  // --nproc: gradients averaged over the ranks
  const int world = run.world_size();
  auto [decay, no_decay] = model->decay_groups();
  optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                   optim::AdamWOptions()
                       .lr(c.real("lr"))
                       .betas({c.real("beta1"), c.real("beta2")})
                       .weight_decay(c.real("weight_decay")));
  optim::LambdaLR sched(opt, [c](int64_t it) { return lr_factor(it, c); });
  Generator data_gen(seed);
  Generator eval_gen(seed + 1);
  // The fixed evaluation batches live on the device for the whole run.
  auto to_dev = [&](std::vector<std::pair<Tensor, Tensor>> v) {
    for (auto& [x, y] : v) x = x.to(run.device()), y = y.to(run.device());
    return v;
  };
  const auto valid_batches = to_dev(fixed_batches(corpus.valid, c, eval_gen));
  const auto train_batches = to_dev(fixed_batches(corpus.train, c, eval_gen));
  std::ostream& out = run.out();
  out << fmt::format("char-gpt: {} characters ({} distinct), train {} / valid {} (first {:.0f}% / last {:.0f}%); "
                     "{} parameters, {} layers, {} heads, width {}, context {}; {} steps of {}{}x{} characters\n",
                     corpus.train.size(0) + corpus.valid.size(0), corpus.vocab.size(), corpus.train.size(0),
                     corpus.valid.size(0), kTrainFrac * 100, (1 - kTrainFrac) * 100, model->num_parameters(),
                     c.integer("num_layers"), c.integer("nhead"), c.integer("d_model"), T, steps,
                     world > 1 ? fmt::format("{} ranks x ", world) : "", B, T);
  const int64_t per_epoch = std::max<int64_t>(1, corpus.train.size(0) / (world * B * T));
  training::Trainer trainer(run, *model, opt, &sched,
                            training::TrainerOptions::from_config(c, steps)
                                .steps_per_epoch(per_epoch)  // random windows: an epoch is as many characters
                                .log_every(10)               // nanoGPT's log_interval
                                .unit("char/s"));
  trainer.generator(&data_gen).meta({{"vocab", corpus.vocab.to_json()}});
  trainer.on_validate([&](int64_t s) {
    const double vl = mean_loss(*model, valid_batches), tl = mean_loss(*model, train_batches);
    run.log("valid", s, {{"loss", vl}, {"bpc", bits_per_char(vl)}, {"train_loss", tl}, {"train_bpc", bits_per_char(tl)}});
  });
  if (const int64_t start = trainer.restore(); start > 0) out << fmt::format("resuming at step {}\n", start);
  const bool done = trainer.fit([&](int64_t) {
    // Every rank draws the same batch of world x B windows and trains on its own B rows, so
    // N ranks train as one process with N x B.
    auto [x, y] = get_batch(corpus.train, world * B, T, data_gen);
    if (world > 1) x = x.narrow(0, run.rank() * B, B), y = y.narrow(0, run.rank() * B, B);
    return training::StepOutput(GPT::loss(model->forward(x.to(run.device())), y.to(run.device())), B * T);
  });
  if (!done) return;
  const int64_t step = trainer.step();
  const double train_seconds = trainer.train_seconds();

  out << "evaluating on the whole validation split...\n";
  const double train_loss = mean_loss(*model, train_batches);
  const double valid_loss = split_loss(*model, corpus.valid, B);  // windows moved to the device one batch at a time
  model->eval();
  std::string sample;
  if (c.integer("sample_length") > 0) {
    const std::string prompt = "\n";
    Generator sample_gen(seed);
    sample = prompt + decode(corpus.vocab, model->generate(encode(corpus.vocab, prompt, "[char-gpt]"),
                                                           c.integer("sample_length"),
                                                           SampleOptions().temperature(0.8), &sample_gen));
  }
  const std::string text = fmt::format(
      "char-gpt on {} after {} steps ({} of training; {} parameters)\n"
      "  train loss      {:.4f} nats  {:.4f} bits/char  ({} fixed batches of {}x{})\n"
      "  validation loss {:.4f} nats  {:.4f} bits/char  (whole validation split: the last {:.0f}% of the book, {} characters)\n"
      "sample (temperature 0.8, prompt \"\\n\", seed {}):\n{}\n",
      c.str("dataset"), step, fmt_seconds(train_seconds), model->num_parameters(), train_loss, bits_per_char(train_loss),
      c.integer("eval_batches"), B, T, valid_loss, bits_per_char(valid_loss), (1 - kTrainFrac) * 100,
      corpus.valid.size(0), seed, sample);
  run.report({{"train_loss", train_loss},
              {"train_bpc", bits_per_char(train_loss)},
              {"valid_loss", valid_loss},
              {"valid_bpc", bits_per_char(valid_loss)},
              {"steps", static_cast<double>(step)},
              {"train_seconds", train_seconds},
              {"parameters", static_cast<double>(model->num_parameters())}},
             text);
}

void evaluate(const zoo::EvalArgs& args, std::ostream& out) {
  const training::Config config = args.config();
  Loaded l = load(args.checkpoint, args.device, &config);
  zoo::quantize_if_asked(args.int8, *l.model, args.device, "eval", out);
  FOCUS_CHECK(args.split == "test" || args.split == "valid" || args.split == "train",
              "[char-gpt] eval: split must be test, valid or train, got \"{}\"", args.split);
  training::apply_threads(config, "char-gpt");
  // Encode with the checkpoint's vocabulary: the same text gives the same ids as in training.
  // The speeches (a fine-tuned model's dataset) are mapped into it as fine-tuning maps them.
  const std::vector<int64_t> ids = config.str("dataset") == "sotu"
                                       ? map_to_vocab(load_text(config), l.vocab, "[char-gpt] eval:").ids
                                       : encode(l.vocab, load_text(config), "[char-gpt] eval:");
  const auto n = static_cast<int64_t>(ids.size());
  const auto n_train = static_cast<int64_t>(std::floor(static_cast<double>(n) * kTrainFrac));
  const Tensor all = tensor(ids, TensorOptions(kInt64));
  const bool train_split = args.split == "train";
  const Tensor data = train_split ? all.narrow(0, 0, n_train).contiguous() : all.narrow(0, n_train, n - n_train).contiguous();
  const double loss = split_loss(*l.model, data, config.integer("batch_size"));
  out << fmt::format("char-gpt {} split of {} ({}, {} characters{}): loss {:.4f} nats, {:.4f} bits/char\n",
                     args.split, config.str("dataset"), train_split ? "first 90%" : "last 10%", data.size(0),
                     args.split == "test" ? "; the held-out text is the validation split" : "", loss,
                     bits_per_char(loss));
}

void generate(const zoo::CommandArgs& args, std::ostream& out) {
  const int64_t length = args.integer("length");
  // Memory stays bounded however long (generate_stream); the bound is on time: a billion
  // characters take days on a CPU.
  constexpr int64_t kMaxLength = 100'000'000;
  FOCUS_CHECK(length >= 0 && length <= kMaxLength, "[generate] --length must be 0 to {}, got {}", kMaxLength, length);
  const SampleOptions opts = SampleOptions().temperature(args.real("temperature")).top_k(args.integer("top-k"));
  FOCUS_CHECK(std::isfinite(opts.temperature_) && opts.temperature_ > 0,
              "[generate] --temperature must be a number > 0, got {}", args.option("temperature"));
  FOCUS_CHECK(opts.top_k_ >= 0, "[generate] --top-k must be >= 0 (0 = no limit), got {}", opts.top_k_);
  const int64_t seed = args.integer("seed");
  FOCUS_CHECK(seed >= 0, "[generate] --seed must be >= 0, got {}", seed);
  std::string prompt = args.option("prompt");
  if (prompt.empty()) prompt = "\n";
  Loaded l = load(args.checkpoint, args.device);
  zoo::quantize_if_asked(zoo::int8_requested(args), *l.model, args.device, "generate", std::cerr);
  const std::vector<int64_t> ids = encode(l.vocab, prompt, "[generate] --prompt:");
  Generator gen(static_cast<uint64_t>(seed));
  out << prompt << std::flush;
  l.model->generate_stream(ids, length, opts, &gen, [&](int64_t t) { out << l.vocab.token(t) << std::flush; });
  out << "\n";
}

}  // namespace

training::Config default_config() {
  training::Config c;
  c.set("dataset", "moby-dick")
      .set("num_layers", 4)
      .set("nhead", 4)
      .set("d_model", 128)
      .set("block_size", 128)
      .set("dropout", 0.0)
      .set("bias", true)
      .set("batch_size", 16)
      .set("steps", 1500)
      .set("lr", 2e-3)
      .set("min_lr", 2e-4)
      .set("warmup_steps", 100)
      .set("weight_decay", 0.1)
      .set("beta1", 0.9)
      .set("beta2", 0.99)
      .set("grad_clip", 1.0)
      .set("eval_every", 250)
      .set("eval_batches", 10)
      .set("checkpoint_every", 500)
      .set("seed", 1337)
      .set("threads", 0)  // 0 = focus's default: every core
      .set("sample_length", 400);
  // The spellings before the zoo shared one set of keys (PyTorch's nn.Transformer names).
  c.rename("n_layer", "num_layers").rename("n_head", "nhead").rename("n_embd", "d_model");
  return c;
}

training::Config full_config() {
  // The default model trained 8x as long (3000 steps of 32 x 128 = 12.3M characters, ~11
  // passes over the training text) with dropout against overfitting: ~30 minutes on one core
  // at ~6,500 characters/s. A larger model does not pay at this budget: 6 layers of width 192
  // (context 256) managed ~1,500 characters/s, and 1000 steps of 16 x 256 left it at ~2.0
  // nats, worse than the default (docs/RESULTS.md).
  training::Config c = default_config();
  c.set("dropout", 0.1)
      .set("batch_size", 32)
      .set("steps", 3000)
      .set("eval_every", 500)
      .set("eval_batches", 20)
      .set("checkpoint_every", 500);
  return c;
}

zoo::ModelEntry model_entry() {
  zoo::ModelEntry e;
  e.name = kModel;
  e.description = "character-level GPT (decoder-only Transformer) on Moby Dick; loss in nats and bits/char";
  e.default_config = default_config;
  e.presets = {{"default", default_config}, {"full", full_config}};
  e.train = train;
  e.evaluate = evaluate;
  zoo::ModelCommand gen;
  gen.help = "continue a prompt with characters sampled from a trained char-gpt (KV cache; temperature, top-k)";
  gen.inputs = "";
  gen.options = {{"prompt", "text to continue (default: a newline)", ""},
                 {"length", "characters to generate", "500"},
                 {"temperature", "divide the logits by this (> 0; lower = more conservative)", "0.8"},
                 {"top-k", "sample only among the k most likely characters (0 = all; 1 = greedy)", "0"},
                 {"seed", "random seed of the sampler", "1337"},
                 zoo::int8_option()};
  gen.run = generate;
  e.commands["generate"] = gen;
  e.commands["finetune"] = finetune_command();
  // A fine-tuning run's checkpoint stores the fine-tuning config (more keys than train's).
  e.checkpoint_config = [](const std::map<std::string, std::string>& meta) {
    return meta.count("finetune") ? finetune_default_config() : default_config();
  };
  return e;
}

}  // namespace focus::models::char_gpt
