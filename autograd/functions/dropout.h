#pragma once
/// Differentiable dropout: a fused forward/backward kernel pair (not composed from small
/// ops).
#include "core/random.h"
#include "core/tensor.h"

namespace focus {

/// Zeroes elements with probability p and scales the rest by 1/(1-p) when training;
/// identity otherwise. Seeded by the generator.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true, Generator* gen = nullptr);

}  // namespace focus
