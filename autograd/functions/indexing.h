#pragma once
/// Differentiable shape and indexing ops. Index tensors are int64 (int32 accepted).
#include <optional>
#include <vector>

#include "core/tensor.h"

namespace focus {

/// Joins tensors along an existing dim (shapes equal elsewhere).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
/// Joins tensors along a new dim.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
/// Pieces of split_size along dim (the last may be smaller); views.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
/// Pieces of the given sizes (must sum to the dim's size); views. One backward node joins
/// the pieces' gradients with one cat (zeros for pieces that got none).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
/// The slices x.select(dim, i) for every i, as torch.unbind (views); one backward node
/// stacks their gradients.
std::vector<Tensor> unbind(const Tensor& x, int64_t dim = 0);
/// n pieces of ceil(size / n) (fewer if the dim is small), as torch.chunk.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
/// Tiles x, as torch.Tensor.repeat (repeats.size() >= x.dim()).
Tensor repeat(const Tensor& x, const Shape& repeats);
/// Rows of x along dim at index (1-D).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// index_select into an existing tensor, as torch.index_select(x, dim, index, out=out): out
/// has the result's shape, x's dtype and device (a view, such as a narrow() of a bigger
/// buffer, is fine) and shares no memory with x or index. Not differentiable: refused while
/// grad mode is on and x or out requires grad. Returns out.
const Tensor& index_select_out(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index);
/// out[i][j] = x[index[i][j]][j] for dim 0, and so on (index has x's rank).
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// x with src added at index along dim (out-of-place).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
/// gather with broadcasting of index against x (dim given), as torch.take_along_dim.
Tensor take_along_dim(const Tensor& x, const Tensor& indices, int64_t dim);
/// Lower / upper triangle of the last two dims (diagonal offset k).
Tensor tril(const Tensor& x, int64_t k = 0);
Tensor triu(const Tensor& x, int64_t k = 0);
/// One-hot int64 encoding; num_classes = max + 1 when -1.
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);
/// Rows of weight [num, dim] at indices [...] -> [..., dim]; rows at padding_idx get no
/// gradient.
Tensor embedding(const Tensor& weight, const Tensor& indices, std::optional<int64_t> padding_idx = std::nullopt);

}  // namespace focus
