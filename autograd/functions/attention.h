#pragma once
/// Differentiable scaled dot-product attention: a fused forward/backward kernel pair (not
/// composed from small ops).
#include <optional>
#include <tuple>

#include "core/tensor.h"

namespace focus {

struct AttentionOptions {
  Tensor attn_mask_;          // bool (true = attend) or additive float, broadcast to [..., L, S]
  double dropout_p_ = 0.0;
  bool is_causal_ = false;
  std::optional<double> scale_;  // default 1/sqrt(E)
  bool need_weights_ = false;
  AttentionOptions& attn_mask(const Tensor& m) { attn_mask_ = m; return *this; }
  AttentionOptions& dropout_p(double p) { dropout_p_ = p; return *this; }
  AttentionOptions& is_causal(bool c) { is_causal_ = c; return *this; }
  AttentionOptions& scale(double s) { scale_ = s; return *this; }
  AttentionOptions& need_weights(bool w) { need_weights_ = w; return *this; }
};

/// softmax(q k^T * scale + mask) v: q [..., L, E], k [..., S, E], v [..., S, Ev] ->
/// [..., L, Ev]. Returns (output, weights [..., L, S]); weights are undefined unless
/// need_weights.
std::tuple<Tensor, Tensor> scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                                          const AttentionOptions& options);
/// PyTorch's positional form; returns the output only.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask = {},
                                    double dropout_p = 0.0, bool is_causal = false,
                                    std::optional<double> scale = std::nullopt);

}  // namespace focus
