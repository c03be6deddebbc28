#pragma once
/// The Transformer family of torch.nn: TransformerEncoderLayer, TransformerDecoderLayer,
/// TransformerEncoder, TransformerDecoder and Transformer, with PyTorch's arguments,
/// defaults, initialization, state_dict names and forward semantics (masks as in
/// nn::MultiheadAttention: bool true = NOT allowed, or additive float).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/attention.h"
#include "nn/dropout.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/normalization.h"

namespace focus::nn {

/// Float mask [sz, sz] with -inf above the diagonal and 0 elsewhere (PyTorch's
/// Transformer.generate_square_subsequent_mask), float32 by default.
Tensor generate_square_subsequent_mask(int64_t sz, TensorOptions options = {});

/// True when mask is [size, size] and equals generate_square_subsequent_mask(size) (float:
/// -inf above the diagonal, 0 elsewhere; bool: true above the diagonal), as PyTorch's
/// _detect_is_causal_mask. TransformerEncoder/Decoder then pass the is_causal hint down.
bool is_causal_mask(const Tensor& mask, int64_t size);

/// Constructor arguments shared by the encoder and decoder layers, PyTorch's defaults.
struct TransformerLayerOptions {
  TransformerLayerOptions(int64_t d_model, int64_t nhead) : d_model_(d_model), nhead_(nhead) {}
  int64_t d_model_;
  int64_t nhead_;
  int64_t dim_feedforward_ = 2048;
  double dropout_ = 0.1;
  std::string activation_ = "relu";
  double layer_norm_eps_ = 1e-5;
  bool batch_first_ = false;
  bool norm_first_ = false;
  bool bias_ = true;
  /// Hidden size of the feed-forward block.
  TransformerLayerOptions& dim_feedforward(int64_t d) { dim_feedforward_ = d; return *this; }
  /// Dropout after attention, inside and after the feed-forward block, and on the
  /// attention weights.
  TransformerLayerOptions& dropout(double p) { dropout_ = p; return *this; }
  /// "relu" or "gelu".
  TransformerLayerOptions& activation(std::string a) { activation_ = std::move(a); return *this; }
  TransformerLayerOptions& layer_norm_eps(double e) { layer_norm_eps_ = e; return *this; }
  /// Inputs and outputs as [N, L, E] instead of [L, N, E].
  TransformerLayerOptions& batch_first(bool b) { batch_first_ = b; return *this; }
  /// Pre-norm (LayerNorm before attention / feed-forward) instead of post-norm.
  TransformerLayerOptions& norm_first(bool b) { norm_first_ = b; return *this; }
  /// Bias in the Linear and LayerNorm layers (and the attention projections).
  TransformerLayerOptions& bias(bool b) { bias_ = b; return *this; }
};
using TransformerEncoderLayerOptions = TransformerLayerOptions;
using TransformerDecoderLayerOptions = TransformerLayerOptions;

/// Self-attention + feed-forward, as torch.nn.TransformerEncoderLayer. Children: self_attn,
/// linear1, dropout, linear2, norm1, norm2, dropout1, dropout2.
class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& options);
  TransformerEncoderLayer(int64_t d_model, int64_t nhead)
      : TransformerEncoderLayer(TransformerLayerOptions(d_model, nhead)) {}
  /// src [S, N, E] ([N, S, E] if batch_first; [S, E] unbatched) -> same shape.
  /// src_mask [S, S] or [N*nhead, S, S]; src_key_padding_mask [N, S] (true = padding);
  /// is_causal: src_mask is causal (or, with no src_mask, apply a causal mask).
  Tensor forward(const Tensor& src, const Tensor& src_mask = {}, const Tensor& src_key_padding_mask = {},
                 bool is_causal = false);
  Tensor operator()(const Tensor& src, const Tensor& src_mask = {}, const Tensor& src_key_padding_mask = {},
                    bool is_causal = false) {
    return forward(src, src_mask, src_key_padding_mask, is_causal);
  }
  const TransformerLayerOptions& options() const { return options_; }
  const std::shared_ptr<MultiheadAttention>& self_attn() const { return self_attn_; }
  const std::shared_ptr<Linear>& linear1() const { return linear1_; }
  const std::shared_ptr<Linear>& linear2() const { return linear2_; }
  const std::shared_ptr<LayerNorm>& norm1() const { return norm1_; }
  const std::shared_ptr<LayerNorm>& norm2() const { return norm2_; }

 private:
  Tensor sa_block(const Tensor& x, const Tensor& mask, const Tensor& kpm, bool is_causal);
  Tensor ff_block(const Tensor& x);
  TransformerLayerOptions options_;
  std::shared_ptr<MultiheadAttention> self_attn_;
  std::shared_ptr<Linear> linear1_, linear2_;
  std::shared_ptr<Dropout> dropout_, dropout1_, dropout2_;
  std::shared_ptr<LayerNorm> norm1_, norm2_;
};

/// Self-attention + cross-attention on memory + feed-forward, as
/// torch.nn.TransformerDecoderLayer. Children: self_attn, multihead_attn, linear1, dropout,
/// linear2, norm1, norm2, norm3, dropout1, dropout2, dropout3.
class TransformerDecoderLayer : public Module {
 public:
  explicit TransformerDecoderLayer(const TransformerLayerOptions& options);
  TransformerDecoderLayer(int64_t d_model, int64_t nhead)
      : TransformerDecoderLayer(TransformerLayerOptions(d_model, nhead)) {}
  /// tgt [T, N, E] ([N, T, E] if batch_first; [T, E] unbatched), memory [S, N, E] -> like tgt.
  /// tgt_mask [T, T] or [N*nhead, T, T]; memory_mask [T, S] or [N*nhead, T, S];
  /// tgt_key_padding_mask [N, T]; memory_key_padding_mask [N, S].
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = {},
                 const Tensor& memory_mask = {}, const Tensor& tgt_key_padding_mask = {},
                 const Tensor& memory_key_padding_mask = {}, bool tgt_is_causal = false,
                 bool memory_is_causal = false);
  Tensor operator()(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = {},
                    const Tensor& memory_mask = {}, const Tensor& tgt_key_padding_mask = {},
                    const Tensor& memory_key_padding_mask = {}, bool tgt_is_causal = false,
                    bool memory_is_causal = false) {
    return forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal,
                   memory_is_causal);
  }
  const TransformerLayerOptions& options() const { return options_; }
  const std::shared_ptr<MultiheadAttention>& self_attn() const { return self_attn_; }
  const std::shared_ptr<MultiheadAttention>& multihead_attn() const { return multihead_attn_; }

 private:
  Tensor sa_block(const Tensor& x, const Tensor& mask, const Tensor& kpm, bool is_causal);
  Tensor mha_block(const Tensor& x, const Tensor& mem, const Tensor& mask, const Tensor& kpm, bool is_causal);
  Tensor ff_block(const Tensor& x);
  TransformerLayerOptions options_;
  std::shared_ptr<MultiheadAttention> self_attn_, multihead_attn_;
  std::shared_ptr<Linear> linear1_, linear2_;
  std::shared_ptr<Dropout> dropout_, dropout1_, dropout2_, dropout3_;
  std::shared_ptr<LayerNorm> norm1_, norm2_, norm3_;
};

/// A stack of num_layers copies of encoder_layer (children layers.0 ... and, if given,
/// norm), as torch.nn.TransformerEncoder: the copies start with encoder_layer's weights
/// (PyTorch deep-copies the layer); encoder_layer itself is not registered.
class TransformerEncoder : public Module {
 public:
  TransformerEncoder(const std::shared_ptr<TransformerEncoderLayer>& encoder_layer, int64_t num_layers,
                     std::shared_ptr<LayerNorm> norm = nullptr);
  /// src [S, N, E] -> same shape; masks as TransformerEncoderLayer::forward.
  Tensor forward(const Tensor& src, const Tensor& mask = {}, const Tensor& src_key_padding_mask = {},
                 bool is_causal = false);
  Tensor operator()(const Tensor& src, const Tensor& mask = {}, const Tensor& src_key_padding_mask = {},
                    bool is_causal = false) {
    return forward(src, mask, src_key_padding_mask, is_causal);
  }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  const std::shared_ptr<TransformerEncoderLayer>& layer(int64_t i) const { return layers_.at(static_cast<size_t>(i)); }
  const std::shared_ptr<LayerNorm>& norm() const { return norm_; }

 private:
  std::vector<std::shared_ptr<TransformerEncoderLayer>> layers_;
  std::shared_ptr<LayerNorm> norm_;
};

/// A stack of num_layers copies of decoder_layer (children layers.0 ... and, if given,
/// norm), as torch.nn.TransformerDecoder.
class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const std::shared_ptr<TransformerDecoderLayer>& decoder_layer, int64_t num_layers,
                     std::shared_ptr<LayerNorm> norm = nullptr);
  /// tgt [T, N, E], memory [S, N, E] -> like tgt; masks as TransformerDecoderLayer::forward.
  Tensor forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = {},
                 const Tensor& memory_mask = {}, const Tensor& tgt_key_padding_mask = {},
                 const Tensor& memory_key_padding_mask = {}, bool tgt_is_causal = false,
                 bool memory_is_causal = false);
  Tensor operator()(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask = {},
                    const Tensor& memory_mask = {}, const Tensor& tgt_key_padding_mask = {},
                    const Tensor& memory_key_padding_mask = {}, bool tgt_is_causal = false,
                    bool memory_is_causal = false) {
    return forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal,
                   memory_is_causal);
  }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  const std::shared_ptr<TransformerDecoderLayer>& layer(int64_t i) const { return layers_.at(static_cast<size_t>(i)); }
  const std::shared_ptr<LayerNorm>& norm() const { return norm_; }

 private:
  std::vector<std::shared_ptr<TransformerDecoderLayer>> layers_;
  std::shared_ptr<LayerNorm> norm_;
};

/// Constructor arguments of Transformer, with PyTorch's defaults.
struct TransformerOptions {
  int64_t d_model_ = 512;
  int64_t nhead_ = 8;
  int64_t num_encoder_layers_ = 6;
  int64_t num_decoder_layers_ = 6;
  int64_t dim_feedforward_ = 2048;
  double dropout_ = 0.1;
  std::string activation_ = "relu";
  double layer_norm_eps_ = 1e-5;
  bool batch_first_ = false;
  bool norm_first_ = false;
  bool bias_ = true;
  TransformerOptions() = default;
  TransformerOptions(int64_t d_model, int64_t nhead) : d_model_(d_model), nhead_(nhead) {}
  TransformerOptions& d_model(int64_t v) { d_model_ = v; return *this; }
  TransformerOptions& nhead(int64_t v) { nhead_ = v; return *this; }
  TransformerOptions& num_encoder_layers(int64_t v) { num_encoder_layers_ = v; return *this; }
  TransformerOptions& num_decoder_layers(int64_t v) { num_decoder_layers_ = v; return *this; }
  TransformerOptions& dim_feedforward(int64_t v) { dim_feedforward_ = v; return *this; }
  TransformerOptions& dropout(double v) { dropout_ = v; return *this; }
  /// "relu" or "gelu".
  TransformerOptions& activation(std::string v) { activation_ = std::move(v); return *this; }
  TransformerOptions& layer_norm_eps(double v) { layer_norm_eps_ = v; return *this; }
  TransformerOptions& batch_first(bool v) { batch_first_ = v; return *this; }
  TransformerOptions& norm_first(bool v) { norm_first_ = v; return *this; }
  TransformerOptions& bias(bool v) { bias_ = v; return *this; }
  /// The options of each encoder / decoder layer.
  TransformerLayerOptions layer_options() const;
};

/// Encoder-decoder Transformer, as torch.nn.Transformer: children encoder (layers.i, norm)
/// and decoder (layers.i, norm); every parameter with more than one dim is re-initialized
/// with xavier_uniform_ (so the layers no longer share their initial weights).
class Transformer : public Module {
 public:
  explicit Transformer(const TransformerOptions& options = {});
  /// src [S, N, E], tgt [T, N, E] ([N, S, E] / [N, T, E] if batch_first; 2-D unbatched)
  /// -> [T, N, E] (like tgt). src_mask [S, S] or [N*nhead, S, S]; tgt_mask [T, T] or
  /// [N*nhead, T, T]; memory_mask [T, S] or [N*nhead, T, S]; key padding masks [N, S],
  /// [N, T], [N, S] (true = padding).
  Tensor forward(const Tensor& src, const Tensor& tgt, const Tensor& src_mask = {}, const Tensor& tgt_mask = {},
                 const Tensor& memory_mask = {}, const Tensor& src_key_padding_mask = {},
                 const Tensor& tgt_key_padding_mask = {}, const Tensor& memory_key_padding_mask = {},
                 bool src_is_causal = false, bool tgt_is_causal = false, bool memory_is_causal = false);
  Tensor operator()(const Tensor& src, const Tensor& tgt, const Tensor& src_mask = {}, const Tensor& tgt_mask = {},
                    const Tensor& memory_mask = {}, const Tensor& src_key_padding_mask = {},
                    const Tensor& tgt_key_padding_mask = {}, const Tensor& memory_key_padding_mask = {},
                    bool src_is_causal = false, bool tgt_is_causal = false, bool memory_is_causal = false) {
    return forward(src, tgt, src_mask, tgt_mask, memory_mask, src_key_padding_mask, tgt_key_padding_mask,
                   memory_key_padding_mask, src_is_causal, tgt_is_causal, memory_is_causal);
  }
  /// Float mask [sz, sz], -inf above the diagonal, as nn::generate_square_subsequent_mask.
  static Tensor generate_square_subsequent_mask(int64_t sz, TensorOptions options = {}) {
    return nn::generate_square_subsequent_mask(sz, options);
  }
  const TransformerOptions& options() const { return options_; }
  const std::shared_ptr<TransformerEncoder>& encoder() const { return encoder_; }
  const std::shared_ptr<TransformerDecoder>& decoder() const { return decoder_; }

 private:
  TransformerOptions options_;
  std::shared_ptr<TransformerEncoder> encoder_;
  std::shared_ptr<TransformerDecoder> decoder_;
};

}  // namespace focus::nn
