// Differentiable dropout: the fused forward kernel draws the mask (Philox, seeded by the
// generator) and the node's backward calls the matching backward kernel
// (core/ops/dropout.h, backends/cpu/dropout.cpp).
#include "autograd/functions/dropout.h"

#include "autograd/functions/elementwise.h"
#include "autograd/node.h"
#include "core/ops/common.h"
#include "core/ops/dropout.h"

namespace focus {

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  raw::check_defined(x, "dropout", "input");
  FOCUS_CHECK(p >= 0.0 && p <= 1.0, "[dropout] dropout probability has to be between 0 and 1, but got {}", p);
  // Like PyTorch: evaluation mode, p == 0 and empty inputs return the input itself.
  if (!training || p == 0.0 || x.numel() == 0) return x;
  Generator& g = gen ? *gen : default_generator();
  auto [out, mask] = raw::dropout(x, p, g.next(static_cast<uint64_t>(x.numel())));
  if (needs_grad(x)) {
    record("NativeDropoutBackward0", {x}, {out}, {save(mask)}, [p](BackwardContext& c) {
      // grad_x = grad * mask / (1 - p) : x's shape
      Tensor m = c.saved(0);
      if (GradMode::is_enabled()) return grads(c.grad(0) * m.to(c.grad(0).dtype()) * (p < 1 ? 1.0 / (1.0 - p) : 0.0));
      return grads(raw::dropout_backward(c.grad(0), m, p));
    });
  }
  return out;
}

}  // namespace focus
