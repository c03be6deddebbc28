#pragma once
/// Per-row and per-element formulas of the class-indexed losses and of dropout, as the CPU
/// kernels (backends/cpu/loss.cpp) compute them, written once for the CUDA kernels and the
/// CPU tests (tests/backends/test_fused_math.cpp checks the gradients against the losses).
#include <cstdint>

#include "backends/common/hd.h"

namespace focus::common {

/// Cross entropy of one row without class weights, in double, from the row's log-sum-exp,
/// the target's logit and (with label smoothing eps > 0) the sum of the row's logits:
///   (1 - eps) (lse - x_t) + eps / C sum_c (lse - x_c) = lse - (1 - eps) x_t - eps / C sum_c x_c.
FOCUS_HD double cross_entropy_row(double lse, double x_t, double eps, int64_t C, double sum_x) {
  double v = lse - (1 - eps) * x_t;
  if (eps > 0) v -= eps / static_cast<double>(C) * sum_x;
  return v;
}

/// Cross entropy of one row with class weights: w_t the target's weight and (with eps > 0)
/// acc = sum_c w_c (lse - x_c):
///   (1 - eps) w_t (lse - x_t) + eps / C acc.
FOCUS_HD double cross_entropy_row_weighted(double lse, double x_t, double w_t, double eps, int64_t C, double acc) {
  double v = (1 - eps) * w_t * (lse - x_t);
  if (eps > 0) v += eps / static_cast<double>(C) * acc;
  return v;
}

/// d loss / d x_c of an unweighted row times the row's gradient scale s, from p_c =
/// exp(x_c - lse), off = eps / C and on = 1 - eps (both rounded to the logits' type):
///   (p_c - off) s, minus on s at the target.
template <typename A> FOCUS_HD A cross_entropy_grad(A p, A off, A on, A s, bool is_target) {
  A v = (p - off) * s;
  if (is_target) v -= on * s;
  return v;
}

/// The weighted row's coefficient of p_c: ((1 - eps) w_t + eps / C W) with W = sum_c w_c,
/// in double (the caller rounds it to the logits' type before multiplying by s).
FOCUS_HD double cross_entropy_grad_coef(double w_t, double eps, int64_t C, double wsum) {
  return (1 - eps) * w_t + eps / static_cast<double>(C) * wsum;
}

/// d loss / d x_c of a weighted row times s: with a = coef * s and os = off * s,
///   p_c a - os w_c, minus on w_t s at the target.
template <typename A> FOCUS_HD A cross_entropy_grad_weighted(A p, A a, A os, A w_c, A on, A w_t, A s, bool is_target) {
  A v = p * a - os * w_c;
  if (is_target) v -= on * w_t * s;
  return v;
}

/// dropout's scale of kept elements: 1 / (1 - p), 0 when p == 1.
FOCUS_HD double dropout_scale(double p) { return p < 1 ? 1.0 / (1.0 - p) : 0.0; }

}  // namespace focus::common
