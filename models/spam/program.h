#pragma once
/// The spam classifier's training and evaluation program and its `classify` command, as the
/// `focus` command line runs them (`focus train spam`, `focus eval spam`, `focus classify spam
/// FILE ...`).
///
/// Data: the SpamAssassin public corpus (dataset "spam-assassin": 6046 messages; easy-ham-1/2
/// and hard-ham-1 are ham, spam-1/2 spam), or "synthetic" (a small generated corpus of raw
/// messages, for tests and smoke runs). Preprocessing is described in models/spam/email.h.
/// Messages whose body repeats an earlier message's body byte for byte are dropped (171 in
/// the corpus), so no text is both trained on and tested on; the rest are split 80/10/10 by
/// data::hash_split of the message id. The word vocabulary is built on the training split
/// (min_freq, vocab_size) and stored in the checkpoint's metadata ("vocab").
#include <cstdint>
#include <string>
#include <vector>

#include "data/vocab.h"
#include "models/spam/spam.h"
#include "training/config.h"
#include "models/zoo/registry.h"

namespace focus::models::spam {

/// A labelled message.
struct Message {
  std::string id;
  bool spam = false;
  std::string raw;  ///< RFC-822 text
};

/// A message as the model reads it: ids = <bos> + word ids, label 1 = spam.
struct Example {
  std::vector<int64_t> ids;
  int64_t label = 0;
};

/// The splits of a corpus after dropping repeated bodies.
struct SplitMessages {
  std::vector<Message> train, valid, test;
  int64_t duplicates_dropped = 0;
};

/// Every config key with the default configuration's value (trains in a few minutes on 2
/// CPU cores).
training::Config default_config();
/// The "full" preset: a wider model (d_model 128) on longer inputs (384 words), 4 epochs:
/// about 11 minutes on one core; 98.99% test accuracy (docs/RESULTS.md).
training::Config full_config();

/// n generated raw messages (headers + body; some multipart, quoted-printable, HTML), half
/// spam, from a fixed seed. Spam and ham draw their words from different (overlapping)
/// lists, so a classifier can learn them quickly.
std::vector<Message> synthetic_messages(int64_t n, uint64_t seed);

/// The messages of config "dataset" ("spam-assassin" from the dataset cache, or "synthetic");
/// another name -> focus::Error.
std::vector<Message> load_messages(const training::Config& config);

/// Drops repeated bodies (keeping the first) and splits by hash_split(id, train_frac,
/// valid_frac).
SplitMessages split_messages(const std::vector<Message>& messages, double train_frac = 0.8,
                             double valid_frac = 0.1);

/// <bos> followed by the ids of the first max_len - 1 words (max_len >= 1).
std::vector<int64_t> encode_words(const std::vector<std::string>& words, const data::Vocab& vocab,
                                  int64_t max_len);

/// The model's hyperparameters from a config and a vocabulary.
SpamConfig model_config(const training::Config& config, const data::Vocab& vocab);

/// Confusion counts and mean cross-entropy of model on examples (no graph, eval mode; the
/// training flag is restored), the batches built on the model's device.
struct Evaluation {
  BinaryMetrics metrics;
  double loss = 0.0;
};
Evaluation evaluate_examples(SpamClassifier& model, const std::vector<Example>& examples, int64_t batch_size);

/// The registry entry: default config, "full" preset, train, evaluate and "classify".
zoo::ModelEntry model_entry();

}  // namespace focus::models::spam
