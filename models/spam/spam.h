#pragma once
/// The spam classifier: a Transformer encoder over the words of an e-mail (see
/// models/spam/email.h for how a raw message becomes words).
///
///   tokens [B, T] -> embed (Embedding, padding row <pad>) + pos (learned positions)
///   -> encoder (nn::TransformerEncoder, pre-norm layers, final LayerNorm)
///   -> pool: "mean" = mean over the non-padding positions, or "cls" = position 0 (<bos>)
///   -> head (Linear d_model -> 2): logits [B, 2], class 1 = spam.
///
/// state_dict: embed.weight [V, E], pos.weight [max_len, E], encoder.layers.<i>.* (PyTorch's
/// TransformerEncoderLayer names), encoder.norm.{weight,bias}, head.{weight,bias}.
/// Written only against the public API (<focus/focus.h>).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <focus/focus.h>

namespace focus::models::spam {

/// Hyperparameters of SpamClassifier.
struct SpamConfig {
  int64_t vocab_size_ = 20000;
  int64_t max_len_ = 256;  // longest sequence (<bos> included)
  int64_t d_model_ = 64;
  int64_t nhead_ = 4;
  int64_t num_layers_ = 2;
  int64_t dim_feedforward_ = 256;
  double dropout_ = 0.1;
  std::string pool_ = "mean";  // "mean" or "cls"
  int64_t pad_id_ = 0;
  SpamConfig& vocab_size(int64_t v) { vocab_size_ = v; return *this; }
  SpamConfig& max_len(int64_t v) { max_len_ = v; return *this; }
  SpamConfig& d_model(int64_t v) { d_model_ = v; return *this; }
  SpamConfig& nhead(int64_t v) { nhead_ = v; return *this; }
  SpamConfig& num_layers(int64_t v) { num_layers_ = v; return *this; }
  SpamConfig& dim_feedforward(int64_t v) { dim_feedforward_ = v; return *this; }
  SpamConfig& dropout(double v) { dropout_ = v; return *this; }
  SpamConfig& pool(std::string v) { pool_ = std::move(v); return *this; }
  SpamConfig& pad_id(int64_t v) { pad_id_ = v; return *this; }
};

/// Transformer-encoder text classifier (ham = 0, spam = 1). Embedding and position weights
/// start N(0, 0.02); the encoder layers keep PyTorch's initialization. Bad hyperparameters
/// (non-positive sizes, d_model not divisible by nhead, unknown pool, pad_id outside the
/// vocabulary) -> focus::Error naming "[SpamClassifier]".
class SpamClassifier : public nn::Module {
 public:
  explicit SpamClassifier(const SpamConfig& config, Generator* gen = nullptr);

  /// tokens [B, T] int64 ids (1 <= T <= max_len), key_padding_mask [B, T] bool (true =
  /// padding; undefined = no padding; every row needs one real position) -> logits [B, 2].
  Tensor forward(const Tensor& tokens, const Tensor& key_padding_mask = {});
  Tensor operator()(const Tensor& tokens, const Tensor& key_padding_mask = {}) {
    return forward(tokens, key_padding_mask);
  }

  /// Attention rollout (Abnar & Zuidema, 2020) for one unpadded sequence: tokens [T] or
  /// [1, T] -> T weights (>= 0, summing to 1), the share of each input position in the
  /// pooled representation. Each layer's attention A is averaged over heads; for "cls" the
  /// residual path is counted as 0.5 * I + 0.5 * A (rows renormalized), for "mean" A alone
  /// (the residual share is equal for all positions and would flatten the weights); the layers'
  /// matrices are multiplied and the row(s) of the pooled position(s) read off: row 0 for
  /// "cls", the mean of all rows for "mean". Runs without recording a graph and with dropout off (eval), restoring the
  /// training flag afterwards; tokens on any device (moved to the weights').
  std::vector<float> attention_rollout(const Tensor& tokens);

  /// Parameters split for AdamW: matrices (dim >= 2: Linear weights, embeddings) get weight
  /// decay; biases and LayerNorm weights do not.
  std::pair<std::vector<Tensor>, std::vector<Tensor>> decay_groups() const;

  /// The device of the weights (where Module::to put them); forward's inputs must be there.
  Device device() const;

  const SpamConfig& config() const { return config_; }

 private:
  void check_input(const Tensor& tokens, const Tensor& key_padding_mask) const;
  SpamConfig config_;
  std::shared_ptr<nn::Embedding> embed_;
  std::shared_ptr<nn::LearnedPositionalEmbedding> pos_;
  std::shared_ptr<nn::TransformerEncoder> encoder_;
  std::shared_ptr<nn::Linear> head_;
};

/// Binary confusion counts with spam (class 1) as the positive class.
struct BinaryMetrics {
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  /// Counts one prediction against its label (each 0 or 1).
  void add(int64_t predicted, int64_t label);
  /// Adds predicted [N] and labels [N] (int64 0/1 tensors); other values -> focus::Error.
  void add(const Tensor& predicted, const Tensor& labels);
  int64_t total() const { return tp + fp + tn + fn; }
  /// (tp + tn) / total; 0 when empty.
  double accuracy() const;
  /// tp / (tp + fp); 0 when nothing was predicted positive (scikit-learn's zero_division=0).
  double precision() const;
  /// tp / (tp + fn); 0 when there are no positives.
  double recall() const;
  /// Harmonic mean of precision and recall; 0 when both are 0.
  double f1() const;
};

}  // namespace focus::models::spam
