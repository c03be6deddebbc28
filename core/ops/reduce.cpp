#include "core/ops/reduce.h"

#include <cmath>
#include <limits>

#include "core/creation.h"
#include "core/ops/common.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace focus::raw {

namespace {

using ReduceOp = Backend::ReduceOp;

// The kernel's output view: out's elements viewed with in's kept sizes (out is contiguous,
// and keepdim's extra 1-dims do not change its element order).
TensorView kept_view(const Tensor& out, const Tensor& permuted, int64_t nkept) {
  TensorView v;
  v.data = out.data_ptr();
  v.dtype = out.dtype();
  v.ndim = static_cast<int>(nkept);
  int64_t stride = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    v.sizes[d] = permuted.shape()[d];
    v.strides[d] = stride;
    stride *= v.sizes[d];
  }
  v.numel = stride;
  return v;
}

// x permuted so the reduced dims come last (each group keeps its order).
Tensor reduced_last(const Tensor& x, const std::vector<bool>& mask, int64_t* nkept) {
  DimList perm;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!mask[d]) perm.push_back(d);
  *nkept = static_cast<int64_t>(perm.size());
  for (int64_t d = 0; d < x.dim(); ++d)
    if (mask[d]) perm.push_back(d);
  return permute(x, perm);
}

Tensor run_reduce(ReduceOp op, const Tensor& x, const std::vector<bool>& mask, bool keepdim, DType out_dtype,
                  double p) {
  Tensor out = empty(reduced_shape(x.shape(), mask, keepdim), out_dtype, x.device());
  if (out.numel() == 0) return out;
  int64_t nkept = 0;
  Tensor xp = reduced_last(x, mask, &nkept);
  backend_of(x).reduce(op, kept_view(out, xp, nkept), make_view(xp), static_cast<int>(x.dim() - nkept), p);
  return out;
}

void check_nonempty_dims(const Tensor& x, const std::vector<bool>& mask, const char* op) {
  for (int64_t d = 0; d < x.dim(); ++d)
    FOCUS_CHECK(!mask[d] || x.shape()[d] != 0,
                "[{}] expected reduction dim {} to have non-zero size (input shape {}): the operation has no identity",
                op, d, x.shape());
}

void check_float_input(const Tensor& x, const char* op) {
  FOCUS_CHECK(x.is_floating_point(),
              "[{}] could not infer output dtype: the input dtype must be floating point, got {}", op, x.dtype());
}

DType sum_dtype(DType t) { return is_floating(t) ? t : kInt64; }

std::tuple<Tensor, Tensor> extremum_dim(bool is_max, const Tensor& x, int64_t dim, bool keepdim, bool want_values,
                                        const char* op) {
  check_defined(x, op, "input");
  const int64_t d = wrap_dim(dim, x.dim(), op);
  std::vector<bool> mask(static_cast<size_t>(x.dim()), false);
  if (x.dim() > 0) {
    mask[d] = true;
    FOCUS_CHECK(x.shape()[d] != 0, "[{}] expected reduction dim {} to have non-zero size (input shape {})", op, d,
                x.shape());
  }
  const Shape shape = reduced_shape(x.shape(), mask, keepdim);
  Tensor values = want_values ? empty(shape, x.dtype(), x.device()) : Tensor();
  Tensor indices = empty(shape, kInt64, x.device());
  if (indices.numel() == 0) return {values, indices};
  int64_t nkept = 0;
  // A 0-d input is reduced as a 1-element dim.
  Tensor xp = x.dim() == 0 ? reshape(x, {1}) : reduced_last(x, mask, &nkept);
  TensorView vv;
  if (want_values) vv = kept_view(values, xp, nkept);
  vv.data = want_values ? values.data_ptr() : nullptr;
  backend_of(x).arg_reduce(is_max, vv, kept_view(indices, xp, nkept), make_view(xp));
  return {values, indices};
}

Tensor arg_extremum(bool is_max, const Tensor& x, std::optional<int64_t> dim, bool keepdim, const char* op) {
  check_defined(x, op, "input");
  if (dim) return std::get<1>(extremum_dim(is_max, x, *dim, keepdim, false, op));
  FOCUS_CHECK(x.numel() > 0, "[{}] expected reduction dim to be specified for an empty input (shape {})", op,
              x.shape());
  Tensor idx = std::get<1>(extremum_dim(is_max, reshape(x, {x.numel()}), 0, false, false, op));
  return keepdim ? reshape(idx, Shape(static_cast<size_t>(x.dim()), 1)) : idx;
}

Tensor extremum_all(bool is_max, const Tensor& x, const char* op) {
  check_defined(x, op, "input");
  FOCUS_CHECK(x.numel() > 0,
              "[{}] expected reduction dim to be specified for an empty input (shape {}); use the dim argument", op,
              x.shape());
  return run_reduce(is_max ? ReduceOp::Max : ReduceOp::Min, x, std::vector<bool>(static_cast<size_t>(x.dim()), true),
                    false, x.dtype(), 0);
}

}  // namespace

std::vector<bool> reduction_mask(const DimList& dims, int64_t ndim, const char* op) {
  std::vector<bool> mask(static_cast<size_t>(ndim), dims.empty());
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(ndim, 1)), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, ndim, op);
    FOCUS_CHECK(!seen[w], "[{}] dim {} appears multiple times in the list of dims {}", op, w, dims);
    seen[w] = true;
    if (ndim > 0) mask[w] = true;
  }
  return mask;
}

Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!mask[d]) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

int64_t reduced_numel(const Shape& shape, const std::vector<bool>& mask) {
  int64_t n = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    if (mask[d]) n *= shape[d];
  return n;
}

Tensor sum(const Tensor& x, const DimList& dims, bool keepdim) {
  check_defined(x, "sum", "input");
  return run_reduce(ReduceOp::Sum, x, reduction_mask(dims, x.dim(), "sum"), keepdim, sum_dtype(x.dtype()), 0);
}

Tensor mean(const Tensor& x, const DimList& dims, bool keepdim) {
  check_defined(x, "mean", "input");
  check_float_input(x, "mean");
  return run_reduce(ReduceOp::Mean, x, reduction_mask(dims, x.dim(), "mean"), keepdim, x.dtype(), 0);
}

Tensor prod(const Tensor& x, const DimList& dims, bool keepdim) {
  check_defined(x, "prod", "input");
  return run_reduce(ReduceOp::Prod, x, reduction_mask(dims, x.dim(), "prod"), keepdim, sum_dtype(x.dtype()), 0);
}

Tensor amax(const Tensor& x, const DimList& dims, bool keepdim) {
  check_defined(x, "amax", "input");
  const auto mask = reduction_mask(dims, x.dim(), "amax");
  check_nonempty_dims(x, mask, "amax");
  return run_reduce(ReduceOp::Max, x, mask, keepdim, x.dtype(), 0);
}

Tensor amin(const Tensor& x, const DimList& dims, bool keepdim) {
  check_defined(x, "amin", "input");
  const auto mask = reduction_mask(dims, x.dim(), "amin");
  check_nonempty_dims(x, mask, "amin");
  return run_reduce(ReduceOp::Min, x, mask, keepdim, x.dtype(), 0);
}

Tensor max(const Tensor& x) { return extremum_all(true, x, "max"); }
Tensor min(const Tensor& x) { return extremum_all(false, x, "min"); }

std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(true, x, dim, keepdim, true, "max");
}
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(false, x, dim, keepdim, true, "min");
}

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extremum(true, x, dim, keepdim, "argmax");
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extremum(false, x, dim, keepdim, "argmin");
}

namespace {
Tensor var_impl(const Tensor& x, const DimList& dims, int64_t correction, bool keepdim, const char* op) {
  check_defined(x, op, "input");
  FOCUS_CHECK(x.is_floating_point(), "[{}] std and var only support floating point dtypes, got {}", op, x.dtype());
  const auto mask = reduction_mask(dims, x.dim(), op);
  const int64_t n = reduced_numel(x.shape(), mask);
  // Two passes (mean, then squared deviations) keep the result accurate when the mean is large.
  Tensor m = run_reduce(ReduceOp::Mean, x, mask, true, x.dtype(), 0);
  Tensor dev = binary(BinaryOp::Sub, x, m, op);
  Tensor ss = run_reduce(ReduceOp::Sum, binary(BinaryOp::Mul, dev, dev, op), mask, keepdim, x.dtype(), 0);
  return binary(BinaryOp::Div, ss, Scalar(static_cast<double>(std::max<int64_t>(0, n - correction))), op);
}
}  // namespace

Tensor var(const Tensor& x, const DimList& dims, int64_t correction, bool keepdim) {
  return var_impl(x, dims, correction, keepdim, "var");
}

Tensor std(const Tensor& x, const DimList& dims, int64_t correction, bool keepdim) {
  return unary(UnaryOp::Sqrt, var_impl(x, dims, correction, keepdim, "std"), {}, "std");
}

Tensor logsumexp(const Tensor& x, const DimList& dims, bool keepdim) {
  check_defined(x, "logsumexp", "input");
  const Tensor xf = x.is_floating_point() ? x : to_contiguous(x, default_float_dtype(), x.device());
  const auto mask = reduction_mask(dims, x.dim(), "logsumexp");
  const Shape shape = reduced_shape(x.shape(), mask, keepdim);
  if (reduced_numel(x.shape(), mask) == 0)
    return full(shape, -std::numeric_limits<double>::infinity(), TensorOptions(xf.dtype()).device(x.device()));
  // Subtract the max (0 where it is infinite, so inf - inf does not make nan).
  Tensor m = run_reduce(ReduceOp::Max, xf, mask, true, xf.dtype(), 0);
  m = masked_fill(m, binary(BinaryOp::Eq, unary(UnaryOp::Abs, m, {}, "logsumexp"),
                            Scalar(std::numeric_limits<double>::infinity()), "logsumexp"),
                  0);
  Tensor s = run_reduce(ReduceOp::Sum, unary(UnaryOp::Exp, binary(BinaryOp::Sub, xf, m, "logsumexp"), {}, "logsumexp"),
                        mask, keepdim, xf.dtype(), 0);
  return binary(BinaryOp::Add, unary(UnaryOp::Log, s, {}, "logsumexp"), keepdim ? m : reshape(m, shape), "logsumexp");
}

Tensor norm(const Tensor& x, double p, const DimList& dims, bool keepdim) {
  check_defined(x, "norm", "input");
  FOCUS_CHECK(x.is_floating_point(), "[norm] input dtype should be floating point, got {}", x.dtype());
  FOCUS_CHECK(!std::isnan(p), "[norm] the order p must not be nan");
  return run_reduce(ReduceOp::Norm, x, reduction_mask(dims, x.dim(), "norm"), keepdim, x.dtype(), p);
}

}  // namespace focus::raw
