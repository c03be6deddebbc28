#pragma once
/// Raw matrix products: validate, allocate, dispatch to the device's matmul kernel (BLAS
/// on the CPU). No autograd; autograd/functions/linalg.cpp wraps these.
/// Dtypes: float32, float64 and the integer dtypes (integers use a plain loop on the CPU,
/// as PyTorch allows integer matmul); bool is refused.
#include <string_view>

#include "core/tensor.h"

namespace focus::raw {

/// Validates a torch.matmul call (both >= 1-D, one dtype and device, inner dims equal,
/// batch dims broadcastable) and returns its output shape; errors name op.
Shape matmul_shape(const Tensor& a, const Tensor& b, const char* op = "matmul");
/// torch.matmul: [..., n, k] @ [..., k, m] -> [..., n, m], 1-D operands promoted and the
/// temporary dim removed (1-D @ 1-D -> 0-d), batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
/// [n, k] @ [k, m] -> [n, m].
Tensor mm(const Tensor& a, const Tensor& b);
/// [B, n, k] @ [B, k, m] -> [B, n, m].
Tensor bmm(const Tensor& a, const Tensor& b);
/// x [..., in] @ weight [out, in]^T + bias [out] (bias may be undefined) -> [..., out],
/// through the device's linear kernel (Backend::linear: the bias in the GEMM's epilogue on CUDA).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
/// Validates linear's arguments; errors name "linear".
void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

/// gelu(linear(x, weight, bias), approximate) and the pre-activation it was computed from.
struct LinearGeluOutputs {
  Tensor out;  // [..., out]
  Tensor pre;  // [..., out]: x @ weight^T + bias, kept for the backward
};
/// Validates linear_gelu's arguments (linear's, a floating dtype, approximate "none" or
/// "tanh"; errors name "linear_gelu" or "linear") and returns whether the tanh form is asked.
bool check_linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias, std::string_view approximate);
/// x [..., in], weight [out, in], bias [out] (may be undefined) -> out and pre [..., out]
/// (contiguous), through the device's linear_gelu kernel.
LinearGeluOutputs linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias, std::string_view approximate);

/// Gradients of linear (undefined where not asked).
struct LinearGrads {
  Tensor grad_x;       // x_shape
  Tensor grad_weight;  // [out, in]
  Tensor grad_bias;    // [out]
};
/// Linear's backward from grad [..., out] and the forward's x (of shape x_shape; needed only
/// for grad_weight) and weight (needed only for grad_x): grad_x = grad @ weight,
/// grad_weight = grad^T x, grad_bias = grad summed over rows, through the device's
/// linear_backward kernel (LinearBackward0's numbers on the CPU).
LinearGrads linear_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Shape& x_shape,
                            bool need_x, bool need_weight, bool need_bias);

}  // namespace focus::raw
