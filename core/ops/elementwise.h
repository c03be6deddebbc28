#pragma once
/// Raw elementwise ops: type promotion, broadcasting, allocation, kernel dispatch.
#include "backends/backend.h"
#include "core/tensor.h"

namespace focus::raw {

/// PyTorch's result type of a binary op: dimensioned tensors decide within a category;
/// 0-d tensors and scalars only lift the category (bool < integer < floating).
DType result_type(const Tensor& a, const Tensor& b);
DType result_type(const Tensor& a, Scalar b);

/// op(x); integer inputs of floating ops are computed in float32.
Tensor unary(UnaryOp op, const Tensor& x, UnaryParams p, const char* name);
/// x = op(x) in place (x keeps its dtype).
void unary_(UnaryOp op, const Tensor& x, UnaryParams p, const char* name);
/// grad * f'(x) for the op (result = f(x) where the op needs it). reuse_grad: the caller is
/// done with grad (a unary op's backward consuming its incoming gradient), so when nothing
/// else can see it (one handle, its own contiguous storage, no history) the result is
/// written over it instead of into a new tensor.
Tensor unary_backward(UnaryBackwardOp op, const Tensor& grad, const Tensor& x, const Tensor& result,
                      UnaryParams p, const char* name, bool reuse_grad = false);
/// a op b with broadcasting and promotion; Div promotes integers to float32.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name);
Tensor binary(BinaryOp op, const Tensor& a, Scalar b, const char* name);
/// self = self op other in place; the result type must fit in self's dtype.
void binary_(BinaryOp op, const Tensor& self, const Tensor& other, const char* name);
void binary_(BinaryOp op, const Tensor& self, Scalar other, const char* name);
/// cond ? a : b with broadcasting; cond must be bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, Scalar b);
/// x with value where mask is true (mask bool, broadcast to x).
Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value);
void masked_fill_(const Tensor& x, const Tensor& mask, Scalar value);
/// Fills in place.
void fill_(const Tensor& x, Scalar value);

}  // namespace focus::raw
