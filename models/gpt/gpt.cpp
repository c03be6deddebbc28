#include "models/gpt/gpt.h"

#include <algorithm>
#include <cmath>
#include <limits>

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

Tensor CausalSelfAttention::forward(const Tensor& x, Tensor& k_cache, Tensor& v_cache) const {
  FOCUS_CHECK(x.dim() == 3 && x.size(2) == config_.n_embd_, "[CausalSelfAttention] expected x of shape [B, T, {}], got {}",
              config_.n_embd_, x.shape());
  const int64_t B = x.size(0), T = x.size(1), C = config_.n_embd_, H = config_.n_head_;
  const int64_t P = k_cache.defined() ? k_cache.size(2) : 0;
  if (P > 0)
    FOCUS_CHECK(k_cache.dim() == 4 && k_cache.size(0) == B && k_cache.size(1) == H && k_cache.size(3) == C / H &&
                    v_cache.defined() && v_cache.shape() == k_cache.shape(),
                "[CausalSelfAttention] cache of shape {} does not fit x of shape {} ({} heads)", k_cache.shape(),
                x.shape(), H);
  const Tensor qkv = c_attn_->forward(x).view({B, T, 3, H, C / H});
  std::vector<Tensor> parts = unbind(qkv, 2);
  const Tensor q = parts[0].transpose(1, 2);
  Tensor k = parts[1].transpose(1, 2), v = parts[2].transpose(1, 2);
  if (P > 0) {
    k = cat({k_cache, k}, 2);
    v = cat({v_cache, v}, 2);
  } else {
    k = k.contiguous();
    v = v.contiguous();
  }
  k_cache = k;
  v_cache = v;
  const double p = is_training() ? config_.dropout_ : 0.0;
  Tensor y;
  if (P == 0) {
    y = scaled_dot_product_attention(q, k, v, Tensor(), p, /*is_causal=*/true);
  } else if (T == 1) {
    y = scaled_dot_product_attention(q, k, v, Tensor(), p, /*is_causal=*/false);  // the newest sees all
  } else {
    // New position P+i attends to keys 0..P+i: mask [T, P+T], true = attend (bottom-right
    // aligned causal mask; PyTorch's is_causal is top-left aligned when L != S).
    const Tensor rows = arange(P, P + T, 1, TensorOptions(kInt64).device(x.device())).unsqueeze(1);
    const Tensor cols = arange(P + T, TensorOptions(kInt64).device(x.device())).unsqueeze(0);
    y = scaled_dot_product_attention(q, k, v, le(cols, rows), p, /*is_causal=*/false);
  }
  return resid_dropout_->forward(c_proj_->forward(y.transpose(1, 2).reshape({B, T, C})));
}

MLP::MLP(const GPTConfig& c) : nn::Module("MLP") {
  c_fc_ = register_module("c_fc", std::make_shared<nn::Linear>(nn::LinearOptions(c.n_embd_, 4 * c.n_embd_).bias(c.bias_)));
  gelu_ = register_module("gelu", std::make_shared<nn::GELU>());
  c_proj_ = register_module("c_proj", std::make_shared<nn::Linear>(nn::LinearOptions(4 * c.n_embd_, c.n_embd_).bias(c.bias_)));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout_));
}

Tensor MLP::forward(const Tensor& x) const {
  // c_fc then gelu as one linear_gelu node: the same numbers and state_dict, one GEMM
  // epilogue on CUDA for the tanh form.
  return dropout_->forward(c_proj_->forward(c_fc_->forward_gelu(x, gelu_->approximate())));
}

Block::Block(const GPTConfig& c) : nn::Module("Block") {
  ln_1_ = register_module("ln_1", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(c.n_embd_).bias(c.bias_)));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(c));
  ln_2_ = register_module("ln_2", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(c.n_embd_).bias(c.bias_)));
  mlp_ = register_module("mlp", std::make_shared<MLP>(c));
}

// h = x + attn(ln_1(x)); out = h + mlp(ln_2(h)), the first add and ln_2 fused into one
// add_layer_norm (forward_add gives h and ln_2(h)).
Tensor Block::forward(const Tensor& x) const {
  const auto [h, n] = ln_2_->forward_add(x, attn_->forward(ln_1_->forward(x)));
  return h + mlp_->forward(n);
}

Tensor Block::forward(const Tensor& x, Tensor& k_cache, Tensor& v_cache) const {
  const auto [h, n] = ln_2_->forward_add(x, attn_->forward(ln_1_->forward(x), k_cache, v_cache));
  return h + mlp_->forward(n);
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

Tensor GPT::forward(const Tensor& idx, KVCache& cache) const {
  FOCUS_CHECK(idx.dim() == 2 && idx.dtype() == kInt64, "[GPT] expected idx of shape [B, T] and dtype int64, got {} {}",
              idx.shape(), idx.dtype());
  const int64_t P = cache.length(), T = idx.size(1);
  FOCUS_CHECK(T >= 1, "[GPT] cannot forward an empty sequence with a cache");
  FOCUS_CHECK(P + T <= config_.block_size_,
              "[GPT] cannot forward {} more positions after {} cached ones: block_size is only {}", T, P,
              config_.block_size_);
  FOCUS_CHECK(cache.keys.size() == cache.values.size() &&
                  (cache.keys.empty() || cache.keys.size() == blocks_.size()),
              "[GPT] the KV cache holds {} layers, the model has {}", cache.keys.size(), blocks_.size());
  FOCUS_CHECK(P == 0 || cache.keys.front().size(0) == idx.size(0),
              "[GPT] the KV cache was filled with batch size {}, idx has {}", P == 0 ? 0 : cache.keys.front().size(0),
              idx.size(0));
  if (cache.keys.empty()) {
    cache.keys.resize(blocks_.size());
    cache.values.resize(blocks_.size());
  }
  const Tensor pos = arange(P, P + T, 1, TensorOptions(kInt64).device(idx.device()));
  Tensor x = drop_->forward(wte_->forward(idx) + wpe_->forward(pos));
  for (size_t i = 0; i < blocks_.size(); ++i) x = blocks_[i]->forward(x, cache.keys[i], cache.values[i]);
  return lm_head_->forward(ln_f_->forward(x));
}

std::vector<int64_t> GPT::generate(const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                                   const SampleOptions& options, Generator* gen,
                                   const std::function<void(int64_t)>& on_token) const {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(std::clamp<int64_t>(max_new_tokens, 0, int64_t{1} << 16)));
  generate_stream(prompt, max_new_tokens, options, gen, [&](int64_t t) {
    out.push_back(t);
    if (on_token) on_token(t);
  });
  return out;
}

void GPT::generate_stream(const std::vector<int64_t>& prompt, int64_t max_new_tokens, const SampleOptions& options,
                          Generator* gen, const std::function<void(int64_t)>& on_token) const {
  check_sample_options(options, "[GPT] generate");
  FOCUS_CHECK(!prompt.empty(), "[GPT] generate needs a non-empty prompt");
  FOCUS_CHECK(max_new_tokens >= 0, "[GPT] generate: max_new_tokens must be >= 0, got {}", max_new_tokens);
  FOCUS_CHECK(on_token != nullptr, "[GPT] generate_stream needs an on_token function");
  for (int64_t t : prompt)
    FOCUS_CHECK(t >= 0 && t < config_.vocab_size_, "[GPT] generate: prompt token {} is outside the vocabulary [0, {})",
                t, config_.vocab_size_);
  NoGradGuard no_grad;
  const Device device = wte_->weight().device();
  const int64_t block = config_.block_size_;
  const int64_t keep = std::max<int64_t>(1, block / 2);
  // The tokens so far: only the last block_size can ever be fed again, so older ones are
  // dropped (in batches, to keep that cheap) and memory stays bounded.
  std::vector<int64_t> context(prompt.end() - std::min<int64_t>(static_cast<int64_t>(prompt.size()), block), prompt.end());
  KVCache cache;
  // Fills the cache from the last n tokens of context; returns the last position's logits [V].
  auto prefill = [&](int64_t n) {
    cache.clear();
    std::vector<int64_t> tail(context.end() - n, context.end());
    const Tensor logits = forward(tensor(tail, Shape{1, n}, TensorOptions(kInt64).device(device)), cache);
    return logits.select(0, 0).select(0, n - 1);
  };
  Tensor logits = prefill(static_cast<int64_t>(context.size()));
  for (int64_t i = 0; i < max_new_tokens; ++i) {
    const int64_t next = sample_token(logits, options, gen);
    context.push_back(next);
    if (static_cast<int64_t>(context.size()) >= 2 * block) context.erase(context.begin(), context.end() - block);
    on_token(next);
    if (i + 1 == max_new_tokens) break;
    if (cache.length() + 1 > block) {
      logits = prefill(std::min<int64_t>(static_cast<int64_t>(context.size()), keep));
    } else {
      logits = forward(tensor(std::vector<int64_t>{next}, Shape{1, 1}, TensorOptions(kInt64).device(device)), cache)
                   .select(0, 0)
                   .select(0, 0);
    }
  }
}

void check_sample_options(const SampleOptions& o, const std::string& what) {
  FOCUS_CHECK(std::isfinite(o.temperature_) && o.temperature_ > 0.0,
              "{}: temperature must be a finite number > 0, got {}", what, o.temperature_);
  FOCUS_CHECK(o.top_k_ >= 0, "{}: top_k must be >= 0 (0 = no limit), got {}", what, o.top_k_);
}

int64_t sample_token(const Tensor& logits, const SampleOptions& options, Generator* gen) {
  check_sample_options(options, "[sample_token]");
  FOCUS_CHECK(logits.dim() == 1 && logits.size(0) >= 1 && is_floating(logits.dtype()),
              "[sample_token] expected float logits of shape [V], got {} {}", logits.shape(), logits.dtype());
  std::vector<double> z = logits.to_vector<double>();
  const size_t V = z.size();
  for (double& v : z) {
    FOCUS_CHECK(!std::isnan(v), "[sample_token] logits contain NaN");
    v /= options.temperature_;
  }
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (options.top_k_ > 0 && static_cast<size_t>(options.top_k_) < V) {
    std::vector<double> sorted = z;
    std::nth_element(sorted.begin(), sorted.begin() + (options.top_k_ - 1), sorted.end(), std::greater<double>());
    const double kth = sorted[static_cast<size_t>(options.top_k_ - 1)];
    for (double& v : z)
      if (v < kth) v = neg_inf;  // as nanoGPT: logits[logits < v[:, [-1]]] = -inf
  }
  const double mx = *std::max_element(z.begin(), z.end());
  FOCUS_CHECK(std::isfinite(mx), "[sample_token] no finite logit to sample from (largest {})", mx);
  std::vector<double> cdf(V);
  double total = 0;
  for (size_t i = 0; i < V; ++i) {
    total += z[i] == neg_inf ? 0.0 : std::exp(z[i] - mx);
    cdf[i] = total;
  }
  const double u = rand({1}, TensorOptions(kFloat64), gen).item<double>() * total;
  // The first index whose cumulative weight exceeds u, skipping zero-weight entries.
  const size_t idx = static_cast<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  size_t pick = std::min(idx, V - 1);
  while (pick > 0 && (z[pick] == neg_inf)) --pick;  // u rounding onto the end: last kept entry
  return static_cast<int64_t>(pick);
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
