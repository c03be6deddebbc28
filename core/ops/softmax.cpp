#include "core/ops/softmax.h"

#include "core/ops/common.h"

namespace focus::raw {

namespace {
const char* softmax_name(bool log) { return log ? "log_softmax" : "softmax"; }
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim, bool log) {
  const char* name = softmax_name(log);
  check_defined(x, name, "input");
  check_floating(x, name, "input");
  const int64_t d = wrap_dim(dim, x.dim(), name);
  // The kernels read rows in place: one contiguous copy when x is not (permute-free).
  const Tensor xc = to_contiguous(x, x.dtype(), x.device());
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) backend_of(x).softmax(make_view(out), make_view(xc), static_cast<int>(d), log);
  return out;
}

Tensor softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim, bool log) {
  const char* name = log ? "log_softmax_backward" : "softmax_backward";
  check_defined(grad, name, "grad");
  check_defined(y, name, "output");
  FOCUS_CHECK(grad.shape() == y.shape(), "[{}] grad of shape {} does not match output of shape {}", name,
              grad.shape(), y.shape());
  const int64_t d = wrap_dim(dim, y.dim(), name);
  const Tensor gc = to_contiguous(grad, y.dtype(), y.device());
  const Tensor yc = to_contiguous(y, y.dtype(), y.device());
  Tensor gx = empty(y.shape(), y.dtype(), y.device());
  if (gx.numel() > 0)
    backend_of(y).softmax_backward(make_view(gx), make_view(gc), make_view(yc), static_cast<int>(d), log);
  return gx;
}

}  // namespace focus::raw
