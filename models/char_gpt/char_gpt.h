#pragma once
/// char-gpt: a character-level decoder-only Transformer (models/gpt's nanoGPT-style GPT) on
/// the text of Moby Dick. This header holds the reusable pieces: the corpus (characters ->
/// ids, vocabulary, the train/validation split), nanoGPT's random-block batches, the
/// evaluation losses, text encoding with clear errors, and a tiny generated corpus for tests.
/// The training program (zoo::ModelEntry) is in models/char_gpt/program.h.
///
/// Characters are Unicode code points (data::split_utf8): the book has non-ASCII ones
/// such as '—', '’' and 'œ', each one token.
///
/// Split: the first 90% of the book's characters (train_frac) are the training split, the
/// last 10% the validation split, as nanoGPT's shakespeare_char (`data[:int(n*0.9)]`).
/// There is no separate test split: the validation split is the held-out text.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <focus/focus.h>

#include "data/vocab.h"
#include "models/gpt/gpt.h"

namespace focus::models::char_gpt {

/// A text as character ids, split in two.
struct Corpus {
  data::Vocab vocab;  ///< every distinct character of the whole text, no special tokens
  Tensor train;       ///< [N_train] int64: ids of the first train_frac of the characters
  Tensor valid;       ///< [N_valid] int64: ids of the rest
};

/// Splits text into characters, builds the vocabulary (data::Vocab::build without specials:
/// most frequent first, ties by character) and cuts the ids at floor(n * train_frac).
/// Empty text, bad UTF-8, train_frac outside (0, 1) or a split shorter than 2 characters
/// -> focus::Error.
Corpus make_corpus(std::string_view text, double train_frac = 0.9);

/// The ids of text's characters. A character missing from vocab -> focus::Error starting
/// with what ("[generate]") that shows the character, its code point and its position.
std::vector<int64_t> encode(const data::Vocab& vocab, std::string_view text, const std::string& what);
/// The text of ids (concatenated characters).
std::string decode(const data::Vocab& vocab, const std::vector<int64_t>& ids);

/// nanoGPT's get_batch: batch_size offsets i uniform in [0, N - block_size) drawn from gen;
/// x = data[i : i + block_size], y = data[i + 1 : i + block_size + 1]. data: [N] int64 with
/// N > block_size (else focus::Error). Returns (x, y), each [batch_size, block_size] int64.
std::pair<Tensor, Tensor> get_batch(const Tensor& data, int64_t batch_size, int64_t block_size, Generator& gen);

/// Mean next-character loss (nats) of model over batches (pairs from get_batch, on any device:
/// each is moved to the model's), without recording a graph; the model is put in eval mode
/// and returned to its previous mode.
double mean_loss(const GPT& model, const std::vector<std::pair<Tensor, Tensor>>& batches);

/// Mean next-character loss (nats) over a whole split, deterministic: inputs are the
/// consecutive windows x = data[s : s + block_size], s = 0, block_size, 2 block_size, ...
/// (the last one shorter) with targets y = data[s + 1 : s + block_size + 1], so every
/// character except the first is predicted exactly once, from 0 .. block_size - 1
/// characters of context (the same mix of contexts as random blocks). Windows are
/// evaluated batch_size at a time, each moved to the device of the model's weights.
double split_loss(const GPT& model, const Tensor& data, int64_t batch_size);

/// Nats per character -> bits per character (nats / ln 2).
double bits_per_char(double nats);

/// A tiny generated corpus for tests and smoke runs: about `chars` bytes of simple
/// English-like sentences (a fixed grammar over a dozen words, with '—' and '’' so that
/// non-ASCII characters are exercised), reproducible from seed.
std::string synthetic_text(int64_t chars, uint64_t seed = 0);

}  // namespace focus::models::char_gpt
