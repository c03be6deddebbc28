#pragma once
/// The g2p training and evaluation program for the model zoo and the `focus` command line:
///   focus train g2p [--config full] [--set key=value ...]
///   focus eval g2p --checkpoint runs/g2p/checkpoint.safetensors
///   focus predict g2p WORD ... [--beam N] [--attention FILE.png]
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <focus/focus.h>

#include "data/vocab.h"
#include "models/g2p/data.h"
#include "models/g2p/g2p.h"
#include "models/g2p/metrics.h"
#include "models/zoo/registry.h"

namespace focus::models::g2p {

/// The zoo entry: config keys with their defaults (the `default` configuration, which trains
/// in about 2 minutes on 2 CPU cores), the `full` preset, train / evaluate, and `predict`.
zoo::ModelEntry model_entry();

/// The default configuration (every key the program reads): d_model 128, 2+2 layers, 1500
/// steps of 128 pronunciations (1.6 epochs). Measured 2026-12-07 on a quiet 2-core VM (Intel
/// Xeon, AVX-512) at the default thread count: 1m37s wall including the test evaluation, ~31k
/// tok/s; test PER 16.4% / WER 51.8% greedy, PER 15.6% / WER 50.7% beam 5 (docs/RESULTS.md).
training::Config default_config();
/// The `full` preset, aimed at WER <= 30% / PER <= 7.5% within 2 hours on 2 cores: the
/// anchors' setup (stress digits stripped: 39 phonemes) and the anchor Transformer's size
/// (d_model 256, 3+3 layers, 5.5M parameters), 9500 steps of 128 (~10 epochs). Measured runs:
/// docs/RESULTS.md.
training::Config full_config();

/// The words of a dataset ("cmudict": the fetched dictionary; "synthetic": the generated
/// language of synthetic_words(config "synthetic_words", seed 1234)) in one split:
/// data::hash_split(word, 0.90, 0.05), so all pronunciations of a word share a split.
std::vector<G2PWord> load_split(const training::Config& config, const std::string& split);

/// The vocabularies of a model: letters and phonemes (data::Vocab with specials).
struct G2PVocabs {
  data::Vocab letters, phonemes;
};

/// A trained model with its vocabularies, loaded from a checkpoint written by training.
struct LoadedModel {
  std::shared_ptr<G2PTransformer> model;
  G2PVocabs vocabs;
  training::Config config;
};
/// Loads path (meta "config", "letters", "phonemes" and the weights) and moves the model to
/// device; config_overrides are "key=value" changes to the stored config (e.g. beam=8).
LoadedModel load_model(const std::string& path, const std::vector<std::string>& config_overrides = {},
                       Device device = kCPU);

/// One word's decoding results.
struct Prediction {
  std::string word;
  std::vector<std::string> phonemes;
  Hypothesis hypothesis;
};
/// Decodes normalized words (batched, longest-first chunks of batch_size, each built on the
/// model's device): beam <= 1 greedy, else beam search with that width. A letter outside the
/// model's vocabulary -> focus::Error.
std::vector<Prediction> predict_words(G2PTransformer& model, const G2PVocabs& vocabs, const std::vector<std::string>& words,
                                      int64_t beam, double length_penalty = 1.0, int64_t batch_size = 256);

/// PER / WER of the model on words (all pronunciations as references); examples receives
/// the predictions when non-null.
ErrorRates evaluate_words(G2PTransformer& model, const G2PVocabs& vocabs, const std::vector<G2PWord>& words,
                          int64_t beam, double length_penalty = 1.0, std::vector<Prediction>* predictions = nullptr);

}  // namespace focus::models::g2p
