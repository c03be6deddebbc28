// models/char_gpt/finetune.h: `focus finetune char-gpt`, LoRA or full fine-tuning on the speeches.
#include "models/char_gpt/finetune.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/cuda.h"
#include "models/char_gpt/char_gpt.h"
#include "models/char_gpt/program.h"
#include "models/zoo/parse.h"
#include "models/zoo/pictures.h"
#include "training/run.h"
#include "training/trainer.h"

namespace focus::models::char_gpt {

namespace fs = std::filesystem;
using namespace detail;

namespace {

constexpr const char* kModel = "char-gpt";
constexpr const char* kTag = "[finetune] char-gpt:";
constexpr double kTrainFrac = 0.9;  // as char-gpt's split: first 90% train, last 10% validation

// ---- UTF-8 ------------------------------------------------------------------------------

// Decodes the code point at text[i] (advancing i); invalid UTF-8 -> focus::Error.
uint32_t next_code_point(std::string_view text, size_t& i, const std::string& what) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  size_t len = 0;
  uint32_t cp = 0;
  if (c < 0x80) len = 1, cp = c;
  else if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
  bool ok = len > 0 && i + len <= text.size();
  for (size_t k = 1; ok && k < len; ++k) {
    ok = (b(i + k) & 0xC0) == 0x80;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  ok = ok && cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
  FOCUS_CHECK(ok, "{} the text is not valid UTF-8 at byte {}", what, i);
  i += len;
  return cp;
}

uint32_t code_point_of(const std::string& ch) {
  size_t i = 0;
  if (ch.empty()) return 0xFFFFFFFFu;
  const uint32_t cp = next_code_point(ch, i, "[char-gpt]");
  return i == ch.size() ? cp : 0xFFFFFFFFu;
}

// A character as a summary shows it: control characters escaped.
std::string shown(const std::string& ch) {
  if (ch == "\t") return "\\t";
  if (ch == "\r") return "\\r";
  if (ch.size() == 1 && (static_cast<unsigned char>(ch[0]) < 0x20 || ch[0] == 0x7F))
    return fmt::format("\\x{:02x}", static_cast<unsigned char>(ch[0]));
  return ch;
}

// U+00C0 .. U+017F without their accents (NFKD's base letters; ligatures spelled out).
constexpr const char* kLatin[0x180 - 0xC0] = {
    "A", "A", "A", "A", "A", "A", "AE", "C", "E", "E", "E", "E", "I", "I", "I", "I",
    "D", "N", "O", "O", "O", "O", "O", "x", "O", "U", "U", "U", "U", "Y", "Th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "y",
    "A", "a", "A", "a", "A", "a", "C", "c", "C", "c", "C", "c", "C", "c", "D", "d",
    "D", "d", "E", "e", "E", "e", "E", "e", "E", "e", "E", "e", "G", "g", "G", "g",
    "G", "g", "G", "g", "H", "h", "H", "h", "I", "i", "I", "i", "I", "i", "I", "i",
    "I", "i", "IJ", "ij", "J", "j", "K", "k", "k", "L", "l", "L", "l", "L", "l", "L",
    "l", "L", "l", "N", "n", "N", "n", "N", "n", "n", "N", "n", "O", "o", "O", "o",
    "O", "o", "OE", "oe", "R", "r", "R", "r", "R", "r", "S", "s", "S", "s", "S", "s",
    "S", "s", "T", "t", "T", "t", "T", "t", "U", "u", "U", "u", "U", "u", "U", "u",
    "U", "u", "U", "u", "W", "w", "Y", "y", "Y", "Z", "z", "Z", "z", "Z", "z", "s",
};

std::string ascii_of(uint32_t cp) {
  if (cp >= 0xC0 && cp < 0x180) return kLatin[cp - 0xC0];
  switch (cp) {
    case 0x60: case 0xB4: case 0x2BC: case 0x2018: case 0x2019: case 0x201A: case 0x201B: case 0x2032:
      return "'";
    case 0xAB: case 0xBB: case 0x201C: case 0x201D: case 0x201E: case 0x201F: case 0x2033:
      return "\"";
    case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2212:
      return "-";
    case 0x2014: case 0x2015:
      return "--";
    case 0x2026:
      return "...";
    case 0x09: case 0xA0: case 0x2000: case 0x2001: case 0x2002: case 0x2003: case 0x2004: case 0x2005:
    case 0x2006: case 0x2007: case 0x2008: case 0x2009: case 0x200A: case 0x202F: case 0x205F: case 0x3000:
      return " ";
    case 0xB7: case 0x2022: case 0x2023: case 0x2043:
      return "*";
    default:
      return "";
  }
}

// Control characters (but '\n' and '\t'), soft hyphens and zero-width characters.
bool droppable(uint32_t cp) {
  return (cp < 0x20 && cp != '\n' && cp != '\t') || (cp >= 0x7F && cp <= 0x9F) || cp == 0xAD ||
         (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF;
}

// "’ 315, “ 30, ..." (the most frequent first, at most `limit`).
std::string counts_text(const std::map<std::string, int64_t>& counts, size_t limit = 8) {
  std::vector<std::pair<std::string, int64_t>> v(counts.begin(), counts.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> parts;
  for (size_t i = 0; i < v.size() && i < limit; ++i) parts.push_back(fmt::format("{} {}", shown(v[i].first), v[i].second));
  if (v.size() > limit) parts.push_back(fmt::format("and {} more", v.size() - limit));
  return fmt::format("{}", fmt::join(parts, ", "));
}

// ---- --lora -----------------------------------------------------------------------------

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

// ---- memory ---------------------------------------------------------------------------------

// A field of /proc/self/status in MiB ("VmRSS", "VmHWM"); -1 when unavailable.
double proc_status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream ss(line.substr(field.size() + 1));
    double kib = -1;
    ss >> kib;
    return kib >= 0 ? kib / 1024.0 : -1.0;
  }
  return -1.0;
}

// The process's peak resident set so far (getrusage's ru_maxrss) in MiB.
double max_rss_mib() {
  struct rusage ru {};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return -1.0;
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS, so that the peak of the
// training steps alone can be read afterwards; false where /proc/self/clear_refs refuses.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

std::string fmt_seconds(double s) {
  return s < 120 ? fmt::format("{:.0f}s", s) : fmt::format("{:.0f}m{:02.0f}s", std::floor(s / 60), std::fmod(s, 60));
}

std::string lora_description(const nn::LoraConfig& l) {
  return fmt::format("LoRA r={}, lora_alpha={:g} (scaling {:g}), lora_dropout={:g}, target_modules={}{}", l.r_,
                     l.lora_alpha_, l.scaling(), l.lora_dropout_, fmt::join(l.target_modules_, ","),
                     l.use_rslora_ ? ", rslora" : "");
}

// The base run's checkpoint: RUN_DIR/checkpoint.safetensors, or the file itself.
std::string base_checkpoint(const std::string& from) {
  std::error_code ec;
  FOCUS_CHECK(fs::exists(from, ec), "{} --from {}: no such run directory", kTag, from);
  const fs::path path = fs::is_directory(from, ec) ? fs::path(from) / training::kCheckpointFile : fs::path(from);
  FOCUS_CHECK(fs::exists(path, ec), "{} --from {}: not a char-gpt run directory (it has no {}; train one with `focus "
              "train char-gpt --run-dir {}`)", kTag, from, training::kCheckpointFile, from);
  std::map<std::string, std::string> meta;
  try {
    meta = training::checkpoint_meta(path.string());
  } catch (const Error& e) {
    FOCUS_FAIL("{} --from {}: not a char-gpt run: {}", kTag, from, e.what());
  }
  const auto model = meta.find("model");
  FOCUS_CHECK(model != meta.end() && model->second == kModel,
              "{} --from {}: not a char-gpt run (its checkpoint holds {})", kTag, from,
              model == meta.end() ? std::string("no model name") : "a '" + model->second + "' model");
  FOCUS_CHECK(meta.count("vocab") && meta.count("config"), "{} --from {}: the checkpoint has no vocabulary or config",
              kTag, from);
  return path.string();
}

// The architecture keys a fine-tune takes from its base (dropout may change).
constexpr const char* kArchitecture[] = {"num_layers", "nhead", "d_model", "block_size", "bias"};

void finetune(const zoo::CommandArgs& args, std::ostream& out) {
  const std::string from = args.option("from"), data = args.option("data"), lora_spec = args.option("lora");
  const bool resume = args.flag("resume"), overwrite = args.flag("overwrite"), quiet = args.flag("quiet");
  const std::vector<std::string> sets = args.list("set");
  FOCUS_CHECK(data == "sotu",
              "{} --data {}: the only fine-tuning dataset is sotu (the State of the Union speeches; `focus data fetch "
              "sotu`)",
              kTag, data);
  FOCUS_CHECK(!from.empty() || resume,
              "{} --from RUN_DIR is required: the run directory of a `focus train char-gpt` run to adapt", kTag);
  FOCUS_CHECK(!(resume && overwrite), "{} --resume and --overwrite exclude each other", kTag);
  std::optional<nn::LoraConfig> lora;
  if (!lora_spec.empty()) lora = parse_lora_spec(lora_spec);
  training::Config config = finetune_default_config();
  std::string base_path;
  std::optional<training::Config> base_config;
  if (!from.empty()) {
    base_path = base_checkpoint(from);
    base_config = zoo::config_from_checkpoint(base_path);
    config = finetune_config(*base_config, base_path, lora ? &*lora : nullptr);
  }
  std::string run_dir = args.option("run-dir");
  if (run_dir.empty()) run_dir = lora ? "runs/char-gpt-finetune-lora" : "runs/char-gpt-finetune-full";
  {
    std::error_code ec;
    const fs::path ckpt = fs::path(run_dir) / training::kCheckpointFile;
    FOCUS_CHECK(!resume || fs::exists(ckpt, ec), "{} --resume: no checkpoint in {} to continue", kTag, run_dir);
    FOCUS_CHECK(resume || overwrite || !fs::exists(ckpt, ec),
                "{} {} holds a run already: continue it with --resume, or start afresh with --overwrite", kTag, run_dir);
  }
  training::RunOptions opts;
  opts.set_dir(run_dir)
      .set_resume(resume)
      .set_overwrite(overwrite)
      .set_device(args.device.str())
      .set_quiet(quiet)
      .set_overrides(sets)
      .set_streams(&out, args.err);
  training::Run run(kModel, config, opts);
  const training::Config& c = run.config();
  // A resumed run keeps its stored settings: what the command names again must agree.
  if (resume) {
    FOCUS_CHECK(c.contains("from") && c.contains("method"), "{} --resume: {} is not a fine-tuning run", kTag, run_dir);
    const auto same = [&](const char* key) {
      std::error_code ec1, ec2;  // the base's path may be spelled another way ("./runs/base")
      const bool same_file = std::string(key) == "from" &&
                             fs::weakly_canonical(c.str(key), ec1) == fs::weakly_canonical(config.str(key), ec2) &&
                             !ec1 && !ec2;
      FOCUS_CHECK(same_file || c.text(key) == config.text(key),
                  "{} --resume: the run in {} was started with {}={}, this command asks for {}; a resumed run keeps its "
                  "settings (drop the option, or start a new run with --overwrite)",
                  kTag, run_dir, key, c.text(key), config.text(key));
    };
    if (!from.empty()) same("from");
    if (lora)
      for (const char* k : {"method", "lora_r", "lora_alpha", "lora_dropout", "lora_target", "lora_rslora"}) same(k);
  }
  check_config(c);
  FOCUS_CHECK(c.str("dataset") == "sotu", "{} dataset must be \"sotu\", got \"{}\"", kTag, c.str("dataset"));
  const std::string method = c.str("method");
  FOCUS_CHECK(method == "lora" || method == "full", "{} method must be \"lora\" or \"full\", got \"{}\"", kTag, method);
  if (base_config && !resume)
    for (const char* k : kArchitecture)
      FOCUS_CHECK(c.text(k) == base_config->text(k),
                  "{} --set {}={}: the architecture comes from the base run ({}={}); of it only dropout can change", kTag,
                  k, c.text(k), k, base_config->text(k));
  training::apply_threads(c, kModel);
  const int64_t B = c.integer("batch_size"), T = c.integer("block_size"), steps = c.integer("steps");
  const auto seed = static_cast<uint64_t>(c.integer("seed"));
  std::ostream& log = run.out();

  // The vocabulary: the base model's (a resumed run's checkpoint holds it too).
  const fs::path own_checkpoint = run.dir() / training::kCheckpointFile;
  const std::map<std::string, std::string> meta =
      training::checkpoint_meta(resume ? own_checkpoint.string() : c.str("from"), kModel);
  const data::Vocab vocab = data::Vocab::from_json(meta.at("vocab"));

  // The speeches in that vocabulary, split by characters.
  VocabMapping mapped = map_to_vocab(speeches_text(datasets::load_sotu()), vocab, kTag);
  const auto n = static_cast<int64_t>(mapped.ids.size());
  const auto n_train = static_cast<int64_t>(std::floor(static_cast<double>(n) * kTrainFrac));
  FOCUS_CHECK(n - n_train > T, "{} the validation split ({} characters) is shorter than block_size {}", kTag,
              n - n_train, T);
  Tensor all = tensor(mapped.ids, TensorOptions(kInt64));
  const Tensor train_ids = all.narrow(0, 0, n_train).contiguous();
  const Tensor valid_ids = all.narrow(0, n_train, n - n_train).contiguous();
  all = Tensor();
  std::vector<int64_t>().swap(mapped.ids);  // the tensors hold them now
  log << fmt::format("sotu: {}\n", mapped.summary());

  // The model: the base weights (a resumed run's come from its checkpoint in restore()).
  manual_seed(seed);  // the adapters' initialization and dropout draw from the default generator
  auto model = std::make_shared<GPT>(gpt_config(c, vocab.size()));
  if (!resume) load_weights(*model, c.str("from"), training::checkpoint_meta(c.str("from")));
  model->to(run.device());

  // LoRA: the adapters (a mistaken target is an error before anything is written).
  std::shared_ptr<nn::LoraModel> lora_model;
  if (method == "lora") {
    nn::LoraConfig lc = lora_config_of(c);
    lc.task_type("CAUSAL_LM").base_model_name_or_path(c.str("from"));
    lora_model = nn::get_peft_model(model, lc);
  }

  // The validation loss before fine-tuning: measured on a fresh run, stored in its checkpoints.
  double before = 0.0;
  if (resume) {
    const auto own = training::checkpoint_meta(own_checkpoint.string());
    const auto it = own.find("valid_loss_before");
    FOCUS_CHECK(it != own.end(), "{} --resume: {} is not a fine-tuning checkpoint (no valid_loss_before)", kTag,
                own_checkpoint.string());
    before = std::stod(it->second);
  } else {
    log << fmt::format("measuring the base model's validation loss on the speeches ({} characters)...\n",
                       valid_ids.size(0));
    // A fresh adapter adds exactly 0 (lora_B is zeros): merged, the weights are the base's bits.
    if (lora_model) lora_model->merge_adapter();
    before = split_loss(*model, valid_ids, B);
    if (lora_model) lora_model->unmerge_adapter();
    run.log("valid", 0, {{"loss", before}, {"bpc", bits_per_char(before)}});
  }

  int64_t n_trainable = 0, n_all = 0;
  std::map<std::string, std::string> ckpt_meta{{"vocab", vocab.to_json()},
                                               {"finetune", method},
                                               {"valid_loss_before", fmt::format("{:.17g}", before)}};
  std::unique_ptr<optim::AdamW> opt;
  const auto adamw = optim::AdamWOptions()
                         .lr(c.real("lr"))
                         .betas({c.real("beta1"), c.real("beta2")})
                         .weight_decay(c.real("weight_decay"));
  if (lora_model) {
    // Only the adapters train (GPT::decay_groups would hand the frozen weights to AdamW).
    std::tie(n_trainable, n_all) = lora_model->get_nb_trainable_parameters();
    opt = std::make_unique<optim::AdamW>(lora_model->parameters(), adamw);
    ckpt_meta["lora"] = lora_model->config().to_json();
  } else {
    // As `focus train char-gpt`: weight decay on the matrices only.
    auto groups = model->decay_groups();
    n_trainable = n_all = model->num_parameters();
    std::vector<optim::ParamGroup> param_groups;
    param_groups.emplace_back(groups.first);
    param_groups.emplace_back(groups.second);
    param_groups.back().weight_decay(0.0);
    opt = std::make_unique<optim::AdamW>(std::move(param_groups), adamw);
  }
  optim::LambdaLR sched(*opt, [c](int64_t it) { return lr_factor(it, c); });
  const double share = 100.0 * static_cast<double>(n_trainable) / static_cast<double>(n_all);
  const std::string what = method == "lora" ? lora_description(lora_model->config()) : "full fine-tuning";
  log << fmt::format("fine-tuning {} parameters of {} ({:.2f}%): {}; from {}; {} steps of {}x{} characters, lr {:g}\n",
                     n_trainable, n_all, share, what, c.str("from"), steps, B, T, c.real("lr"));

  Generator data_gen(seed);
  Generator eval_gen(seed + 1);
  auto fixed = [&](const Tensor& ids) {
    std::vector<std::pair<Tensor, Tensor>> v;
    for (int64_t i = 0; i < c.integer("eval_batches"); ++i) {
      auto [x, y] = get_batch(ids, B, T, eval_gen);
      v.emplace_back(x.to(run.device()), y.to(run.device()));
    }
    return v;
  };
  const auto valid_batches = fixed(valid_ids);
  const auto train_batches = fixed(train_ids);
  const int64_t per_epoch = std::max<int64_t>(1, train_ids.size(0) / (B * T));
  training::Trainer trainer(run, *model, *opt, &sched,
                            training::TrainerOptions::from_config(c, steps)
                                .steps_per_epoch(per_epoch)
                                .log_every(10)
                                .unit("char/s"));
  trainer.generator(&data_gen).meta(ckpt_meta);
  trainer.on_validate([&](int64_t s) {
    const double vl = mean_loss(*model, valid_batches), tl = mean_loss(*model, train_batches);
    run.log("valid", s, {{"loss", vl}, {"bpc", bits_per_char(vl)}, {"train_loss", tl}, {"train_bpc", bits_per_char(tl)}});
  });
  if (const int64_t start = trainer.restore(); start > 0) log << fmt::format("resuming at step {}\n", start);

  // Peak memory: the process's so far (loading the speeches), then that of the steps alone.
  const double rss_before_training = proc_status_mib("VmRSS");
  const double peak_before_training = std::max(proc_status_mib("VmHWM"), max_rss_mib());
  const bool peak_reset = reset_peak_rss();
  if (run.device().is_cuda()) cuda::reset_peak_memory_stats();
  const bool done = trainer.fit([&](int64_t) {
    auto [x, y] = get_batch(train_ids, B, T, data_gen);
    return training::StepOutput(GPT::loss(model->forward(x.to(run.device())), y.to(run.device())), B * T);
  });
  const double training_peak = peak_reset ? proc_status_mib("VmHWM") : -1.0;
  const double gpu_peak = run.device().is_cuda() ? static_cast<double>(cuda::max_memory_allocated()) / 1048576.0 : -1.0;
  if (!done) {
    throw zoo::Interrupted(fmt::format("the checkpoint is in {}; continue with: focus finetune char-gpt --run-dir {} --resume",
                                       own_checkpoint.string(), run_dir));
  }
  const int64_t step = trainer.step();
  const double train_seconds = trainer.train_seconds();

  if (lora_model) lora_model->save_pretrained(run.dir().string());  // PEFT's adapter files
  log << "evaluating on the whole validation split...\n";
  if (lora_model) lora_model->merge_adapter();  // the same outputs, one matmul per layer
  const double train_loss = mean_loss(*model, train_batches);
  const double after = split_loss(*model, valid_ids, B);
  model->eval();
  std::string sample;
  if (c.integer("sample_length") > 0) {
    const std::string prompt = "\n\n";  // speeches are separated by a blank line: a new one begins
    Generator sample_gen(seed);
    sample = prompt + decode(vocab, model->generate(encode(vocab, prompt, kTag), c.integer("sample_length"),
                                                    SampleOptions().temperature(0.8), &sample_gen));
  }
  const double peak = std::max({peak_before_training, max_rss_mib(), training_peak});
  const std::string memory =
      training_peak >= 0
          ? fmt::format("{:.0f} MiB peak RSS of the process; {:.0f} MiB peak during the steps ({:.0f} MiB resident "
                        "before them: the speeches and the model)",
                        peak, training_peak, rss_before_training)
          : fmt::format("{:.0f} MiB peak RSS of the process ({:.0f} MiB resident before the steps)", peak,
                        rss_before_training);
  const std::string text = fmt::format(
      "char-gpt fine-tuned on the State of the Union speeches ({}) after {} steps ({} of training)\n"
      "  base model          {}\n"
      "  trainable params    {} of {} ({:.2f}%)\n"
      "  validation loss     before {:.4f} nats ({:.4f} bits/char)  after {:.4f} nats ({:.4f} bits/char)\n"
      "                      (whole validation split: the last {:.0f}% of the speeches' characters, {} characters)\n"
      "  train loss          {:.4f} nats ({} fixed batches of {}x{})\n"
      "  memory              {}{}\n"
      "{}"
      "sample (temperature 0.8, prompt \"\\n\\n\", seed {}):\n{}\n",
      what, step, fmt_seconds(train_seconds), c.str("from"), n_trainable, n_all, share, before,
      bits_per_char(before), after, bits_per_char(after), (1 - kTrainFrac) * 100, valid_ids.size(0), train_loss,
      c.integer("eval_batches"), B, T, memory,
      gpu_peak >= 0 ? fmt::format("; {:.0f} MiB peak GPU memory allocated", gpu_peak) : "",
      lora_model ? fmt::format("  adapter (PEFT)      {}/adapter_model.safetensors, adapter_config.json\n",
                               run.dir().string())
                 : "",
      seed, sample);
  std::vector<std::pair<std::string, double>> metrics{
      {"valid_loss_before", before},
      {"valid_bpc_before", bits_per_char(before)},
      {"valid_loss", after},
      {"valid_bpc", bits_per_char(after)},
      {"train_loss", train_loss},
      {"steps", static_cast<double>(step)},
      {"train_seconds", train_seconds},
      {"trainable_parameters", static_cast<double>(n_trainable)},
      {"all_parameters", static_cast<double>(n_all)},
      {"trainable_percent", share},
      {"peak_rss_mib", peak},
      {"rss_before_training_mib", rss_before_training}};
  if (training_peak >= 0) metrics.emplace_back("training_peak_rss_mib", training_peak);
  if (gpu_peak >= 0) metrics.emplace_back("gpu_peak_allocated_mib", gpu_peak);
  run.report(metrics, text);
  std::vector<std::string> pictures;
  try {
    pictures = zoo::plot_run(run.dir().string());
  } catch (const Error& e) {
    log << "focus: warning: no curves drawn: " << e.what() << "\n";
  }
  log << fmt::format("run directory: {} (config.json, metrics.jsonl, checkpoint.safetensors, report.txt{}{})\n",
                     run.dir().string(), lora_model ? ", adapter_model.safetensors, adapter_config.json" : "",
                     pictures.empty() ? "" : ", curves " + fmt::format("{}", fmt::join(pictures, ", ")));
}

}  // namespace

// ---- VocabMapping ---------------------------------------------------------------------------

int64_t VocabMapping::count(const std::map<std::string, int64_t>& which) const {
  int64_t n = 0;
  for (const auto& [ch, k] : which) n += k;
  return n;
}

std::string VocabMapping::summary() const {
  const int64_t m = count(mapped), f = count(fallback), d = count(dropped);
  if (m + f + d == 0) return fmt::format("all {} characters are in the vocabulary", characters);
  std::vector<std::string> parts;
  if (m) parts.push_back(fmt::format("{} mapped to ASCII equivalents ({})", m, counts_text(mapped)));
  if (f) parts.push_back(fmt::format("{} replaced by ' ' ({})", f, counts_text(fallback)));
  if (d) parts.push_back(fmt::format("{} dropped ({})", d, counts_text(dropped)));
  return fmt::format("{} of {} characters are not in the vocabulary: {}", m + f + d, characters, fmt::join(parts, ", "));
}

std::string ascii_equivalent(const std::string& ch) { return ascii_of(code_point_of(ch)); }

VocabMapping map_to_vocab(std::string_view text, const data::Vocab& vocab, const std::string& what) {
  std::unordered_map<uint32_t, int64_t> id_of;  // the vocabulary's single-character tokens
  for (int64_t i = 0; i < vocab.size(); ++i) {
    const uint32_t cp = code_point_of(vocab.token(i));
    if (cp != 0xFFFFFFFFu) id_of.emplace(cp, i);
  }
  const auto space = id_of.find(' ');
  VocabMapping m;
  m.ids.reserve(text.size());
  std::unordered_map<uint32_t, std::vector<int64_t>> replacement;  // memo: cp -> ids (empty: none)
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const uint32_t cp = next_code_point(text, i, what);
    ++m.characters;
    if (const auto it = id_of.find(cp); it != id_of.end()) {
      m.ids.push_back(it->second);
      ++m.kept;
      continue;
    }
    const std::string ch(text.substr(start, i - start));
    if (droppable(cp)) {
      ++m.dropped[ch];
      continue;
    }
    auto r = replacement.find(cp);
    if (r == replacement.end()) {
      std::vector<int64_t> ids;
      const std::string eq = ascii_of(cp);
      for (char e : eq) {
        const auto it = id_of.find(static_cast<unsigned char>(e));
        if (it == id_of.end()) {
          ids.clear();
          break;
        }
        ids.push_back(it->second);
      }
      r = replacement.emplace(cp, std::move(ids)).first;
    }
    if (!r->second.empty()) {
      m.ids.insert(m.ids.end(), r->second.begin(), r->second.end());
      ++m.mapped[ch];
    } else if (space != id_of.end()) {
      m.ids.push_back(space->second);
      ++m.fallback[ch];
    } else {
      ++m.dropped[ch];
    }
  }
  return m;
}

std::string speeches_text(const std::vector<datasets::Speech>& speeches) {
  std::string text;
  size_t total = 0;
  for (const auto& s : speeches) total += s.text.size() + 2;
  text.reserve(total);
  for (size_t i = 0; i < speeches.size(); ++i) {
    if (i > 0) text += "\n\n";
    text += speeches[i].text;
  }
  return text;
}

// ---- --lora and the config ---------------------------------------------------------------

const std::vector<std::string>& default_lora_targets() {
  static const std::vector<std::string> targets{"c_attn", "c_proj", "c_fc"};
  return targets;
}

nn::LoraConfig parse_lora_spec(const std::string& spec, const std::string& what) {
  const std::string example = "e.g. r=8 or r=16,alpha=32,dropout=0.05,target=c_attn,c_proj";
  FOCUS_CHECK(!trim(spec).empty(), "{}: empty; give KEY=VALUE pairs ({})", what, example);
  int64_t r = 8;
  std::optional<double> alpha;
  double dropout = 0.0;
  bool rslora = false;
  std::optional<std::vector<std::string>> targets;
  std::string last_key;
  size_t start = 0;
  std::vector<std::string> seen;
  while (start <= spec.size()) {
    const size_t comma = spec.find(',', start);
    const std::string part = trim(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    start = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    const size_t eq = part.find('=');
    if (eq == std::string::npos) {
      // A name after target=NAME continues the list of targets.
      FOCUS_CHECK(last_key == "target" && !part.empty(),
                  "{} '{}': expected KEY=VALUE, got '{}' (keys: r, alpha, dropout, target, rslora; {})", what, spec,
                  part, example);
      targets->push_back(part);
      continue;
    }
    std::string key = trim(part.substr(0, eq));
    const std::string value = trim(part.substr(eq + 1));
    if (key == "lora_alpha") key = "alpha";
    if (key == "lora_dropout") key = "dropout";
    if (key == "target_modules" || key == "targets") key = "target";
    if (key == "use_rslora") key = "rslora";
    FOCUS_CHECK(std::find(seen.begin(), seen.end(), key) == seen.end(), "{} '{}': {} is given twice", what, spec, key);
    seen.push_back(key);
    last_key = key;
    if (key == "r") {
      FOCUS_CHECK(zoo::parse_int(value, &r) && r >= 1, "{} '{}': r must be a positive integer, got '{}'", what, spec,
                  value);
    } else if (key == "alpha") {
      double a = 0;
      FOCUS_CHECK(zoo::parse_real(value, &a) && a > 0, "{} '{}': alpha must be a number > 0, got '{}'", what, spec, value);
      alpha = a;
    } else if (key == "dropout") {
      FOCUS_CHECK(zoo::parse_real(value, &dropout) && dropout >= 0 && dropout < 1,
                  "{} '{}': dropout must be a number in [0, 1), got '{}'", what, spec, value);
    } else if (key == "target") {
      FOCUS_CHECK(!value.empty(), "{} '{}': target needs module names (e.g. target=c_attn,c_fc)", what, spec);
      targets = std::vector<std::string>{value};
    } else if (key == "rslora") {
      FOCUS_CHECK(value == "true" || value == "false", "{} '{}': rslora must be true or false, got '{}'", what, spec,
                  value);
      rslora = value == "true";
    } else {
      FOCUS_FAIL("{} '{}': unknown key '{}'; the keys are r, alpha (lora_alpha), dropout (lora_dropout), target "
                 "(target_modules) and rslora ({})",
                 what, spec, key, example);
    }
  }
  nn::LoraConfig c;
  c.r(r)
      .lora_alpha(alpha ? *alpha : 2.0 * static_cast<double>(r))
      .lora_dropout(dropout)
      .target_modules(targets ? *targets : default_lora_targets())
      .use_rslora(rslora);
  try {
    c.validate();
  } catch (const Error& e) {
    FOCUS_FAIL("{} '{}': {}", what, spec, e.what());
  }
  return c;
}

training::Config finetune_default_config() {
  training::Config c = default_config();
  c.set("dataset", "sotu")
      .set("steps", 1000)
      .set("warmup_steps", 50)
      .set("lr", 5e-4)
      .set("min_lr", 5e-5)
      .set("eval_every", 250)
      .set("checkpoint_every", 250)
      .set("from", "")
      .set("method", "full")
      .set("lora_r", 8)
      .set("lora_alpha", 16.0)
      .set("lora_dropout", 0.0)
      .set("lora_target", fmt::format("{}", fmt::join(default_lora_targets(), ",")))
      .set("lora_rslora", false);
  return c;
}

training::Config finetune_config(const training::Config& base, const std::string& base_checkpoint,
                                 const nn::LoraConfig* lora) {
  training::Config c = finetune_default_config();
  for (const char* k : kArchitecture) c.assign(k, base.text(k));
  c.assign("dropout", base.text("dropout"));
  c.set("from", base_checkpoint);
  if (lora) {
    c.set("method", "lora").set("lr", 2e-3).set("min_lr", 2e-4);
    c.set("lora_r", lora->r_)
        .set("lora_alpha", lora->lora_alpha_)
        .set("lora_dropout", lora->lora_dropout_)
        .set("lora_target", fmt::format("{}", fmt::join(lora->target_modules_, ",")))
        .set("lora_rslora", lora->use_rslora_);
  }
  return c;
}

nn::LoraConfig lora_config_of(const training::Config& c) {
  std::vector<std::string> targets;
  const std::string t = c.str("lora_target");
  size_t start = 0;
  while (start <= t.size()) {
    const size_t comma = t.find(',', start);
    const std::string name = trim(t.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (!name.empty()) targets.push_back(name);
    start = comma == std::string::npos ? t.size() + 1 : comma + 1;
  }
  nn::LoraConfig l;
  l.r(c.integer("lora_r"))
      .lora_alpha(c.real("lora_alpha"))
      .lora_dropout(c.real("lora_dropout"))
      .target_modules(targets)
      .use_rslora(c.boolean("lora_rslora"));
  try {
    l.validate();
  } catch (const Error& e) {
    FOCUS_FAIL("{} the run's LoRA settings (lora_r, lora_alpha, lora_dropout, lora_target): {}", kTag, e.what());
  }
  return l;
}

zoo::ModelCommand finetune_command() {
  zoo::ModelCommand cmd;
  cmd.help =
      "adapt a trained char-gpt to the State of the Union speeches: LoRA adapters (--lora r=8) or every weight; "
      "writes a run directory";
  cmd.inputs = "";
  cmd.reads_checkpoint = false;
  cmd.options = {
      {"from", "the base: a `focus train char-gpt` run directory (or its checkpoint file); required", ""},
      {"data", "the data to adapt to: sotu (the State of the Union speeches, the only one for now)", "sotu"},
      {"lora", "LoRA instead of full fine-tuning: KEY=VALUE,... with r (8), alpha (2r), dropout (0), "
               "target (c_attn,c_proj,c_fc), rslora (false)", ""},
      {"set", "change one config key: --set steps=500 (repeatable; char-gpt's keys, `focus models char-gpt`, and "
              "from, method, lora_r, lora_alpha, lora_dropout, lora_target, lora_rslora)", ""},
      {"run-dir", "run directory (default runs/char-gpt-finetune-lora, or -full without --lora)", ""},
      {"resume", "continue from the run directory's checkpoint", "false", true},
      {"overwrite", "start afresh even though the run directory holds a checkpoint", "false", true},
      {"quiet", "no progress line", "false", true},
  };
  cmd.options[3].repeat = true;
  cmd.run = finetune;
  return cmd;
}

}  // namespace focus::models::char_gpt
