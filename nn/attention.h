#pragma once
/// nn::MultiheadAttention: PyTorch's torch.nn.MultiheadAttention (arguments, defaults,
/// initialization, parameter names and forward semantics).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "core/tensor.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace focus::nn {

/// Constructor arguments of MultiheadAttention, with PyTorch's defaults.
struct MultiheadAttentionOptions {
  MultiheadAttentionOptions(int64_t embed_dim, int64_t num_heads) : embed_dim_(embed_dim), num_heads_(num_heads) {}
  int64_t embed_dim_;
  int64_t num_heads_;
  double dropout_ = 0.0;
  bool bias_ = true;
  bool add_bias_kv_ = false;
  bool add_zero_attn_ = false;
  std::optional<int64_t> kdim_;  // default embed_dim
  std::optional<int64_t> vdim_;  // default embed_dim
  bool batch_first_ = false;
  /// Dropout probability on the attention weights (training only).
  MultiheadAttentionOptions& dropout(double p) { dropout_ = p; return *this; }
  /// Bias of the input and output projections.
  MultiheadAttentionOptions& bias(bool b) { bias_ = b; return *this; }
  /// Learned key/value rows bias_k, bias_v [1, 1, E] appended to the keys and values.
  MultiheadAttentionOptions& add_bias_kv(bool b) { add_bias_kv_ = b; return *this; }
  /// Appends a row of zeros to the (projected) keys and values.
  MultiheadAttentionOptions& add_zero_attn(bool b) { add_zero_attn_ = b; return *this; }
  /// Feature size of the key input (default embed_dim).
  MultiheadAttentionOptions& kdim(int64_t d) { kdim_ = d; return *this; }
  /// Feature size of the value input (default embed_dim).
  MultiheadAttentionOptions& vdim(int64_t d) { vdim_ = d; return *this; }
  /// Inputs and output as [N, L, E] instead of [L, N, E].
  MultiheadAttentionOptions& batch_first(bool b) { batch_first_ = b; return *this; }
};

/// Multi-head attention, as torch.nn.MultiheadAttention.
///
/// Parameters (state_dict names as PyTorch): `in_proj_weight` [3E, E] (rows q; k; v) when
/// kdim = vdim = embed_dim, else `q_proj_weight` [E, E], `k_proj_weight` [E, kdim],
/// `v_proj_weight` [E, vdim]; `in_proj_bias` [3E] (if bias); `bias_k`, `bias_v` [1, 1, E]
/// (if add_bias_kv); `out_proj.weight` [E, E], `out_proj.bias` [E] (a Linear child).
/// Initialization as PyTorch: xavier_uniform_ on the input projections, zeros on
/// in_proj_bias and out_proj.bias, xavier_normal_ on bias_k / bias_v, Linear's default
/// on out_proj.weight.
class MultiheadAttention : public Module {
 public:
  explicit MultiheadAttention(const MultiheadAttentionOptions& options);
  MultiheadAttention(int64_t embed_dim, int64_t num_heads)
      : MultiheadAttention(MultiheadAttentionOptions(embed_dim, num_heads)) {}

  /// query [L, N, E] ([N, L, E] if batch_first; [L, E] unbatched), key [S, N, kdim],
  /// value [S, N, vdim] -> (output [L, N, E] (or [N, L, E] / [L, E]),
  /// weights [N, L, S] if average_attn_weights else [N, H, L, S]; [L, S] / [H, L, S]
  /// unbatched; undefined unless need_weights).
  /// key_padding_mask [N, S] ([S] unbatched): bool (true = ignore that key) or additive float.
  /// attn_mask [L, S] or [N*H, L, S]: bool (true = NOT allowed to attend) or additive float.
  /// is_causal: with attn_mask, a hint that it is the causal mask (the mask is used either
  /// way); without attn_mask, applies a causal mask (PyTorch raises there instead).
  /// Weights are after dropout and include the add_bias_kv / add_zero_attn columns.
  std::tuple<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                     const Tensor& key_padding_mask = {}, bool need_weights = true,
                                     const Tensor& attn_mask = {}, bool average_attn_weights = true,
                                     bool is_causal = false);
  std::tuple<Tensor, Tensor> operator()(const Tensor& query, const Tensor& key, const Tensor& value,
                                        const Tensor& key_padding_mask = {}, bool need_weights = true,
                                        const Tensor& attn_mask = {}, bool average_attn_weights = true,
                                        bool is_causal = false) {
    return forward(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal);
  }

  const MultiheadAttentionOptions& options() const { return options_; }
  int64_t embed_dim() const { return options_.embed_dim_; }
  int64_t num_heads() const { return options_.num_heads_; }
  int64_t head_dim() const { return options_.embed_dim_ / options_.num_heads_; }
  /// True when q, k and v share one packed in_proj_weight (kdim = vdim = embed_dim).
  bool qkv_same_embed_dim() const { return same_dim_; }

  /// Parameters (undefined when absent).
  const Tensor& in_proj_weight() const { return in_proj_weight_; }
  const Tensor& q_proj_weight() const { return q_proj_weight_; }
  const Tensor& k_proj_weight() const { return k_proj_weight_; }
  const Tensor& v_proj_weight() const { return v_proj_weight_; }
  const Tensor& in_proj_bias() const { return in_proj_bias_; }
  const Tensor& bias_k() const { return bias_k_; }
  const Tensor& bias_v() const { return bias_v_; }
  const std::shared_ptr<Linear>& out_proj() const { return out_proj_; }

  /// The input projection of parts first .. first + count - 1 of (q, k, v): x [..., dim of
  /// those parts' input] -> [..., count * E] = x W_parts^T + b_parts, as forward computes it
  /// (int8 when quantized). With separate q/k/v weights (kdim or vdim != E) count must be 1.
  /// For models that run attention step by step with a cache (the zoo's g2p decoder).
  Tensor in_projection(const Tensor& x, int64_t first, int64_t count) const;

  /// Quantizes the input projection weights to int8 per output channel, as Linear's
  /// quantize_int8 (nn::quantize_dynamic calls both): "in_proj_weight" (or q/k/v_proj_weight)
  /// becomes an int8 buffer with "<name>_scale" beside it, in_proj_bias a float32 buffer;
  /// out_proj is a Linear of its own. PyTorch's quantize_dynamic leaves these float (they are
  /// not a Linear); here they are most of a decoder step's products. CPU only, no backward.
  void quantize_int8();
  bool is_quantized() const { return int8_[0].defined(); }

 private:
  MultiheadAttentionOptions options_;
  Int8Weight int8_[3];  // once quantized: [0] the packed in_proj_weight, or q, k, v
  bool same_dim_ = true;
  Tensor in_proj_weight_, q_proj_weight_, k_proj_weight_, v_proj_weight_, in_proj_bias_, bias_k_, bias_v_;
  std::shared_ptr<Linear> out_proj_;
};

}  // namespace focus::nn
