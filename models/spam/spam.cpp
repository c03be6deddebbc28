#include "models/spam/spam.h"

#include <cmath>

namespace focus::models::spam {

SpamClassifier::SpamClassifier(const SpamConfig& config, Generator* gen)
    : nn::Module("SpamClassifier"), config_(config) {
  const SpamConfig& c = config_;
  FOCUS_CHECK(c.vocab_size_ > 0 && c.max_len_ > 0 && c.d_model_ > 0 && c.nhead_ > 0 && c.num_layers_ > 0 &&
                  c.dim_feedforward_ > 0,
              "[SpamClassifier] sizes must be positive: vocab_size {} max_len {} d_model {} nhead {} num_layers {} "
              "dim_feedforward {}",
              c.vocab_size_, c.max_len_, c.d_model_, c.nhead_, c.num_layers_, c.dim_feedforward_);
  FOCUS_CHECK(c.d_model_ % c.nhead_ == 0, "[SpamClassifier] d_model {} is not divisible by nhead {}", c.d_model_,
              c.nhead_);
  FOCUS_CHECK(c.pool_ == "mean" || c.pool_ == "cls", "[SpamClassifier] pool must be \"mean\" or \"cls\", got \"{}\"",
              c.pool_);
  FOCUS_CHECK(c.pad_id_ >= 0 && c.pad_id_ < c.vocab_size_, "[SpamClassifier] pad_id {} outside the vocabulary of {}",
              c.pad_id_, c.vocab_size_);
  FOCUS_CHECK(c.dropout_ >= 0.0 && c.dropout_ < 1.0, "[SpamClassifier] dropout must lie in [0, 1), got {}",
              c.dropout_);
  embed_ = register_module("embed", std::make_shared<nn::Embedding>(
                                        nn::EmbeddingOptions(c.vocab_size_, c.d_model_).padding_idx(c.pad_id_)));
  pos_ = register_module("pos", std::make_shared<nn::LearnedPositionalEmbedding>(
                                    nn::PositionalOptions(c.d_model_, c.max_len_).dropout(c.dropout_)));
  auto layer = std::make_shared<nn::TransformerEncoderLayer>(nn::TransformerLayerOptions(c.d_model_, c.nhead_)
                                                                 .dim_feedforward(c.dim_feedforward_)
                                                                 .dropout(c.dropout_)
                                                                 .activation("gelu")
                                                                 .batch_first(true)
                                                                 .norm_first(true));
  encoder_ = register_module("encoder", std::make_shared<nn::TransformerEncoder>(
                                            layer, c.num_layers_,
                                            std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(c.d_model_))));
  head_ = register_module("head", std::make_shared<nn::Linear>(c.d_model_, 2));
  {
    NoGradGuard no_grad;
    nn::init::normal_(embed_->weight(), 0.0, 0.02, gen);
    embed_->weight()[c.pad_id_].zero_();
    nn::init::normal_(pos_->weight(), 0.0, 0.02, gen);
  }
}

void SpamClassifier::check_input(const Tensor& tokens, const Tensor& kpm) const {
  FOCUS_CHECK(tokens.defined() && tokens.dim() == 2 && tokens.dtype() == kInt64,
              "[SpamClassifier] tokens must be [B, T] int64, got {} {}", tokens.defined() ? tokens.shape() : Shape{},
              tokens.defined() ? tokens.dtype() : kInt64);
  FOCUS_CHECK(tokens.size(1) >= 1 && tokens.size(1) <= config_.max_len_,
              "[SpamClassifier] sequence length {} outside 1..max_len {}", tokens.size(1), config_.max_len_);
  if (kpm.defined())
    FOCUS_CHECK(kpm.dtype() == kBool && kpm.shape() == tokens.shape(),
                "[SpamClassifier] key_padding_mask must be bool {} like tokens, got {} {}", tokens.shape(),
                kpm.dtype(), kpm.shape());
}

Tensor SpamClassifier::forward(const Tensor& tokens, const Tensor& key_padding_mask) {
  check_input(tokens, key_padding_mask);
  Tensor x = pos_->forward(embed_->forward(tokens));                      // [B, T, E]
  x = encoder_->forward(x, {}, key_padding_mask);                         // [B, T, E]
  Tensor pooled;
  if (config_.pool_ == "cls") {
    pooled = x.select(1, 0);                                              // [B, E]
  } else if (!key_padding_mask.defined()) {
    pooled = x.mean({1});
  } else {
    Tensor keep = logical_not(key_padding_mask).to(x.dtype()).unsqueeze(-1);  // [B, T, 1]
    Tensor count = clamp(keep.sum({1}), 1.0, std::nullopt);                   // [B, 1]
    pooled = (x * keep).sum({1}) / count;                                     // [B, E]
  }
  return head_->forward(pooled);                                          // [B, 2]
}

Device SpamClassifier::device() const { return head_->weight().device(); }

std::vector<float> SpamClassifier::attention_rollout(const Tensor& tokens_in) {
  Tensor tokens = tokens_in.defined() && tokens_in.dim() == 1 ? tokens_in.unsqueeze(0) : tokens_in;
  check_input(tokens, {});
  tokens = tokens.to(device());
  FOCUS_CHECK(tokens.size(0) == 1, "[SpamClassifier] attention_rollout takes one sequence, got a batch of {}",
              tokens.size(0));
  NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  const int64_t T = tokens.size(1);
  Tensor eye_t = eye(T, -1, TensorOptions().device(tokens.device()));
  Tensor rollout = eye_t;
  Tensor x = pos_->forward(embed_->forward(tokens));  // [1, T, E]
  for (int64_t l = 0; l < encoder_->num_layers(); ++l) {
    const auto& layer = encoder_->layer(l);
    // The layer is pre-norm: its attention reads norm1(x).
    Tensor h = layer->norm1()->forward(x);
    auto [out, weights] = layer->self_attn()->forward(h, h, h, {}, /*need_weights=*/true, {},
                                                       /*average_attn_weights=*/true);
    Tensor a = weights.select(0, 0).to(kFloat32);  // [T, T]
    // With CLS pooling the residual path is counted (Abnar & Zuidema). With mean pooling the
    // residual share is the same for every position and would flatten the picture to near
    // uniform, so the plain attention product is used.
    if (config_.pool_ == "cls") a = a * 0.5 + eye_t * 0.5;
    a = a / a.sum({1}, true);
    rollout = matmul(a, rollout);
    x = layer->forward(x);
  }
  Tensor w = config_.pool_ == "cls" ? rollout.select(0, 0) : rollout.mean({0});
  w = w / w.sum();
  if (was_training) train();
  return w.contiguous().to_vector<float>();
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> SpamClassifier::decay_groups() const {
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, p] : named_parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  return {decay, no_decay};
}

void BinaryMetrics::add(int64_t predicted, int64_t label) {
  FOCUS_CHECK((predicted == 0 || predicted == 1) && (label == 0 || label == 1),
              "[BinaryMetrics] predictions and labels must be 0 or 1, got {} and {}", predicted, label);
  if (predicted == 1)
    (label == 1 ? tp : fp) += 1;
  else
    (label == 1 ? fn : tn) += 1;
}

void BinaryMetrics::add(const Tensor& predicted, const Tensor& labels) {
  FOCUS_CHECK(predicted.defined() && labels.defined() && predicted.dim() == 1 && predicted.shape() == labels.shape(),
              "[BinaryMetrics] predicted and labels must be 1-D of one length, got {} and {}",
              predicted.defined() ? predicted.shape() : Shape{}, labels.defined() ? labels.shape() : Shape{});
  const auto p = predicted.to(kInt64).contiguous().to_vector<int64_t>();
  const auto y = labels.to(kInt64).contiguous().to_vector<int64_t>();
  for (size_t i = 0; i < p.size(); ++i) add(p[i], y[i]);
}

double BinaryMetrics::accuracy() const { return total() == 0 ? 0.0 : double(tp + tn) / double(total()); }
double BinaryMetrics::precision() const { return tp + fp == 0 ? 0.0 : double(tp) / double(tp + fp); }
double BinaryMetrics::recall() const { return tp + fn == 0 ? 0.0 : double(tp) / double(tp + fn); }
double BinaryMetrics::f1() const {
  const double p = precision(), r = recall();
  return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r);
}

}  // namespace focus::models::spam
