#pragma once
/// Raw dropout: validate, allocate, dispatch to the fused kernels (no autograd). The
/// differentiable version is focus::dropout (autograd/functions/dropout.cpp).
#include <tuple>

#include "core/random_state.h"
#include "core/tensor.h"

namespace focus::raw {

/// Training-mode dropout with 0 <= p <= 1: returns (out, mask) where mask (bool, x's shape)
/// holds the kept elements and out = x * mask / (1 - p) (zeros when p == 1).
std::tuple<Tensor, Tensor> dropout(const Tensor& x, double p, RandomState rng);
/// grad * mask / (1 - p).
Tensor dropout_backward(const Tensor& grad, const Tensor& mask, double p);

}  // namespace focus::raw
