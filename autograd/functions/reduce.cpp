// Differentiable reductions: forward through the raw ops of core/ops/reduce.h, backward
// right beside it. Backwards are written with differentiable tensor ops, so
// create_graph=true gives second derivatives.
#include "autograd/functions/reduce.h"

#include <cmath>
#include <limits>

#include "autograd/functions/elementwise.h"
#include "autograd/autocast.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/common.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"

namespace focus {

namespace {

// What a backward needs to know of the reduction: the input's shape, which dims were
// reduced, and whether they were kept.
struct ReduceInfo {
  Shape shape;
  std::vector<bool> mask;
  bool keepdim;
  int64_t count() const { return raw::reduced_numel(shape, mask); }
};

ReduceInfo info_of(const Tensor& x, const DimList& dims, bool keepdim, const char* op) {
  return {x.shape(), raw::reduction_mask(dims, x.dim(), op), keepdim};
}

// A reduced tensor (gradient or result) with its reduced dims restored as size 1.
Tensor unreduce(const Tensor& t, const ReduceInfo& info) {
  Tensor r = t;
  if (!info.keepdim)
    for (size_t d = 0; d < info.mask.size(); ++d)
      if (info.mask[d]) r = r.unsqueeze(static_cast<int64_t>(d));
  return r;
}

// ... and broadcast to the input's shape (a view).
Tensor expand_back(const Tensor& t, const ReduceInfo& info) { return unreduce(t, info).expand(info.shape); }

DimList reduced_dims(const ReduceInfo& info) {
  DimList dims;
  for (size_t d = 0; d < info.mask.size(); ++d)
    if (info.mask[d]) dims.push_back(static_cast<int64_t>(d));
  return dims;
}

Tensor is_nan(const Tensor& t) { return ne(t, t); }

// Gradient of amax/amin/max()/min(): split evenly among the elements equal to the result
// (NaN results go to the NaN elements): grad_x = grad * mask / count(mask).
Tensor extremum_backward(const Tensor& g, const Tensor& x, const Tensor& result, const ReduceInfo& info) {
  Tensor r = unreduce(result, info);
  Tensor mask = logical_or(eq(x, r), logical_and(is_nan(x), is_nan(r)));
  Tensor count = sum(mask, reduced_dims(info), true);
  return where(mask, unreduce(g, info) / count, 0.0);
}

// Records an amax-like reduction y = f(x).
Tensor record_extremum(Tensor y, const Tensor& x, const ReduceInfo& info, const char* node) {
  if (needs_grad(x)) {
    record(node, {x}, {y}, {save(x), save(y, true)}, [info](BackwardContext& c) {
      // grad_x = grad * (x == y) / count(x == y) : [reduced] -> [input]
      return grads(extremum_backward(c.grad(0), c.saved(0), c.saved(1), info));
    });
  }
  return y;
}

// Gradient of max/min along dim: to the position of the chosen index.
// grad_x = where(arange(n) == index, grad, 0) : [reduced] -> [input]
Tensor index_backward(const Tensor& g, const Tensor& indices, const Shape& shape, int64_t dim, bool keepdim) {
  if (shape.empty()) return g;  // 0-d input: the value itself
  Shape pos_shape(shape.size(), 1);
  pos_shape[dim] = shape[dim];
  Tensor pos = arange(shape[dim], TensorOptions(kInt64).device(g.device())).view(pos_shape);
  Tensor idx = keepdim ? indices : indices.unsqueeze(dim);
  Tensor gg = keepdim ? g : g.unsqueeze(dim);
  return where(eq(pos, idx), gg, 0.0).expand(shape);
}

std::tuple<Tensor, Tensor> extremum_dim(bool is_max, const Tensor& x, int64_t dim, bool keepdim) {
  auto [values, indices] = is_max ? raw::max(x, dim, keepdim) : raw::min(x, dim, keepdim);
  if (needs_grad(x)) {
    const Shape shape = x.shape();
    const int64_t d = wrap_dim(dim, x.dim(), is_max ? "max" : "min");
    record(is_max ? "MaxBackward0" : "MinBackward0", {x}, {values, indices}, {save(indices, true)},
           [shape, d, keepdim](BackwardContext& c) {
             return grads(index_backward(c.grad(0), c.saved(0), shape, d, keepdim));
           });
  }
  return {values, indices};
}

Tensor prod_impl(const Tensor& x, const DimList& dims, bool keepdim, const char* node) {
  Tensor y = raw::prod(x, dims, keepdim);
  if (needs_grad(x)) {
    ReduceInfo info = info_of(x, dims, keepdim, "prod");
    record(node, {x}, {y}, {save(x)}, [info](BackwardContext& c) {
      // grad_x_i = grad * prod(x_j, j != i) : [reduced] -> [input], without dividing by zero:
      //   no zero:  grad * P / x_i, with P the product of all;
      //   one zero: grad * P' at the zero (P' the product of the nonzeros), and
      //             grad * P' * x_zero / x_i elsewhere (0, but with the right derivative);
      //   more:     0.
      Tensor x = c.saved(0);
      const DimList dims = reduced_dims(info);
      Tensor is_zero = eq(x, 0.0);
      Tensor zeros_count = sum(is_zero, dims, true);
      Tensor g = unreduce(c.grad(0), info);
      Tensor x_or_1 = masked_fill(x, is_zero, 1.0);
      Tensor g_others = g * prod_impl(x_or_1, dims, true, "ProdBackward1");
      Tensor no_zero = g_others / x_or_1;
      Tensor x_zero = sum(masked_fill(x, logical_not(is_zero), 0.0), dims, true);
      Tensor one_zero = g_others * masked_fill(x_zero / x_or_1, is_zero, 1.0);
      return grads(where(eq(zeros_count, 0), no_zero, where(eq(zeros_count, 1), one_zero, 0.0)));
    });
  }
  return y;
}

// The forward result, unreduced, for a backward formula that uses it. Saved outputs carry
// no history, so with create_graph the result is recomputed from x to keep its dependence on x.
template <typename F> Tensor result_of(BackwardContext& c, size_t i, const ReduceInfo& info, F recompute) {
  return GradMode::is_enabled() ? recompute() : unreduce(c.saved(i), info);
}

}  // namespace

// ---- sum, mean -----------------------------------------------------------------------------

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor sum(const Tensor& x, const DimList& dims, bool keepdim) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return sum(t...); }, x, dims, keepdim);
  Tensor y = raw::sum(x, dims, keepdim);
  if (needs_grad(x)) {
    ReduceInfo info = info_of(x, dims, keepdim, "sum");
    record(dims.empty() ? "SumBackward0" : "SumBackward1", {x}, {y}, {}, [info](BackwardContext& c) {
      // grad_x = expand(grad) : [reduced] -> [input]
      return grads(expand_back(c.grad(0), info));
    });
  }
  return y;
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor mean(const Tensor& x, const DimList& dims, bool keepdim) {
  Tensor y = raw::mean(x, dims, keepdim);
  if (needs_grad(x)) {
    ReduceInfo info = info_of(x, dims, keepdim, "mean");
    record(dims.empty() ? "MeanBackward0" : "MeanBackward1", {x}, {y}, {}, [info](BackwardContext& c) {
      // grad_x = expand(grad) / N : [reduced] -> [input]
      return grads(expand_back(c.grad(0), info) / static_cast<double>(info.count()));
    });
  }
  return y;
}

// ---- prod ----------------------------------------------------------------------------------

Tensor prod(const Tensor& x) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return prod(t...); }, x);
  return prod_impl(x, {
}, false, "ProdBackward0"); }

Tensor prod(const Tensor& x, int64_t dim, bool keepdim) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return prod(t...); }, x, dim, keepdim);
  return prod_impl(x, {dim
}, keepdim, "ProdBackward1"); }

// ---- max, min, amax, amin, argmax, argmin ---------------------------------------------------

Tensor max(const Tensor& x) {
  Tensor y = raw::max(x);
  return record_extremum(y, x, {x.shape(), std::vector<bool>(static_cast<size_t>(x.dim()), true), false},
                         "MaxBackward1");
}

Tensor min(const Tensor& x) {
  Tensor y = raw::min(x);
  return record_extremum(y, x, {x.shape(), std::vector<bool>(static_cast<size_t>(x.dim()), true), false},
                         "MinBackward1");
}

std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(true, x, dim, keepdim);
}

std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return extremum_dim(false, x, dim, keepdim);
}

Tensor amax(const Tensor& x, const DimList& dims, bool keepdim) {
  Tensor y = raw::amax(x, dims, keepdim);
  return record_extremum(y, x, info_of(x, dims, keepdim, "amax"), "AmaxBackward0");
}

Tensor amin(const Tensor& x, const DimList& dims, bool keepdim) {
  Tensor y = raw::amin(x, dims, keepdim);
  return record_extremum(y, x, info_of(x, dims, keepdim, "amin"), "AminBackward0");
}

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) { return raw::argmax(x, dim, keepdim); }

Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) { return raw::argmin(x, dim, keepdim); }

// ---- var, std ------------------------------------------------------------------------------

Tensor var(const Tensor& x, const DimList& dims, int64_t correction, bool keepdim) {
  Tensor y = raw::var(x, dims, correction, keepdim);
  if (needs_grad(x)) {
    ReduceInfo info = info_of(x, dims, keepdim, "var");
    record("VarBackward0", {x}, {y}, {save(x)}, [info, correction](BackwardContext& c) {
      // grad_x = grad * 2 (x - mean) / (N - correction) : [reduced] -> [input]
      Tensor x = c.saved(0);
      const double denom = static_cast<double>(std::max<int64_t>(0, info.count() - correction));
      return grads(unreduce(c.grad(0), info) * (x - mean(x, reduced_dims(info), true)) * (2.0 / denom));
    });
  }
  return y;
}

Tensor std(const Tensor& x, const DimList& dims, int64_t correction, bool keepdim) {
  Tensor y = raw::std(x, dims, correction, keepdim);
  if (needs_grad(x)) {
    ReduceInfo info = info_of(x, dims, keepdim, "std");
    record("StdBackward0", {x}, {y}, {save(x), save(y, true)}, [info, correction](BackwardContext& c) {
      // grad_x = grad * (x - mean) / ((N - correction) std), 0 where std == 0 : [reduced] -> [input]
      Tensor x = c.saved(0);
      Tensor s = result_of(c, 1, info, [&] { return focus::std(x, reduced_dims(info), correction, true); });
      const double denom = static_cast<double>(std::max<int64_t>(0, info.count() - correction));
      Tensor scale = masked_fill(unreduce(c.grad(0), info) / (s * denom), eq(s, 0.0), 0.0);
      return grads(scale * (x - mean(x, reduced_dims(info), true)));
    });
  }
  return y;
}

// ---- logsumexp -----------------------------------------------------------------------------

Tensor logsumexp(const Tensor& x, const DimList& dims, bool keepdim) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return logsumexp(t...); }, x, dims, keepdim);
  Tensor y = raw::logsumexp(x, dims, keepdim);
  if (needs_grad(x)) {
    ReduceInfo info = info_of(x, dims, keepdim, "logsumexp");
    record("LogsumexpBackward0", {x}, {y}, {save(x), save(y, true)}, [info](BackwardContext& c) {
      // grad_x = grad * exp(x - y) (the softmax over the reduced dims) : [reduced] -> [input]
      Tensor x = c.saved(0);
      Tensor y = result_of(c, 1, info, [&] { return logsumexp(x, reduced_dims(info), true); });
      return grads(unreduce(c.grad(0), info) * exp(x - y));
    });
  }
  return y;
}

// ---- norm ----------------------------------------------------------------------------------

Tensor norm(const Tensor& x, double p, const DimList& dims, bool keepdim) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return norm(t...); }, x, p, dims, keepdim);
  Tensor y = raw::norm(x, p, dims, keepdim);
  if (needs_grad(x)) {
    ReduceInfo info = info_of(x, dims, keepdim, "norm");
    record("NormBackward1", {x}, {y}, {save(x), save(y, true)}, [info, p](BackwardContext& c) {
      Tensor x = c.saved(0);
      Tensor n = result_of(c, 1, info, [&] { return norm(x, p, reduced_dims(info), true); });
      Tensor g = unreduce(c.grad(0), info);
      // sign(x) is piecewise constant: its own derivative is 0, so a raw op is fine here.
      Tensor sign = raw::unary(UnaryOp::Sign, x, {}, "norm");
      if (p == 0) return grads(zeros_like(x));
      if (p == 1) return grads(g * sign);  // grad_x = grad * sign(x)
      if (p == 2) {
        // grad_x = grad * x / norm, 0 where norm == 0
        return grads(masked_fill(g / n, eq(n, 0.0), 0.0) * x);
      }
      if (std::isinf(p)) {
        // grad_x = grad * sign(x) * (|x| == norm) / count(|x| == norm)
        Tensor mask = eq(abs(x), n);
        return grads(where(mask, sign * (g / sum(mask, reduced_dims(info), true)), 0.0));
      }
      // grad_x = grad * sign(x) |x|^(p-1) / norm^(p-1), 0 where x == 0 or norm == 0
      Tensor scaled = masked_fill(sign * pow(abs(x), p - 1.0), eq(x, 0.0), 0.0);
      return grads(scaled * masked_fill(g / pow(n, p - 1.0), eq(n, 0.0), 0.0));
    });
  }
  return y;
}

}  // namespace focus
