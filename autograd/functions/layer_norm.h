#pragma once
/// Differentiable layer_norm: a fused forward/backward kernel pair (not composed from small
/// ops).
#include <tuple>

#include "core/tensor.h"

namespace focus {

/// Normalizes over the trailing dims given by normalized_shape; weight/bias optional
/// (of shape normalized_shape).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);

/// A residual add fused with layer_norm (the pre-/post-norm residual of a transformer
/// block): returns {sum, out} with sum = x + residual and out = layer_norm(sum,
/// normalized_shape, weight, bias, eps), both differentiable, with the bits of the two
/// ops composed; one forward and one backward kernel. x and residual: one shape (no
/// broadcasting), dtype and device. x, residual: [..., *normalized_shape] -> sum, out of
/// the same shape.
std::tuple<Tensor, Tensor> add_layer_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                                          const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5);

}  // namespace focus
