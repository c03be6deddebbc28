// Differentiable matrix products: forward through the raw ops (BLAS), backward right
// beside it, written with matmul on transposed views (BLAS reads them with its transpose
// flags, so no transposed copies are made).
#include "autograd/functions/linalg.h"

#include "autograd/autocast.h"
#include "autograd/functions/no_double_backward.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"

namespace focus {

namespace {

// Product of all sizes but the last: the rows of t seen as a matrix (reshape's -1 cannot
// infer it when the last size is 0).
int64_t rows_of(const Shape& s) {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) r *= s[i];
  return r;
}

// 1-D operands as matrices: [K] is [1, K] on the left, [K, 1] on the right.
Tensor as_left(const Tensor& a) { return a.dim() == 1 ? a.unsqueeze(0) : a; }
Tensor as_right(const Tensor& b) { return b.dim() == 1 ? b.unsqueeze(1) : b; }

// Records the backward of out = a @ b for every matmul case (dot, mv, mm, batched).
void record_matmul(const char* name, const Tensor& a, const Tensor& b, const Tensor& out) {
  const Shape a_shape = a.shape(), b_shape = b.shape();
  record(name, {a, b}, {out}, {needs_grad(b) ? save(a) : SavedTensor(), needs_grad(a) ? save(b) : SavedTensor()},
         [a_shape, b_shape](BackwardContext& c) {
           const bool a1 = a_shape.size() == 1, b1 = b_shape.size() == 1;
           // The temporary dims of 1-D operands come back: grad [..., M, N].
           Tensor g = c.grad(0);
           if (a1) g = g.unsqueeze(b1 ? g.dim() : g.dim() - 1);
           if (b1) g = g.unsqueeze(g.dim());
           Tensor grad_a, grad_b;
           if (c.needs_input_grad(0)) {
             const Tensor b2 = as_right(c.saved(1));
             const Shape a2_shape = a1 ? Shape{1, a_shape[0]} : a_shape;
             // grad_a = grad @ b^T : [..., M, N] x [..., N, K] -> [..., M, K], summed to a's batch dims
             grad_a = sum_to(matmul(g, b2.transpose(-1, -2)), a2_shape).reshape(a_shape);
           }
           if (c.needs_input_grad(1)) {
             const Tensor a2 = as_left(c.saved(0));
             const Shape b2_shape = b1 ? Shape{b_shape[0], 1} : b_shape;
             if (a2.dim() > 2 && b2_shape.size() == 2) {
               // b is shared by every row of a's batch: one product over all rows.
               // grad_b = a^T @ grad : [K, rows] x [rows, N] -> [K, N]
               const int64_t K = a2.size(-1), N = g.size(-1), rows = rows_of(a2.shape());
               grad_b = matmul(a2.reshape({rows, K}).t(), g.reshape({rows, N})).reshape(b_shape);
             } else {
               // grad_b = a^T @ grad : [..., K, M] x [..., M, N] -> [..., K, N], summed to b's batch dims
               grad_b = sum_to(matmul(a2.transpose(-1, -2), g), b2_shape).reshape(b_shape);
             }
           }
           return grads(grad_a, grad_b);
         });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Lower, [](auto&&... t) { return matmul(t...); }, a, b);
  Tensor out = raw::matmul(a, b);
  if (needs_grad(a, b)) {
    const char* name = a.dim() == 1 && b.dim() == 1 ? "DotBackward0"
                       : a.dim() == 2 && b.dim() == 1 ? "MvBackward0"
                       : a.dim() <= 2 && b.dim() <= 2 ? "MmBackward0"
                                                      : "MatmulBackward0";
    record_matmul(name, a, b, out);
  }
  return out;
}

Tensor mm(const Tensor& a, const Tensor& b) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Lower, [](auto&&... t) { return mm(t...); }, a, b);
  Tensor out = raw::mm(a, b);
  if (needs_grad(a, b)) record_matmul("MmBackward0", a, b, out);
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Lower, [](auto&&... t) { return bmm(t...); }, a, b);
  Tensor out = raw::bmm(a, b);
  if (needs_grad(a, b)) record_matmul("BmmBackward0", a, b, out);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Lower, [](auto&&... t) { return linear(t...); }, x, weight, bias);
  Tensor y = raw::linear(x, weight, bias);
  if (needs_grad(x, weight, bias)) {
    const Shape x_shape = x.shape();
    // x by reference when its producer can recompute it (layer_norm, gelu: pre-norm and MLP
    // blocks then keep one activation less per Linear until backward).
    record("LinearBackward0", {x, weight, bias}, {y},
           {needs_grad(weight) ? SavedTensor::recomputable(x) : SavedTensor(), needs_grad(x) ? save(weight) : SavedTensor()},
           [x_shape](BackwardContext& c) {
             const Tensor& grad = c.grad(0);
             const int64_t in = x_shape.back(), out_f = grad.size(-1), R = rows_of(x_shape);
             const Tensor g2 = grad.reshape({R, out_f});  // [R, out]
             Tensor gx, gw, gb;
             // grad_x = grad @ W : [R, out] x [out, in] -> [R, in] -> x's shape
             if (c.needs_input_grad(0)) gx = mm(g2, c.saved(1)).reshape(x_shape);
             // grad_W = grad^T @ x : [out, R] x [R, in] -> [out, in] (grad^T is a view: BLAS Trans)
             if (c.needs_input_grad(1)) gw = mm(g2.t(), c.saved(0).reshape({R, in}));
             // grad_b = grad summed over rows, as a gemv: [R] x [R, out] -> [out]
             if (c.needs_input_grad(2)) gb = matmul(ones({R}, g2.options()), g2);
             return grads(gx, gw, gb);
           });
  }
  return y;
}

Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias, std::string_view approximate) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Lower, [approximate](const Tensor& a, const Tensor& w, const Tensor& b) {
      return linear_gelu(a, w, b, approximate);
    }, x, weight, bias);
  raw::LinearGeluOutputs r = raw::linear_gelu(x, weight, bias, approximate);
  if (needs_grad(x, weight, bias)) {
    const bool tanh_approx = approximate == "tanh";
    const Shape x_shape = x.shape();
    // Saved as the composition gelu(linear(x)) saves them, so memory stays the same: x by
    // reference when its producer can recompute it (LinearBackward0's trick), weight, and
    // pre (GeluBackward0 keeps it too). Recomputing pre from x instead would save nothing:
    // out (what the next Linear saves) is itself recomputed from pre, so pre must be kept,
    // or recomputing out would cost the whole GEMM again.
    // The node is recomputable: out = gelu(pre) again from the saved pre, so a consumer that
    // saves out (the next Linear) keeps no copy of it, as it does after GeluBackward0.
    record_recomputable(
        "LinearGeluBackward0", {x, weight, bias}, {r.out},
        {needs_grad(weight) ? SavedTensor::recomputable(x) : SavedTensor(),
         needs_grad(x) ? save(weight) : SavedTensor(), save(r.pre)},
        [tanh_approx, x_shape](BackwardContext& c) {
          detail::no_double_backward("LinearGeluBackward0");
          // d_pre = grad * gelu'(pre) : [..., out], in grad's memory when nothing else holds it
          // (GeluBackward0's kernel and reuse)
          Tensor d_pre = raw::unary_backward(tanh_approx ? UnaryBackwardOp::GeluTanh : UnaryBackwardOp::Gelu,
                                             c.grad(0), c.saved(2), Tensor(), {}, "LinearGeluBackward0", true);
          // pre is done with: free it before the products (as the composition frees it after
          // GeluBackward0), unless the graph is retained.
          c.release_saved_early(2);
          // grad_x = d_pre @ W : [R, out] x [out, in] -> [R, in] -> x's shape
          // grad_W = d_pre^T @ x : [out, R] x [R, in] -> [out, in]
          // grad_b = d_pre summed over rows : [out]
          // In LinearBackward0's order: grad_x first, then x (recomputed when saved by
          // reference) only for the weight's product, so the allocations follow the
          // composition's (the CPU heap then holds no more than it did).
          Tensor gx;
          if (c.needs_input_grad(0))
            gx = raw::linear_backward(d_pre, Tensor(), c.saved(1), x_shape, true, false, false).grad_x;
          raw::LinearGrads g;
          if (c.needs_input_grad(1) || c.needs_input_grad(2))
            g = raw::linear_backward(d_pre, c.needs_input_grad(1) ? c.saved(0) : Tensor(), Tensor(), x_shape, false,
                                     c.needs_input_grad(1), c.needs_input_grad(2));
          return grads(std::move(gx), std::move(g.grad_weight), std::move(g.grad_bias));
        },
        [tanh_approx](BackwardContext& c) {
          return raw::unary(tanh_approx ? UnaryOp::GeluTanh : UnaryOp::Gelu, c.saved(2), {}, "linear_gelu");
        });
  }
  return std::move(r.out);
}

}  // namespace focus
