#pragma once
/// The product of a dynamically quantized (int8) Linear, for inference: see core/ops/quantized.h.
#include <cstdint>

#include "core/quantized.h"
#include "core/tensor.h"

#include <utility>

namespace focus {

/// weight [N, K] floating (CPU) -> {int8 [N, K], float32 scales [N]} per output channel:
/// scale = max|row| / 127, values rounded to [-127, 127] (backends/common/int8_math.h).
std::pair<Tensor, Tensor> quantize_per_channel_int8(const Tensor& weight);
/// Lays out q [N, K] int8 with its scales [N] for linear_int8 (K <= 66000).
Int8PackedWeight pack_int8(const Tensor& q, const Tensor& scale);

/// raw::linear_int8 (x [..., K] float32 -> [..., n_count]) for inference: the result records
/// no graph, so an input that requires grad while grad mode is on is an error (int8 layers
/// have no backward, as PyTorch's quantized Linear; run them under NoGradGuard).
Tensor linear_int8(const Tensor& x, const Int8PackedWeight& w, const Tensor& bias = {}, int64_t n_begin = 0,
                   int64_t n_count = -1);

}  // namespace focus
