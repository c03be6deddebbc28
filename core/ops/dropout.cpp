#include "core/ops/dropout.h"

#include "core/ops/common.h"

namespace focus::raw {

std::tuple<Tensor, Tensor> dropout(const Tensor& x, double p, RandomState rng) {
  check_defined(x, "dropout", "input");
  check_floating(x, "dropout", "input");
  FOCUS_CHECK(p >= 0.0 && p <= 1.0, "[dropout] dropout probability has to be between 0 and 1, but got {}", p);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  Tensor mask = empty(x.shape(), kBool, x.device());
  if (x.numel() > 0) backend_of(x).dropout_forward(make_view(out), make_view(mask), make_view(x), p, rng);
  return {out, mask};
}

Tensor dropout_backward(const Tensor& grad, const Tensor& mask, double p) {
  Tensor gx = empty(mask.shape(), grad.dtype(), grad.device());
  if (gx.numel() > 0) backend_of(grad).dropout_backward(make_view(gx), make_view(grad, mask.shape()), make_view(mask), p);
  return gx;
}

}  // namespace focus::raw
