// Differentiable softmax and log_softmax: a fused forward/backward kernel pair
// (core/ops/softmax.h, backends/cpu/softmax.cpp). The forward saves what the backward
// kernel needs (the output y).
#include "autograd/functions/softmax.h"

#include "autograd/functions/no_double_backward.h"
#include "autograd/autocast.h"
#include "autograd/node.h"
#include "core/ops/softmax.h"

namespace focus {

namespace {

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  Tensor y = raw::softmax(x, dim, log);
  if (needs_grad(x)) {
    const char* name = log ? "LogSoftmaxBackward0" : "SoftmaxBackward0";
    record(name, {x}, {y}, {save(y, true)}, [dim, log, name](BackwardContext& c) {
      detail::no_double_backward(name);
      // softmax:     grad_x = y * (grad - sum(grad * y, dim))        : [...] -> [...]
      // log_softmax: grad_x = grad - exp(y) * sum(grad, dim)         : [...] -> [...]
      return grads(raw::softmax_backward(c.grad(0), c.saved(0), dim, log));
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return softmax(t...); }, x, dim);
  return softmax_impl(x, dim, false);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return log_softmax(t...); }, x, dim);
  return softmax_impl(x, dim, true);
}

}  // namespace focus
