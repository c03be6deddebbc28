#pragma once
/// Raw reductions: dim handling, output shape and dtype, kernel dispatch. No autograd; the
/// differentiable versions live in autograd/functions/reduce.cpp.
/// dims: wrapped (negative count from the end), empty = all dims, no repeats.
#include <optional>
#include <tuple>
#include <vector>

#include "core/tensor.h"

namespace focus::raw {

/// mask[d] = true for each reduced dim of an ndim-dim tensor; errors name op.
std::vector<bool> reduction_mask(const DimList& dims, int64_t ndim, const char* op);
/// shape with the masked dims removed (or kept as 1 with keepdim).
Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdim);
/// Number of elements each output reduces.
int64_t reduced_numel(const Shape& shape, const std::vector<bool>& mask);

/// Integer and bool inputs sum (and multiply) to int64; floats keep their dtype.
Tensor sum(const Tensor& x, const DimList& dims, bool keepdim);
/// Floating inputs only; nan over an empty set.
Tensor mean(const Tensor& x, const DimList& dims, bool keepdim);
Tensor prod(const Tensor& x, const DimList& dims, bool keepdim);
/// Same dtype as x; every reduced dim must be non-empty; NaN propagates.
Tensor amax(const Tensor& x, const DimList& dims, bool keepdim);
Tensor amin(const Tensor& x, const DimList& dims, bool keepdim);
/// Largest / smallest element overall (0-d); x must be non-empty.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
/// (values, int64 indices) along dim; the first occurrence of the extremum (or first NaN).
std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim);
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim);
/// Index into the flattened tensor when dim is absent (keepdim then gives all-1 dims).
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim);
/// sum((x - mean)^2) / max(0, N - correction); floating inputs only.
Tensor var(const Tensor& x, const DimList& dims, int64_t correction, bool keepdim);
Tensor std(const Tensor& x, const DimList& dims, int64_t correction, bool keepdim);
/// log(sum(exp(x))) with the max subtracted first; integer inputs compute in float32.
Tensor logsumexp(const Tensor& x, const DimList& dims, bool keepdim);
/// (sum |x|^p)^(1/p); p = inf / -inf: max / min |x|; p = 0: count of nonzeros.
Tensor norm(const Tensor& x, double p, const DimList& dims, bool keepdim);

}  // namespace focus::raw
