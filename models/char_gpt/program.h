#pragma once
/// char-gpt's training program for the `focus` command line (zoo::ModelEntry):
///
///   focus train char-gpt [--config full] [--set key=value ...]   train, report losses
///   focus eval char-gpt --checkpoint F [--split valid|train]      losses of a checkpoint
///   focus generate char-gpt --prompt TEXT [--length N] [--temperature T] [--top-k K] [--seed S]
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
/// Config keys: dataset ("moby-dick" | "synthetic": a small generated text, no download),
/// n_layer, n_head, n_embd, block_size, dropout, bias, batch_size, steps, lr, min_lr,
/// warmup_steps, weight_decay, beta1, beta2, grad_clip, eval_every, eval_batches,
/// checkpoint_every, seed, threads (0 = the library's default), sample_length.
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

}  // namespace focus::models::char_gpt
