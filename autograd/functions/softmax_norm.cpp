// Differentiable softmax, log_softmax and layer_norm: each a fused forward/backward kernel
// pair (core/ops/softmax_norm.h, backends/cpu/softmax_norm.cpp). The forward saves what
// the backward kernel needs (the output y; the mean and rstd of each row).
#include "autograd/functions/nn.h"
#include "autograd/node.h"
#include "core/ops/softmax_norm.h"

namespace focus {

namespace {

// The backward kernels are not themselves differentiable.
void no_double_backward(const char* name) {
  FOCUS_CHECK(!GradMode::is_enabled(), "[backward] double backward (create_graph=true) through {} is not supported",
              name);
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  Tensor y = raw::softmax(x, dim, log);
  if (needs_grad(x)) {
    const char* name = log ? "LogSoftmaxBackward0" : "SoftmaxBackward0";
    record(name, {x}, {y}, {save(y, true)}, [dim, log, name](BackwardContext& c) {
      no_double_backward(name);
      // softmax:     grad_x = y * (grad - sum(grad * y, dim))        : [...] -> [...]
      // log_softmax: grad_x = grad - exp(y) * sum(grad, dim)         : [...] -> [...]
      return grads(raw::softmax_backward(c.grad(0), c.saved(0), dim, log));
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }

Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  auto [y, mean, rstd] = raw::layer_norm(x, normalized_shape, weight, bias, eps);
  if (needs_grad(x, weight, bias)) {
    const bool has_w = weight.defined(), has_b = bias.defined();
    record("NativeLayerNormBackward0", {x, weight, bias}, {y},
           {save(x), save(mean), save(rstd), has_w ? save(weight) : SavedTensor()},
           [normalized_shape, has_w, has_b](BackwardContext& c) {
             no_double_backward("NativeLayerNormBackward0");
             // x [..., N], grad [..., N] -> dx [..., N], dweight [N], dbias [N] (N = normalized_shape)
             auto [dx, dw, db] = raw::layer_norm_backward(c.grad(0), c.saved(0), c.saved(1), c.saved(2), c.saved(3),
                                                          normalized_shape, has_w && c.needs_input_grad(1),
                                                          has_b && c.needs_input_grad(2));
             return grads(c.needs_input_grad(0) ? dx : Tensor(), dw, db);
           });
  }
  return y;
}

}  // namespace focus
