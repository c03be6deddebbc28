#pragma once
/// A Vision Transformer (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words") for small
/// images: non-overlapping p x p patches, flattened and projected by a Linear (the same map as
/// a Conv2d with kernel = stride = p), a learned class token, learned position embeddings, a
/// pre-norm Transformer encoder (GELU feed-forward), a final LayerNorm and a Linear head on
/// the class token. Written only against the public API (<focus/focus.h>).
///
/// state_dict names and shapes (D = dim, N = number of patches, P = in_channels * p * p):
///   cls_token [1, 1, D], pos_embed [1, N + 1, D], patch_embed.{weight [D, P], bias [D]},
///   encoder.layers.<i>.* (nn::TransformerEncoderLayer: self_attn.in_proj_weight [3D, D], ...),
///   encoder.norm.{weight, bias} [D] (the final LayerNorm), head.{weight [C, D], bias [C]}.
/// patch_embed.weight reshaped to [D, in_channels, p, p] is the equivalent Conv2d weight.
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <focus/focus.h>

namespace focus::models::vit {

/// ViT hyperparameters with chained setters. Defaults: a small ViT for 28 x 28 grayscale.
struct ViTConfig {
  int64_t image_size_ = 28;   // height = width of the input images
  int64_t patch_size_ = 4;    // side of a square patch; must divide image_size
  int64_t in_channels_ = 1;
  int64_t num_classes_ = 10;
  int64_t dim_ = 64;          // token width D
  int64_t depth_ = 6;         // encoder layers
  int64_t heads_ = 4;         // attention heads; must divide dim
  int64_t mlp_dim_ = 128;     // feed-forward hidden size
  double dropout_ = 0.0;      // inside the encoder layers and after adding position embeddings
  ViTConfig& image_size(int64_t v) { image_size_ = v; return *this; }
  ViTConfig& patch_size(int64_t v) { patch_size_ = v; return *this; }
  ViTConfig& in_channels(int64_t v) { in_channels_ = v; return *this; }
  ViTConfig& num_classes(int64_t v) { num_classes_ = v; return *this; }
  ViTConfig& dim(int64_t v) { dim_ = v; return *this; }
  ViTConfig& depth(int64_t v) { depth_ = v; return *this; }
  ViTConfig& heads(int64_t v) { heads_ = v; return *this; }
  ViTConfig& mlp_dim(int64_t v) { mlp_dim_ = v; return *this; }
  ViTConfig& dropout(double v) { dropout_ = v; return *this; }
  /// Patches per side (image_size / patch_size).
  int64_t grid() const { return image_size_ / patch_size_; }
  /// Patches per image (grid()^2); the encoder sees num_patches() + 1 tokens.
  int64_t num_patches() const { return grid() * grid(); }
};

/// Throws focus::Error naming the bad field ("[ViT] image_size (30) is not divisible by
/// patch_size (4)", non-positive sizes, dim not divisible by heads, dropout outside [0, 1)).
void check_config(const ViTConfig& config);

/// Cuts images into non-overlapping square patches:
/// images [B, C, H, W] -> [B, (H/p) * (W/p), C * p * p]. Patches are in row-major order over
/// the grid (patch (i, j) at index i * (W/p) + j); the features of a patch are its pixels in
/// (channel, row, column) order, the layout of a Conv2d weight [D, C, p, p] flattened.
/// Differentiable (a view, a permute and a reshape). H or W not divisible by p, a non-4-D
/// input or p < 1 -> focus::Error.
Tensor patchify(const Tensor& images, int64_t patch_size);

/// The Vision Transformer classifier.
class VisionTransformer : public nn::Module {
 public:
  /// Initialization as timm's ViT: Linear weights (patch_embed, attention projections,
  /// feed-forward, head) and pos_embed ~ trunc_normal(std 0.02), biases 0, cls_token
  /// ~ N(0, 1e-6), LayerNorms 1 / 0; drawn from gen (default: the default generator).
  explicit VisionTransformer(const ViTConfig& config, Generator* gen = nullptr);
  /// images [B, C, H, W] float (or [B, H, W] when in_channels == 1), H = W = image_size
  /// -> logits [B, num_classes].
  Tensor forward(const Tensor& images);
  Tensor operator()(const Tensor& images) { return forward(images); }
  /// Self-attention weights of every encoder layer, averaged over heads:
  /// images as forward -> depth tensors [B, T, T] (T = num_patches + 1, token 0 = class
  /// token; rows attend over columns and sum to 1). Runs without recording a graph.
  std::vector<Tensor> attention_maps(const Tensor& images);
  /// Attention of the class token over the patches in the last layer, averaged over heads,
  /// renormalized over the patches: images -> [B, num_patches] (rows sum to 1).
  Tensor class_attention(const Tensor& images);
  /// Attention rollout (Abnar & Zuidema 2020): the product over layers of 0.5 * A + 0.5 * I
  /// (rows renormalized), read at the class token's row over the patches and renormalized:
  /// images -> [B, num_patches] (rows sum to 1).
  Tensor attention_rollout(const Tensor& images);
  /// Parameters in two AdamW groups: matrices (patch_embed, attention, feed-forward and head
  /// weights) get weight decay; biases, LayerNorms, cls_token and pos_embed do not.
  std::pair<std::vector<Tensor>, std::vector<Tensor>> decay_groups() const;
  /// The device of the weights (where Module::to put them); images must be there.
  Device device() const { return head_->weight().device(); }
  const ViTConfig& config() const { return config_; }

 private:
  /// images -> tokens [B, T, D] before the encoder (class token + patches + positions).
  Tensor embed(const Tensor& images);
  ViTConfig config_;
  Tensor cls_token_, pos_embed_;
  std::shared_ptr<nn::Linear> patch_embed_;
  std::shared_ptr<nn::Dropout> dropout_;
  std::shared_ptr<nn::TransformerEncoder> encoder_;
  std::shared_ptr<nn::Linear> head_;
};

}  // namespace focus::models::vit
