#pragma once
/// float16 (IEEE binary16) and bfloat16 as bit patterns, and the value conversions every
/// device's copy uses, written once for the host and the device (the CPU's copy/fill and the
/// CUDA copy/fill/random kernels call these same functions, so a conversion gives the same
/// bits on both devices).
///
/// Narrowing (float or double -> float16/bfloat16) rounds to nearest, ties to even,
/// directly from the source (no double rounding through float): overflow gives +-inf,
/// values below half the smallest subnormal give +-0, subnormals are produced exactly, NaN
/// stays a quiet NaN with the sign and the top payload bits kept. Widening is exact.
/// Integers convert exactly when representable and otherwise round once (int64 through a
/// round-to-odd double, so that |v| > 2^53 is not rounded twice).
/// Floating -> integer conversions are defined for every input: in range they truncate
/// toward zero; NaN and out-of-range values give the x86 "integer indefinite" results
/// (INT32_MIN for int32, INT64_MIN for int64; uint8 takes the low byte of the int32
/// conversion) that the CPU's scalar conversions already produced, instead of C++'s
/// undefined behaviour.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backends/common/hd.h"

namespace focus::common {

/// A float16 value by its bits (the storage type of kFloat16 on the CPU and in copies).
struct Half {
  uint16_t bits;
};
/// A bfloat16 value by its bits (the storage type of kBFloat16).
struct BFloat16 {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2, "16-bit storage types");

template <typename T> inline constexpr bool is_half_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// ---- raw bits of float and double ---------------------------------------------------------
FOCUS_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}
FOCUS_HD float float_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}
FOCUS_HD uint64_t double_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
#endif
}
FOCUS_HD double double_from_bits(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
#endif
}

namespace half_detail {

/// sig >> shift rounded to nearest, ties to even (shift >= 1; sig < 2^63).
FOCUS_HD uint64_t shift_round_even(uint64_t sig, int shift) {
  if (shift >= 64) return 0;  // sig < 2^63 is below half of 2^shift
  const uint64_t q = sig >> shift;
  const uint64_t rem = sig & ((uint64_t{1} << shift) - 1);
  const uint64_t half = uint64_t{1} << (shift - 1);
  return q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0);
}

/// The bits of a binary floating format with DE exponent and DM mantissa bits nearest to
/// the value whose bits (format with SE exponent and SM mantissa bits) are `bits`: round to
/// nearest even, overflow to inf, gradual underflow, NaN kept quiet with its sign. DE <= SE.
template <int SE, int SM, int DE, int DM> FOCUS_HD uint32_t narrow(uint64_t bits) {
  constexpr int kSrcBias = (1 << (SE - 1)) - 1;
  constexpr int kDstBias = (1 << (DE - 1)) - 1;
  constexpr int kSrcExpMask = (1 << SE) - 1;
  constexpr uint32_t kDstInf = static_cast<uint32_t>((1 << DE) - 1) << DM;
  const uint32_t sign = static_cast<uint32_t>((bits >> (SE + SM)) & 1) << (DE + DM);
  const int exp = static_cast<int>((bits >> SM) & kSrcExpMask);
  const uint64_t man = bits & ((uint64_t{1} << SM) - 1);
  if (exp == kSrcExpMask) {
    if (man == 0) return sign | kDstInf;
    return sign | kDstInf | (uint32_t{1} << (DM - 1)) | static_cast<uint32_t>(man >> (SM - DM));
  }
  if (exp == 0 && man == 0) return sign;
  // value = sig * 2^(e - bias - SM) with e the (source) biased exponent, subnormals at e = 1
  const uint64_t sig = exp == 0 ? man : (man | (uint64_t{1} << SM));
  int e = (exp == 0 ? 1 : exp) - kSrcBias + kDstBias;  // the destination's biased exponent
  if (e >= (1 << DE) - 1) return sign | kDstInf;
  int shift = SM - DM;
  if (e < 1) {  // a destination subnormal: fewer mantissa bits survive
    shift += 1 - e;
    e = 1;
  }
  // q has the implicit bit at 2^DM (or less for subnormals); a carry from rounding moves into
  // the exponent field, up to exactly inf.
  const uint32_t q = static_cast<uint32_t>(shift_round_even(sig, shift));
  return sign | ((static_cast<uint32_t>(e) << DM) + q - (uint32_t{1} << DM));
}

}  // namespace half_detail

// ---- float16 --------------------------------------------------------------------------------
FOCUS_HD uint16_t float_to_half_bits(float f) {
  return static_cast<uint16_t>(half_detail::narrow<8, 23, 5, 10>(float_bits(f)));
}
FOCUS_HD uint16_t double_to_half_bits(double d) {
  return static_cast<uint16_t>(half_detail::narrow<11, 52, 5, 10>(double_bits(d)));
}
FOCUS_HD float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t man = h & 0x3FFu;
  if (exp == 0x1F) return float_from_bits(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
    const float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return float_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

// ---- bfloat16 -------------------------------------------------------------------------------
FOCUS_HD uint16_t float_to_bfloat16_bits(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  // Adding 0x7FFF plus the lowest kept bit rounds to nearest even; a carry reaches inf.
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
FOCUS_HD uint16_t double_to_bfloat16_bits(double d) {
  return static_cast<uint16_t>(half_detail::narrow<11, 52, 8, 7>(double_bits(d)));
}
FOCUS_HD float bfloat16_bits_to_float(uint16_t b) { return float_from_bits(static_cast<uint32_t>(b) << 16); }

// ---- integers -------------------------------------------------------------------------------
/// v as a double rounded to odd (truncated to 53 bits, the lowest kept bit set when any
/// dropped bit was set), so that one more rounding to <= 51 bits is correct.
FOCUS_HD double int64_to_double_odd(int64_t v) {
  const bool neg = v < 0;
  const uint64_t m = neg ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  if (m < (uint64_t{1} << 53)) return static_cast<double>(v);
  int shift = 0;
  while ((m >> shift) >= (uint64_t{1} << 53)) ++shift;
  uint64_t kept = m >> shift;
  if (m & ((uint64_t{1} << shift) - 1)) kept |= 1;
  const double d = static_cast<double>(kept) * static_cast<double>(uint64_t{1} << shift);  // exact
  return neg ? -d : d;
}

/// Truncation of a floating value to an integer type, defined everywhere (see the top).
template <typename To, typename F> FOCUS_HD To float_to_int(F v) {
  static_assert(std::is_integral_v<To> && !std::is_same_v<To, bool>, "integer target");
  if constexpr (sizeof(To) == 8) {
    const bool ok = v >= F(-9223372036854775808.0) && v < F(9223372036854775808.0);
    return ok ? static_cast<To>(v) : static_cast<To>(uint64_t{1} << 63);
  } else {
    // -2^31 itself falls outside (for float the bound rounds to it) but truncates to the same
    // INT32_MIN that the out-of-range answer is.
    const bool ok = v > F(-2147483649.0) && v < F(2147483648.0);
    const int32_t i = ok ? static_cast<int32_t>(v) : static_cast<int32_t>(uint32_t{1} << 31);
    return static_cast<To>(i);
  }
}

// ---- any storage type to any other ------------------------------------------------------------
/// The value conversion of copy/to(dtype) between the storage types bool, uint8_t, int32_t,
/// int64_t, Half, BFloat16, float, double.
template <typename To, typename From> FOCUS_HD To cast_value(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, Half>) {
    return cast_value<To>(half_bits_to_float(v.bits));
  } else if constexpr (std::is_same_v<From, BFloat16>) {
    return cast_value<To>(bfloat16_bits_to_float(v.bits));
  } else if constexpr (is_half_v<To>) {
    constexpr bool kHalf = std::is_same_v<To, Half>;
    uint16_t bits;
    if constexpr (std::is_same_v<From, float>) {
      bits = kHalf ? float_to_half_bits(v) : float_to_bfloat16_bits(v);
    } else {
      double d;
      if constexpr (std::is_same_v<From, double>) d = v;
      else if constexpr (std::is_same_v<From, int64_t>) d = int64_to_double_odd(v);
      else d = static_cast<double>(v);  // bool, uint8_t, int32_t: exact
      bits = kHalf ? double_to_half_bits(d) : double_to_bfloat16_bits(d);
    }
    return To{bits};
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    return float_to_int<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace focus::common
