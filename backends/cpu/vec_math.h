#pragma once
/// Branch-free float32 exp/tanh/sigmoid/erf/GELU helpers that GCC vectorizes inside
/// elementwise loops (glibc's scalar expf/tanhf/erff block vectorization). float64 uses
/// <cmath>.
/// Accuracy (float32, measured against float64 over the whole float range):
///   vexp      <= 1 ulp, subnormal results included; 0 below -103.97, inf above 88.72
///   vtanh     <= 2 ulp
///   vsigmoid  <= 3 ulp, both tails (subnormal results included)
///   verf      1.5e-7 absolute (Abramowitz & Stegun 7.1.26); relative error is poor near 0
///   vnormal_cdf_pdf: Phi(x) and phi(x) with relative error <= ~1e-6 in both tails (the
///             GELU forward and backward use it, so gelu(x) keeps relative accuracy for
///             negative x instead of cancelling in 1 + erf(x / sqrt 2)).
#include <bit>
#include <cmath>
#include <cstdint>

// Forced inlining: a call left out of line (GCC's inliner gives up on the bigger
// callers, e.g. the GELU backward) makes the whole elementwise loop scalar.
#if defined(__GNUC__)
#define FOCUS_VEC_INLINE inline __attribute__((always_inline))
#else
#define FOCUS_VEC_INLINE inline
#endif

namespace focus::cpu {

// e^r 2^n for the reduced argument r (|r| <= ~ln2 / 2) and n in [-150, 129]: the
// polynomial and the scaling shared by vexp and vexp_parts.
FOCUS_VEC_INLINE float vexp_reduced(float r, float n) {
  const float z = r * r;
  float y = 1.9875691500E-4f;
  y = y * r + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  y = y * z + r + 1.0f;
  // 2^n as two normal factors, so results down in the subnormal range (n < -126) and up
  // to the overflow threshold are one correctly rounded scaling of y.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  const float s1 = std::bit_cast<float>((n1 + 127) << 23);
  const float s2 = std::bit_cast<float>((n2 + 127) << 23);
  return (y * s1) * s2;
}

// n = round(x / ln2) by the 1.5 * 2^23 trick: std::floor would be a libm call that blocks
// vectorization (GCC only vectorizes it with -fno-trapping-math).
FOCUS_VEC_INLINE float vexp_n(float x) {
  const float shifter = 12582912.0f;  // 1.5 * 2^23
  return (x * 1.44269504088896341f + shifter) - shifter;
}

FOCUS_VEC_INLINE float vexp(float x) {
  // Clamp first so n stays in [-150, 129] (NaN maps to a finite value here and is
  // restored at the end, so the int conversion below is always defined).
  float xc = x < 89.0f ? x : 89.0f;
  xc = xc > -104.0f ? xc : -104.0f;
  const float n = vexp_n(xc);
  // Cody-Waite reduction: r = x - n ln2 with ln2 split in two (the first part has 9 bits,
  // so n * 0.693359375 is exact).
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float res = vexp_reduced(r, n);
  return x != x ? x : res;
}
FOCUS_VEC_INLINE double vexp(double x) { return std::exp(x); }

/// exp(a + b) for an argument given in two parts: a exact (e.g. -h^2 / 2 of a 12-bit h) and
/// b small (|b| of order 1). One range reduction on a, b added to the reduced argument, so
/// the result keeps the accuracy of vexp even where a + b would round (|a + b| up to ~100
/// has an ulp of ~1e-5). Results below exp's underflow threshold are 0; a + b must stay
/// below exp's overflow threshold (88.7).
FOCUS_VEC_INLINE float vexp_parts(float a, float b) {
  const float x = a + b;
  const float n = vexp_n(x > -104.0f ? x : -104.0f);  // n in range (x < -104 gives 0 below)
  // a - n ln2_hi is exact (Sterbenz: a is within a factor 2 of n ln2_hi once |a| > ~2|b| + 1).
  float r = a - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float res = vexp_reduced(r + b, n);
  return x < -104.0f ? 0.0f : res;
}

FOCUS_VEC_INLINE float vtanh(float x) {
  const float ax = std::fabs(x);
  // Small |x|: odd polynomial (Cephes tanhf); large: 1 - 2 / (exp(2|x|) + 1).
  const float z = x * x;
  float p = -5.70498872745E-3f;
  p = p * z + 2.06390887954E-2f;
  p = p * z - 5.37397155531E-2f;
  p = p * z + 1.33314422036E-1f;
  p = p * z - 3.33332819422E-1f;
  const float small = p * z * x + x;
  const float big = 1.0f - 2.0f / (vexp(2.0f * ax) + 1.0f);
  const float large = x < 0 ? -big : big;
  return ax < 0.625f ? small : large;
}
FOCUS_VEC_INLINE double vtanh(double x) { return std::tanh(x); }

// 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) for x < 0: never overflows, and keeps
// relative accuracy in the negative tail (down into subnormals).
FOCUS_VEC_INLINE float vsigmoid(float x) {
  const float e = vexp(-std::fabs(x));
  const float s = 1.0f / (1.0f + e);
  return x >= 0 ? s : (x != x ? x : e * s);
}
FOCUS_VEC_INLINE double vsigmoid(double x) {
  const double e = std::exp(-std::fabs(x));
  const double s = 1.0 / (1.0 + e);
  return x >= 0 ? s : (x != x ? x : e * s);
}

FOCUS_VEC_INLINE float verf(float x) {
  const float ax = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.0f - p * t * vexp(-ax * ax);
  return x < 0 ? -y : y;
}
FOCUS_VEC_INLINE double verf(double x) { return std::erf(x); }

/// Standard normal cdf Phi(x) and pdf phi(x) (the GELU pieces). float32: erfc(|x|/sqrt 2)
/// by the Chebyshev fit of Numerical Recipes' erfcc (relative error < 1.2e-7), with
/// x^2 / 2 kept to full precision by splitting x into a 12-bit head and a tail, so the
/// tails keep relative accuracy (no 1 + erf cancellation). NaN propagates.
FOCUS_VEC_INLINE void vnormal_cdf_pdf(float x, float& cdf, float& pdf) {
  const float ax = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.353553390593273762f * ax);  // 1 / (1 + z/2), z = |x|/sqrt 2
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  // x^2 = h^2 + d with h the head of x (h^2 exact in float32), d = (ax - h)(ax + h), and
  // exp(-x^2 / 2 + p) = vexp_parts(-h^2 / 2, p - d / 2): one exp, no rounding of the large
  // argument. Huge |x| (where even h^2 would overflow) are clamped: their results are 0/1.
  const float axc = ax < 1e18f ? ax : 1e18f;
  const float h = std::bit_cast<float>(std::bit_cast<uint32_t>(axc) & 0xFFFFF000u);
  const float d = (axc - h) * (axc + h);
  const float a = -0.5f * (h * h);
  const float q = t * vexp_parts(a, p - 0.5f * d);  // erfc(|x| / sqrt 2)
  const float half_q = 0.5f * q;
  cdf = x < 0 ? half_q : 1.0f - half_q;
  cdf = x != x ? x : cdf;
  pdf = vexp_parts(a, -0.5f * d) * 0.398942280401432678f;
  pdf = x != x ? x : pdf;
}
FOCUS_VEC_INLINE void vnormal_cdf_pdf(double x, double& cdf, double& pdf) {
  cdf = 0.5 * std::erfc(-x * 0.70710678118654752440);
  pdf = std::exp(-0.5 * x * x) * 0.398942280401432678;
}

}  // namespace focus::cpu
