// The Transformer family, following torch/nn/modules/transformer.py (PyTorch 2.x) on its
// standard (non-fast) path: the same children, the same order of operations.
#include "nn/transformer.h"

#include <limits>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/indexing.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "nn/container.h"
#include "nn/init.h"

namespace focus::nn {

namespace {

// linear1 then the activation; gelu as one linear_gelu node (the same numbers; one GEMM
// epilogue on CUDA; the pre-activation kept once, as gelu keeps it).
Tensor linear_activate(const std::string& a, const Linear& linear1, const Tensor& x) {
  return a == "relu" ? relu(linear1.forward(x)) : linear1.forward_gelu(x);
}

void check_layer_options(const TransformerLayerOptions& o, const char* op) {
  FOCUS_CHECK(o.activation_ == "relu" || o.activation_ == "gelu", "[{}] activation should be relu/gelu, not {}", op,
              o.activation_);
  FOCUS_CHECK(o.d_model_ > 0 && o.nhead_ > 0 && o.dim_feedforward_ > 0,
              "[{}] d_model, nhead and dim_feedforward must be positive, got {}, {} and {}", op, o.d_model_, o.nhead_,
              o.dim_feedforward_);
}

std::shared_ptr<LayerNorm> make_norm(const TransformerLayerOptions& o) {
  return std::make_shared<LayerNorm>(LayerNormOptions({o.d_model_}).eps(o.layer_norm_eps_).bias(o.bias_));
}

std::shared_ptr<MultiheadAttention> make_attention(const TransformerLayerOptions& o) {
  return std::make_shared<MultiheadAttention>(
      MultiheadAttentionOptions(o.d_model_, o.nhead_).dropout(o.dropout_).bias(o.bias_).batch_first(o.batch_first_));
}

// PyTorch's copy.deepcopy of a layer: a fresh layer with the same options, weights and mode.
template <class Layer> std::shared_ptr<Layer> deep_copy(const Layer& layer) {
  auto copy = std::make_shared<Layer>(layer.options());
  copy->load_state_dict(layer.state_dict());
  copy->train(layer.is_training());
  return copy;
}

}  // namespace

bool is_causal_mask(const Tensor& mask, int64_t size) {
  if (!mask.defined() || mask.dim() != 2 || mask.size(0) != size || mask.size(1) != size) return false;
  if (mask.dtype() != kBool && !mask.is_floating_point()) return false;
  // bool: true (not allowed) exactly above the diagonal; float: -inf there, 0 elsewhere
  const Tensor causal = mask.dtype() == kBool
                            ? triu(ones({size, size}, TensorOptions(kBool).device(mask.device())), 1)
                            : generate_square_subsequent_mask(size, TensorOptions(mask.dtype()).device(mask.device()));
  return ne(mask, causal).sum().item<int64_t>() == 0;
}

Tensor generate_square_subsequent_mask(int64_t sz, TensorOptions options) {
  FOCUS_CHECK(sz >= 0, "[generate_square_subsequent_mask] size must be non-negative, got {}", sz);
  const TensorOptions o = options.dtype(options.dtype_or(kFloat32));
  FOCUS_CHECK(is_floating(*o.dtype_), "[generate_square_subsequent_mask] expected a floating dtype, got {}",
              *o.dtype_);
  return triu(full({sz, sz}, -std::numeric_limits<double>::infinity(), o), 1);
}

// ---- TransformerEncoderLayer ----------------------------------------------------------------

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& o)
    : Module("TransformerEncoderLayer"), options_(o) {
  check_layer_options(o, "TransformerEncoderLayer");
  self_attn_ = register_module("self_attn", make_attention(o));
  linear1_ = register_module("linear1", std::make_shared<Linear>(LinearOptions(o.d_model_, o.dim_feedforward_).bias(o.bias_)));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(DropoutOptions(o.dropout_)));
  linear2_ = register_module("linear2", std::make_shared<Linear>(LinearOptions(o.dim_feedforward_, o.d_model_).bias(o.bias_)));
  norm1_ = register_module("norm1", make_norm(o));
  norm2_ = register_module("norm2", make_norm(o));
  dropout1_ = register_module("dropout1", std::make_shared<Dropout>(DropoutOptions(o.dropout_)));
  dropout2_ = register_module("dropout2", std::make_shared<Dropout>(DropoutOptions(o.dropout_)));
}

Tensor TransformerEncoderLayer::sa_block(const Tensor& x, const Tensor& mask, const Tensor& kpm, bool is_causal) {
  return dropout1_->forward(std::get<0>(self_attn_->forward(x, x, x, kpm, false, mask, true, is_causal)));
}

Tensor TransformerEncoderLayer::ff_block(const Tensor& x) {
  return dropout2_->forward(
      linear2_->forward(dropout_->forward(linear_activate(options_.activation_, *linear1_, x))));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& src_mask, const Tensor& src_key_padding_mask,
                                        bool is_causal) {
  FOCUS_CHECK(src.defined(), "[TransformerEncoderLayer] src must be defined");
  Tensor x = src;
  // Each residual add and the norm after it are one fused add_layer_norm (forward_add),
  // with the values of PyTorch's separate steps.
  if (options_.norm_first_) {
    // x = x + sa(norm1(x)); x = x + ff(norm2(x)): the first add makes norm2's input too.
    auto [h, n2] = norm2_->forward_add(x, sa_block(norm1_->forward(x), src_mask, src_key_padding_mask, is_causal));
    x = h + ff_block(n2);
  } else {
    x = std::get<1>(norm1_->forward_add(x, sa_block(x, src_mask, src_key_padding_mask, is_causal)));
    x = std::get<1>(norm2_->forward_add(x, ff_block(x)));
  }
  return x;
}

// ---- TransformerDecoderLayer ----------------------------------------------------------------

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerLayerOptions& o)
    : Module("TransformerDecoderLayer"), options_(o) {
  check_layer_options(o, "TransformerDecoderLayer");
  self_attn_ = register_module("self_attn", make_attention(o));
  multihead_attn_ = register_module("multihead_attn", make_attention(o));
  linear1_ = register_module("linear1", std::make_shared<Linear>(LinearOptions(o.d_model_, o.dim_feedforward_).bias(o.bias_)));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(DropoutOptions(o.dropout_)));
  linear2_ = register_module("linear2", std::make_shared<Linear>(LinearOptions(o.dim_feedforward_, o.d_model_).bias(o.bias_)));
  norm1_ = register_module("norm1", make_norm(o));
  norm2_ = register_module("norm2", make_norm(o));
  norm3_ = register_module("norm3", make_norm(o));
  dropout1_ = register_module("dropout1", std::make_shared<Dropout>(DropoutOptions(o.dropout_)));
  dropout2_ = register_module("dropout2", std::make_shared<Dropout>(DropoutOptions(o.dropout_)));
  dropout3_ = register_module("dropout3", std::make_shared<Dropout>(DropoutOptions(o.dropout_)));
}

Tensor TransformerDecoderLayer::sa_block(const Tensor& x, const Tensor& mask, const Tensor& kpm, bool is_causal) {
  return dropout1_->forward(std::get<0>(self_attn_->forward(x, x, x, kpm, false, mask, true, is_causal)));
}

Tensor TransformerDecoderLayer::mha_block(const Tensor& x, const Tensor& mem, const Tensor& mask, const Tensor& kpm,
                                          bool is_causal) {
  return dropout2_->forward(std::get<0>(multihead_attn_->forward(x, mem, mem, kpm, false, mask, true, is_causal)));
}

Tensor TransformerDecoderLayer::ff_block(const Tensor& x) {
  return dropout3_->forward(
      linear2_->forward(dropout_->forward(linear_activate(options_.activation_, *linear1_, x))));
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask,
                                        const Tensor& memory_mask, const Tensor& tgt_key_padding_mask,
                                        const Tensor& memory_key_padding_mask, bool tgt_is_causal,
                                        bool memory_is_causal) {
  FOCUS_CHECK(tgt.defined() && memory.defined(), "[TransformerDecoderLayer] tgt and memory must be defined");
  Tensor x = tgt;
  if (options_.norm_first_) {  // each add also makes the next norm's input (forward_add)
    auto [h1, n2] = norm2_->forward_add(x, sa_block(norm1_->forward(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal));
    auto [h2, n3] =
        norm3_->forward_add(h1, mha_block(n2, memory, memory_mask, memory_key_padding_mask, memory_is_causal));
    x = h2 + ff_block(n3);
  } else {
    x = std::get<1>(norm1_->forward_add(x, sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal)));
    x = std::get<1>(
        norm2_->forward_add(x, mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)));
    x = std::get<1>(norm3_->forward_add(x, ff_block(x)));
  }
  return x;
}

// ---- TransformerEncoder / TransformerDecoder ------------------------------------------------

TransformerEncoder::TransformerEncoder(const std::shared_ptr<TransformerEncoderLayer>& encoder_layer,
                                       int64_t num_layers, std::shared_ptr<LayerNorm> norm)
    : Module("TransformerEncoder") {
  FOCUS_CHECK(encoder_layer != nullptr, "[TransformerEncoder] encoder_layer must not be null");
  FOCUS_CHECK(num_layers >= 0, "[TransformerEncoder] num_layers must be non-negative, got {}", num_layers);
  auto list = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < num_layers; ++i) {
    layers_.push_back(deep_copy(*encoder_layer));
    list->push_back(layers_.back());
  }
  if (norm) norm_ = register_module("norm", std::move(norm));
}

Tensor TransformerEncoder::forward(const Tensor& src, const Tensor& mask, const Tensor& src_key_padding_mask,
                                   bool is_causal) {
  // As PyTorch's _detect_is_causal_mask: a mask equal to generate_square_subsequent_mask
  // turns into the is_causal hint, so the attention skips the keys it hides.
  if (!is_causal && mask.defined() && src.defined() && src.dim() >= 2)
    is_causal = is_causal_mask(mask, src.size(src.dim() == 3 && layers_.size() && layers_[0]->options().batch_first_ ? 1 : 0));
  Tensor x = src;
  for (auto& layer : layers_) x = layer->forward(x, mask, src_key_padding_mask, is_causal);
  if (norm_) x = norm_->forward(x);
  return x;
}

TransformerDecoder::TransformerDecoder(const std::shared_ptr<TransformerDecoderLayer>& decoder_layer,
                                       int64_t num_layers, std::shared_ptr<LayerNorm> norm)
    : Module("TransformerDecoder") {
  FOCUS_CHECK(decoder_layer != nullptr, "[TransformerDecoder] decoder_layer must not be null");
  FOCUS_CHECK(num_layers >= 0, "[TransformerDecoder] num_layers must be non-negative, got {}", num_layers);
  auto list = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < num_layers; ++i) {
    layers_.push_back(deep_copy(*decoder_layer));
    list->push_back(layers_.back());
  }
  if (norm) norm_ = register_module("norm", std::move(norm));
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const Tensor& tgt_mask,
                                   const Tensor& memory_mask, const Tensor& tgt_key_padding_mask,
                                   const Tensor& memory_key_padding_mask, bool tgt_is_causal, bool memory_is_causal) {
  if (!tgt_is_causal && tgt_mask.defined() && tgt.defined() && tgt.dim() >= 2)
    tgt_is_causal =
        is_causal_mask(tgt_mask, tgt.size(tgt.dim() == 3 && layers_.size() && layers_[0]->options().batch_first_ ? 1 : 0));
  Tensor x = tgt;
  for (auto& layer : layers_)
    x = layer->forward(x, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal,
                       memory_is_causal);
  if (norm_) x = norm_->forward(x);
  return x;
}

// ---- Transformer ----------------------------------------------------------------------------

TransformerLayerOptions TransformerOptions::layer_options() const {
  return TransformerLayerOptions(d_model_, nhead_)
      .dim_feedforward(dim_feedforward_)
      .dropout(dropout_)
      .activation(activation_)
      .layer_norm_eps(layer_norm_eps_)
      .batch_first(batch_first_)
      .norm_first(norm_first_)
      .bias(bias_);
}

Transformer::Transformer(const TransformerOptions& options) : Module("Transformer"), options_(options) {
  const TransformerLayerOptions lo = options.layer_options();
  encoder_ = register_module(
      "encoder", std::make_shared<TransformerEncoder>(std::make_shared<TransformerEncoderLayer>(lo),
                                                       options.num_encoder_layers_, make_norm(lo)));
  decoder_ = register_module(
      "decoder", std::make_shared<TransformerDecoder>(std::make_shared<TransformerDecoderLayer>(lo),
                                                       options.num_decoder_layers_, make_norm(lo)));
  // torch.nn.Transformer._reset_parameters: xavier_uniform_ on every matrix.
  for (auto& p : parameters())
    if (p.dim() > 1) init::xavier_uniform_(p);
}

Tensor Transformer::forward(const Tensor& src, const Tensor& tgt, const Tensor& src_mask, const Tensor& tgt_mask,
                            const Tensor& memory_mask, const Tensor& src_key_padding_mask,
                            const Tensor& tgt_key_padding_mask, const Tensor& memory_key_padding_mask,
                            bool src_is_causal, bool tgt_is_causal, bool memory_is_causal) {
  FOCUS_CHECK(src.defined() && tgt.defined(), "[Transformer] src and tgt must be defined");
  const bool batched = src.dim() == 3;
  FOCUS_CHECK(src.dim() == tgt.dim() && (src.dim() == 2 || src.dim() == 3),
              "[Transformer] src and tgt must both be 3-D (batched) or 2-D (unbatched), got {} and {}", src.shape(),
              tgt.shape());
  if (batched) {
    const int64_t bd = options_.batch_first_ ? 0 : 1;
    FOCUS_CHECK(src.size(bd) == tgt.size(bd), "[Transformer] the batch number of src and tgt must be equal, got {} and {}",
                src.shape(), tgt.shape());
  }
  FOCUS_CHECK(src.size(-1) == options_.d_model_ && tgt.size(-1) == options_.d_model_,
              "[Transformer] the feature number of src and tgt must be equal to d_model ({}), got {} and {}",
              options_.d_model_, src.shape(), tgt.shape());
  const Tensor memory = encoder_->forward(src, src_mask, src_key_padding_mask, src_is_causal);
  return decoder_->forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                           tgt_is_causal, memory_is_causal);
}

}  // namespace focus::nn
