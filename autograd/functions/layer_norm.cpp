// Differentiable layer_norm: a fused forward/backward kernel pair (core/ops/layer_norm.h,
// backends/cpu/layer_norm.cpp). The forward saves what the backward kernel needs (the
// mean and rstd of each row).
#include "autograd/functions/layer_norm.h"

#include "autograd/functions/no_double_backward.h"
#include "autograd/autocast.h"
#include "autograd/node.h"
#include "core/ops/layer_norm.h"

namespace focus {

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return layer_norm(t...); }, x, normalized_shape,
                         weight, bias, eps);
  auto [y, mean, rstd] = raw::layer_norm(x, normalized_shape, weight, bias, eps);
  if (needs_grad(x, weight, bias)) {
    const bool has_w = weight.defined(), has_b = bias.defined();
    // Recomputable: a Linear after the norm (pre-norm blocks) saves y by reference and gets
    // it back from x, weight and bias in its backward, instead of keeping it.
    record_recomputable(
        "NativeLayerNormBackward0", {x, weight, bias}, {y},
        {save(x), save(mean), save(rstd), has_w ? save(weight) : SavedTensor(), has_b ? save(bias) : SavedTensor()},
        [normalized_shape, has_w, has_b](BackwardContext& c) {
          detail::no_double_backward("NativeLayerNormBackward0");
          // x [..., N], grad [..., N] -> dx [..., N], dweight [N], dbias [N] (N = normalized_shape)
          auto [dx, dw, db] = raw::layer_norm_backward(c.grad(0), c.saved(0), c.saved(1), c.saved(2), c.saved(3),
                                                       normalized_shape, has_w && c.needs_input_grad(1),
                                                       has_b && c.needs_input_grad(2));
          return grads(c.needs_input_grad(0) ? dx : Tensor(), dw, db);
        },
        [normalized_shape, eps](BackwardContext& c) {
          return std::get<0>(raw::layer_norm(c.saved(0), normalized_shape, c.saved(3), c.saved(4), eps));
        });
  }
  return y;
}

}  // namespace focus
