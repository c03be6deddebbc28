// Differentiable scaled dot-product attention: the fused forward kernel, and a node whose
// backward runs the fused backward kernel.
#include "autograd/functions/attention.h"
#include "autograd/autocast.h"
#include "autograd/node.h"
#include "core/ops/attention.h"
#include "core/ops/common.h"

namespace focus {

std::tuple<Tensor, Tensor> scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                                          const AttentionOptions& o) {
  if (autocast::active()) {
    AttentionOptions oc = o;
    oc.attn_mask_ = autocast::cast(o.attn_mask_, autocast::Policy::Lower);
    return autocast::run(autocast::Policy::Lower, [&oc](const Tensor& a, const Tensor& b, const Tensor& c) {
      return scaled_dot_product_attention(a, b, c, oc);
    }, q, k, v);
  }
  const Tensor& mask = o.attn_mask_;
  raw::AttentionResult r = raw::scaled_dot_product_attention(q, k, v, mask, o.dropout_p_, o.is_causal_, o.scale_,
                                                             o.need_weights_);
  // An additive float mask (a learned bias such as ALiBi or relative positions) gets a
  // gradient too, as in PyTorch's math backend.
  const bool mask_grad = mask.defined() && mask.is_floating_point() && needs_grad(mask);
  if (needs_grad(q, k, v) || mask_grad) {
    const bool weights_out = r.weights.defined();
    std::vector<Tensor> outputs{r.out};
    if (weights_out) outputs.push_back(r.weights);
    const Shape qs = q.shape(), kshape = k.shape(), vs = v.shape(), ms = mask_grad ? mask.shape() : Shape{};
    // Saved: q, k, v, the mask (any dtype: the backward recomputes the scores), the output
    // and the row logsumexp [B..., L]; never the [B..., L, S] probabilities.
    record("ScaledDotProductAttentionBackward0", {q, k, v, mask_grad ? mask : Tensor()}, outputs,
           {save(q), save(k), save(v), save(mask), save(r.out, true), save(r.lse)},
           [r_batch = r.batch, scale = r.scale, p = o.dropout_p_, causal = o.is_causal_, rng = r.rng, flash = r.flash,
            weights_out,
            qs, kshape, vs, ms](BackwardContext& c) {
             // With W = dropout(P), P = softmax(Z) = exp(Z - lse), Z = scale * q k^T + mask, out = W v
             // (P recomputed from q, k, mask and lse by the kernel):
             //   grad_v = W^T grad            : [.., S, L] x [.., L, Ev] -> [.., S, Ev]
             //   dW = grad v^T (+ grad_weights): [.., L, Ev] x [.., Ev, S] -> [.., L, S]
             //   dZ = P * (dropout'(dW) - D), D = rowsum(grad * out) (+ rowsum(grad_weights * W))
             //   grad_mask = dZ
             //   grad_q = scale * dZ k        : [.., L, S] x [.., S, E] -> [.., L, E]
             //   grad_k = scale * dZ^T q      : [.., S, L] x [.., L, E] -> [.., S, E]
             // computed at the broadcast batch shape, then summed to each input's shape.
             FOCUS_CHECK(!GradMode::is_enabled(),
                         "[backward] double backward (create_graph=true) through ScaledDotProductAttentionBackward0 "
                         "is not supported");
             raw::AttentionGrads g = raw::scaled_dot_product_attention_backward(
                 c.grad(0), weights_out ? c.grad(1) : Tensor(), c.saved(0), c.saved(1), c.saved(2), c.saved(3),
                 causal, c.saved(4), c.saved(5), r_batch, scale, p, rng, c.needs_input_grad(0),
                 c.needs_input_grad(1), c.needs_input_grad(2), c.needs_input_grad(3), flash);
             return grads(g.q.defined() ? sum_to(g.q, qs) : Tensor(), g.k.defined() ? sum_to(g.k, kshape) : Tensor(),
                          g.v.defined() ? sum_to(g.v, vs) : Tensor(), g.mask.defined() ? sum_to(g.mask, ms) : Tensor());
           });
  }
  return {r.out, r.weights};
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask,
                                    double dropout_p, bool is_causal, std::optional<double> scale) {
  AttentionOptions o;
  o.attn_mask(attn_mask).dropout_p(dropout_p).is_causal(is_causal);
  o.scale_ = scale;
  return std::get<0>(scaled_dot_product_attention(q, k, v, o));
}

}  // namespace focus
