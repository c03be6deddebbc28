#pragma once
/// Raw shape and indexing ops: validate, allocate, dispatch; no autograd. The
/// differentiable versions are in autograd/functions/indexing.h. Index tensors are int64
/// or int32, and every index is checked against its dim before a kernel runs.
#include <vector>

#include "core/tensor.h"

namespace focus::raw {

/// Errors unless index is int64 or int32 with every value in [0, size):
/// "[op] index 7 is out of bounds for dim 1 with size 5" (the first bad one, row-major).
void check_index_values(const Tensor& index, int64_t size, int64_t dim, const char* op);

/// Joins tensors along dim, promoting dtypes; legacy 1-D empty tensors are skipped.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
/// Tiles x: out.size(i) = repeats[i] * x.size(i) (x padded with leading 1-dims).
Tensor repeat(const Tensor& x, const Shape& repeats);
/// x [.., S, ..] at index [n] (or 0-d) along dim -> [.., n, ..].
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// index_select writing into out (x's dtype and device, the result's shape; may be a
/// strided view; must not share memory with x or index).
void index_select_out(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index);
/// self.index_add_(dim, index, src) in place: index [n], src [.., n, ..]; entries whose
/// index equals skip (when skip >= 0) are ignored.
void index_add_(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src, int64_t skip = -1);
/// out[..i..] = x[..index[..i..]..] along dim; out has index's shape and x's dtype.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// A copy of x with src[..i..] added at x[..index[..i..]..] along dim.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
/// Lower / upper triangle of the last two dims; elements beyond diagonal k set to 0.
Tensor tril(const Tensor& x, int64_t k);
Tensor triu(const Tensor& x, int64_t k);
/// indices [...] -> int64 [..., num_classes]; num_classes -1: max + 1.
Tensor one_hot(const Tensor& indices, int64_t num_classes);
/// weight [num, D] rows at indices [...] -> [..., D].
Tensor embedding(const Tensor& weight, const Tensor& indices);
/// The dense weight gradient of embedding: grad [..., D], indices [...] ->
/// [num_weights, D]; rows at padding_idx (when >= 0) stay zero.
Tensor embedding_backward(const Tensor& grad, const Tensor& indices, int64_t num_weights, int64_t padding_idx);

}  // namespace focus::raw
