#include "core/ops/elementwise.h"

#include <cmath>

#include "core/creation.h"
#include "core/ops/common.h"

namespace focus::raw {

namespace {
int category(DType t) { return t == kBool ? 0 : is_floating(t) ? 2 : 1; }
int category(Scalar s) { return s.kind() == Scalar::Kind::Bool ? 0 : s.is_floating() ? 2 : 1; }

// torch.can_cast for in-place results: never to a lower category (float -> int, int -> bool).
bool can_cast(DType from, DType to) { return category(from) <= category(to); }

bool is_compare(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Ge; }
bool is_logical(BinaryOp op) { return op >= BinaryOp::LogicalAnd; }

// Ops that only make sense on floating inputs: integers compute in float32, like PyTorch.
bool is_float_op(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: case UnaryOp::Abs: case UnaryOp::Sign: case UnaryOp::Clamp:
    case UnaryOp::AddScalar: case UnaryOp::MulScalar: case UnaryOp::Relu: case UnaryOp::LogicalNot:
    case UnaryOp::PowScalar:
      return false;
    default: return true;
  }
}

Tensor cast(const Tensor& t, DType d) { return t.dtype() == d ? t : to_contiguous(t, d, t.device()); }

// Writing in place through a broadcast view would race on shared elements.
void check_writable(const Tensor& t, const char* name) {
  for (int64_t d = 0; d < t.dim(); ++d)
    FOCUS_CHECK(t.strides()[d] != 0 || t.shape()[d] <= 1,
                "[{}] unsupported in-place operation: more than one element of the written-to tensor refers to a "
                "single memory location (shape {}, strides {}); clone() it first",
                name, t.shape(), t.strides());
}
}  // namespace

DType result_type(const Tensor& a, const Tensor& b) {
  const bool za = a.dim() == 0, zb = b.dim() == 0;
  if (za == zb) return promote_types(a.dtype(), b.dtype());
  const Tensor& big = za ? b : a;
  const Tensor& small = za ? a : b;
  if (category(small.dtype()) > category(big.dtype())) return small.dtype();
  return big.dtype();
}

DType result_type(const Tensor& a, Scalar b) {
  if (category(b) > category(a.dtype())) return b.natural_dtype();
  return a.dtype();
}

Tensor unary(UnaryOp op, const Tensor& x, UnaryParams p, const char* name) {
  check_defined(x, name, "input");
  DType dt = x.dtype();
  if (op == UnaryOp::LogicalNot) dt = kBool;
  else if (is_float_op(op) && !is_floating(dt)) dt = default_float_dtype();
  else if (op == UnaryOp::Neg) FOCUS_CHECK(dt != kBool, "[{}] negation of a bool tensor is not supported; use logical_not", name);
  else FOCUS_CHECK(dt != kBool, "[{}] bool inputs are not supported", name);
  Tensor in = op == UnaryOp::LogicalNot ? x : cast(x, dt);
  Tensor out = empty(x.shape(), dt, x.device());
  if (out.numel() > 0) backend_of(x).unary(op, make_view(out), make_view(in), p);
  return out;
}

void unary_(UnaryOp op, const Tensor& x, UnaryParams p, const char* name) {
  check_defined(x, name, "self");
  check_writable(x, name);
  FOCUS_CHECK(!is_float_op(op) || x.is_floating_point(), "[{}] in-place result of type float cannot be stored in a {} tensor",
              name, x.dtype());
  if (x.numel() > 0) backend_of(x).unary(op, make_view(x), make_view(x), p);
  x.bump_version();
}

Tensor unary_backward(UnaryBackwardOp op, const Tensor& grad, const Tensor& x, const Tensor& result, UnaryParams p,
                      const char* name, bool reuse_grad) {
  const bool own = reuse_grad && grad.impl_ptr().use_count() == 1 && grad.storage().use_count() == 1 &&
                   grad.storage_offset() == 0 && grad.is_contiguous() && !grad.requires_grad();
  Tensor out = own ? grad : empty(grad.shape(), grad.dtype(), grad.device());
  const Tensor& r = result.defined() ? result : x;
  if (out.numel() > 0)
    backend_of(grad).unary_backward(op, make_view(out), make_view(grad), make_view(cast(x, grad.dtype()), grad.shape()),
                                    make_view(cast(r, grad.dtype()), grad.shape()), p);
  (void)name;
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_defined(a, name, "input");
  check_defined(b, name, "other");
  check_same_device(a, b, name);
  // Equal shapes (the common case) need no broadcast and no new shape vector.
  Shape broadcast;
  if (a.shape() != b.shape()) broadcast = broadcast_shapes(a.shape(), b.shape(), name);
  const Shape& shape = a.shape() == b.shape() ? a.shape() : broadcast;
  DType common = is_logical(op) ? kBool : result_type(a, b);
  if (op == BinaryOp::Div && !is_floating(common)) common = default_float_dtype();
  if (op == BinaryOp::Sub) FOCUS_CHECK(common != kBool, "[{}] subtraction of bool tensors is not supported; use logical_xor", name);
  const DType out_dt = is_compare(op) || is_logical(op) ? kBool : common;
  Tensor out = empty(shape, out_dt, a.device());
  if (out.numel() > 0)
    backend_of(a).binary(op, make_view(out), make_view(cast(a, common), shape), make_view(cast(b, common), shape));
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, Scalar b, const char* name) {
  check_defined(a, name, "input");
  DType common = result_type(a, b);
  if (op == BinaryOp::Div && !is_floating(common)) common = default_float_dtype();
  // Fast paths without a broadcast 0-d operand.
  if (common == a.dtype() && (op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul) && common != kBool) {
    Tensor out = empty(a.shape(), common, a.device());
    const double v = b.to_double();
    UnaryParams p{op == BinaryOp::Sub ? -v : v, 0};
    if (out.numel() > 0)
      backend_of(a).unary(op == BinaryOp::Mul ? UnaryOp::MulScalar : UnaryOp::AddScalar, make_view(out), make_view(a), p);
    return out;
  }
  FOCUS_CHECK(op != BinaryOp::Pow || is_floating(common) || !(b.to_double() < 0),
              "[{}] integers to negative integer powers are not allowed", name);
  if (op == BinaryOp::Pow && is_floating(common) && common == a.dtype()) {
    Tensor out = empty(a.shape(), common, a.device());
    if (out.numel() > 0) backend_of(a).unary(UnaryOp::PowScalar, make_view(out), make_view(a), {b.to_double(), 0});
    return out;
  }
  return binary(op, a, full({}, b, TensorOptions(common).device(a.device())), name);
}

void binary_(BinaryOp op, const Tensor& self, const Tensor& other, const char* name) {
  check_defined(self, name, "self");
  check_defined(other, name, "other");
  check_same_device(self, other, name);
  check_writable(self, name);
  FOCUS_CHECK(broadcast_shapes(self.shape(), other.shape(), name) == self.shape(),
              "[{}] output with shape {} doesn't match the broadcast shape of {} and {}", name, self.shape(),
              self.shape(), other.shape());
  DType common = result_type(self, other);
  if (op == BinaryOp::Div && !is_floating(common)) common = default_float_dtype();
  FOCUS_CHECK(can_cast(common, self.dtype()),
              "[{}] result type {} can't be cast to the desired output type {}", name, common, self.dtype());
  if (self.numel() > 0) {
    const DType dt = self.dtype();
    // other may be self itself (x.add_(x)): the kernel reads each element before writing
    // it. Any other overlap (x.add_(x.t())) would read already-written elements: copy first.
    const bool overlaps = other.storage() == self.storage() &&
                          !(other.storage_offset() == self.storage_offset() && other.shape() == self.shape() &&
                            other.strides() == self.strides());
    const Tensor src = overlaps ? clone(other) : other;
    backend_of(self).binary(op, make_view(self), make_view(self), make_view(cast(src, dt), self.shape()));
  }
  self.bump_version();
}

void binary_(BinaryOp op, const Tensor& self, Scalar other, const char* name) {
  check_defined(self, name, "self");
  DType common = result_type(self, other);
  if (op == BinaryOp::Div && !is_floating(common)) common = default_float_dtype();
  FOCUS_CHECK(can_cast(common, self.dtype()),
              "[{}] result type {} can't be cast to the desired output type {}", name, common, self.dtype());
  if ((op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul) && self.dtype() != kBool) {
    const double v = other.to_double();
    unary_(op == BinaryOp::Mul ? UnaryOp::MulScalar : UnaryOp::AddScalar, self, {op == BinaryOp::Sub ? -v : v, 0}, name);
    return;
  }
  binary_(op, self, full({}, other, TensorOptions(self.dtype()).device(self.device())), name);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "condition");
  check_defined(a, "where", "input");
  check_defined(b, "where", "other");
  FOCUS_CHECK(cond.dtype() == kBool, "[where] condition must be a bool tensor, got {}", cond.dtype());
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const DType dt = result_type(a, b);
  Tensor out = empty(shape, dt, a.device());
  if (out.numel() > 0)
    backend_of(a).where(make_view(out), make_view(cond, shape), make_view(cast(a, dt), shape),
                        make_view(cast(b, dt), shape));
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, Scalar b) {
  check_defined(a, "where", "input");
  return where(cond, a, full({}, b, TensorOptions(result_type(a, b)).device(a.device())));
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value) {
  check_defined(x, "masked_fill", "input");
  check_defined(mask, "masked_fill", "mask");
  FOCUS_CHECK(mask.dtype() == kBool, "[masked_fill] mask must be a bool tensor, got {}", mask.dtype());
  FOCUS_CHECK(broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(),
              "[masked_fill] mask of shape {} cannot be broadcast to the input's shape {}", mask.shape(), x.shape());
  return where(mask, full({}, value, TensorOptions(x.dtype()).device(x.device())), x);
}

void masked_fill_(const Tensor& x, const Tensor& mask, Scalar value) {
  check_defined(x, "masked_fill_", "self");
  check_writable(x, "masked_fill_");
  Tensor r = masked_fill(x, mask, value);
  copy_(x, r);
  x.bump_version();
}

void fill_(const Tensor& x, Scalar value) {
  check_defined(x, "fill_", "self");
  check_writable(x, "fill_");
  if (x.numel() > 0) backend_of(x).fill(make_view(x), value);
  x.bump_version();
}

}  // namespace focus::raw
