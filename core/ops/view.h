#pragma once
/// Raw view ops: new geometry over the same storage, no copy, no autograd. The
/// differentiable Tensor methods (autograd/functions/view.cpp) wrap these.
#include <optional>

#include "core/tensor.h"

namespace focus::raw {

/// Resolves one -1 in shape against numel; errors name op.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);
/// Strides for viewing t as shape without a copy, or nullopt if impossible.
std::optional<Shape> view_strides(const Tensor& t, const Shape& shape);

Tensor view(const Tensor& t, const Shape& shape);
/// view when possible, else a contiguous copy.
Tensor reshape(const Tensor& t, const Shape& shape);
Tensor permute(const Tensor& t, const DimList& dims);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step);
Tensor select(const Tensor& t, int64_t dim, int64_t index);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t, std::optional<int64_t> dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim);
Tensor unflatten(const Tensor& t, int64_t dim, const Shape& sizes);
/// The shape unflatten(t, dim, sizes) would produce.
Shape unflatten_shape(const Shape& shape, int64_t dim, const Shape& sizes);
/// The shape flatten(t, start, end) would produce.
Shape flatten_shape(const Shape& shape, int64_t start_dim, int64_t end_dim);

}  // namespace focus::raw
