#pragma once
/// Raw fused softmax and log_softmax (forward and backward kernels): validate, allocate,
/// dispatch. No autograd; autograd/functions/softmax.cpp wraps these.
#include "core/tensor.h"

namespace focus::raw {

/// softmax (log_softmax when log) of a floating x along dim (negative dims count from the
/// end; a 0-d x takes dim 0 or -1). Same shape and dtype as x.
Tensor softmax(const Tensor& x, int64_t dim, bool log);
/// Gradient of softmax/log_softmax from grad_y and the forward's output y (same shape).
Tensor softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim, bool log);

}  // namespace focus::raw
