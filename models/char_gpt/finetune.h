#pragma once
/// char-gpt fine-tuning: `focus finetune char-gpt --from RUN_DIR --data sotu [--lora r=8,...]`
/// adapts a trained char-gpt (a `focus train char-gpt` run) to the State of the Union
/// speeches, with LoRA adapters (nn/lora.h, PEFT's layout) or by training every weight.
///
/// The pieces a test can reach: the speeches as text in the base model's vocabulary (the
/// characters Moby Dick never had mapped to ASCII equivalents or a fallback), the --lora
/// KEY=VALUE list, and the fine-tuning run's config. The command itself is registered by
/// char_gpt::model_entry() (models/char_gpt/program.cpp).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "data/vocab.h"
#include "models/datasets/datasets.h"
#include "models/zoo/registry.h"
#include "nn/lora.h"
#include "training/config.h"

namespace focus::models::char_gpt {

/// What map_to_vocab did to a text.
struct VocabMapping {
  std::vector<int64_t> ids;  ///< the mapped text's character ids in the vocabulary
  int64_t characters = 0;    ///< code points in the input text
  int64_t kept = 0;          ///< characters already in the vocabulary (kept as they are)
  /// Characters outside the vocabulary, by character (UTF-8), with their count:
  std::map<std::string, int64_t> mapped;    ///< replaced by their ASCII equivalent
  std::map<std::string, int64_t> fallback;  ///< replaced by the fallback character (a space)
  std::map<std::string, int64_t> dropped;   ///< removed (control and zero-width characters,
                                            ///< and anything when the vocabulary has no space)
  int64_t count(const std::map<std::string, int64_t>& which) const;
  /// One line: "677 of 10759831 characters are not in the vocabulary: 424 mapped to ASCII
  /// equivalents (’ 315, “ 30, ...), 252 replaced by ' ' (/ 99, ...), 1 dropped (\x02 1)".
  std::string summary() const;
};

/// The ASCII equivalent of a character outside the vocabulary ("'" for ’ and ‘, "\"" for “
/// and ”, "-" for – and ‑, "..." for …, " " for no-break and other spaces, "e" for é and
/// the other Latin-1 and common Latin Extended-A letters without their accents, "ae" for æ,
/// "*" for •); "" when it has none. ch: one code point in UTF-8.
std::string ascii_equivalent(const std::string& ch);

/// Maps text (UTF-8; invalid -> focus::Error naming what) into vocab, whose tokens are single
/// characters (a char-gpt vocabulary): a character of the vocabulary stays; otherwise its
/// ascii_equivalent when every character of that is in the vocabulary; control characters
/// (but '\t', which becomes a space) and zero-width characters are dropped; anything else
/// becomes the fallback, a space (dropped when the vocabulary has no space).
VocabMapping map_to_vocab(std::string_view text, const data::Vocab& vocab, const std::string& what = "[char-gpt]");

/// The speeches as one text, in the package's order (by year), separated by a blank line
/// ("\n\n"). Fine-tuning trains on the first 90% of its characters and validates on the last
/// 10% (the most recent speeches: 1992-2021 for the whole package), as char-gpt splits Moby
/// Dick.
std::string speeches_text(const std::vector<datasets::Speech>& speeches);

/// The default --lora targets: GPT's attention and MLP Linears (PEFT's GPT-2 list):
/// "c_attn", "c_proj" (attn.c_proj and mlp.c_proj) and "c_fc".
const std::vector<std::string>& default_lora_targets();

/// Parses --lora's comma-separated KEY=VALUE list into a validated PEFT LoraConfig:
///   r=N (rank, default 8), alpha=X (lora_alpha; default 2r), dropout=X (lora_dropout,
///   default 0, PEFT's), target=NAME[,NAME...] (target_modules, default
///   default_lora_targets(); the names after target= run to the next KEY=VALUE),
///   rslora=true|false (use_rslora, default false).
/// The PEFT spellings lora_alpha, lora_dropout and target_modules are accepted too.
/// Errors name `what` (default "[finetune] char-gpt: --lora") and the bad part.
nn::LoraConfig parse_lora_spec(const std::string& spec, const std::string& what = "[finetune] char-gpt: --lora");

/// Every key of a fine-tuning run's config (the defaults of `focus finetune char-gpt`):
/// char-gpt's keys (default_config) with dataset "sotu", plus "from" (the base checkpoint),
/// "method" ("lora" or "full"), "lora_r", "lora_alpha", "lora_dropout", "lora_target"
/// (comma-separated target_modules) and "lora_rslora". The budget: 1000 steps of 16 x 128
/// characters, warm-up 50, cosine to min_lr = lr / 10; lr 2e-3 for LoRA, 5e-4 for full
/// (finetune_config sets the method's).
training::Config finetune_default_config();
/// A fresh run's config: finetune_default_config with the architecture of base (the base
/// run's stored config: num_layers, nhead, d_model, block_size, bias, dropout), from =
/// base_checkpoint and the method's settings (lora: its LoraConfig; nullptr: full).
training::Config finetune_config(const training::Config& base, const std::string& base_checkpoint,
                                 const nn::LoraConfig* lora);
/// The LoraConfig of a run's config (method "lora"), validated.
nn::LoraConfig lora_config_of(const training::Config& config);

/// The `focus finetune char-gpt` command (zoo::ModelCommand; no --checkpoint).
zoo::ModelCommand finetune_command();

}  // namespace focus::models::char_gpt
