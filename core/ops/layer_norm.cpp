#include "core/ops/layer_norm.h"

#include "core/ops/common.h"
#include "core/ops/elementwise.h"

namespace focus::raw {

int64_t check_layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                         const char* op) {
  check_defined(x, op, "input");
  check_floating(x, op, "input");
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  FOCUS_CHECK(nd >= 1, "[{}] normalized_shape must have at least 1 dimension, got []", op);
  bool match = x.dim() >= nd;
  for (int64_t i = 0; match && i < nd; ++i) match = x.shape()[x.dim() - nd + i] == normalized_shape[i];
  FOCUS_CHECK(match, "[{}] normalized_shape {} does not match the trailing dims of input of shape {}", op,
              normalized_shape, x.shape());
  const auto check_param = [&](const Tensor& p, const char* arg) {
    if (!p.defined()) return;
    check_same_device(x, p, op);
    FOCUS_CHECK(p.shape() == normalized_shape, "[{}] {} of shape {} does not match normalized_shape {}", op, arg,
                p.shape(), normalized_shape);
    FOCUS_CHECK(p.dtype() == x.dtype(), "[{}] expected {} of dtype {}, got {}", op, arg, x.dtype(), p.dtype());
  };
  check_param(weight, "weight");
  check_param(bias, "bias");
  return checked_numel(normalized_shape, op);
}

std::tuple<Tensor, Tensor, Tensor> layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                                              const Tensor& bias, double eps) {
  const int64_t N = check_layer_norm(x, normalized_shape, weight, bias);
  const int64_t R = N > 0 ? x.numel() / N : 0;
  const Tensor xc = to_contiguous(x, x.dtype(), x.device());
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  Tensor mean = empty({R}, x.dtype(), x.device());
  Tensor rstd = empty({R}, x.dtype(), x.device());
  if (x.numel() > 0) {
    const TensorView none;
    const Tensor wc = weight.defined() ? to_contiguous(weight, x.dtype(), x.device()) : Tensor();
    const Tensor bc = bias.defined() ? to_contiguous(bias, x.dtype(), x.device()) : Tensor();
    backend_of(x).layer_norm(make_view(out), make_view(mean), make_view(rstd), make_view(xc),
                             wc.defined() ? make_view(wc) : none, bc.defined() ? make_view(bc) : none, eps);
  } else if (R > 0) {
    // Rows of zero elements: nothing to normalize; mean/rstd are never read.
    fill_(mean, 0);
    fill_(rstd, 0);
  }
  return {out, mean, rstd};
}

namespace {

// Both backwards: checks, contiguous inputs and the gradients' allocation are shared; `add`
// picks add_layer_norm's kernel, which also adds grad_sum (undefined = none) into dx.
std::tuple<Tensor, Tensor, Tensor> norm_backward(const char* op, bool add, const Tensor& grad, const Tensor& grad_sum,
                                                 const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                                 const Tensor& weight, const Shape& normalized_shape,
                                                 bool need_weight, bool need_bias) {
  check_defined(grad, op, "grad");
  FOCUS_CHECK(grad.shape() == x.shape(), "[{}] grad of shape {} does not match input of shape {}", op, grad.shape(),
              x.shape());
  FOCUS_CHECK(!grad_sum.defined() || grad_sum.shape() == x.shape(),
              "[{}] grad of the sum of shape {} does not match input of shape {}", op, grad_sum.shape(), x.shape());
  const Tensor gc = to_contiguous(grad, x.dtype(), x.device());
  const Tensor sc = grad_sum.defined() ? to_contiguous(grad_sum, x.dtype(), x.device()) : Tensor();
  const Tensor xc = to_contiguous(x, x.dtype(), x.device());
  const Tensor wc = weight.defined() ? to_contiguous(weight, x.dtype(), x.device()) : Tensor();
  Tensor dx = empty(x.shape(), x.dtype(), x.device());
  Tensor dw = need_weight ? empty(normalized_shape, x.dtype(), x.device()) : Tensor();
  Tensor db = need_bias ? empty(normalized_shape, x.dtype(), x.device()) : Tensor();
  if (x.numel() == 0 && !need_weight && !need_bias) return {dx, dw, db};
  const TensorView none;
  const TensorView dwv = dw.defined() ? make_view(dw) : none, dbv = db.defined() ? make_view(db) : none,
                   wv = wc.defined() ? make_view(wc) : none;
  if (add)
    backend_of(x).add_layer_norm_backward(make_view(dx), dwv, dbv, make_view(gc), sc.defined() ? make_view(sc) : none,
                                          make_view(xc), make_view(mean), make_view(rstd), wv);
  else
    backend_of(x).layer_norm_backward(make_view(dx), dwv, dbv, make_view(gc), make_view(xc), make_view(mean),
                                      make_view(rstd), wv);
  return {dx, dw, db};
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                                                       const Tensor& rstd, const Tensor& weight,
                                                       const Shape& normalized_shape, bool need_weight,
                                                       bool need_bias) {
  return norm_backward("layer_norm_backward", false, grad, Tensor(), x, mean, rstd, weight, normalized_shape,
                       need_weight, need_bias);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> add_layer_norm(const Tensor& x, const Tensor& residual,
                                                          const Shape& normalized_shape, const Tensor& weight,
                                                          const Tensor& bias, double eps) {
  const char* op = "add_layer_norm";
  check_defined(x, op, "input");
  check_defined(residual, op, "residual");
  check_same_device(x, residual, op);
  FOCUS_CHECK(x.shape() == residual.shape(),
              "[add_layer_norm] input of shape {} and residual of shape {} differ: the shapes must be equal (no "
              "broadcasting)",
              x.shape(), residual.shape());
  FOCUS_CHECK(x.dtype() == residual.dtype(), "[add_layer_norm] expected input and residual of one dtype, got {} and {}",
              x.dtype(), residual.dtype());
  const int64_t N = check_layer_norm(x, normalized_shape, weight, bias, op);
  const int64_t R = N > 0 ? x.numel() / N : 0;
  const Tensor xc = to_contiguous(x, x.dtype(), x.device());
  const Tensor rc = to_contiguous(residual, x.dtype(), x.device());
  Tensor sum = empty(x.shape(), x.dtype(), x.device());
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  Tensor mean = empty({R}, x.dtype(), x.device());
  Tensor rstd = empty({R}, x.dtype(), x.device());
  if (x.numel() > 0) {
    const TensorView none;
    const Tensor wc = weight.defined() ? to_contiguous(weight, x.dtype(), x.device()) : Tensor();
    const Tensor bc = bias.defined() ? to_contiguous(bias, x.dtype(), x.device()) : Tensor();
    backend_of(x).add_layer_norm(make_view(sum), make_view(out), make_view(mean), make_view(rstd), make_view(xc),
                                 make_view(rc), wc.defined() ? make_view(wc) : none,
                                 bc.defined() ? make_view(bc) : none, eps);
  } else if (R > 0) {
    fill_(mean, 0);  // rows of zero elements, as layer_norm
    fill_(rstd, 0);
  }
  return {sum, out, mean, rstd};
}

std::tuple<Tensor, Tensor, Tensor> add_layer_norm_backward(const Tensor& grad_out, const Tensor& grad_sum,
                                                           const Tensor& sum, const Tensor& mean, const Tensor& rstd,
                                                           const Tensor& weight, const Shape& normalized_shape,
                                                           bool need_weight, bool need_bias) {
  return norm_backward("add_layer_norm_backward", true, grad_out, grad_sum, sum, mean, rstd, weight, normalized_shape,
                       need_weight, need_bias);
}

}  // namespace focus::raw
