#pragma once
/// Differentiable softmax and log_softmax: a fused forward/backward kernel pair (not
/// composed from small ops).
#include <cstdint>

#include "core/tensor.h"

namespace focus {

/// Numerically stable softmax along dim.
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace focus
