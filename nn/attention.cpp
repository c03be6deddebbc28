// nn::MultiheadAttention, following torch.nn.functional.multi_head_attention_forward
// (PyTorch 2.x) step by step, but with the heads as strided views of the projections and
// the fused scaled_dot_product_attention kernel pair (which also returns the weights).
#include "nn/attention.h"

#include <cmath>
#include <limits>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/indexing.h"
#include "autograd/functions/linalg.h"
#include "autograd/functions/attention.h"
#include "autograd/functions/reduce.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "nn/init.h"

namespace focus::nn {

namespace {

constexpr const char* kOp = "MultiheadAttention";

// x [S, N, E] (or [N, S, E] when bf), last dim unit-stride -> [N, H, S, E/H], a view.
Tensor split_heads(const Tensor& x, int64_t H, bool bf) {
  const Tensor t = x.unflatten(-1, {H, x.size(-1) / H});
  return bf ? t.permute({0, 2, 1, 3}) : t.permute({1, 2, 0, 3});
}

// A bool (true = masked out) or floating mask -> (allowed-bool or additive float of dtype),
// with `extra` trailing columns that are always allowed.
Tensor canonical_mask(const Tensor& m, DType dtype, int64_t extra, const char* name) {
  FOCUS_CHECK(m.dtype() == kBool || m.is_floating_point(), "[{}] only bool and floating types of {} are supported, got {}",
              kOp, name, m.dtype());
  Tensor r = m.dtype() == kBool ? logical_not(m) : m.to(dtype);
  if (extra > 0) {
    Shape s = r.shape();
    s.back() = extra;
    r = cat({r, r.dtype() == kBool ? ones(s, TensorOptions(kBool).device(r.device()))
                                    : zeros(s, TensorOptions(dtype).device(r.device()))},
            -1);
  }
  return r;
}

// allowed-bool -> additive float (0 where allowed, -inf elsewhere).
Tensor to_additive(const Tensor& m, DType dtype) {
  if (m.dtype() != kBool) return m;
  return zeros(m.shape(), TensorOptions(dtype).device(m.device()))
      .masked_fill(logical_not(m), -std::numeric_limits<double>::infinity());
}

}  // namespace

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& options)
    : Module("MultiheadAttention"), options_(options) {
  const int64_t E = options.embed_dim_, H = options.num_heads_;
  FOCUS_CHECK(E > 0 && H > 0, "[{}] embed_dim and num_heads must be positive, got embed_dim={} and num_heads={}", kOp,
              E, H);
  FOCUS_CHECK(E % H == 0, "[{}] embed_dim must be divisible by num_heads, got embed_dim={} and num_heads={}", kOp, E,
              H);
  FOCUS_CHECK(options.dropout_ >= 0 && options.dropout_ <= 1, "[{}] dropout must be between 0 and 1, got {}", kOp,
              options.dropout_);
  const int64_t kdim = options.kdim_.value_or(E), vdim = options.vdim_.value_or(E);
  FOCUS_CHECK(kdim > 0 && vdim > 0, "[{}] kdim and vdim must be positive, got kdim={} and vdim={}", kOp, kdim, vdim);
  same_dim_ = kdim == E && vdim == E;
  if (same_dim_) {
    Tensor w = empty({3 * E, E});
    init::xavier_uniform_(w);
    in_proj_weight_ = register_parameter("in_proj_weight", w);
  } else {
    Tensor wq = empty({E, E}), wk = empty({E, kdim}), wv = empty({E, vdim});
    init::xavier_uniform_(wq);
    init::xavier_uniform_(wk);
    init::xavier_uniform_(wv);
    q_proj_weight_ = register_parameter("q_proj_weight", wq);
    k_proj_weight_ = register_parameter("k_proj_weight", wk);
    v_proj_weight_ = register_parameter("v_proj_weight", wv);
  }
  if (options.bias_) in_proj_bias_ = register_parameter("in_proj_bias", zeros({3 * E}));
  out_proj_ = register_module("out_proj", std::make_shared<Linear>(LinearOptions(E, E).bias(options.bias_)));
  if (options.add_bias_kv_) {
    Tensor bk = empty({1, 1, E}), bv = empty({1, 1, E});
    init::xavier_normal_(bk);
    init::xavier_normal_(bv);
    bias_k_ = register_parameter("bias_k", bk);
    bias_v_ = register_parameter("bias_v", bv);
  }
  if (options.bias_) init::zeros_(out_proj_->bias());
}

std::tuple<Tensor, Tensor> MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                                       const Tensor& key_padding_mask, bool need_weights,
                                                       const Tensor& attn_mask, bool average_attn_weights,
                                                       bool is_causal) {
  FOCUS_CHECK(query.defined() && key.defined() && value.defined(), "[{}] query, key and value must be defined", kOp);
  const int64_t E = options_.embed_dim_, H = options_.num_heads_;
  const int64_t kdim = options_.kdim_.value_or(E), vdim = options_.vdim_.value_or(E);

  // ---- shapes (as torch's _mha_shape_check) ----
  const bool batched = query.dim() == 3;
  FOCUS_CHECK(query.dim() == 3 || query.dim() == 2,
              "[{}] query should be unbatched 2-D [L, E] or batched 3-D, got {}-D tensor of shape {}", kOp, query.dim(),
              query.shape());
  FOCUS_CHECK(key.dim() == query.dim() && value.dim() == query.dim(),
              "[{}] for {}-D query, key and value must be {}-D too, got key {} and value {}", kOp, query.dim(),
              query.dim(), key.shape(), value.shape());
  if (key_padding_mask.defined())
    FOCUS_CHECK(key_padding_mask.dim() == query.dim() - 1,
                "[{}] for {}-D query, key_padding_mask must be {}-D ({}), got shape {}", kOp, query.dim(),
                query.dim() - 1, batched ? "[N, S]" : "[S]", key_padding_mask.shape());
  if (attn_mask.defined())
    FOCUS_CHECK(attn_mask.dim() == 2 || attn_mask.dim() == 3,
                "[{}] attn_mask's dimension {} is not supported (expected 2-D [L, S] or 3-D [N*num_heads, L, S])", kOp,
                attn_mask.dim());
  // Unbatched inputs get a batch dim of 1 in front; then the layout is [N, L, E].
  const bool bf = options_.batch_first_ || !batched;
  const bool self_attn = query.is_same(key) && key.is_same(value);
  const bool kv_same = key.is_same(value);
  const Tensor q_in = batched ? query : query.unsqueeze(0);
  const Tensor k_in = batched ? key : key.unsqueeze(0);
  const Tensor v_in = batched ? value : value.unsqueeze(0);
  const int64_t N = q_in.size(bf ? 0 : 1), L = q_in.size(bf ? 1 : 0);
  const int64_t S = k_in.size(bf ? 1 : 0);
  FOCUS_CHECK(q_in.size(2) == E, "[{}] was expecting embedding dimension of {}, but got query of shape {}", kOp, E,
              query.shape());
  FOCUS_CHECK(k_in.size(2) == kdim && v_in.size(2) == vdim,
              "[{}] expected key with {} features and value with {} features, got key {} and value {}", kOp, kdim,
              vdim, key.shape(), value.shape());
  FOCUS_CHECK(k_in.size(0) == v_in.size(0) && k_in.size(1) == v_in.size(1),
              "[{}] key shape {} does not match value shape {} in its sequence and batch dims", kOp, key.shape(),
              value.shape());
  FOCUS_CHECK(k_in.size(bf ? 0 : 1) == N, "[{}] query and key must have the same batch size, got query {} and key {}",
              kOp, query.shape(), key.shape());

  // ---- input projections: one matmul for self-attention, views for q, k, v ----
  Tensor q, k, v;  // [L, N, E] / [S, N, E] (or batch first)
  if (same_dim_ && self_attn) {
    const auto qkv = unbind(in_projection(q_in, 0, 3).unflatten(-1, {3, E}), 2);
    q = qkv[0];
    k = qkv[1];
    v = qkv[2];
  } else if (same_dim_ && kv_same) {
    q = in_projection(q_in, 0, 1);
    const auto kv = unbind(in_projection(k_in, 1, 2).unflatten(-1, {2, E}), 2);
    k = kv[0];
    v = kv[1];
  } else {
    q = in_projection(q_in, 0, 1);
    k = in_projection(k_in, 1, 1);
    v = in_projection(v_in, 2, 1);
  }

  // ---- extra key/value rows: bias_k / bias_v, then a zero row ----
  const int64_t extra = (bias_k_.defined() ? 1 : 0) + (options_.add_zero_attn_ ? 1 : 0);
  if (extra > 0) {
    const int64_t seq = bf ? 1 : 0;
    const Shape row = bf ? Shape{N, 1, E} : Shape{1, N, E};
    std::vector<Tensor> ks{k}, vs{v};
    if (bias_k_.defined()) {
      ks.push_back(bias_k_.expand(row));
      vs.push_back(bias_v_.expand(row));
    }
    if (options_.add_zero_attn_) {
      ks.push_back(zeros(row, k.options()));
      vs.push_back(zeros(row, v.options()));
    }
    k = cat(ks, seq);
    v = cat(vs, seq);
  }
  const int64_t S2 = S + extra;

  // ---- masks: PyTorch's bool masks say true = masked out; SDPA's say true = attend ----
  Tensor mask;  // broadcastable to [N, H, L, S2]
  bool causal = false;
  Tensor am = attn_mask;
  // is_causal with a mask is PyTorch's hint that the mask is the causal one: without a
  // key padding mask or returned weights the kernel's own causal masking replaces it.
  if (is_causal && am.defined() && !key_padding_mask.defined() && !need_weights && extra == 0 && L == S)
    am = Tensor();
  if (!am.defined() && is_causal) {
    if (!key_padding_mask.defined() && extra == 0)
      causal = true;  // the kernel's own causal mask
    else
      am = logical_not(tril(ones({L, S}, TensorOptions(kBool).device(query.device()))));
  }
  if (am.defined()) {
    if (am.dim() == 2) {
      FOCUS_CHECK(am.size(0) == L && am.size(1) == S, "[{}] the shape of the 2D attn_mask is {}, but should be {}", kOp,
                  am.shape(), Shape{L, S});
      mask = canonical_mask(am, q.dtype(), extra, "attn_mask");
    } else {
      FOCUS_CHECK(am.size(0) == N * H && am.size(1) == L && am.size(2) == S,
                  "[{}] the shape of the 3D attn_mask is {}, but should be {}", kOp, am.shape(), Shape{N * H, L, S});
      mask = canonical_mask(am, q.dtype(), extra, "attn_mask").view({N, H, L, S2});
    }
  }
  if (key_padding_mask.defined()) {
    const Tensor kpm = batched ? key_padding_mask : key_padding_mask.unsqueeze(0);
    FOCUS_CHECK(kpm.size(0) == N && kpm.size(1) == S, "[{}] expecting key_padding_mask shape of {}, but got {}", kOp,
                batched ? Shape{N, S} : Shape{S}, key_padding_mask.shape());
    const Tensor km = canonical_mask(kpm, q.dtype(), extra, "key_padding_mask").view({N, 1, 1, S2});
    if (!mask.defined())
      mask = km;
    else if (mask.dtype() == kBool && km.dtype() == kBool)
      mask = logical_and(mask, km);
    else
      mask = to_additive(mask, q.dtype()) + to_additive(km, q.dtype());
  }

  // ---- attention on [N, H, L, hd] views ----
  AttentionOptions ao;
  ao.attn_mask(mask).dropout_p(is_training() ? options_.dropout_ : 0.0).is_causal(causal).need_weights(need_weights);
  auto [o, w] = scaled_dot_product_attention(split_heads(q, H, bf), split_heads(k, H, bf), split_heads(v, H, bf), ao);
  // o [N, H, L, hd] -> [L, N, E] (or [N, L, E]): the one copy of the output.
  Tensor out = bf ? o.transpose(1, 2).reshape({N, L, E}) : o.permute({2, 0, 1, 3}).reshape({L, N, E});
  out = out_proj_->forward(out);
  if (!batched) out = out.squeeze(0);
  if (need_weights) {
    if (average_attn_weights) w = w.mean({1});
    if (!batched) w = w.squeeze(0);
  } else {
    w = Tensor();
  }
  return {out, w};
}

Tensor MultiheadAttention::in_projection(const Tensor& x, int64_t first, int64_t count) const {
  const int64_t E = options_.embed_dim_;
  FOCUS_CHECK(first >= 0 && count >= 1 && first + count <= 3,
              "[MultiheadAttention] in_projection: parts {} .. {} of (q, k, v) do not exist", first, first + count - 1);
  FOCUS_CHECK(same_dim_ || count == 1,
              "[MultiheadAttention] in_projection: with separate q, k, v weights (kdim or vdim != embed_dim) project "
              "one part at a time, got {}", count);
  if (same_dim_) {
    if (is_quantized()) return int8_[0].linear(x, in_proj_bias_, first * E, count * E);
    if (count == 3) return linear(x, in_proj_weight_, in_proj_bias_);
    return linear(x, in_proj_weight_.narrow(0, first * E, count * E),
                  in_proj_bias_.defined() ? in_proj_bias_.narrow(0, first * E, count * E) : Tensor());
  }
  const Tensor b = in_proj_bias_.defined() ? in_proj_bias_.narrow(0, first * E, E) : Tensor();
  if (is_quantized()) return int8_[first].linear(x, b);
  return linear(x, first == 0 ? q_proj_weight_ : first == 1 ? k_proj_weight_ : v_proj_weight_, b);
}

void MultiheadAttention::quantize_int8() {
  FOCUS_CHECK(!is_quantized(), "[MultiheadAttention] quantize_int8: the input projections are quantized already");
  const char* names[3] = {"q_proj_weight", "k_proj_weight", "v_proj_weight"};
  Tensor* weights[3] = {&q_proj_weight_, &k_proj_weight_, &v_proj_weight_};
  // Quantize (and check) everything first, then change the module.
  Int8Weight q[3];
  if (same_dim_) {
    q[0] = Int8Weight::quantize(in_proj_weight_, "MultiheadAttention");
  } else {
    for (int i = 0; i < 3; ++i) q[i] = Int8Weight::quantize(*weights[i], "MultiheadAttention");
  }
  if (same_dim_) {
    in_proj_weight_ = replace_with_buffer("in_proj_weight", q[0].values());
    register_buffer("in_proj_weight_scale", q[0].scales());
  } else {
    for (int i = 0; i < 3; ++i) {
      *weights[i] = replace_with_buffer(names[i], q[i].values());
      register_buffer(std::string(names[i]) + "_scale", q[i].scales());
    }
  }
  if (in_proj_bias_.defined()) in_proj_bias_ = replace_with_buffer("in_proj_bias", Int8Weight::bias_buffer(in_proj_bias_));
  for (int i = 0; i < 3; ++i) int8_[i] = std::move(q[i]);
}

}  // namespace focus::nn
