#pragma once
/// Per-row math of the fused softmax, log-softmax, cross-entropy and layer-norm kernels,
/// written once for the host and the device: the online max/sum of a softmax row
/// (Milakov & Gimelshein, 2018), with a push of one value and a merge of two partial
/// states, so a row may be split over the lanes of a warp or a block in any way, and the
/// layer-norm formulas (its mean and variance are backends/common/welford.h's Welford
/// state, shared with the reductions). A is the accumulation type (float or double). The
/// states are plain aggregates without constructors (usable in __shared__ memory): start
/// from *_empty().
#include "backends/common/hd.h"
#include "backends/common/hd_math.h"
#include "backends/common/welford.h"

namespace focus::common {

// ---- online softmax statistics -------------------------------------------------------------

/// max over the values pushed (NaN never becomes the max) and sum of exp(x - max).
template <typename A> struct MaxSum {
  A max;
  A sum;
};

template <typename A> FOCUS_HD MaxSum<A> maxsum_empty() { return MaxSum<A>{-hd_inf<A>(), A(0)}; }

/// The state with x added. Edge cases give what the two-pass computation (max first, then
/// sum of exp(x - max)) gives: a NaN or a +inf value makes the sum NaN (exp(inf - inf)),
/// -inf values add nothing, and a state that saw only -inf keeps max = -inf, sum = 0.
template <typename A> FOCUS_HD MaxSum<A> maxsum_push(MaxSum<A> s, A x) {
  if (x > s.max) {
    // exp(x - x) is 1, or NaN for x = +inf, as the two-pass sum would see it.
    s.sum = s.sum * hd_exp(s.max - x) + hd_exp(x - x);
    s.max = x;
  } else if (x != -hd_inf<A>()) {
    s.sum += hd_exp(x - s.max);  // NaN x: NaN; x = max = +inf: NaN
  }
  return s;
}

/// One state's sum rescaled to a larger max m.
template <typename A> FOCUS_HD A maxsum_scaled(MaxSum<A> s, A m) {
  // A state that saw only -inf (or nothing) has sum 0 (or NaN, kept): no exp(-inf - -inf).
  if (s.max == -hd_inf<A>()) return s.sum * A(0);
  return s.sum * hd_exp(s.max - m);  // max = m = +inf: NaN, as exp(inf - inf)
}

template <typename A> FOCUS_HD MaxSum<A> maxsum_merge(MaxSum<A> a, MaxSum<A> b) {
  const A m = a.max > b.max ? a.max : b.max;
  return MaxSum<A>{m, maxsum_scaled(a, m) + maxsum_scaled(b, m)};
}

/// log(sum exp x) of a finished row: max itself when it is infinite (an empty or all -inf
/// row gives -inf, a row with +inf gives +inf), as the CPU's cross_entropy does.
template <typename A> FOCUS_HD A maxsum_lse(MaxSum<A> s) { return hd_isinf(s.max) ? s.max : s.max + hd_log(s.sum); }

/// softmax of x in its finished row: exp(x - max) * (1 / sum), where inv_sum = 1 / sum.
template <typename A> FOCUS_HD A softmax_value(A x, A max, A inv_sum) { return hd_exp(x - max) * inv_sum; }
/// log_softmax of x in its finished row: (x - max) - log(sum), where log_sum = log(sum).
template <typename A> FOCUS_HD A log_softmax_value(A x, A max, A log_sum) { return (x - max) - log_sum; }

// ---- layer norm ----------------------------------------------------------------------------

/// 1 / sqrt(var + eps) of the population variance (welford_var(s, 0)), as the CPU's
/// layer_norm computes it (not rsqrt: correctly rounded).
template <typename A> FOCUS_HD A layer_norm_rstd(A var, A eps) { return A(1) / hd_sqrt(var + eps); }

/// The gradient of one element of a normalized row: with dn = w * dout, n = (x - mean) *
/// rstd, a = mean(dn) and b = mean(dn * n) over the row,
///   dx = (dn - a - n * b) * rstd.
template <typename A> FOCUS_HD A layer_norm_dx(A dn, A n, A a, A b, A rstd) { return (dn - a - n * b) * rstd; }

/// add_layer_norm's gradient of one element of sum = x + residual: the norm's input
/// gradient (layer_norm_dx) plus dsum, the gradient that reached sum directly. The product
/// is rounded before the addition (hd_mul_rn: never contracted into an fma), so in float
/// and double the result has the bits of the composed layer_norm(x + residual), whose
/// backward adds the two gradients of sum as separate tensors. For 16-bit types the
/// composed path rounds dx to 16 bits before the addition: kernels for them round
/// layer_norm_dx themselves and add in A instead of calling this.
template <typename A> FOCUS_HD A add_layer_norm_dx(A dn, A n, A a, A b, A rstd, A dsum) {
  return hd_mul_rn(dn - a - n * b, rstd) + dsum;
}

}  // namespace focus::common
