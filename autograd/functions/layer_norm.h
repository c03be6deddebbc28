#pragma once
/// Differentiable layer_norm: a fused forward/backward kernel pair (not composed from small
/// ops).
#include "core/tensor.h"

namespace focus {

/// Normalizes over the trailing dims given by normalized_shape; weight/bias optional
/// (of shape normalized_shape).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);

}  // namespace focus
