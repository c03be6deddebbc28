#include "core/ops/linalg.h"

#include <climits>

#include "core/ops/common.h"
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

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias);
  const int64_t in = weight.size(1), out_f = weight.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor out = empty(out_shape, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  const int64_t rows = out.numel() / out_f;
  FOCUS_CHECK(rows <= INT_MAX, "[linear] {} rows exceed BLAS's int sizes", rows);
  // x as a [rows, in] matrix when its rows line up; else the kernel loops over x's
  // leading dims (no copy either way).
  Tensor x2 = x, o2 = out;
  if (x.dim() == 1) {
    x2 = unsqueeze(x, 0);
    o2 = unsqueeze(out, 0);
  } else if (auto st = view_strides(x, {rows, in})) {
    x2 = as_strided(x, {rows, in}, *st, x.storage_offset());
    o2 = as_strided(out, {rows, out_f}, {out_f, 1}, 0);
  }
  // The kernel adds the bias (a GEMM epilogue on CUDA, addmm's beta = 1 onto the broadcast
  // bias elsewhere) and reads weight [out, in] as it is (BLAS/cuBLAS transpose flags).
  TensorView bias_view;
  bias_view.dtype = x.dtype();
  if (bias.defined()) bias_view = make_view(bias);
  backend_of(x).linear(make_view(o2), make_view(x2), make_view(weight), bias_view);
  return out;
}

}  // namespace focus::raw
