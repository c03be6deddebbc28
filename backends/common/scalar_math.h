#pragma once
/// The per-element math of the elementwise and random kernels, written once for the host
/// and the device: the CUDA kernels call these functions (in float for float32/float16/
/// bfloat16, in double for float64, in the integer type for integers), and the CPU tests
/// check them against backends/cpu/elementwise.cpp and cpu_backend.cpp, whose semantics
/// they follow (NaN handling, the stable sigmoid, the exact (erf) GELU and its tanh form,
/// softplus's beta/threshold, integer pow and division, the random draws' formulas).
///
/// The CPU's float32 loops keep their own vectorized approximations (cpu/vec_math.h:
/// vexp, vtanh, vsigmoid, vnormal_cdf_pdf), so float32 results agree to a few ulp across
/// devices, not bit for bit; float64 uses the same formulas with libm on both sides.
#include <math.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "backends/common/hd.h"

namespace focus::common {

/// sin and cos in double for every argument, without libm: fdlibm's algorithm (FreeBSD
/// e_rem_pio2.c, k_sin.c, k_cos.c; error < 1 ulp). The device uses it for sin/cos (float
/// ones computed in double): CUDA's own sin/cos keep their Payne-Hanek reduction in a
/// local-memory array, which this build rejects; here the reduction of huge arguments
/// runs in registers (a 53 x 192-bit product with a window of 2/pi's bits).
namespace trig {

/// Bits of 2/pi after the binary point: word j holds bits 64 j + 1 .. 64 j + 64 (bit i is
/// worth 2^-i). A switch, not an array, so the device needs no table in memory.
FOCUS_HD uint64_t two_over_pi_word(int j) {
  switch (j) {
    case 0: return 0xA2F9836E4E441529ULL;
    case 1: return 0xFC2757D1F534DDC0ULL;
    case 2: return 0xDB6295993C439041ULL;
    case 3: return 0xFE5163ABDEBBC561ULL;
    case 4: return 0xB7246E3A424DD2E0ULL;
    case 5: return 0x06492EEA09D1921CULL;
    case 6: return 0xFE1DEB1CB129A73EULL;
    case 7: return 0xE88235F52EBB4484ULL;
    case 8: return 0xE99C7026B45F7E41ULL;
    case 9: return 0x3991D639835339F4ULL;
    case 10: return 0x9C845F8BBDF9283BULL;
    case 11: return 0x1FF897FFDE05980FULL;
    case 12: return 0xEF2F118B5A0A6D1FULL;
    case 13: return 0x6D367ECF27CB09B7ULL;
    case 14: return 0x4F463F669E5FEA2DULL;
    case 15: return 0x7527BAC7EBE5F17BULL;
    case 16: return 0x3D0739F78A5292EAULL;
    case 17: return 0x6BFB5FB11F8D5D08ULL;
    case 18: return 0x56033046FC7B6BABULL;
    case 19: return 0xF0CFBC209AF4361DULL;
    case 20: return 0xA9E391615EE61B08ULL;
    default: return 0;
  }
}
/// Bits p .. p + 63 of 2/pi as an integer (bit p the most significant); bits before the
/// binary point (p < 1) are 0.
FOCUS_HD uint64_t two_over_pi_bits(int p) {
  if (p < 1) {
    if (p <= -63) return 0;
    return two_over_pi_word(0) >> (1 - p);
  }
  const int j = (p - 1) / 64, sh = (p - 1) % 64;
  const uint64_t hi = two_over_pi_word(j);
  return sh == 0 ? hi : (hi << sh) | (two_over_pi_word(j + 1) >> (64 - sh));
}
/// hi:lo = a * b.
FOCUS_HD void mul_64x64(uint64_t a, uint64_t b, uint64_t& hi, uint64_t& lo) {
#if defined(__CUDA_ARCH__)
  lo = a * b;
  hi = __umul64hi(a, b);
#else
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  lo = static_cast<uint64_t>(p);
  hi = static_cast<uint64_t>(p >> 64);
#endif
}
FOCUS_HD int leading_zeros(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __clzll(static_cast<long long>(x));
#else
  return x == 0 ? 64 : __builtin_clzll(x);
#endif
}
FOCUS_HD uint64_t bits_of(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t u;
  __builtin_memcpy(&u, &x, sizeof u);
  return u;
#endif
}

FOCUS_HD int biased_exponent(double v) { return static_cast<int>((bits_of(v) >> 52) & 0x7FF); }

/// x - n pi/2 = y0 + y1 with |y0| <= ~pi/4; returns n mod 4. x finite.
FOCUS_HD int rem_pio2(double x, double& y0, double& y1) {
  const double ax = ::fabs(x);
  if (ax <= 0.785398163397448279) {
    y0 = x;
    y1 = 0;
    return 0;
  }
  if (ax < 1647099.3291652855) {  // 2^20 pi/2: Cody-Waite with pi/2 in three 33-bit parts
    const double invpio2 = 6.36619772367581382433e-01;
    const double pio2_1 = 1.57079632673412561417e+00, pio2_1t = 6.07710050650619224932e-11;
    const double pio2_2 = 6.07710050630396597660e-11, pio2_2t = 2.02226624879595063154e-21;
    const double pio2_3 = 2.02226624871116645580e-21, pio2_3t = 8.47842766036889956997e-32;
    const double fn = ::rint(x * invpio2);
    const int ex = biased_exponent(x);
    double r = x - fn * pio2_1;  // exact
    double w = fn * pio2_1t;     // first round: good to 85 bits
    y0 = r - w;
    if (ex - biased_exponent(y0) > 16) {  // cancellation: second round, good to 118 bits
      double t = r;
      w = fn * pio2_2;
      r = t - w;
      w = fn * pio2_2t - ((t - r) - w);
      y0 = r - w;
      if (ex - biased_exponent(y0) > 49) {  // third round, 151 bits: covers every double
        t = r;
        w = fn * pio2_3;
        r = t - w;
        w = fn * pio2_3t - ((t - r) - w);
        y0 = r - w;
      }
    }
    y1 = (r - y0) - w;
    return static_cast<int>(static_cast<int64_t>(fn) & 3);
  }
  // Payne-Hanek: |x| = m 2^k with m < 2^53; x 2/pi mod 8 only needs 2/pi's bits from
  // position k - 2 on. A 192-bit window B of them gives P = m B, whose bits 189..191 are
  // the quadrant and whose lower bits the fraction (to 2^-136; doubles cancel at most ~62
  // bits against multiples of pi/2, leaving > 64 significant bits).
  const uint64_t bits = bits_of(x);
  const int k = static_cast<int>((bits >> 52) & 0x7FF) - 1075;
  const uint64_t m = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1} << 52);
  const int s = k - 2;
  uint64_t h0, l0, h1, l1, h2, l2;
  mul_64x64(m, two_over_pi_bits(s + 128), h0, l0);
  mul_64x64(m, two_over_pi_bits(s + 64), h1, l1);
  mul_64x64(m, two_over_pi_bits(s), h2, l2);
  const uint64_t p0 = l0;
  const uint64_t p1 = h0 + l1;
  const uint64_t c1 = p1 < h0 ? 1 : 0;
  const uint64_t t2 = h1 + l2;
  const uint64_t p2 = t2 + c1;  // bits 192 and up are multiples of 8: dropped
  (void)h2;
  int n = static_cast<int>(p2 >> 61);  // bits 189..191
  uint64_t fh = (p2 << 3) | (p1 >> 61), fl = (p1 << 3) | (p0 >> 61);  // fraction * 2^128
  bool neg = false;
  if (fh >> 63) {  // fraction >= 1/2: the next quadrant, fraction - 1
    ++n;
    neg = true;
    fl = ~fl + 1;
    fh = ~fh + (fl == 0 ? 1 : 0);
  }
  // normalise the magnitude to 128 bits with the top bit set, then to a double pair
  int lz = leading_zeros(fh);
  if (lz == 64) {
    fh = fl;
    fl = 0;
    lz = 64 + leading_zeros(fh);
    if (fh == 0) lz = 128;
  }
  const int sh = lz & 63;
  if (sh) {
    fh = (fh << sh) | (fl >> (64 - sh));
    fl <<= sh;
  }
  const double scale = ::ldexp(1.0, -64 - lz);
  const double dh = static_cast<double>(fh & ~uint64_t{0x7FF}) * scale;  // 53 bits: exact
  const double dl = (static_cast<double>(fh & 0x7FF) + static_cast<double>(fl) * 0x1p-64) * scale;
  // (dh + dl) * pi/2 as a double pair
  const double pio2_hi = 1.57079632679489655800e+00, pio2_lo = 6.12323399573676603587e-17;
  const double p = dh * pio2_hi;
  const double e = ::fma(dh, pio2_hi, -p);
  const double tail = e + (dh * pio2_lo + dl * pio2_hi);
  double r0 = p + tail;
  double r1 = tail - (r0 - p);
  if (neg) {
    r0 = -r0;
    r1 = -r1;
  }
  if (x < 0) {
    r0 = -r0;
    r1 = -r1;
    n = -n;
  }
  y0 = r0;
  y1 = r1;
  return n & 3;
}

/// sin(y0 + y1), |y0 + y1| <= ~pi/4 (fdlibm __kernel_sin).
FOCUS_HD double kernel_sin(double x, double y) {
  const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03,
               S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06,
               S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
  const double z = x * x;
  const double w = z * z;
  const double r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
  const double v = z * x;
  return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}
/// cos(y0 + y1), |y0 + y1| <= ~pi/4 (fdlibm __kernel_cos).
FOCUS_HD double kernel_cos(double x, double y) {
  const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03,
               C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07,
               C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
  const double z = x * x;
  const double w = z * z;
  const double r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
  const double hz = 0.5 * z;
  const double wc = 1.0 - hz;
  return wc + (((1.0 - wc) - hz) + (z * r - x * y));
}

/// sin(x) and cos(x) (NaN for inf and NaN).
FOCUS_HD void sin_cos(double x, double& s, double& c) {
  if (!(::fabs(x) <= 1.79769313486231570815e+308)) {  // inf or NaN
    s = c = x - x;
    return;
  }
  double y0, y1;
  const int n = rem_pio2(x, y0, y1);
  const double ks = kernel_sin(y0, y1), kc = kernel_cos(y0, y1);
  switch (n) {
    case 0: s = ks; c = kc; break;
    case 1: s = kc; c = -ks; break;
    case 2: s = -ks; c = -kc; break;
    default: s = -kc; c = ks; break;
  }
}
FOCUS_HD double sin(double x) {
  double s, c;
  sin_cos(x, s, c);
  return s;
}
FOCUS_HD double cos(double x) {
  double s, c;
  sin_cos(x, s, c);
  return c;
}

}  // namespace trig

/// libm by overload (float -> the f-suffixed function), the same names on host and device;
/// sin and cos on the device are trig:: (float ones through double).
namespace hd {
FOCUS_HD float exp(float x) { return ::expf(x); }
FOCUS_HD double exp(double x) { return ::exp(x); }
FOCUS_HD float log(float x) { return ::logf(x); }
FOCUS_HD double log(double x) { return ::log(x); }
FOCUS_HD float log1p(float x) { return ::log1pf(x); }
FOCUS_HD double log1p(double x) { return ::log1p(x); }
FOCUS_HD float sqrt(float x) { return ::sqrtf(x); }
FOCUS_HD double sqrt(double x) { return ::sqrt(x); }
FOCUS_HD float fabs(float x) { return ::fabsf(x); }
FOCUS_HD double fabs(double x) { return ::fabs(x); }
#if defined(__CUDA_ARCH__)
FOCUS_HD float sin(float x) { return static_cast<float>(trig::sin(x)); }
FOCUS_HD double sin(double x) { return trig::sin(x); }
FOCUS_HD float cos(float x) { return static_cast<float>(trig::cos(x)); }
FOCUS_HD double cos(double x) { return trig::cos(x); }
#else
FOCUS_HD float sin(float x) { return ::sinf(x); }
FOCUS_HD double sin(double x) { return ::sin(x); }
FOCUS_HD float cos(float x) { return ::cosf(x); }
FOCUS_HD double cos(double x) { return ::cos(x); }
#endif
FOCUS_HD float tanh(float x) { return ::tanhf(x); }
FOCUS_HD double tanh(double x) { return ::tanh(x); }
FOCUS_HD float erfc(float x) { return ::erfcf(x); }
FOCUS_HD double erfc(double x) { return ::erfc(x); }
FOCUS_HD float pow(float x, float y) { return ::powf(x, y); }
FOCUS_HD double pow(double x, double y) { return ::pow(x, y); }
FOCUS_HD double fma(double a, double b, double c) { return ::fma(a, b, c); }
}  // namespace hd

/// x != x for floating types, false for integers (no self-comparison warnings).
template <typename T> FOCUS_HD bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return x != x;
  else return false;
}

// ---- unary ops (UnaryOp) ---------------------------------------------------------------------
/// max(x, 0) with NaN kept (integers: the same without NaN).
template <typename T> FOCUS_HD T relu(T x) { return x > T(0) ? x : (is_nan(x) ? x : T(0)); }

/// 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) for x < 0: never overflows and keeps
/// relative accuracy in the negative tail.
template <typename T> FOCUS_HD T sigmoid(T x) {
  const T e = hd::exp(-hd::fabs(x));
  const T s = T(1) / (T(1) + e);
  return x >= T(0) ? s : (is_nan(x) ? x : e * s);
}

/// Standard normal cdf Phi(x) = erfc(-x / sqrt 2) / 2 (no 1 + erf cancellation for x < 0).
template <typename T> FOCUS_HD T normal_cdf(T x) { return T(0.5) * hd::erfc(-x * T(0.70710678118654752440)); }
/// Standard normal pdf phi(x).
template <typename T> FOCUS_HD T normal_pdf(T x) { return hd::exp(T(-0.5) * x * x) * T(0.398942280401432678); }

/// Exact GELU: x Phi(x).
template <typename T> FOCUS_HD T gelu(T x) { return x * normal_cdf(x); }

/// The tanh-GELU argument u = sqrt(2/pi) (x + 0.044715 x^3).
template <typename T> FOCUS_HD T gelu_tanh_inner(T x) {
  return T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
}
/// tanh-GELU: 0.5 x (1 + tanh(u)) written as x sigmoid(2u) (no cancellation for x < 0).
template <typename T> FOCUS_HD T gelu_tanh(T x) { return x * sigmoid(T(2) * gelu_tanh_inner(x)); }

template <typename T> FOCUS_HD T silu(T x) { return x * sigmoid(x); }

/// log(1 + exp(beta x)) / beta, or x where beta x > threshold.
template <typename T> FOCUS_HD T softplus(T x, T beta, T threshold) {
  return x * beta > threshold ? x : hd::log1p(hd::exp(beta * x)) / beta;
}

/// min(max(x, lo), hi) as torch.clamp (hi wins when lo > hi); NaN stays NaN.
template <typename T> FOCUS_HD T clamp(T x, T lo, T hi) {
  const T m = x < lo ? lo : x;
  return is_nan(x) ? x : (m > hi ? hi : m);
}

/// -1, 0 or 1 (0 for NaN and for both zeros).
template <typename T> FOCUS_HD T sign(T x) {
  if constexpr (std::is_unsigned_v<T>) return static_cast<T>(x > T(0));
  else return static_cast<T>((T(0) < x) - (x < T(0)));
}
/// |x| (integers wrap like the type: abs(INT_MIN) = INT_MIN).
template <typename T> FOCUS_HD T absolute(T x) {
  if constexpr (std::is_floating_point_v<T>) return hd::fabs(x);
  else if constexpr (std::is_unsigned_v<T>) return x;
  else return static_cast<T>(x < 0 ? -x : x);
}

template <typename T> FOCUS_HD T rsqrt(T x) { return T(1) / hd::sqrt(x); }
template <typename T> FOCUS_HD T reciprocal(T x) { return T(1) / x; }

/// base ** exp for integers (and bool: base || !exp): exact by squaring, wrapping like the
/// integer type; a negative exponent gives 0 except for bases 1 and -1.
template <typename T> FOCUS_HD T int_pow(T base, T exp) {
  if constexpr (std::is_same_v<T, bool>) {
    return base || !exp;
  } else {
    if constexpr (std::is_signed_v<T>) {
      if (exp < 0) return base == 1 ? T(1) : base == T(-1) ? ((exp % 2) ? T(-1) : T(1)) : T(0);
    }
    // Products wrap around as PyTorch's do: multiply in the unsigned type of the same width
    // (signed overflow would be undefined behaviour).
    using U = std::make_unsigned_t<T>;
    U r = 1, b = static_cast<U>(base);
    while (exp) {
      if (exp & 1) r = static_cast<U>(r * b);
      exp >>= 1;
      b = static_cast<U>(b * b);
    }
    return static_cast<T>(r);
  }
}

/// x ** a for a floating x, with the CPU's special cases (a = 2, 0.5, 1).
template <typename T> FOCUS_HD T pow_scalar(T x, T a) {
  if (a == T(2)) return x * x;
  if (a == T(0.5)) return hd::sqrt(x);
  if (a == T(1)) return x;
  return hd::pow(x, a);
}

/// An op's double parameter (alpha) as an integer type T, as the CPU's integer kernels take
/// it: NaN -> 0, clamped to int64's range, then wrapped to T. Host side.
template <typename T> inline T int_param(double v) {
  v = v != v ? 0.0 : (v < -9.2e18 ? -9.2e18 : (v > 9.2e18 ? 9.2e18 : v));
  return static_cast<T>(static_cast<int64_t>(v));
}
/// A clamp bound as an integer type T, saturated to T's range (clamp(min=-1) on uint8 keeps
/// every value). Host side.
template <typename T> inline T int_bound(double v) {
  const double lo = static_cast<double>(std::numeric_limits<T>::lowest());
  const double hi = static_cast<double>(std::numeric_limits<T>::max());
  if (!(v > lo)) return std::numeric_limits<T>::lowest();
  if (!(v < hi)) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

// ---- binary ops (BinaryOp) --------------------------------------------------------------------
/// a / b: true division for floating types; integers truncate toward zero and give 0 for a
/// zero divisor (no trap).
template <typename T> FOCUS_HD T divide(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return a / b;
  else return b == T(0) ? T(0) : static_cast<T>(a / b);
}
/// a ** b: libm pow for floating types, int_pow for integers and bool.
template <typename T> FOCUS_HD T power(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return hd::pow(a, b);
  else return int_pow<T>(a, b);
}
/// max/min with NaN propagated (the first NaN operand wins).
template <typename T> FOCUS_HD T maximum(T a, T b) { return is_nan(a) ? a : (is_nan(b) ? b : (a > b ? a : b)); }
template <typename T> FOCUS_HD T minimum(T a, T b) { return is_nan(a) ? a : (is_nan(b) ? b : (a < b ? a : b)); }

// ---- gradients of unary ops (UnaryBackwardOp): grad * f'(x) -----------------------------------
/// d/dx x Phi(x) = Phi(x) + x phi(x).
template <typename T> FOCUS_HD T gelu_backward(T g, T x) { return g * (normal_cdf(x) + x * normal_pdf(x)); }
/// y = x s, s = sigmoid(2u), u = k (x + c x^3): y' = s + 2 x s (1 - s) k (1 + 3 c x^2).
template <typename T> FOCUS_HD T gelu_tanh_backward(T g, T x) {
  const T k = T(0.79788456080286535588), c = T(0.044715);
  const T s = sigmoid(T(2) * gelu_tanh_inner(x));
  return g * (s + T(2) * x * s * (T(1) - s) * k * (T(1) + T(3) * c * x * x));
}
template <typename T> FOCUS_HD T silu_backward(T g, T x) {
  const T s = sigmoid(x);
  return g * s * (T(1) + x * (T(1) - s));
}
/// d/dx log1p(exp(beta x)) / beta = sigmoid(beta x); 1 above the threshold.
template <typename T> FOCUS_HD T softplus_backward(T g, T x, T beta, T threshold) {
  return x * beta > threshold ? g : g * sigmoid(beta * x);
}
template <typename T> FOCUS_HD T relu_backward(T g, T x) { return x > T(0) ? g : T(0); }
/// From the forward's result y = sigmoid(x).
template <typename T> FOCUS_HD T sigmoid_backward(T g, T y) { return g * y * (T(1) - y); }
/// From the forward's result y = tanh(x).
template <typename T> FOCUS_HD T tanh_backward(T g, T y) { return g * (T(1) - y * y); }

// ---- random draws (Backend::uniform / normal / randint) -----------------------------------------
// Each takes the Philox words the element uses (backends/common/philox.h gives the words;
// which counter and word belong to element i is stated with each function) and returns what
// the CPU kernel computes. The multiply-adds are explicit fma: the CPU build (-march=native,
// GCC's default -ffp-contract=fast) contracts them, and nvcc would too; spelling them out
// makes the rounding the same on both devices.

/// float32 uniform in [lo, hi) from the unit float u of element i (counter offset + i / 4,
/// word i % 4, u32_to_unit_float): computed in double, rounded to float, and lo where that
/// rounding reached hi.
FOCUS_HD float uniform_float(float u, double lo, double hi) {
  const float v = static_cast<float>(hd::fma(hi - lo, static_cast<double>(u), lo));
  return v < static_cast<float>(hi) ? v : static_cast<float>(lo);
}
/// float64 uniform in [lo, hi) from the unit double u of element i (counter offset + i / 2,
/// words 2 (i % 2) and 2 (i % 2) + 1, u64_to_unit_double).
FOCUS_HD double uniform_double(double u, double lo, double hi) {
  const double v = hd::fma(hi - lo, u, lo);
  return v < hi ? v : lo;
}

namespace detail {
/// sin and cos of a Box-Muller angle: libm on the host (the CPU kernel's own calls), one
/// trig::sin_cos on the device.
FOCUS_HD void angle_sincos(double a, double& s, double& c) {
#if defined(__CUDA_ARCH__)
  trig::sin_cos(a, s, c);
#else
  s = hd::sin(a);
  c = hd::cos(a);
#endif
}
}  // namespace detail

/// Box-Muller pair of elements 2j (cos) and 2j + 1 (sin) from counter offset + j, as double
/// before the cast to the output type. float32 path (float32, and float16/bfloat16 through
/// float32): u1 = (w0 >> 8 + 1) / 2^24 in (0, 1], u2 = (w1 >> 8) / 2^24.
FOCUS_HD void normal_pair_float(uint32_t w0, uint32_t w1, double mean, double std, double& even, double& odd) {
  const double u1 = (static_cast<double>(w0 >> 8) + 1.0) / 16777216.0;
  const double u2 = static_cast<double>(w1 >> 8) / 16777216.0;
  const double r = hd::sqrt(-2.0 * hd::log(u1));
  double s, c;
  detail::angle_sincos(6.283185307179586 * u2, s, c);
  const double sr = std * r;
  even = hd::fma(sr, c, mean);
  odd = hd::fma(sr, s, mean);
}
/// float64 path: u1 = 1 - unit double of (w0, w1) in (0, 1], u2 = unit double of (w2, w3).
FOCUS_HD void normal_pair_double(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, double mean, double std,
                                 double& even, double& odd) {
  const double u1 = 1.0 - static_cast<double>(((static_cast<uint64_t>(w0) << 32) | w1) >> 11) *
                              (1.0 / 9007199254740992.0);
  const double u2 = static_cast<double>(((static_cast<uint64_t>(w2) << 32) | w3) >> 11) * (1.0 / 9007199254740992.0);
  const double r = hd::sqrt(-2.0 * hd::log(u1));
  double s, c;
  detail::angle_sincos(6.283185307179586 * u2, s, c);
  const double sr = std * r;
  even = hd::fma(sr, c, mean);
  odd = hd::fma(sr, s, mean);
}

/// randint value of element i in [lo, lo + range) from the words (hi_word, lo_word) =
/// (w[2 (i % 2)], w[2 (i % 2) + 1]) of counter offset + i / 2.
FOCUS_HD int64_t randint_value(uint32_t hi_word, uint32_t lo_word, int64_t lo, uint64_t range) {
  const uint64_t x = (static_cast<uint64_t>(hi_word) << 32) | lo_word;
  return lo + static_cast<int64_t>(x % range);
}

}  // namespace focus::common
