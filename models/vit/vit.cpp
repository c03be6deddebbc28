#include "models/vit/vit.h"

#include <string>

namespace focus::models::vit {

void check_config(const ViTConfig& c) {
  FOCUS_CHECK(c.image_size_ >= 1 && c.patch_size_ >= 1 && c.in_channels_ >= 1 && c.num_classes_ >= 1 && c.dim_ >= 1 &&
                  c.depth_ >= 1 && c.heads_ >= 1 && c.mlp_dim_ >= 1,
              "[ViT] image_size, patch_size, in_channels, num_classes, dim, depth, heads and mlp_dim must be positive, "
              "got {}, {}, {}, {}, {}, {}, {}, {}",
              c.image_size_, c.patch_size_, c.in_channels_, c.num_classes_, c.dim_, c.depth_, c.heads_, c.mlp_dim_);
  FOCUS_CHECK(c.image_size_ % c.patch_size_ == 0, "[ViT] image_size ({}) is not divisible by patch_size ({})",
              c.image_size_, c.patch_size_);
  FOCUS_CHECK(c.dim_ % c.heads_ == 0, "[ViT] dim ({}) is not divisible by heads ({})", c.dim_, c.heads_);
  FOCUS_CHECK(c.dropout_ >= 0.0 && c.dropout_ < 1.0, "[ViT] dropout must be in [0, 1), got {}", c.dropout_);
}

Tensor patchify(const Tensor& images, int64_t p) {
  FOCUS_CHECK(p >= 1, "[patchify] patch_size must be positive, got {}", p);
  FOCUS_CHECK(images.defined() && images.dim() == 4, "[patchify] expected images of shape [B, C, H, W], got {}",
              images.defined() ? fmt::format("{}", images.shape()) : std::string("an undefined tensor"));
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  FOCUS_CHECK(H % p == 0 && W % p == 0, "[patchify] image size {}x{} is not divisible by patch_size {}", H, W, p);
  const int64_t gh = H / p, gw = W / p;
  // [B, C, gh, p, gw, p] -> [B, gh, gw, C, p, p] -> [B, gh*gw, C*p*p]
  return images.reshape({B, C, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5}).reshape({B, gh * gw, C * p * p});
}

VisionTransformer::VisionTransformer(const ViTConfig& c, Generator* gen) : nn::Module("VisionTransformer"), config_(c) {
  check_config(c);
  const int64_t D = c.dim_, N = c.num_patches();
  cls_token_ = register_parameter("cls_token", zeros({1, 1, D}));
  pos_embed_ = register_parameter("pos_embed", zeros({1, N + 1, D}));
  patch_embed_ = register_module(
      "patch_embed", std::make_shared<nn::Linear>(c.in_channels_ * c.patch_size_ * c.patch_size_, D));
  dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(c.dropout_));
  auto layer = std::make_shared<nn::TransformerEncoderLayer>(nn::TransformerLayerOptions(D, c.heads_)
                                                                 .dim_feedforward(c.mlp_dim_)
                                                                 .dropout(c.dropout_)
                                                                 .activation("gelu")
                                                                 .batch_first(true)
                                                                 .norm_first(true));
  encoder_ = register_module(
      "encoder", std::make_shared<nn::TransformerEncoder>(layer, c.depth_,
                                                          std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(D))));
  head_ = register_module("head", std::make_shared<nn::Linear>(D, c.num_classes_));

  // timm's init: every Linear weight (and the packed attention in_proj_weight)
  // trunc_normal(0.02), biases zero; LayerNorms keep 1 / 0 from their constructors.
  for (const auto& [name, p] : named_parameters()) {
    if (name == "cls_token") {
      nn::init::normal_(p, 0.0, 1e-6, gen);
    } else if (name == "pos_embed") {
      nn::init::trunc_normal_(p, 0.0, 0.02, -2.0, 2.0, gen);
    } else if (name.find("norm") != std::string::npos) {
      continue;
    } else if (p.dim() >= 2) {
      nn::init::trunc_normal_(p, 0.0, 0.02, -2.0, 2.0, gen);
    } else {
      nn::init::zeros_(p);
    }
  }
}

Tensor VisionTransformer::embed(const Tensor& images) {
  const ViTConfig& c = config_;
  FOCUS_CHECK(images.defined(), "[ViT] images is an undefined tensor");
  Tensor x = images;
  if (x.dim() == 3 && c.in_channels_ == 1) x = x.unsqueeze(1);
  FOCUS_CHECK(x.dim() == 4 && x.size(1) == c.in_channels_ && x.size(2) == c.image_size_ && x.size(3) == c.image_size_,
              "[ViT] expected images of shape [B, {}, {}, {}]{}, got {}", c.in_channels_, c.image_size_, c.image_size_,
              c.in_channels_ == 1 ? fmt::format(" or [B, {}, {}]", c.image_size_, c.image_size_) : std::string(),
              images.shape());
  FOCUS_CHECK(x.is_floating_point(), "[ViT] expected floating-point images (normalized pixels), got {}", x.dtype());
  const int64_t B = x.size(0), D = c.dim_;
  const Tensor patches = patch_embed_->forward(patchify(x, c.patch_size_));  // [B, N, D]
  const Tensor cls = cls_token_.expand({B, 1, D});
  return dropout_->forward(cat({cls, patches}, 1) + pos_embed_);  // [B, N+1, D]
}

Tensor VisionTransformer::forward(const Tensor& images) {
  const Tensor h = encoder_->forward(embed(images));  // [B, T, D], final LayerNorm applied
  return head_->forward(h.select(1, 0));             // class token -> [B, num_classes]
}

std::vector<Tensor> VisionTransformer::attention_maps(const Tensor& images) {
  NoGradGuard no_grad;
  Tensor x = embed(images);
  std::vector<Tensor> maps;
  for (int64_t i = 0; i < encoder_->num_layers(); ++i) {
    const auto& layer = encoder_->layer(i);
    // Pre-norm: the layer's attention sees norm1(x); ask for its weights averaged over heads.
    const Tensor h = layer->norm1()->forward(x);
    maps.push_back(std::get<1>(layer->self_attn()->forward(h, h, h, Tensor(), /*need_weights=*/true)));
    x = layer->forward(x);
  }
  return maps;
}

Tensor VisionTransformer::class_attention(const Tensor& images) {
  NoGradGuard no_grad;
  const Tensor last = attention_maps(images).back();              // [B, T, T]
  const Tensor row = last.select(1, 0).narrow(1, 1, last.size(2) - 1);  // [B, N]
  return row / row.sum({1}, true);
}

Tensor VisionTransformer::attention_rollout(const Tensor& images) {
  NoGradGuard no_grad;
  const std::vector<Tensor> maps = attention_maps(images);
  const int64_t B = maps[0].size(0), T = maps[0].size(1);
  const Tensor eye_t = eye(T, -1, maps[0].options()).unsqueeze(0).expand({B, T, T});
  Tensor rollout = eye_t.contiguous();
  for (const Tensor& a : maps) {
    Tensor m = a * 0.5 + eye_t * 0.5;
    m = m / m.sum({2}, true);
    rollout = bmm(m, rollout);
  }
  const Tensor row = rollout.select(1, 0).narrow(1, 1, T - 1);  // [B, N]
  return row / row.sum({1}, true);
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> VisionTransformer::decay_groups() const {
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, p] : named_parameters()) {
    const bool embedding = name == "cls_token" || name == "pos_embed";
    (p.dim() >= 2 && !embedding ? decay : no_decay).push_back(p);
  }
  return {decay, no_decay};
}

}  // namespace focus::models::vit
