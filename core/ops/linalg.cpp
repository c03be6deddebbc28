#include "core/ops/linalg.h"

#include <algorithm>
#include <climits>

#include "core/ops/common.h"
#include "core/creation.h"
#include "core/ops/view.h"

namespace focus::raw {

namespace {

void check_operands(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op, "input");
  check_defined(b, op, "other");
  check_same_device(a, b, op);
  FOCUS_CHECK(a.dtype() == b.dtype(), "[{}] expected both operands to have one dtype, got {} and {}", op, a.dtype(),
              b.dtype());
  FOCUS_CHECK(a.dtype() != kBool, "[{}] bool tensors are not supported (got {} and {})", op, a.shape(), b.shape());
}

// BLAS takes int sizes.
void check_blas_sizes(int64_t m, int64_t k, int64_t n, const char* op) {
  FOCUS_CHECK(m <= INT_MAX && k <= INT_MAX && n <= INT_MAX,
              "[{}] matrix dims must be below 2^31 for BLAS, got M={} K={} N={}", op, m, k, n);
}

Shape batch_of(const Tensor& t) {
  return t.dim() > 2 ? Shape(t.shape().begin(), t.shape().end() - 2) : Shape{};
}

Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// out_full [batch..., M, N] = a2 [..., M, K] @ b2 [..., K, N] (a2, b2 at least 2-D).
void product_into(const Tensor& out_full, const Tensor& a2, const Tensor& b2, const Shape& batch) {
  const int64_t M = a2.size(-2), K = a2.size(-1), N = b2.size(-1);
  Backend& be = backend_of(out_full);
  if (!batch.empty() && b2.dim() == 2) {
    // [..., M, K] @ [K, N]: one gemm over all rows when a's rows line up as a matrix.
    int64_t rows = M;
    for (int64_t s : batch) rows *= s;
    if (auto st = view_strides(a2, {rows, K})) {
      Tensor af = as_strided(a2, {rows, K}, *st, a2.storage_offset());
      Tensor of = as_strided(out_full, {rows, N}, {N, 1}, out_full.storage_offset());
      be.matmul(make_view(of), make_view(af), make_view(b2), 1.0, 0.0);
      return;
    }
  }
  be.matmul(make_view(out_full), make_view(a2, concat(batch, {M, K})), make_view(b2, concat(batch, {K, N})), 1.0,
            0.0);
}

}  // namespace

Shape matmul_shape(const Tensor& a, const Tensor& b, const char* op) {
  check_operands(a, b, op);
  FOCUS_CHECK(a.dim() >= 1 && b.dim() >= 1, "[{}] both arguments need at least 1 dimension, got {} and {}", op,
              a.shape(), b.shape());
  const int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  FOCUS_CHECK(ka == kb, "[{}] inner dimensions differ: {} @ {}", op, a.shape(), b.shape());
  const Shape ba = batch_of(a), bb = batch_of(b);
  Shape batch = ba.size() >= bb.size() ? ba : bb;
  for (size_t i = 0; i < batch.size(); ++i) {
    const int64_t x = i + ba.size() >= batch.size() ? ba[i + ba.size() - batch.size()] : 1;
    const int64_t y = i + bb.size() >= batch.size() ? bb[i + bb.size() - batch.size()] : 1;
    FOCUS_CHECK(x == y || x == 1 || y == 1, "[{}] batch dims {} and {} cannot be broadcast: {} @ {}", op, ba, bb,
                a.shape(), b.shape());
    batch[i] = x == 1 ? y : x;
  }
  check_blas_sizes(a.dim() >= 2 ? a.size(-2) : 1, ka, b.dim() >= 2 ? b.size(-1) : 1, op);
  Shape out = batch;
  if (a.dim() >= 2) out.push_back(a.size(-2));
  if (b.dim() >= 2) out.push_back(b.size(-1));
  return out;
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  const Shape out_shape = matmul_shape(a, b, "matmul");
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  const Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;
  // out_shape is batch + [M if a is >= 2-D] + [N if b is >= 2-D].
  const Shape batch(out_shape.begin(), out_shape.end() - (a.dim() >= 2) - (b.dim() >= 2));
  const Shape full = concat(batch, {a2.size(-2), b2.size(-1)});
  product_into(as_strided(out, full, contiguous_strides(full), 0), a2, b2, batch);
  return out;
}

Tensor mm(const Tensor& a, const Tensor& b) {
  check_defined(a, "mm", "input");
  check_defined(b, "mm", "mat2");
  FOCUS_CHECK(a.dim() == 2 && b.dim() == 2, "[mm] expected 2-D tensors, got {} and {}", a.shape(), b.shape());
  const Shape out_shape = matmul_shape(a, b, "mm");
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (out.numel() > 0) product_into(out, a, b, {});
  return out;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_defined(a, "bmm", "input");
  check_defined(b, "bmm", "mat2");
  FOCUS_CHECK(a.dim() == 3 && b.dim() == 3, "[bmm] expected 3-D tensors, got {} and {}", a.shape(), b.shape());
  FOCUS_CHECK(a.size(0) == b.size(0), "[bmm] batch sizes differ: {} and {}", a.shape(), b.shape());
  const Shape out_shape = matmul_shape(a, b, "bmm");
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (out.numel() > 0) product_into(out, a, b, {a.size(0)});
  return out;
}

void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined(x, "linear", "input");
  check_defined(weight, "linear", "weight");
  check_same_device(x, weight, "linear");
  FOCUS_CHECK(x.dim() >= 1, "[linear] input needs at least 1 dimension, got {}", x.shape());
  FOCUS_CHECK(weight.dim() == 2, "[linear] weight must be 2-D [out_features, in_features], got {}", weight.shape());
  FOCUS_CHECK(x.size(-1) == weight.size(1),
              "[linear] weight of shape {} does not match input of shape {}: expected in_features = {}", weight.shape(),
              x.shape(), x.size(-1));
  FOCUS_CHECK(x.dtype() == weight.dtype(), "[linear] expected input and weight of one dtype, got {} and {}", x.dtype(),
              weight.dtype());
  FOCUS_CHECK(x.dtype() != kBool, "[linear] bool tensors are not supported");
  if (bias.defined()) {
    check_same_device(x, bias, "linear");
    FOCUS_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0),
                "[linear] bias of shape {} does not match weight of shape {}: expected [{}]", bias.shape(),
                weight.shape(), weight.size(0));
    FOCUS_CHECK(bias.dtype() == x.dtype(), "[linear] expected bias of dtype {}, got {}", x.dtype(), bias.dtype());
  }
  check_blas_sizes(1, weight.size(1), weight.size(0), "linear");
}

namespace {

// x and out as the views the linear kernels take: [rows, in] and [rows, out] matrices when
// x's rows line up (or x is 1-D), else x's own dims with the kernel looping over the
// leading ones (no copy either way). out is contiguous.
struct LinearViews {
  Tensor x2, o2;
};
LinearViews linear_views(const Tensor& x, const Tensor& out, int64_t in, int64_t out_f, const char* op) {
  const int64_t rows = out.numel() / out_f;
  FOCUS_CHECK(rows <= INT_MAX, "[{}] {} rows exceed BLAS's int sizes", op, rows);
  LinearViews v{x, out};
  if (x.dim() == 1) {
    v.x2 = unsqueeze(x, 0);
    v.o2 = unsqueeze(out, 0);
  } else if (auto st = view_strides(x, {rows, in})) {
    v.x2 = as_strided(x, {rows, in}, *st, x.storage_offset());
    v.o2 = as_strided(out, {rows, out_f}, {out_f, 1}, out.storage_offset());
  }
  return v;
}

TensorView bias_view(const Tensor& x, const Tensor& bias) {
  TensorView b;
  b.dtype = x.dtype();
  if (bias.defined()) b = make_view(bias);
  return b;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias);
  const int64_t in = weight.size(1), out_f = weight.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out = empty(out_shape, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  const LinearViews v = linear_views(x, out, in, out_f, "linear");
  // The kernel adds the bias (a GEMM epilogue on CUDA, addmm's beta = 1 onto the broadcast
  // bias elsewhere) and reads weight [out, in] as it is (BLAS/cuBLAS transpose flags).
  backend_of(x).linear(make_view(v.o2), make_view(v.x2), make_view(weight), bias_view(x, bias));
  return out;
}

bool check_linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias, std::string_view approximate) {
  FOCUS_CHECK(approximate == "none" || approximate == "tanh",
              "[linear_gelu] approximate must be 'none' or 'tanh', got '{}'", approximate);
  check_defined(x, "linear_gelu", "input");
  check_defined(weight, "linear_gelu", "weight");
  FOCUS_CHECK(x.is_floating_point(), "[linear_gelu] expected a floating input, got {}", x.dtype());
  check_linear(x, weight, bias);
  return approximate == "tanh";
}

LinearGeluOutputs linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias, std::string_view approximate) {
  const bool tanh_approx = check_linear_gelu(x, weight, bias, approximate);
  const int64_t in = weight.size(1), out_f = weight.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  LinearGeluOutputs r{empty(out_shape, x.dtype(), x.device()), empty(out_shape, x.dtype(), x.device())};
  if (r.out.numel() == 0) return r;
  const LinearViews v = linear_views(x, r.pre, in, out_f, "linear_gelu");
  const Tensor out2 = as_strided(r.out, v.o2.shape(), v.o2.strides(), 0);  // out's view, as pre's
  backend_of(x).linear_gelu(make_view(out2), make_view(v.o2), make_view(v.x2), make_view(weight), bias_view(x, bias),
                            tanh_approx);
  return r;
}

LinearGrads linear_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Shape& x_shape,
                            bool need_x, bool need_weight, bool need_bias) {
  check_defined(grad, "linear_backward", "grad");
  FOCUS_CHECK(!need_x || weight.defined(), "[linear_backward] grad_x needs the weight");
  FOCUS_CHECK(!need_weight || x.defined(), "[linear_backward] grad_weight needs the input");
  FOCUS_CHECK(!x_shape.empty() && grad.dim() == static_cast<int64_t>(x_shape.size()),
              "[linear_backward] grad {} does not match an input of shape {}", grad.shape(), x_shape);
  const int64_t N = grad.size(-1), K = x_shape.back();
  int64_t R = 1;
  for (size_t i = 0; i + 1 < x_shape.size(); ++i) R *= x_shape[i];
  const TensorOptions opts = TensorOptions(grad.dtype()).device(grad.device());
  LinearGrads g;
  // No rows, outputs or inputs: the products are empty, so those gradients are zeros.
  if (need_x && (R == 0 || N == 0 || K == 0)) {
    g.grad_x = zeros(x_shape, opts);
    need_x = false;
  }
  if (need_weight && (R == 0 || N == 0 || K == 0)) {
    g.grad_weight = zeros({N, K}, opts);
    need_weight = false;
  }
  if (need_bias && (R == 0 || N == 0)) {
    g.grad_bias = zeros({N}, opts);
    need_bias = false;
  }
  if (!need_x && !need_weight && !need_bias) return g;
  // The kernel reads grad as a contiguous [R, N] matrix (a view when it already is one).
  Tensor grad2 = reshape(grad, {R, N});
  if (!grad2.is_contiguous()) grad2 = to_contiguous(grad2, grad2.dtype(), grad2.device());
  TensorView gx, gw, gb, xv, wv;
  gx.dtype = gw.dtype = gb.dtype = xv.dtype = wv.dtype = grad.dtype();
  if (need_x) {
    g.grad_x = empty(x_shape, opts);
    gx = make_view(reshape(g.grad_x, {R, K}));
    wv = make_view(weight);
  }
  if (need_weight) {
    g.grad_weight = empty({N, K}, opts);
    gw = make_view(g.grad_weight);
  }
  if (need_bias) {
    g.grad_bias = empty({N}, opts);
    gb = make_view(g.grad_bias);
  }
  Tensor x2;  // x as [R, K]: a copy when its rows do not fold, as LinearBackward0's reshape
  if (need_weight) {
    x2 = reshape(x, {R, K});
    xv = make_view(x2);
  }
  backend_of(grad).linear_backward(gx, gw, gb, make_view(grad2), xv, wv);
  return g;
}

}  // namespace focus::raw
