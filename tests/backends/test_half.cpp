// float16 / bfloat16 conversions (backends/common/half.h, shared by the CPU's copy/fill and
// the CUDA kernels): exact bit patterns of known values, every float16/bfloat16 pattern
// widened and narrowed back, round-to-nearest-even ties (normal, subnormal, overflow),
// NaN/inf/signed zeros, float and double sources checked against an independent
// reference, integer sources without double rounding, the defined floating -> integer
// conversions; then the CPU's copy/to(dtype)/fill on float16 and bfloat16 tensors, and the
// same conversions on every device.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backends/common/half.h"
#include "test_util.h"

using namespace focus;
using common::BFloat16;
using common::cast_value;
using common::Half;

namespace {

constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr float kNaNF = std::numeric_limits<float>::quiet_NaN();

uint16_t h(float f) { return common::float_to_half_bits(f); }
uint16_t b(float f) { return common::float_to_bfloat16_bits(f); }
float hf(uint16_t bits) { return common::half_bits_to_float(bits); }
float bf(uint16_t bits) { return common::bfloat16_bits_to_float(bits); }

bool is_nan_half(uint16_t x) { return (x & 0x7C00) == 0x7C00 && (x & 0x3FF) != 0; }
bool is_nan_bf16(uint16_t x) { return (x & 0x7F80) == 0x7F80 && (x & 0x7F) != 0; }

// Independent reference: the value of a 16-bit pattern by ldexp, and the nearest pattern to
// a double by searching the sorted finite values (ties to the even pattern, beyond the
// largest finite value by the IEEE overflow rule: round as if the exponent were unbounded).
double value_of(uint16_t bits, bool is_half) {
  const int man_bits = is_half ? 10 : 7, exp_bits = is_half ? 5 : 8;
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int e = (bits >> man_bits) & ((1 << exp_bits) - 1);
  const int m = bits & ((1 << man_bits) - 1);
  const double s = (bits >> 15) ? -1.0 : 1.0;
  if (e == (1 << exp_bits) - 1) return m ? std::nan("") : s * INFINITY;
  if (e == 0) return s * std::ldexp(m, 1 - bias - man_bits);
  return s * std::ldexp(m + (1 << man_bits), e - bias - man_bits);
}

struct Reference {
  bool is_half;
  std::vector<std::pair<double, uint16_t>> pos;  // positive finite values, ascending
  double max_finite, overflow_at;                  // >= overflow_at rounds to inf
  explicit Reference(bool half) : is_half(half) {
    const uint16_t inf = half ? 0x7C00 : 0x7F80;
    for (uint32_t x = 0; x < inf; ++x) pos.push_back({value_of(static_cast<uint16_t>(x), half), static_cast<uint16_t>(x)});
    max_finite = pos.back().first;
    const double ulp = max_finite - pos[pos.size() - 2].first;
    overflow_at = max_finite + ulp / 2;  // the tie goes to the even (inf) pattern
  }
  uint16_t nearest(double v) const {
    const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
    const uint16_t inf = is_half ? 0x7C00 : 0x7F80;
    const double a = std::fabs(v);
    if (a >= overflow_at) return sign | inf;
    auto it = std::lower_bound(pos.begin(), pos.end(), std::make_pair(a, uint16_t{0}));
    if (it == pos.end()) return sign | pos.back().second;
    if (it->first == a) return sign | it->second;
    const auto hi = *it, lo = *(it - 1);
    const double dlo = a - lo.first, dhi = hi.first - a;
    if (dlo < dhi) return sign | lo.second;
    if (dhi < dlo) return sign | hi.second;
    return sign | ((lo.second & 1) ? hi.second : lo.second);
  }
};

const Reference& half_ref() {
  static const Reference r(true);
  return r;
}
const Reference& bf16_ref() {
  static const Reference r(false);
  return r;
}

float float_from(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
double double_from(uint64_t u) {
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}

// The 16-bit patterns of a CPU float16/bfloat16 tensor.
std::vector<uint16_t> bits_of(const Tensor& t) {
  Tensor c = t.cpu().contiguous();
  std::vector<uint16_t> out(static_cast<size_t>(c.numel()));
  if (!out.empty()) std::memcpy(out.data(), c.data_ptr(), out.size() * 2);
  return out;
}
// A CPU tensor of the given dtype (float16 or bfloat16) holding these patterns.
Tensor from_bits(const std::vector<uint16_t>& bits, DType dt) {
  Tensor t = empty({static_cast<int64_t>(bits.size())}, dt);
  if (!bits.empty()) std::memcpy(t.data_ptr(), bits.data(), bits.size() * 2);
  return t;
}

}  // namespace

TEST_SUITE("half") {

TEST_CASE("float16: exact bit patterns of known values") {
  CHECK(h(0.0f) == 0x0000);
  CHECK(h(-0.0f) == 0x8000);
  CHECK(h(1.0f) == 0x3C00);
  CHECK(h(-2.0f) == 0xC000);
  CHECK(h(0.5f) == 0x3800);
  CHECK(h(0.1f) == 0x2E66);
  CHECK(h(1.0f / 3.0f) == 0x3555);
  CHECK(h(65504.0f) == 0x7BFF);             // largest finite
  CHECK(h(65519.99f) == 0x7BFF);            // just below the overflow tie
  CHECK(h(65520.0f) == 0x7C00);             // the tie rounds to even: inf
  CHECK(h(1e10f) == 0x7C00);
  CHECK(h(kInfF) == 0x7C00);
  CHECK(h(-kInfF) == 0xFC00);
  CHECK(is_nan_half(h(kNaNF)));
  CHECK(is_nan_half(h(-kNaNF)));
  CHECK((h(-kNaNF) & 0x8000) == 0x8000);    // the sign survives
  CHECK(is_nan_half(h(float_from(0x7F800001u))));  // a signalling NaN with a low payload stays NaN
  CHECK(h(6.103515625e-05f) == 0x0400);     // smallest normal 2^-14
  CHECK(h(5.9604644775390625e-08f) == 0x0001);  // smallest subnormal 2^-24
  CHECK(h(6.0975551605224609e-05f) == 0x03FF);  // largest subnormal
  // ties to even
  CHECK(h(1.0f + 0x1p-11f) == 0x3C00);      // halfway between 1 and 1 + 2^-10: even is 1
  CHECK(h(1.0f + 3 * 0x1p-11f) == 0x3C02);  // halfway between 0x3C01 and 0x3C02: even is 0x3C02
  CHECK(h(1.0f + 0x1p-11f + 0x1p-20f) == 0x3C01);  // just above the tie
  CHECK(h(0x1p-25f) == 0x0000);             // half the smallest subnormal: ties to 0
  CHECK(h(-0x1p-25f) == 0x8000);
  CHECK(h(0x1p-25f * 1.0000001f) == 0x0001);
  CHECK(h(3 * 0x1p-25f) == 0x0002);         // between subnormals 1 and 2: even is 2
  CHECK(h(5 * 0x1p-25f) == 0x0002);         // between 2 and 3: even is 2
  CHECK(h(0x1p-14f - 0x1p-25f) == 0x0400);  // rounding the largest subnormal up gives the smallest normal
  CHECK(h(1e-30f) == 0x0000);
  CHECK(h(float_from(0x00000001u)) == 0x0000);  // float subnormals vanish

  CHECK(hf(0x3C00) == 1.0f);
  CHECK(hf(0x7BFF) == 65504.0f);
  CHECK(hf(0x0001) == 0x1p-24f);
  CHECK(hf(0x03FF) == 1023 * 0x1p-24f);
  CHECK(hf(0x8001) == -0x1p-24f);
  CHECK(std::signbit(hf(0x8000)));
  CHECK(hf(0x7C00) == kInfF);
  CHECK(hf(0xFC00) == -kInfF);
  CHECK(std::isnan(hf(0x7E00)));
  CHECK(std::isnan(hf(0x7C01)));
}

TEST_CASE("bfloat16: exact bit patterns of known values") {
  CHECK(b(0.0f) == 0x0000);
  CHECK(b(-0.0f) == 0x8000);
  CHECK(b(1.0f) == 0x3F80);
  CHECK(b(-2.0f) == 0xC000);
  CHECK(b(0.1f) == 0x3DCD);
  CHECK(b(3.0e38f) == 0x7F62);
  CHECK(b(std::numeric_limits<float>::max()) == 0x7F80);  // rounds past the largest bfloat16
  CHECK(b(float_from(0x7F7F7FFFu)) == 0x7F7F);            // just below that tie
  CHECK(b(float_from(0x7F7F8000u)) == 0x7F80);            // the tie: even is inf
  CHECK(b(kInfF) == 0x7F80);
  CHECK(b(-kInfF) == 0xFF80);
  CHECK(is_nan_bf16(b(kNaNF)));
  CHECK(is_nan_bf16(b(float_from(0x7F800001u))));  // payload only in the dropped bits: still NaN
  CHECK(is_nan_bf16(b(float_from(0xFF800001u))));
  CHECK((b(float_from(0xFF800001u)) & 0x8000) == 0x8000);
  // ties to even
  CHECK(b(float_from(0x3F808000u)) == 0x3F80);  // 1 + 2^-8: halfway, even is 1
  CHECK(b(float_from(0x3F818000u)) == 0x3F82);  // halfway between 0x3F81 and 0x3F82
  CHECK(b(float_from(0x3F808001u)) == 0x3F81);  // just above the tie
  // subnormals: bfloat16 has float's exponent range, so float subnormals round as well
  CHECK(b(float_from(0x00010000u)) == 0x0001);
  CHECK(b(float_from(0x00008000u)) == 0x0000);  // tie to even 0
  CHECK(b(float_from(0x00018000u)) == 0x0002);  // tie to even 2
  CHECK(b(float_from(0x007FFFFFu)) == 0x0080);  // largest float subnormal rounds to the smallest normal

  CHECK(bf(0x3F80) == 1.0f);
  CHECK(bf(0x0001) == float_from(0x00010000u));
  CHECK(bf(0x7F80) == kInfF);
  CHECK(std::isnan(bf(0x7FC0)));
}

TEST_CASE("every 16-bit pattern widens exactly and narrows back to itself") {
  int64_t bad = 0;
  uint32_t first_bad = 0;
  auto expect = [&](bool ok, uint32_t x) {
    if (!ok && bad++ == 0) first_bad = x;
  };
  for (uint32_t x = 0; x < 65536; ++x) {
    const uint16_t bits = static_cast<uint16_t>(x);
    const float fh = hf(bits), fb = bf(bits);
    const double rh = value_of(bits, true), rb = value_of(bits, false);
    if (is_nan_half(bits)) {
      expect(std::isnan(fh) && is_nan_half(h(fh)), x);
    } else {
      expect(static_cast<double>(fh) == rh, x);
      expect(std::signbit(fh) == ((bits & 0x8000) != 0), x);
      expect(h(fh) == bits, x);
      expect(common::double_to_half_bits(rh) == bits, x);
    }
    if (is_nan_bf16(bits)) {
      expect(std::isnan(fb), x);
      expect(b(fb) == (bits | 0x40), x);  // quieted, payload kept
    } else {
      expect(static_cast<double>(fb) == rb, x);
      expect(b(fb) == bits, x);
      expect(common::double_to_bfloat16_bits(rb) == bits, x);
    }
  }
  INFO("first mismatching pattern 0x" << std::hex << first_bad);
  CHECK(bad == 0);
}

TEST_CASE("narrowing floats and doubles matches the nearest-even reference") {
  const Reference& hr = half_ref();
  const Reference& br = bf16_ref();
  std::mt19937_64 gen(42);
  // Mismatches are counted (a CHECK per value would dominate the run time); the first is shown.
  int64_t bad = 0;
  double first_bad = 0;
  auto expect = [&](bool ok, double v) {
    if (!ok && bad++ == 0) first_bad = v;
  };
  auto check_float = [&](float f) {
    if (std::isnan(f)) return;
    expect(h(f) == hr.nearest(f), f);
    expect(b(f) == br.nearest(f), f);
    // the bfloat16 fast path and the generic narrowing agree
    expect(b(f) == common::half_detail::narrow<8, 23, 8, 7>(common::float_bits(f)), f);
  };
  // random bit patterns over the whole range, plus random values where the 16-bit formats live
  for (int i = 0; i < 200000; ++i) check_float(float_from(static_cast<uint32_t>(gen())));
  std::uniform_real_distribution<double> e(-26, 17);
  for (int i = 0; i < 200000; ++i) {
    const double v = std::exp2(e(gen)) * ((gen() & 1) ? 1 : -1);
    check_float(static_cast<float>(v));
  }
  // every tie and its neighbours near 1 and in the subnormal range
  for (uint32_t m = 0; m < 4096; ++m) {
    for (int d = -1; d <= 1; ++d) {
      check_float(float_from(0x3F800000u + (m << 12) + d));  // float16 ties near [1, 2)
      check_float(float_from(0x33000000u + (m << 8) + d));   // around the float16 subnormals
      check_float(float_from(0x00008000u + (m << 16) + d));  // bfloat16 subnormal ties
    }
  }
  auto check_double = [&](double v) {
    if (std::isnan(v)) return;
    expect(common::double_to_half_bits(v) == hr.nearest(v), v);
    expect(common::double_to_bfloat16_bits(v) == br.nearest(v), v);
  };
  for (int i = 0; i < 100000; ++i) check_double(double_from(gen()));
  for (int i = 0; i < 100000; ++i) check_double(std::exp2(e(gen)) * ((gen() & 1) ? 1 : -1));
  check_double(1e300);
  check_double(-1e-300);
  check_double(double_from(1));  // double subnormal
  INFO("first mismatch at " << first_bad);
  CHECK(bad == 0);
  // Direct rounding from double, no double rounding through float: 1 + 2^-11 + 2^-40 is
  // just above a float16 tie, but as a float it is exactly the tie (which goes down).
  const double above_tie = 1.0 + 0x1p-11 + 0x1p-40;
  CHECK(common::double_to_half_bits(above_tie) == 0x3C01);
  CHECK(h(static_cast<float>(above_tie)) == 0x3C00);
  CHECK(common::double_to_bfloat16_bits(1.0 + 0x1p-8 + 0x1p-40) == 0x3F81);
  CHECK(common::double_to_half_bits(std::numeric_limits<double>::infinity()) == 0x7C00);
  CHECK(is_nan_half(common::double_to_half_bits(std::nan(""))));
  CHECK(is_nan_bf16(common::double_to_bfloat16_bits(-std::nan(""))));
  CHECK(common::double_to_half_bits(-0.0) == 0x8000);
}

TEST_CASE("cast_value: integers, bool and the defined float -> integer conversions") {
  CHECK(cast_value<Half>(int32_t{1}).bits == 0x3C00);
  CHECK(cast_value<Half>(true).bits == 0x3C00);
  CHECK(cast_value<BFloat16>(false).bits == 0x0000);
  CHECK(cast_value<Half>(uint8_t{255}).bits == h(255.0f));
  CHECK(cast_value<Half>(int64_t{-70000}).bits == 0xFC00);  // beyond float16's range
  CHECK(cast_value<Half>(int32_t{2049}).bits == 0x6800);    // 2049 is a tie between 2048 and 2050
  CHECK(cast_value<Half>(int32_t{2051}).bits == 0x6802);
  // int32 -> bfloat16 with one rounding: 2^24 + 2^16 + 1 is above the tie between 2^24 and
  // 2^24 + 2^17 (through float it would land on the tie and round down).
  CHECK(cast_value<BFloat16>(int32_t{(1 << 24) + (1 << 16) + 1}).bits == b(0x1p24f + 0x1p17f));
  CHECK(cast_value<BFloat16>(int32_t{(1 << 24) + (1 << 16)}).bits == b(0x1p24f));
  // int64 beyond 2^53 (round-to-odd double): 2^60 + 2^52 + 1 is above a bfloat16 tie
  const int64_t big = (int64_t{1} << 60) + (int64_t{1} << 52) + 1;
  CHECK(cast_value<BFloat16>(big).bits == b(0x1p60f + 0x1p53f));
  CHECK(cast_value<BFloat16>(-big).bits == b(-(0x1p60f + 0x1p53f)));
  CHECK(cast_value<BFloat16>(std::numeric_limits<int64_t>::min()).bits == b(-0x1p63f));
  CHECK(cast_value<BFloat16>(std::numeric_limits<int64_t>::max()).bits == b(0x1p63f));
  CHECK(common::int64_to_double_odd(big) == 0x1p60 + 0x1p52 + 0x1p8);  // odd last kept bit

  CHECK(cast_value<float>(Half{0x3555}) == hf(0x3555));
  CHECK(cast_value<BFloat16>(Half{0x2E66}).bits == b(hf(0x2E66)));
  CHECK(cast_value<Half>(BFloat16{0x3DCD}).bits == h(bf(0x3DCD)));
  CHECK(cast_value<int64_t>(Half{0xC500}) == -5);           // -5.0
  CHECK(cast_value<int32_t>(Half{0x3E00}) == 1);            // 1.5 truncates
  CHECK(cast_value<bool>(Half{0x8000}) == false);           // -0
  CHECK(cast_value<bool>(Half{0x7E00}) == true);            // NaN is nonzero
  CHECK(cast_value<uint8_t>(Half{0x5D80}) == 96);           // 352 wraps to 352 - 256

  CHECK(cast_value<int32_t>(-3.7f) == -3);
  CHECK(cast_value<int32_t>(kNaNF) == std::numeric_limits<int32_t>::min());
  CHECK(cast_value<int32_t>(3e9f) == std::numeric_limits<int32_t>::min());
  CHECK(cast_value<int32_t>(-2147483648.0f) == std::numeric_limits<int32_t>::min());
  CHECK(cast_value<int32_t>(2147483520.0f) == 2147483520);
  CHECK(cast_value<int32_t>(-2147483648.9) == std::numeric_limits<int32_t>::min());
  CHECK(cast_value<int32_t>(2147483647.9) == 2147483647);
  CHECK(cast_value<int64_t>(3e9f) == 3000000000);
  CHECK(cast_value<int64_t>(1e19) == std::numeric_limits<int64_t>::min());
  CHECK(cast_value<int64_t>(-9223372036854775808.0) == std::numeric_limits<int64_t>::min());
  CHECK(cast_value<int64_t>(-kInfF) == std::numeric_limits<int64_t>::min());
  CHECK(cast_value<uint8_t>(-1.0f) == 255);
  CHECK(cast_value<uint8_t>(300.0) == 44);
  CHECK(cast_value<uint8_t>(kNaNF) == 0);
  CHECK(cast_value<bool>(0.5f) == true);
  CHECK(cast_value<bool>(-0.0) == false);
  CHECK(cast_value<float>(true) == 1.0f);
}

TEST_CASE("CPU tensors: to(float16/bfloat16), copies between them, fill") {
  const std::vector<float> vals{0.0f, -0.0f, 1.0f, 0.1f, -2.5f, 65504.0f, 65520.0f, 1e-8f, 0x1p-25f,
                                1.0f + 0x1p-11f, kInfF, -kInfF, 3.0e38f};
  Tensor x = tensor(vals);
  Tensor xh = x.to(kFloat16), xb = x.to(kBFloat16);
  CHECK(xh.dtype() == kFloat16);
  CHECK(xb.dtype() == kBFloat16);
  const std::vector<uint16_t> hb = bits_of(xh), bb = bits_of(xb);
  for (size_t i = 0; i < vals.size(); ++i) {
    CHECK(hb[i] == h(vals[i]));
    CHECK(bb[i] == b(vals[i]));
  }
  // back to float32 / float64 exactly
  const std::vector<float> back = xh.to_vector<float>();
  for (size_t i = 0; i < vals.size(); ++i) CHECK(back[i] == hf(hb[i]));
  const std::vector<double> backb = xb.to(kFloat64).to_vector<double>();
  for (size_t i = 0; i < vals.size(); ++i) CHECK(backb[i] == static_cast<double>(bf(bb[i])));
  // float16 <-> bfloat16 go through float (both widen exactly)
  const std::vector<uint16_t> hb2 = bits_of(xb.to(kFloat16));
  for (size_t i = 0; i < vals.size(); ++i) CHECK(hb2[i] == h(bf(bb[i])));
  // float64 -> float16 directly (no double rounding)
  CHECK(bits_of(tensor(std::vector<double>{1.0 + 0x1p-11 + 0x1p-40}).to(kFloat16))[0] == 0x3C01);
  // integers and bool
  CHECK(bits_of(tensor(std::vector<int64_t>{2049, -3, 100000}).to(kFloat16)) ==
        std::vector<uint16_t>{0x6800, h(-3.0f), 0x7C00});
  CHECK(bits_of(tensor(std::vector<bool>{true, false}).to(kBFloat16)) == std::vector<uint16_t>{0x3F80, 0x0000});
  CHECK(from_bits({0xC500, 0x3E00, 0x7E00}, kFloat16).to(kInt64).to_vector<int64_t>() ==
        std::vector<int64_t>{-5, 1, std::numeric_limits<int64_t>::min()});
  CHECK(from_bits({0x0000, 0x8000, 0x7E00, 0x3C00}, kFloat16).to(kBool).to_vector<bool>() ==
        std::vector<bool>{false, false, true, true});
  // NaN survives
  CHECK(std::isnan(tensor(std::vector<float>{kNaNF}).to(kBFloat16).to_vector<float>()[0]));
}

TEST_CASE("CPU tensors: strided, broadcast and in-place copies of float16/bfloat16") {
  Tensor x = arange(0, 12, 1, kFloat32).reshape({3, 4}) * 0.3;
  Tensor xt = x.t();  // non-contiguous source
  Tensor h16 = xt.to(kFloat16);
  CHECK(h16.is_contiguous());
  CHECK(h16.shape() == Shape{4, 3});
  const std::vector<float> want = xt.contiguous().to_vector<float>();
  const std::vector<uint16_t> got = bits_of(h16);
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == h(want[i]));
  // same-dtype strided copy and a copy into a strided destination
  Tensor dst = zeros({4, 3}, kBFloat16).t();  // [3, 4] view with strides (1, 3)
  dst.copy_(x);
  const std::vector<float> dv = dst.to_vector<float>();
  const std::vector<float> xv = x.to_vector<float>();
  for (size_t i = 0; i < xv.size(); ++i) CHECK(dv[i] == bf(b(xv[i])));
  Tensor hcopy = empty({3, 4}, kFloat16);
  hcopy.copy_(h16.t());  // float16 -> float16, strided
  CHECK(bits_of(hcopy) == bits_of(x.to(kFloat16)));
  // broadcast (stride 0) source
  Tensor row = tensor(std::vector<float>{0.1f, 0.2f, 0.3f});
  Tensor bc = empty({2, 3}, kFloat16);
  bc.copy_(row);
  CHECK(bits_of(bc) == std::vector<uint16_t>{h(0.1f), h(0.2f), h(0.3f), h(0.1f), h(0.2f), h(0.3f)});
  // clone and contiguous keep the bits
  CHECK(bits_of(h16.clone()) == got);
}

TEST_CASE("CPU tensors: fill_ on float16/bfloat16") {
  Tensor t = empty({5}, kFloat16);
  t.fill_(0.1);
  CHECK(bits_of(t) == std::vector<uint16_t>(5, 0x2E66));
  t.fill_(1.0 + 0x1p-11 + 0x1p-40);  // the double rounds once
  CHECK(bits_of(t) == std::vector<uint16_t>(5, 0x3C01));
  t.fill_(int64_t{70000});
  CHECK(bits_of(t) == std::vector<uint16_t>(5, 0x7C00));
  t.fill_(true);
  CHECK(bits_of(t) == std::vector<uint16_t>(5, 0x3C00));
  Tensor u = zeros({2, 3}, kBFloat16);
  CHECK(bits_of(u) == std::vector<uint16_t>(6, 0));
  u.select(1, 1).fill_(-2.0);
  CHECK(bits_of(u) == std::vector<uint16_t>{0, 0xC000, 0, 0, 0xC000, 0});
  CHECK(bits_of(full({2}, 3.0e38, kBFloat16)) == std::vector<uint16_t>(2, 0x7F62));
}

TEST_CASE("float16/bfloat16 conversions give the same bits on every device") {
  std::vector<float> vals{0.0f, -0.0f, 1.0f, 0.1f, -2.5f, 65504.0f, 65520.0f, 1e-8f, 0x1p-25f, 3 * 0x1p-25f,
                          1.0f + 0x1p-11f, kInfF, -kInfF, 3.0e38f, 1e-40f};
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 100.0f);
  for (int i = 0; i < 1000; ++i) vals.push_back(nd(gen));
  const Tensor x = tensor(vals);
  const std::vector<uint16_t> want_h = bits_of(x.to(kFloat16)), want_b = bits_of(x.to(kBFloat16));
  const std::vector<double> dv{1.0 + 0x1p-11 + 0x1p-40, 1e300, -1e-300, 0.1};
  const std::vector<uint16_t> want_dh = bits_of(tensor(dv).to(kFloat16));
  FOR_EACH_DEVICE(dev) {
    const Tensor xd = x.to(dev);
    CHECK(bits_of(xd.to(kFloat16)) == want_h);
    CHECK(bits_of(xd.to(kBFloat16)) == want_b);
    CHECK(bits_of(tensor(dv).to(dev).to(kFloat16)) == want_dh);
    // 16-bit tensors move between devices unchanged, and widen to the same floats
    const Tensor hd = from_bits(want_h, kFloat16).to(dev);
    CHECK(bits_of(hd) == want_h);
    CHECK(hd.to(kFloat32).cpu().to_vector<float>() == from_bits(want_h, kFloat16).to_vector<float>());
    CHECK(bits_of(hd.to(kBFloat16)) == bits_of(from_bits(want_h, kFloat16).to(kBFloat16)));
    // strided and broadcast sources
    const Tensor m = x.narrow(0, 0, 12).reshape({3, 4}).to(dev);
    CHECK(bits_of(m.t().to(kFloat16)) == bits_of(x.narrow(0, 0, 12).reshape({3, 4}).t().to(kFloat16)));
    Tensor bc = empty({2, 4}, TensorOptions(kBFloat16).device(dev));
    bc.copy_(m.select(0, 1));
    CHECK(bits_of(bc) == bits_of(x.narrow(0, 4, 4).reshape({1, 4}).expand({2, 4}).to(kBFloat16)));
    Tensor f = empty({3}, TensorOptions(kFloat16).device(dev));
    f.fill_(0.1);
    CHECK(bits_of(f) == std::vector<uint16_t>(3, 0x2E66));
  }
}

}  // TEST_SUITE
