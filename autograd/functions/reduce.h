#pragma once
/// Differentiable reductions over one or several dims, with keepdim, as in PyTorch.
/// Empty dims list = all dims. Negative dims count from the end.
#include <optional>
#include <tuple>

#include "core/tensor.h"

namespace focus {

/// Sum of all elements (0-d). Integer and bool inputs sum to int64.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const DimList& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const DimList& dims, bool keepdim = false);
Tensor prod(const Tensor& x);
Tensor prod(const Tensor& x, int64_t dim, bool keepdim = false);
/// Largest value overall (0-d).
Tensor max(const Tensor& x);
/// (values, indices) along dim; indices int64.
std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x);
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
/// Max/min over several dims (gradient split evenly among ties).
Tensor amax(const Tensor& x, const DimList& dims, bool keepdim = false);
Tensor amin(const Tensor& x, const DimList& dims, bool keepdim = false);
/// Index of the max/min (flattened when dim is absent); int64.
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
/// Variance / standard deviation with Bessel's correction (correction = 1 by default).
Tensor var(const Tensor& x, const DimList& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const DimList& dims = {}, int64_t correction = 1, bool keepdim = false);
/// log(sum(exp(x))) computed stably.
Tensor logsumexp(const Tensor& x, const DimList& dims, bool keepdim = false);
/// p-norm (p = 2 default; 1, inf, -inf and any p > 0 supported).
Tensor norm(const Tensor& x, double p = 2.0, const DimList& dims = {}, bool keepdim = false);

}  // namespace focus
