#pragma once
/// char-gpt's training program for the `focus` command line (zoo::ModelEntry):
///
///   focus train char-gpt [--config full] [--set key=value ...]   train, report losses
///   focus eval char-gpt --checkpoint F [--split valid|train]      losses of a checkpoint
///   focus generate char-gpt --prompt TEXT [--length N] [--temperature T] [--top-k K] [--seed S]
///   focus finetune char-gpt --from RUN_DIR --data sotu [--lora r=8,...]  adapt to the speeches
///                                                                          (models/char_gpt/finetune.h)
///
/// Training (nanoGPT's train.py on shakespeare_char, on Moby Dick): random contiguous
/// blocks of block_size characters from the training split (data_gen seeded by `seed`),
/// AdamW (beta1, beta2, weight decay on matrices only: GPT::decay_groups), nanoGPT's
/// learning rate (linear warm-up over warmup_steps from lr/(warmup_steps+1), cosine decay to
/// min_lr at `steps`), gradient clipping at grad_clip (0 = off). Every eval_every steps: mean
/// loss over eval_batches fixed validation batches and as many fixed training batches (drawn
/// once from a generator seeded seed + 1), logged in nats and bits per character. At the end:
/// validation loss over the whole validation split (char_gpt::split_loss), train loss on the
/// fixed training batches, a sample text, all in the run's report. The checkpoint holds the
/// vocabulary (meta "vocab") so eval and generate need only the checkpoint.
///
/// Config keys: dataset ("moby-dick" | "synthetic": a small generated text, no download |
/// "sotu": the State of the Union speeches, speeches_text, mapped into a checkpoint's
/// vocabulary by eval as fine-tuning does), num_layers, nhead, d_model, block_size, dropout, bias, batch_size, steps, lr, min_lr,
/// warmup_steps, weight_decay, beta1, beta2, grad_clip, eval_every, eval_batches,
/// checkpoint_every, seed, threads (0 = the library's default), sample_length.
#include <map>
#include <memory>
#include <string>

#include "models/char_gpt/char_gpt.h"
#include "training/config.h"
#include "models/zoo/registry.h"

namespace focus::models::char_gpt {

/// The default configuration: 4 layers, 4 heads, width 128, context 128, batch 16, 1500
/// steps, one thread (at this size a second thread costs more than it gives on a shared
/// machine): about 9 minutes; validation loss about 1.64-1.65 nats (2.37 bits/char).
training::Config default_config();
/// The longer configuration ("full"): the default model with dropout 0.1, batch 32, 3000
/// steps (12.3M characters: about 30 minutes on one core).
training::Config full_config();
/// The zoo entry: name "char-gpt", presets "default" and "full", train, evaluate, and the
/// "generate" command.
zoo::ModelEntry model_entry();

/// The training program's pieces that fine-tuning (models/char_gpt/finetune.cpp) shares.
namespace detail {
/// The GPT of a config's num_layers, nhead, d_model, block_size, dropout, bias.
GPTConfig gpt_config(const training::Config& c, int64_t vocab_size);
/// Errors "[char-gpt] ..." for counts < 1, negative warm-up, lr/min_lr and grad_clip out of range.
void check_config(const training::Config& c);
/// nanoGPT's learning rate at step it as a multiple of lr (LambdaLR): linear warm-up over
/// warmup_steps, cosine decay to min_lr at steps.
double lr_factor(int64_t it, const training::Config& c);
/// A trained model and its vocabulary, loaded from a checkpoint.
struct Loaded {
  training::Config config;
  data::Vocab vocab;
  std::shared_ptr<GPT> model;
};
/// Loads a char-gpt checkpoint (a `focus train` or `focus finetune` run's; a LoRA fine-tune's
/// adapters merged) on device, in eval mode. override_config: use it instead of the stored config.
Loaded load(const std::string& path, Device device, const training::Config* override_config = nullptr);
/// Loads the weights of the checkpoint at path (meta: its metadata) into model: a LoRA
/// fine-tune's checkpoint (meta "lora", base weights and adapters) is loaded into an adapted
/// model and merged, leaving a plain GPT; every parameter requires grad afterwards.
void load_weights(GPT& model, const std::string& path, const std::map<std::string, std::string>& meta);
}  // namespace detail

}  // namespace focus::models::char_gpt
