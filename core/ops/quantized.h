#pragma once
/// Raw ops of dynamic int8 quantization (torch.ao.quantization.quantize_dynamic for Linear,
/// per-channel weights; the arithmetic is backends/common/int8_math.h's): quantize a float
/// weight per output channel, lay it out for the device's int8 GEMM, and the quantized
/// product. No autograd: int8 layers are for inference, as PyTorch's. CPU only, as PyTorch's
/// dynamically quantized Linear.
#include <cstdint>
#include <utility>

#include "core/quantized.h"
#include "core/tensor.h"

namespace focus::raw {

using focus::Int8PackedWeight;

/// weight [N, K] (float32, float64, float16 or bfloat16, finite, on the CPU) ->
/// {int8 [N, K], float32 scales [N]}: scale[n] = max|weight[n]| / 127, weight[n] / scale[n]
/// rounded to [-127, 127]. Errors name op.
std::pair<Tensor, Tensor> quantize_per_channel_int8(const Tensor& weight, const char* op = "quantize_per_channel_int8");
/// Packs q [N, K] int8 with its scales [N] (floating) for linear_int8; N >= 1, 1 <= K <=
/// 66000 (the int32 accumulator's bound). Errors name op.
Int8PackedWeight pack_int8(const Tensor& q, const Tensor& scale, const char* op = "pack_int8");
/// x [..., K] float32 (a Linear's input) -> [..., n_count]: x quantized per row to uint8,
/// times rows n_begin .. n_begin + n_count - 1 of the packed weight (n_count -1: to the
/// end; n_begin a multiple of 16), dequantized, plus bias [N] float32 (undefined = none).
/// Errors name op.
Tensor linear_int8(const Tensor& x, const Int8PackedWeight& w, const Tensor& bias, int64_t n_begin = 0,
                   int64_t n_count = -1, const char* op = "linear_int8");

}  // namespace focus::raw
