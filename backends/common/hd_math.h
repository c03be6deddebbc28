#pragma once
/// Scalar math for FOCUS_HD code, one name for float and double: the CUDA device functions
/// in nvcc's device pass, <cmath> elsewhere (so the CPU's vectorizer still sees std::fma,
/// std::sqrt, ...). Every function here is correctly rounded on both sides (fma, mul_rn,
/// sqrt) except exp and log, whose last bits may differ between the devices.
#include <cmath>
#include <limits>

#include "backends/common/hd.h"

namespace focus::common {

FOCUS_HD float hd_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
FOCUS_HD double hd_fma(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

/// a * b correctly rounded, and never contracted with a following addition into an fma
/// (nvcc contracts by default, GCC with -ffp-contract=fast, the default of C++): on the
/// device the _rn intrinsic, which the compiler leaves alone; on the host fma(a, b, -0),
/// which is exactly the rounded product (-0 is the additive identity for every product,
/// +0 and -0 included) and which GCC keeps as it is, vectorized.
FOCUS_HD float hd_mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return std::fma(a, b, -0.0f);
#endif
}
FOCUS_HD double hd_mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return std::fma(a, b, -0.0);
#endif
}

FOCUS_HD float hd_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}
FOCUS_HD double hd_sqrt(double x) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

FOCUS_HD float hd_exp(float x) {
#if defined(__CUDA_ARCH__)
  return ::expf(x);
#else
  return std::exp(x);
#endif
}
FOCUS_HD double hd_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return std::exp(x);
#endif
}

FOCUS_HD float hd_log(float x) {
#if defined(__CUDA_ARCH__)
  return ::logf(x);
#else
  return std::log(x);
#endif
}
FOCUS_HD double hd_log(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  return std::log(x);
#endif
}

template <typename A> FOCUS_HD A hd_inf() { return std::numeric_limits<A>::infinity(); }
template <typename A> FOCUS_HD A hd_nan() { return std::numeric_limits<A>::quiet_NaN(); }
/// +inf or -inf (NaN is not).
template <typename A> FOCUS_HD bool hd_isinf(A x) { return x == hd_inf<A>() || x == -hd_inf<A>(); }

}  // namespace focus::common
