#include "models/gpt/gpt.h"

#include <cmath>

namespace focus::models {

namespace {

void check_config(const GPTConfig& c) {
  FOCUS_CHECK(c.n_layer_ >= 1 && c.n_head_ >= 1 && c.n_embd_ >= 1 && c.block_size_ >= 1 && c.vocab_size_ >= 1,
              "[GPT] n_layer, n_head, n_embd, block_size and vocab_size must be positive, got {}, {}, {}, {}, {}",
              c.n_layer_, c.n_head_, c.n_embd_, c.block_size_, c.vocab_size_);
  FOCUS_CHECK(c.n_embd_ % c.n_head_ == 0, "[GPT] n_embd ({}) must be divisible by n_head ({})", c.n_embd_,
              c.n_head_);
  FOCUS_CHECK(c.dropout_ >= 0.0 && c.dropout_ < 1.0, "[GPT] dropout must be in [0, 1), got {}", c.dropout_);
}

}  // namespace

CausalSelfAttention::CausalSelfAttention(const GPTConfig& c) : nn::Module("CausalSelfAttention"), config_(c) {
  check_config(c);
  c_attn_ = register_module("c_attn", std::make_shared<nn::Linear>(nn::LinearOptions(c.n_embd_, 3 * c.n_embd_).bias(c.bias_)));
  c_proj_ = register_module("c_proj", std::make_shared<nn::Linear>(nn::LinearOptions(c.n_embd_, c.n_embd_).bias(c.bias_)));
  resid_dropout_ = register_module("resid_dropout", std::make_shared<nn::Dropout>(c.dropout_));
}

Tensor CausalSelfAttention::forward(const Tensor& x) const {
  FOCUS_CHECK(x.dim() == 3 && x.size(2) == config_.n_embd_, "[CausalSelfAttention] expected x of shape [B, T, {}], got {}",
              config_.n_embd_, x.shape());
  const int64_t B = x.size(0), T = x.size(1), C = config_.n_embd_, H = config_.n_head_;
  // qkv: [B, T, 3C] seen as [B, T, 3, H, hd]; q, k, v: [B, H, T, hd] views (no copies: the
  // attention kernel reads the strided rows in place).
  const Tensor qkv = c_attn_->forward(x).view({B, T, 3, H, C / H});
  std::vector<Tensor> parts = unbind(qkv, 2);
  const Tensor q = parts[0].transpose(1, 2), k = parts[1].transpose(1, 2), v = parts[2].transpose(1, 2);
  const double p = is_training() ? config_.dropout_ : 0.0;
  const Tensor y = scaled_dot_product_attention(q, k, v, Tensor(), p, /*is_causal=*/true);
  // [B, H, T, hd] -> [B, T, H, hd] -> [B, T, C]
  return resid_dropout_->forward(c_proj_->forward(y.transpose(1, 2).reshape({B, T, C})));
}

MLP::MLP(const GPTConfig& c) : nn::Module("MLP") {
  c_fc_ = register_module("c_fc", std::make_shared<nn::Linear>(nn::LinearOptions(c.n_embd_, 4 * c.n_embd_).bias(c.bias_)));
  gelu_ = register_module("gelu", std::make_shared<nn::GELU>());
  c_proj_ = register_module("c_proj", std::make_shared<nn::Linear>(nn::LinearOptions(4 * c.n_embd_, c.n_embd_).bias(c.bias_)));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout_));
}

Tensor MLP::forward(const Tensor& x) const {
  return dropout_->forward(c_proj_->forward(gelu_->forward(c_fc_->forward(x))));
}

Block::Block(const GPTConfig& c) : nn::Module("Block") {
  ln_1_ = register_module("ln_1", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(c.n_embd_).bias(c.bias_)));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(c));
  ln_2_ = register_module("ln_2", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(c.n_embd_).bias(c.bias_)));
  mlp_ = register_module("mlp", std::make_shared<MLP>(c));
}

Tensor Block::forward(const Tensor& x) const {
  const Tensor h = x + attn_->forward(ln_1_->forward(x));
  return h + mlp_->forward(ln_2_->forward(h));
}

GPT::GPT(const GPTConfig& c, Generator* gen) : nn::Module("GPT"), config_(c) {
  check_config(c);
  wte_ = register_module("wte", std::make_shared<nn::Embedding>(nn::EmbeddingOptions(c.vocab_size_, c.n_embd_)));
  wpe_ = register_module("wpe", std::make_shared<nn::Embedding>(nn::EmbeddingOptions(c.block_size_, c.n_embd_)));
  drop_ = register_module("drop", std::make_shared<nn::Dropout>(c.dropout_));
  h_ = register_module("h", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.n_layer_; ++i) {
    blocks_.push_back(std::make_shared<Block>(c));
    h_->push_back(blocks_.back());
  }
  ln_f_ = register_module("ln_f", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(c.n_embd_).bias(c.bias_)));
  lm_head_ = register_module("lm_head", std::make_shared<nn::Linear>(nn::LinearOptions(c.n_embd_, c.vocab_size_).bias(false)));
  // nanoGPT's _init_weights, then the scaled residual projections.
  const double proj_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layer_));
  for (const auto& [name, p] : named_parameters()) {
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool is_ln = name.find("ln_") != std::string::npos;
    if (is_ln) continue;  // LayerNorm: ones and zeros from its constructor
    if (is_bias) {
      nn::init::zeros_(p);
    } else {
      const bool proj = name.size() >= 13 && name.compare(name.size() - 13, 13, "c_proj.weight") == 0;
      nn::init::normal_(p, 0.0, proj ? proj_std : 0.02, gen);
    }
  }
}

Tensor GPT::forward(const Tensor& idx) const {
  FOCUS_CHECK(idx.dim() == 2 && idx.dtype() == kInt64, "[GPT] expected idx of shape [B, T] and dtype int64, got {} {}",
              idx.shape(), idx.dtype());
  const int64_t T = idx.size(1);
  FOCUS_CHECK(T <= config_.block_size_, "[GPT] cannot forward a sequence of length {}: block_size is only {}", T,
              config_.block_size_);
  const Tensor pos = arange(T, TensorOptions(kInt64).device(idx.device()));
  Tensor x = drop_->forward(wte_->forward(idx) + wpe_->forward(pos));  // [B, T, C] + [T, C]
  for (const auto& block : blocks_) x = block->forward(x);
  return lm_head_->forward(ln_f_->forward(x));
}

Tensor GPT::loss(const Tensor& logits, const Tensor& targets) {
  FOCUS_CHECK(logits.dim() == 3 && targets.dim() == 2 && logits.size(0) == targets.size(0) &&
                  logits.size(1) == targets.size(1),
              "[GPT] expected logits [B, T, V] and targets [B, T], got {} and {}", logits.shape(), targets.shape());
  const int64_t V = logits.size(2);
  return cross_entropy(logits.reshape({-1, V}), targets.reshape({-1}), CrossEntropyOptions().ignore_index(-1));
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> GPT::decay_groups() const {
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, p] : named_parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  return {decay, no_decay};
}

double GPT::flops_per_token(int64_t T) const {
  const double n = static_cast<double>(num_parameters() - wpe_->weight().numel());
  return 6.0 * n + 12.0 * static_cast<double>(config_.n_layer_ * config_.n_embd_ * T);
}

}  // namespace focus::models
