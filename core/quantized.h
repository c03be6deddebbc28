#pragma once
/// An int8 weight laid out for the device's int8 GEMM: what a dynamically quantized layer
/// keeps (nn/linear.h, nn/quantized.h) and core/ops/quantized.h's linear_int8 reads.
#include <cstdint>

#include "core/tensor.h"

namespace focus {

/// An int8 weight [N, K] in the device's packed layout (Backend::pack_int8_weight).
struct Int8PackedWeight {
  Tensor packed;  ///< int8, round_up(N, 16) * round_up(K, 4) elements
  Tensor colsum;  ///< int32 [round_up(N, 16)]: the sum of each row of the int8 weight
  Tensor scale;   ///< float32 [round_up(N, 16)]: the per-channel scales, zero padded
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool defined() const { return packed.defined(); }
};

}  // namespace focus
