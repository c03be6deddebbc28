#pragma once
/// Raw scaled dot-product attention: validation, allocation and dispatch to the fused
/// forward/backward kernels (no autograd). The differentiable version is
/// focus::scaled_dot_product_attention (autograd/functions/attention.cpp).
///
/// Batch dims: q [..., L, E], k [..., S, E] and v [..., S, Ev] may differ in their leading
/// (batch) dims as long as they broadcast together, as with matmul (e.g. k/v [B, 1, S, E]
/// shared by all heads of q [B, H, L, E]). The kernels read broadcast inputs through
/// stride-0 views, never copies; gradients come back at the broadcast shape and the
/// autograd function reduces them to each input's shape.
#include <initializer_list>
#include <optional>

#include "backends/backend.h"
#include "core/random.h"
#include "core/tensor.h"

namespace focus {

/// The implementations of scaled_dot_product_attention, as torch.nn.attention.SDPBackend:
/// Math is the composed path (scores of a block of query rows materialized, then softmax,
/// then the product with v); FlashAttention is FlashAttention-2's tiling with the online
/// softmax (backends/common/flash.h), which never holds [L, S] and never returns weights.
/// By default both are allowed and flash is taken wherever the device supports it (CUDA:
/// float16/bfloat16, or float32 when set_float32_matmul_precision allows TF32, head dims
/// 32, 64, 128; the CPU's flash path is the host tiling, taken only when Math is disallowed).
enum class SDPBackend { Math, FlashAttention };

/// Restricts scaled_dot_product_attention on this thread to the listed backends while it
/// lives, as `with torch.nn.attention.sdpa_kernel([...])`; guards nest and restore.
/// A call none of the allowed backends can take is an error naming why.
class SdpaKernelGuard {
 public:
  explicit SdpaKernelGuard(std::initializer_list<SDPBackend> allowed);
  ~SdpaKernelGuard();
  SdpaKernelGuard(const SdpaKernelGuard&) = delete;
  SdpaKernelGuard& operator=(const SdpaKernelGuard&) = delete;

 private:
  unsigned saved_;
};

/// Whether scaled_dot_product_attention may use the backend on this thread now.
bool sdp_backend_allowed(SDPBackend b);

}  // namespace focus

namespace focus::raw {

struct AttentionResult {
  Tensor out;      // [B..., L, Ev], contiguous
  Tensor lse;      // [B..., L] row logsumexp of the masked, scaled scores, contiguous, float32
                   // (float64 for float64 inputs);
                   // +inf on rows with no allowed key (saved for backward instead of [B..., L, S])
  Tensor weights;  // [B..., L, S] softmax after dropout, only when need_weights
  Shape batch;     // the broadcast batch dims B...
  double scale = 1;
  RandomState rng;  // the dropout stream (regenerated in backward, so no mask is stored)
  bool flash = false;  // computed by the flash kernels (the backward then uses them too)
};

/// Validates and runs the forward; attn_mask (optional) is bool (true = attend) or of q's
/// dtype (added to the scores), broadcast to [B..., L, S]; is_causal must not come with a
/// mask; rng is drawn from gen (default generator when null) only when dropout_p > 0.
/// Allocates [B..., L, S] only for the returned weights (need_weights).
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& attn_mask, double dropout_p, bool is_causal,
                                             std::optional<double> scale, bool need_weights,
                                             Generator* gen = nullptr);

struct AttentionGrads {
  Tensor q, k, v, mask;  // at the broadcast batch shape; undefined where not requested
};

/// Gradients of the forward above, recomputing the probabilities from q, k, attn_mask,
/// is_causal, scale and lse (all as given to / returned by the forward, with r.out as out).
/// grad_weights (the gradient of r.weights) may be undefined. want_* select outputs.
AttentionGrads scaled_dot_product_attention_backward(const Tensor& grad_out, const Tensor& grad_weights,
                                                     const Tensor& q, const Tensor& k, const Tensor& v,
                                                     const Tensor& attn_mask, bool is_causal, const Tensor& out,
                                                     const Tensor& lse, const Shape& batch, double scale,
                                                     double dropout_p, RandomState rng, bool want_q, bool want_k,
                                                     bool want_v, bool want_mask, bool flash = false);

}  // namespace focus::raw
