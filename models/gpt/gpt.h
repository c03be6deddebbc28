#pragma once
/// A decoder-only Transformer language model in the style of nanoGPT (GPT-2 layout):
/// token embedding `wte`, learned positions `wpe`, blocks `h.<i>` (pre-norm: `ln_1`,
/// causal self-attention `attn.c_attn` (packed q;k;v Linear) and `attn.c_proj`, `ln_2`,
/// MLP `mlp.c_fc` -> GELU -> `mlp.c_proj`), final `ln_f` and `lm_head` (no bias, not tied
/// to `wte`). Written only against the public API (<focus/focus.h>).
///
/// state_dict names (as nanoGPT's model.py and tools/bench/bench_gpt_torch.py):
///   wte.weight [V, C], wpe.weight [block_size, C],
///   h.<i>.ln_1.{weight,bias} [C], h.<i>.attn.c_attn.{weight [3C, C], bias [3C]},
///   h.<i>.attn.c_proj.{weight [C, C], bias [C]}, h.<i>.ln_2.{weight,bias} [C],
///   h.<i>.mlp.c_fc.{weight [4C, C], bias [4C]}, h.<i>.mlp.c_proj.{weight [C, 4C], bias [C]},
///   ln_f.{weight,bias} [C], lm_head.weight [V, C]
/// (biases of the Linears and LayerNorms only when bias(true), the default).
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <focus/focus.h>

namespace focus::models {

/// GPT hyperparameters (nanoGPT's GPTConfig; defaults are GPT-2 small's).
struct GPTConfig {
  int64_t n_layer_ = 12;
  int64_t n_head_ = 12;
  int64_t n_embd_ = 768;
  int64_t block_size_ = 1024;  // longest sequence (context)
  int64_t vocab_size_ = 50304;
  double dropout_ = 0.0;       // after attention weights, projections, MLP and embeddings
  bool bias_ = true;           // biases in the Linears and LayerNorms
  GPTConfig& n_layer(int64_t v) { n_layer_ = v; return *this; }
  GPTConfig& n_head(int64_t v) { n_head_ = v; return *this; }
  GPTConfig& n_embd(int64_t v) { n_embd_ = v; return *this; }
  GPTConfig& block_size(int64_t v) { block_size_ = v; return *this; }
  GPTConfig& vocab_size(int64_t v) { vocab_size_ = v; return *this; }
  GPTConfig& dropout(double v) { dropout_ = v; return *this; }
  GPTConfig& bias(bool v) { bias_ = v; return *this; }
};

/// Keys and values of the positions already seen, for incremental decoding (generation):
/// per layer, k and v of shape [B, n_head, length, head_dim]. Starts empty; each
/// GPT::forward(idx, cache) appends its T positions. Holds plain tensors: use it under
/// NoGradGuard (it is for inference, not training).
struct KVCache {
  std::vector<Tensor> keys, values;  // one per layer once filled; empty before the first forward
  /// Positions cached so far (0 when empty).
  int64_t length() const { return keys.empty() ? 0 : keys.front().size(2); }
  /// Forgets every position (the next forward starts at position 0).
  void clear() { keys.clear(); values.clear(); }
};

/// Multi-head causal self-attention with a packed q;k;v projection (rows q, then k, then v;
/// head h uses columns h*hd..(h+1)*hd of each). x: [B, T, C] -> [B, T, C].
class CausalSelfAttention : public nn::Module {
 public:
  explicit CausalSelfAttention(const GPTConfig& config);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  /// Incremental form: x [B, T, C] holds positions P..P+T-1 where P = k_cache.size(2) (0 when
  /// k_cache is undefined); k_cache/v_cache [B, H, P, hd] are replaced by the concatenation
  /// with this call's keys/values ([B, H, P+T, hd]). Each new position attends to every
  /// cached position and causally within x. Returns [B, T, C].
  Tensor forward(const Tensor& x, Tensor& k_cache, Tensor& v_cache) const;
  const std::shared_ptr<nn::Linear>& c_attn() const { return c_attn_; }
  const std::shared_ptr<nn::Linear>& c_proj() const { return c_proj_; }

 private:
  GPTConfig config_;
  std::shared_ptr<nn::Linear> c_attn_, c_proj_;
  std::shared_ptr<nn::Dropout> resid_dropout_;
};

/// c_fc (C -> 4C) -> GELU (erf form) -> c_proj (4C -> C) -> dropout. x: [B, T, C] -> [B, T, C].
class MLP : public nn::Module {
 public:
  explicit MLP(const GPTConfig& config);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }

 private:
  std::shared_ptr<nn::Linear> c_fc_, c_proj_;
  std::shared_ptr<nn::GELU> gelu_;
  std::shared_ptr<nn::Dropout> dropout_;
};

/// Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). x: [B, T, C] -> [B, T, C].
class Block : public nn::Module {
 public:
  explicit Block(const GPTConfig& config);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  /// Incremental form (see CausalSelfAttention::forward with a cache).
  Tensor forward(const Tensor& x, Tensor& k_cache, Tensor& v_cache) const;

 private:
  std::shared_ptr<nn::LayerNorm> ln_1_, ln_2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<MLP> mlp_;
};

/// How GPT::generate picks each next token (nanoGPT's generate): logits / temperature, keep
/// only the top_k largest (ties with the k-th kept too; 0 = keep all; larger than the
/// vocabulary = all), softmax, one draw from the seeded generator. top_k = 1 is greedy.
struct SampleOptions {
  double temperature_ = 1.0;  // > 0 and finite
  int64_t top_k_ = 0;         // >= 0
  SampleOptions& temperature(double v) { temperature_ = v; return *this; }
  SampleOptions& top_k(int64_t v) { top_k_ = v; return *this; }
};

/// Checks the options: temperature must be finite and > 0, top_k >= 0; else focus::Error
/// naming `what` (the caller: "[GPT] generate", a command name...).
void check_sample_options(const SampleOptions& options, const std::string& what);

/// Draws one token id from logits [V] (any float dtype, CPU or not) as SampleOptions says;
/// gen: the generator (default: the default generator). One uniform draw per call.
int64_t sample_token(const Tensor& logits, const SampleOptions& options, Generator* gen = nullptr);

/// The language model. Initialization as nanoGPT: Linear and Embedding weights N(0, 0.02),
/// biases 0, LayerNorms 1/0, and every `c_proj.weight` N(0, 0.02 / sqrt(2 n_layer)); drawn
/// from gen (default: the default generator).
class GPT : public nn::Module {
 public:
  explicit GPT(const GPTConfig& config, Generator* gen = nullptr);
  /// idx: [B, T] int64 token ids, T <= block_size -> logits [B, T, vocab_size].
  Tensor forward(const Tensor& idx) const;
  Tensor operator()(const Tensor& idx) const { return forward(idx); }
  /// Incremental forward for generation: idx [B, T] are positions cache.length() ..
  /// cache.length() + T - 1, which must stay <= block_size; every layer's keys/values are
  /// appended to cache (same B on every call). Returns logits [B, T, V], equal (up to float
  /// rounding) to the last T positions of forward() on the whole sequence.
  Tensor forward(const Tensor& idx, KVCache& cache) const;
  /// Autoregressive sampling with a KV cache, as nanoGPT's generate: feeds prompt (ids,
  /// non-empty), then draws max_new_tokens tokens one at a time with sample_token. When the
  /// context reaches block_size, the cache is rebuilt from the last block_size / 2 tokens
  /// (absolute learned positions cannot slide), so the model always sees between
  /// block_size / 2 and block_size tokens of context. on_token (optional) gets each new
  /// token as it is drawn (streaming output). Returns the new tokens only. Runs without
  /// recording a graph, in whatever train/eval mode the model is in (call eval() first).
  std::vector<int64_t> generate(const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                                const SampleOptions& options = {}, Generator* gen = nullptr,
                                const std::function<void(int64_t)>& on_token = {}) const;
  /// generate without collecting the tokens: each goes to on_token only, so the memory used
  /// stays that of block_size tokens however many are drawn.
  void generate_stream(const std::vector<int64_t>& prompt, int64_t max_new_tokens, const SampleOptions& options,
                       Generator* gen, const std::function<void(int64_t)>& on_token) const;
  /// Mean cross entropy of next-token logits [B, T, V] against targets [B, T] (int64;
  /// -1 = ignored, as nanoGPT) -> 0-d.
  static Tensor loss(const Tensor& logits, const Tensor& targets);
  /// Parameters in two AdamW groups as nanoGPT: matrices (dim >= 2: Linear and Embedding
  /// weights) get weight decay, biases and LayerNorm weights do not.
  std::pair<std::vector<Tensor>, std::vector<Tensor>> decay_groups() const;
  /// 6 * N + 12 * n_layer * n_embd * T: training FLOPs per token (forward + backward),
  /// N = parameters excluding the position embedding (PaLM appendix B / nanoGPT's estimate_mfu).
  double flops_per_token(int64_t T) const;
  const GPTConfig& config() const { return config_; }

 private:
  GPTConfig config_;
  std::shared_ptr<nn::Embedding> wte_, wpe_;
  std::shared_ptr<nn::Dropout> drop_;
  std::shared_ptr<nn::ModuleList> h_;
  std::vector<std::shared_ptr<Block>> blocks_;
  std::shared_ptr<nn::LayerNorm> ln_f_;
  std::shared_ptr<nn::Linear> lm_head_;
};

}  // namespace focus::models
