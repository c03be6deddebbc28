#pragma once
/// An int8 weight laid out for the device's int8 GEMM: what a dynamically quantized layer
/// keeps (nn/linear.h, nn/quantized.h) and core/ops/quantized.h's linear_int8 reads.
#include <cstdint>

#include "core/tensor.h"

namespace focus {

/// An int8 weight [N, K] in the device's packed layout (Backend::pack_int8_weight).
struct Int8PackedWeight {
  Tensor packed;  ///< int8, Np * Kp elements (Np = round_up(N, 16) + 16, Kp = round_up(K, 64))
  Tensor colsum;  ///< int32 [Np]: the sum of each row of the int8 weight, zero padded
  Tensor scale;   ///< float32 [Np]: the per-channel scales, zero padded
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool defined() const { return packed.defined(); }
};

}  // namespace focus
