#pragma once
/// Branch-free float32 exp/tanh/sigmoid/erf that GCC vectorizes inside elementwise loops
/// (glibc's scalar expf/tanhf/erff block vectorization). float64 uses <cmath>.
/// Accuracy (float32): vexp and vtanh within 2 ulp over the normal range; verf within
/// 1.5e-7 absolute (Abramowitz & Stegun 7.1.26), used only inside GELU.
#include <bit>
#include <cmath>
#include <cstdint>

namespace focus::cpu {

inline float vexp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447504019f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500E-4f;
  y = y * r + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  y = y * z + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  float res = y * scale;
  res = x > 88.72283935546875f ? INFINITY : res;
  res = x < -103.0f ? 0.0f : res;
  return x != x ? x : res;
}
inline double vexp(double x) { return std::exp(x); }

inline float vtanh(float x) {
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
inline double vtanh(double x) { return std::tanh(x); }

inline float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }
inline double vsigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

inline float verf(float x) {
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
inline double verf(double x) { return std::erf(x); }

}  // namespace focus::cpu
