#pragma once
/// Raw fused layer_norm (forward and backward kernels): validate, allocate, dispatch. No
/// autograd; autograd/functions/layer_norm.cpp wraps these.
#include <tuple>

#include "core/tensor.h"

namespace focus::raw {

/// Validates layer_norm's arguments (op names the op in messages); returns the number of
/// normalized elements per row.
int64_t check_layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                         const char* op = "layer_norm");
/// layer_norm over the trailing normalized_shape dims: returns (out [x.shape], mean [R],
/// rstd [R]) with R the number of rows (x.numel() / prod(normalized_shape)).
std::tuple<Tensor, Tensor, Tensor> layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                                              const Tensor& bias, double eps);
/// (dx [x.shape], dweight, dbias [normalized_shape]) from grad [x.shape] and the forward's
/// input, mean and rstd; dweight / dbias are undefined unless asked for.
std::tuple<Tensor, Tensor, Tensor> layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                                                       const Tensor& rstd, const Tensor& weight,
                                                       const Shape& normalized_shape, bool need_weight,
                                                       bool need_bias);

/// Residual add fused with layer_norm: x and residual of one shape, dtype and device (no
/// broadcasting); returns (sum = x + residual [x.shape], out = layer_norm(sum) [x.shape],
/// mean [R], rstd [R]), with the bits of raw::add followed by raw::layer_norm.
std::tuple<Tensor, Tensor, Tensor, Tensor> add_layer_norm(const Tensor& x, const Tensor& residual,
                                                          const Shape& normalized_shape, const Tensor& weight,
                                                          const Tensor& bias, double eps);
/// (dsum [sum.shape], dweight, dbias [normalized_shape]): dsum = grad_sum + the norm's input
/// gradient from grad_out [sum.shape] (grad_sum may be undefined: none), from the forward's
/// sum, mean and rstd; dweight / dbias are undefined unless asked for.
std::tuple<Tensor, Tensor, Tensor> add_layer_norm_backward(const Tensor& grad_out, const Tensor& grad_sum,
                                                           const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                                                           const Tensor& weight, const Shape& normalized_shape,
                                                           bool need_weight, bool need_bias);

}  // namespace focus::raw
