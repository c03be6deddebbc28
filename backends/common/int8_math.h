#pragma once
/// The arithmetic of dynamic int8 quantization (torch.ao.quantization.quantize_dynamic for
/// Linear, with per-channel weights), written once for every device:
///
///   weight, per output channel n:  scale_w[n] = max|W[n, :]| / 127 (at least kMinScale),
///                                  Wq[n, k] = round(W[n, k] / scale_w[n]) in [-127, 127];
///   activations, per row m, at run time (asymmetric uint8, the range always holding 0 so
///   that 0 is exact, as PyTorch's observers): lo = min(0, min x), hi = max(0, max x),
///                                  scale_x = (hi - lo) / 255 (at least kMinScale),
///                                  zp = round(-lo / scale_x) in [0, 255],
///                                  xq[k] = clamp(round(x[k] / scale_x) + zp, 0, 255);
///   product:  acc[m, n] = sum_k xq[k] Wq[n, k]  (int32: exact while K <= kMaxInt8K)
///             y[m, n] = (acc[m, n] - zp colsum[n]) (scale_x scale_w[n]) + bias[n],
///             colsum[n] = sum_k Wq[n, k].
/// Rounding is to nearest, ties to even (nearbyint in the default mode), as torch.round.
#include <cmath>
#include <cstdint>

#include "backends/common/hd.h"

namespace focus::common {

/// Smallest scale: PyTorch's observers clamp theirs to float32 epsilon.
inline constexpr float kInt8MinScale = 1.1920928955078125e-07f;
/// Largest in_features: 255 * 127 * K must stay below 2^31 (the int32 accumulator).
inline constexpr int64_t kMaxInt8K = 66000;
/// The CPU kernels' packing: output channels in blocks of 16, in_features in groups of 4.
inline constexpr int64_t kInt8BlockN = 16;
inline constexpr int64_t kInt8GroupK = 4;

FOCUS_HD int64_t int8_round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
/// The packed weight's rows: whole blocks of 16 and one block of zeros more (the AMX kernel
/// takes blocks two at a time, starting at any block).
FOCUS_HD int64_t int8_padded_n(int64_t n) { return int8_round_up(n, kInt8BlockN) + kInt8BlockN; }
/// The packed weight's columns (and the quantized activations' row length): whole AMX tiles
/// of 64 bytes, the padding zeros.
FOCUS_HD int64_t int8_padded_k(int64_t k) { return int8_round_up(k, 64); }

/// The scale of one weight row from its largest magnitude.
FOCUS_HD float int8_weight_scale(float amax) {
  const float s = amax / 127.0f;
  return s > kInt8MinScale ? s : kInt8MinScale;
}

/// One weight quantized with its row's scale.
FOCUS_HD int8_t int8_quantize_weight(float w, float scale) {
  float q = nearbyintf(w / scale);
  q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
  return static_cast<int8_t>(q);
}

/// A row's activation quantization: scale, its inverse and the zero point.
struct Int8RowParams {
  float scale;
  float inv_scale;
  int32_t zero_point;
};

/// The parameters of a row whose smallest and largest values are lo and hi (both finite).
FOCUS_HD Int8RowParams int8_row_params(float lo, float hi) {
  lo = lo < 0.0f ? lo : 0.0f;
  hi = hi > 0.0f ? hi : 0.0f;
  float scale = (hi - lo) / 255.0f;
  if (!(scale > kInt8MinScale)) scale = kInt8MinScale;
  float zp = nearbyintf(-lo / scale);
  zp = zp < 0.0f ? 0.0f : (zp > 255.0f ? 255.0f : zp);
  return Int8RowParams{scale, 1.0f / scale, static_cast<int32_t>(zp)};
}

/// One activation quantized with its row's parameters.
FOCUS_HD uint8_t int8_quantize_activation(float x, const Int8RowParams& p) {
  float q = nearbyintf(x * p.inv_scale) + static_cast<float>(p.zero_point);
  q = q < 0.0f ? 0.0f : (q > 255.0f ? 255.0f : q);
  return static_cast<uint8_t>(q);
}

/// The output value from the integer product (one fused multiply-add: every kernel rounds
/// it once, so they agree bit for bit).
FOCUS_HD float int8_output(int32_t acc, int32_t colsum, const Int8RowParams& p, float scale_w, float bias) {
  return fmaf(static_cast<float>(acc - p.zero_point * colsum), p.scale * scale_w, bias);
}

}  // namespace focus::common
