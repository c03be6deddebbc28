#pragma once
/// Differentiable matrix products on OpenBLAS sgemm/dgemm (CBLAS transpose flags, no
/// transposed copies).
#include <optional>
#include <string_view>

#include "core/tensor.h"

namespace focus {

/// torch.matmul: 1-D·1-D dot (0-d), 2-D mm, 1-D promoted and removed, batched with
/// broadcasting of the batch dims. [..., n, k] @ [..., k, m] -> [..., n, m].
Tensor matmul(const Tensor& a, const Tensor& b);
/// [n, k] @ [k, m] -> [n, m].
Tensor mm(const Tensor& a, const Tensor& b);
/// [B, n, k] @ [B, k, m] -> [B, n, m].
Tensor bmm(const Tensor& a, const Tensor& b);
/// x W^T + b: x [..., in], weight [out, in], bias [out] (optional) -> [..., out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
/// gelu(linear(x, weight, bias), approximate) as one op and one graph node
/// (LinearGeluBackward0): x [..., in], weight [out, in], bias [out] (optional) -> [..., out];
/// approximate "none" (erf form) or "tanh". Floating dtypes. The CPU gives the
/// composition's numbers bit for bit (forward and backward); CUDA fuses the bias and, for the
/// tanh form, the GELU into one cuBLASLt GEMM epilogue, and the bias gradient into the
/// weight-gradient GEMM. Keeps the pre-activation for the backward, as gelu does.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias = {},
                   std::string_view approximate = "none");

}  // namespace focus
