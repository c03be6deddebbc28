#pragma once
/// Reduction math written once for the CPU and the GPU (FOCUS_HD): the merges that partial
/// results of a reduction are combined with, so that a tree of partial results (CUDA
/// blocks and warps, CPU chunks) gives what one sequential pass gives.
///   - Welford running (count, mean, M2) and Chan's merge of two of them (variance in one
///     pass, mergeable in any order);
///   - max/min that propagate NaN (reduce's Max, Min and the +-inf norms);
///   - the arg-max/arg-min order (first NaN wins, then the extreme value, then the lowest
///     index): a total order, so partial (value, index) pairs merge in any order and still
///     give the first occurrence;
///   - the per-element maps of the p-norms.
/// Arguments are float, double or integer types (16-bit floats are widened first).
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "backends/common/hd.h"

namespace focus::common {

// ---- NaN-aware max / min ------------------------------------------------------------------

template <typename T> FOCUS_HD bool is_nan_value(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

/// max(a, b), NaN as soon as either is NaN (once the running value is NaN it stays NaN).
template <typename T> FOCUS_HD T max_propagate_nan(T a, T b) { return (b > a || is_nan_value(b)) ? b : a; }
/// min(a, b), NaN as soon as either is NaN.
template <typename T> FOCUS_HD T min_propagate_nan(T a, T b) { return (b < a || is_nan_value(b)) ? b : a; }

// ---- arg max / arg min ------------------------------------------------------------------------

/// True when candidate value b (at index ib) beats the current best a (at index ia) for
/// argmax (IsMax) or argmin: a NaN beats every number, then the larger (smaller) value
/// wins, and among equal values (or two NaNs) the lower index. Scanning indices in order
/// and keeping the winner gives the first occurrence of the extreme value, or the first NaN.
template <bool IsMax, typename T> FOCUS_HD bool arg_better(T b, int64_t ib, T a, int64_t ia) {
  const bool an = is_nan_value(a), bn = is_nan_value(b);
  if (an || bn) return bn && (!an || ib < ia);
  if (b == a) return ib < ia;
  if constexpr (IsMax) return b > a;
  else return b < a;
}

// ---- p-norm element maps --------------------------------------------------------------------

/// |x| for float and double (no integer overloads needed: norms take floating inputs).
template <typename T> FOCUS_HD T abs_value(T x) {
  if constexpr (std::is_same_v<T, float>) return fabsf(x);
  else return fabs(x);
}

template <typename T> FOCUS_HD T pow_value(T x, T p) {
  if constexpr (std::is_same_v<T, float>) return powf(x, p);
  else return pow(x, p);
}

/// What one element adds to the sum of a p-norm: Kind 0 counts nonzeros (p = 0), 1 is |x|,
/// 2 is x * x, anything else |x|^p.
template <int Kind, typename T> FOCUS_HD T norm_term(T x, T p) {
  if constexpr (Kind == 0) return x != T(0) ? T(1) : T(0);
  else if constexpr (Kind == 1) return abs_value(x);
  else if constexpr (Kind == 2) return x * x;
  else return pow_value(abs_value(x), p);
}

/// The norm's Kind (see norm_term) for a finite order p.
FOCUS_HD int norm_kind(double p) { return p == 0 ? 0 : p == 1 ? 1 : p == 2 ? 2 : 3; }

// ---- Welford / Chan --------------------------------------------------------------------------

/// A running mean and sum of squared deviations M2 over count values. The count is kept in
/// the accumulation type A (float or double), as the merge divides by it.
template <typename A> struct Welford {
  A count;
  A mean;
  A m2;
};

template <typename A> FOCUS_HD Welford<A> welford_empty() { return Welford<A>{A(0), A(0), A(0)}; }

/// Adds one value (Welford's update).
template <typename A> FOCUS_HD void welford_add(Welford<A>& s, A x) {
  s.count += A(1);
  const A d = x - s.mean;
  s.mean += d / s.count;
  s.m2 += d * (x - s.mean);
}

/// The state of the values of a and of b together (Chan, Golub and LeVeque's pairwise
/// merge); either may be empty.
template <typename A> FOCUS_HD Welford<A> welford_merge(const Welford<A>& a, const Welford<A>& b) {
  if (b.count == A(0)) return a;
  if (a.count == A(0)) return b;
  const A n = a.count + b.count;
  const A d = b.mean - a.mean;
  const A wb = b.count / n;
  return Welford<A>{n, a.mean + d * wb, a.m2 + b.m2 + d * d * a.count * wb};
}

/// M2 / max(0, count - correction): the population variance for correction 0, the sample
/// variance for 1 (nan or inf when the count does not exceed the correction, as PyTorch).
template <typename A> FOCUS_HD A welford_var(const Welford<A>& s, A correction) {
  const A denom = s.count - correction;
  return s.m2 / (denom > A(0) ? denom : A(0));
}

}  // namespace focus::common
