#pragma once
/// Raw matrix products: validate, allocate, dispatch to the device's matmul kernel (BLAS
/// on the CPU). No autograd; autograd/functions/linalg.cpp wraps these.
/// Dtypes: float32, float64 and the integer dtypes (integers use a plain loop on the CPU,
/// as PyTorch allows integer matmul); bool is refused.
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

}  // namespace focus::raw
