#include "core/ops/attention.h"

#include <climits>
#include <cmath>

#include "core/ops/common.h"

namespace focus {

namespace {
constexpr unsigned bit(SDPBackend b) { return 1u << static_cast<unsigned>(b); }
constexpr unsigned kAllBackends = bit(SDPBackend::Math) | bit(SDPBackend::FlashAttention);
thread_local unsigned g_allowed = kAllBackends;
}  // namespace

SdpaKernelGuard::SdpaKernelGuard(std::initializer_list<SDPBackend> allowed) : saved_(g_allowed) {
  unsigned m = 0;
  for (SDPBackend b : allowed) m |= bit(b);
  FOCUS_CHECK(m != 0, "[sdpa_kernel] expected at least one backend, got an empty list");
  g_allowed = m;
}
SdpaKernelGuard::~SdpaKernelGuard() { g_allowed = saved_; }
bool sdp_backend_allowed(SDPBackend b) { return (g_allowed & bit(b)) != 0; }

}  // namespace focus

namespace focus::raw {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

Shape lead(const Shape& s) { return Shape(s.begin(), s.end() - 2); }
Shape with(const Shape& batch, int64_t a, int64_t b) {
  Shape s = batch;
  s.push_back(a);
  s.push_back(b);
  return s;
}

}  // namespace

AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& attn_mask, double dropout_p, bool is_causal,
                                             std::optional<double> scale, bool need_weights, Generator* gen) {
  check_defined(q, kOp, "query");
  check_defined(k, kOp, "key");
  check_defined(v, kOp, "value");
  check_floating(q, kOp, "query");
  FOCUS_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(),
              "[{}] expected query, key and value of one dtype, got {}, {} and {}", kOp, q.dtype(), k.dtype(),
              v.dtype());
  check_same_device(q, k, kOp);
  check_same_device(q, v, kOp);
  FOCUS_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2,
              "[{}] query, key and value need at least 2 dims ([..., L, E]), got {}, {} and {}", kOp, q.shape(),
              k.shape(), v.shape());
  FOCUS_CHECK(q.size(-1) == k.size(-1), "[{}] query and key must have the same embedding size, got {} and {}", kOp,
              q.shape(), k.shape());
  FOCUS_CHECK(k.size(-2) == v.size(-2), "[{}] key and value must have the same sequence length, got {} and {}", kOp,
              k.shape(), v.shape());
  FOCUS_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, "[{}] dropout_p must be between 0 and 1, got {}", kOp,
              dropout_p);
  FOCUS_CHECK(!(is_causal && attn_mask.defined()), "[{}] explicit attn_mask should not be set when is_causal=True",
              kOp);
  const int64_t L = q.size(-2), S = k.size(-2), E = q.size(-1), Ev = v.size(-1);
  FOCUS_CHECK(L <= INT_MAX && S <= INT_MAX && E <= INT_MAX && Ev <= INT_MAX,
              "[{}] sequence and embedding sizes must fit in 32 bits, got query {}, key {}, value {}", kOp, q.shape(),
              k.shape(), v.shape());
  const Shape batch = broadcast_shapes(broadcast_shapes(lead(q.shape()), lead(k.shape()), kOp), lead(v.shape()), kOp);
  const Shape score_shape = with(batch, L, S);

  AttentionResult r;
  r.batch = batch;
  r.scale = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(E));
  TensorView mask_view;
  mask_view.data = nullptr;
  if (attn_mask.defined()) {
    FOCUS_CHECK(attn_mask.dtype() == kBool || attn_mask.dtype() == q.dtype(),
                "[{}] attn_mask must be bool or of the query's dtype {}, got {}", kOp, q.dtype(), attn_mask.dtype());
    check_same_device(q, attn_mask, kOp);
    const bool ok = attn_mask.dim() <= static_cast<int64_t>(score_shape.size()) &&
                    [&] {
                      for (int64_t d = 1; d <= attn_mask.dim(); ++d) {
                        const int64_t m = attn_mask.size(-d), t = score_shape[score_shape.size() - d];
                        if (m != t && m != 1) return false;
                      }
                      return true;
                    }();
    FOCUS_CHECK(ok, "[{}] attn_mask of shape {} cannot be broadcast to the attention scores' shape {}", kOp,
                attn_mask.shape(), score_shape);
  }

  const int64_t n_scores = checked_numel(score_shape, kOp);
  if (dropout_p > 0) {
    // A captured CUDA graph would replay one mask for ever: refused, as dropout is.
    backend_of(q).fail_if_capturing(kOp, "dropout_p > 0 draws random numbers");
    Generator& g = gen ? *gen : default_generator();
    r.rng = g.next(static_cast<uint64_t>(n_scores));
  }
  Backend& be = backend_of(q);
  const bool flash_ok = !need_weights && be.flash_attention_supports(q.dtype(), E, Ev);
  const bool math_ok = sdp_backend_allowed(SDPBackend::Math);
  if (sdp_backend_allowed(SDPBackend::FlashAttention) && flash_ok && (q.device().is_cuda() || !math_ok)) r.flash = true;
  FOCUS_CHECK(r.flash || math_ok,
              "[{}] no allowed backend can run this call: flash attention was the only one allowed, and it {} "
              "(query {}, key {}, value {}, {}, on {})",
              kOp, need_weights ? "returns no attention weights (need_weights)" : "does not take these dtypes or head dims",
              q.shape(), k.shape(), v.shape(), q.dtype(), q.device());
  r.out = empty(with(batch, L, Ev), q.dtype(), q.device());
  Shape lse_shape = batch;
  lse_shape.push_back(L);
  r.lse = empty(lse_shape, q.dtype() == kFloat64 ? kFloat64 : kFloat32, q.device());
  TensorView weights_view;
  weights_view.data = nullptr;
  if (need_weights) {
    r.weights = empty(score_shape, q.dtype(), q.device());
    weights_view = make_view(r.weights);
  }
  if (r.lse.numel() == 0) return r;  // no query row: out is empty too
  if (attn_mask.defined()) mask_view = make_view(attn_mask, score_shape);
  if (r.flash)
    be.flash_attention_forward(make_view(r.out), make_view(r.lse), make_view(q, with(batch, L, E)),
                               make_view(k, with(batch, S, E)), make_view(v, with(batch, S, Ev)), mask_view,
                               is_causal, r.scale, dropout_p, r.rng);
  else
    be.attention_forward(make_view(r.out), make_view(r.lse), weights_view, make_view(q, with(batch, L, E)),
                         make_view(k, with(batch, S, E)), make_view(v, with(batch, S, Ev)), mask_view, is_causal,
                         r.scale, dropout_p, r.rng);
  return r;
}

AttentionGrads scaled_dot_product_attention_backward(const Tensor& grad_out, const Tensor& grad_weights,
                                                     const Tensor& q, const Tensor& k, const Tensor& v,
                                                     const Tensor& attn_mask, bool is_causal, const Tensor& out,
                                                     const Tensor& lse, const Shape& batch, double scale,
                                                     double dropout_p, RandomState rng, bool want_q, bool want_k,
                                                     bool want_v, bool want_mask, bool flash) {
  const int64_t L = q.size(-2), S = k.size(-2), E = q.size(-1), Ev = v.size(-1);
  const DType dt = q.dtype();
  const Shape score_shape = with(batch, L, S);
  auto cast = [&](const Tensor& t) { return t.dtype() == dt ? t : to_contiguous(t, dt, t.device()); };
  // out and lse are the forward's own (contiguous) results; copy only if handed a view.
  auto dense = [&](const Tensor& t, DType want) {
    return t.is_contiguous() && t.dtype() == want ? t : to_contiguous(t, want, t.device());
  };
  AttentionGrads g;
  TensorView none;
  none.data = nullptr;
  auto alloc = [&](bool want, Tensor& t, const Shape& shape) {
    if (!want) return none;
    t = empty(shape, dt, q.device());
    return make_view(t);
  };
  const TensorView gq = alloc(want_q, g.q, with(batch, L, E));
  const TensorView gk = alloc(want_k, g.k, with(batch, S, E));
  const TensorView gv = alloc(want_v, g.v, with(batch, S, Ev));
  const TensorView gm = alloc(want_mask, g.mask, score_shape);
  if (lse.numel() == 0) {
    // No query row: every requested gradient is empty or zero.
    for (Tensor* t : {&g.q, &g.k, &g.v, &g.mask})
      if (t->defined() && t->numel() > 0) backend_of(q).fill(make_view(*t), 0);
    return g;
  }
  const Tensor gw_t = grad_weights.defined() ? cast(grad_weights) : Tensor();
  const TensorView gw = gw_t.defined() ? make_view(gw_t, score_shape) : none;
  const TensorView mask_view = attn_mask.defined() ? make_view(attn_mask, score_shape) : none;
  const Tensor out_c = dense(out, dt), lse_c = dense(lse, dt == kFloat64 ? kFloat64 : kFloat32);
  if (flash) {
    FOCUS_CHECK(!gw_t.defined(), "[{}] the flash backward takes no gradient of attention weights", kOp);
    backend_of(q).flash_attention_backward(gq, gk, gv, gm, make_view(cast(grad_out), with(batch, L, Ev)),
                                           make_view(q, with(batch, L, E)), make_view(k, with(batch, S, E)),
                                           make_view(v, with(batch, S, Ev)), mask_view, is_causal,
                                           make_view(out_c, with(batch, L, Ev)), make_view(lse_c), scale, dropout_p,
                                           rng);
    return g;
  }
  backend_of(q).attention_backward(gq, gk, gv, gm, make_view(cast(grad_out), with(batch, L, Ev)), gw,
                                   make_view(q, with(batch, L, E)), make_view(k, with(batch, S, E)),
                                   make_view(v, with(batch, S, Ev)), mask_view, is_causal,
                                   make_view(out_c, with(batch, L, Ev)), make_view(lse_c), scale, dropout_p, rng);
  return g;
}

}  // namespace focus::raw
