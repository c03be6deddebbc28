#include "core/ops/indexing.h"

#include <climits>
#include <limits>

#include "core/creation.h"
#include "core/ops/common.h"
#include "core/ops/view.h"

namespace focus::raw {

namespace {

bool is_index_dtype(DType t) { return t == kInt64 || t == kInt32; }

void check_index_dtype(const Tensor& index, const char* op, const char* what = "index") {
  FOCUS_CHECK(is_index_dtype(index.dtype()), "[{}] {} must be int64 or int32, got {}", op, what, index.dtype());
}

// A 0-d tensor as a 1-element 1-d view (kernels index dims; 0-d tensors have none).
Tensor as_1d(const Tensor& t) { return t.dim() == 0 ? as_strided(t, {1}, {1}, t.storage_offset()) : t; }

// PyTorch skips legacy empty tensors (shape [0]) in cat whatever the other shapes are.
bool is_legacy_empty(const Tensor& t) { return t.dim() == 1 && t.shape()[0] == 0; }

Tensor trilu(const Tensor& x, int64_t k, bool lower, const char* op) {
  check_defined(x, op, "input");
  FOCUS_CHECK(x.dim() >= 2, "[{}] expects a tensor with at least 2 dims, got shape {}", op, x.shape());
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) backend_of(x).trilu(make_view(out), make_view(x), k, lower);
  return out;
}

}  // namespace

void check_index_values(const Tensor& index, int64_t size, int64_t dim, const char* op) {
  check_index_dtype(index, op);
  if (index.numel() == 0) return;
  if (!index.device().is_cpu()) {
    // A GPU checks on the device and reports at the next synchronisation, so an embedding
    // lookup costs no host round trip.
    backend_of(index).check_indices(make_view(index), 0, size, 0, op, "index");
    return;
  }
  const Backend::IndexScan r = backend_of(index).scan_indices(make_view(index), 0, size);
  FOCUS_CHECK(r.first_bad < 0, "[{}] index {} is out of bounds for dim {} with size {}", op, r.bad_value, dim, size);
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  FOCUS_CHECK(!tensors.empty(), "[cat] expected a non-empty list of tensors");
  const Tensor* ref = nullptr;
  DType dt = kBool;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    FOCUS_CHECK(t.defined(), "[cat] tensor {} in the list is undefined", i);
    dt = i == 0 ? t.dtype() : promote_types(dt, t.dtype());
    FOCUS_CHECK(t.device() == tensors[0].device(),
                "[cat] expected all tensors on one device, got {} for tensor 0 and {} for tensor {}",
                tensors[0].device(), t.device(), i);
    FOCUS_CHECK(t.dim() > 0, "[cat] zero-dimensional tensor (at position {}) cannot be concatenated", i);
    if (!ref && !is_legacy_empty(t)) ref = &t;
  }
  const Device device = tensors[0].device();
  if (!ref) return empty({0}, dt, device);
  const int64_t d = wrap_dim(dim, ref->dim(), "cat");
  Shape shape = ref->shape();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (is_legacy_empty(t)) continue;
    FOCUS_CHECK(t.dim() == ref->dim(), "[cat] tensors must have the same number of dims: got shapes {} and {} (tensor {})",
                ref->shape(), t.shape(), i);
    for (int64_t k = 0; k < t.dim(); ++k)
      FOCUS_CHECK(k == d || t.shape()[k] == shape[k],
                  "[cat] sizes of tensors must match except in dim {}: expected size {} but got size {} for tensor {} "
                  "(shapes {} and {})",
                  d, shape[k], t.shape()[k], i, ref->shape(), t.shape());
    FOCUS_CHECK(t.shape()[d] <= std::numeric_limits<int64_t>::max() - total,
                "[cat] the sizes in dim {} add up past int64 (tensor {} of shape {})", d, i, t.shape());
    total += t.shape()[d];
  }
  shape[d] = total;
  Tensor out = empty(shape, dt, device);
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    if (is_legacy_empty(t)) continue;
    const int64_t len = t.shape()[d];
    if (t.numel() > 0) copy_(narrow(out, d, offset, len), t);
    offset += len;
  }
  return out;
}

Tensor repeat(const Tensor& x, const Shape& repeats) {
  check_defined(x, "repeat", "input");
  FOCUS_CHECK(static_cast<int64_t>(repeats.size()) >= x.dim(),
              "[repeat] number of repeats ({}) can not be smaller than the number of dims of the tensor (shape {})",
              repeats.size(), x.shape());
  for (int64_t r : repeats) FOCUS_CHECK(r >= 0, "[repeat] repeats must be non-negative, got {}", repeats);
  const int64_t R = static_cast<int64_t>(repeats.size()), lead = R - x.dim();
  // out viewed as [r0, s0, r1, s1, ...] is x broadcast over the tile dims (stride 0); tile
  // dims of 1 are left out to stay within kMaxDims.
  Shape out_shape(R), tiled_shape, tiled_strides;
  for (int64_t i = 0; i < R; ++i) {
    const int64_t s = i < lead ? 1 : x.shape()[i - lead];
    const int64_t st = i < lead ? 0 : x.strides()[i - lead];
    out_shape[i] = checked_numel({repeats[i], s}, "repeat");
    if (repeats[i] != 1) {
      tiled_shape.push_back(repeats[i]);
      tiled_strides.push_back(0);
    }
    tiled_shape.push_back(s);
    tiled_strides.push_back(st);
  }
  Tensor out = empty(out_shape, x.dtype(), x.device());
  if (out.numel() > 0) copy_(view(out, tiled_shape), as_strided(x, tiled_shape, tiled_strides, x.storage_offset()));
  return out;
}

namespace {

// index_select's checks: x [.., S, ..], index 0-d or 1-d with every value in [0, S). Returns
// the wrapped dim (0 for a 0-d x).
int64_t check_index_select(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  check_defined(x, op, "input");
  check_defined(index, op, "index");
  check_same_device(x, index, op);
  FOCUS_CHECK(index.dim() <= 1, "[{}] index must be 0-d or 1-d, got shape {}", op, index.shape());
  check_index_dtype(index, op);
  const int64_t d = wrap_dim(dim, x.dim(), op);
  if (x.dim() == 0) {
    FOCUS_CHECK(index.numel() == 1, "[{}] index into a 0-d tensor must have exactly one value, got {}", op,
                index.numel());
    check_index_values(index, 1, 0, op);
    return 0;
  }
  check_index_values(index, x.shape()[d], d, op);
  return d;
}

Shape index_select_shape(const Tensor& x, int64_t d, const Tensor& index) {
  Shape shape = x.shape();
  if (x.dim() > 0) shape[d] = index.numel();
  return shape;
}

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = check_index_select(x, dim, index, "index_select");
  if (x.dim() == 0) return clone(x);
  Tensor out = empty(index_select_shape(x, d, index), x.dtype(), x.device());
  if (out.numel() > 0) backend_of(x).index_select(make_view(out), make_view(x), static_cast<int>(d), make_view(index));
  return out;
}

void index_select_out(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  constexpr const char* op = "index_select_out";
  check_defined(out, op, "out");
  const int64_t d = check_index_select(x, dim, index, op);
  check_same_device(out, x, op);
  FOCUS_CHECK(out.dtype() == x.dtype(), "[{}] out has dtype {} but the input has {}", op, out.dtype(), x.dtype());
  const Shape shape = index_select_shape(x, d, index);
  FOCUS_CHECK(out.shape() == shape, "[{}] out must have shape {} (the input's with {} rows along dim {}), got {}", op,
              shape, index.numel(), d, out.shape());
  // Rows are read while others are written: out may not share memory with the input (or
  // the index), as in PyTorch.
  FOCUS_CHECK(out.storage() != x.storage() && out.storage() != index.storage(),
              "[{}] out shares memory with the {}; write into a tensor of its own", op,
              out.storage() == x.storage() ? "input" : "index");
  if (out.numel() == 0) return;
  if (x.dim() == 0) {
    copy_(out, x);
    return;
  }
  backend_of(x).index_select(make_view(out), make_view(x), static_cast<int>(d), make_view(index));
}

void index_add_(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src, int64_t skip) {
  check_defined(self, "index_add", "self");
  check_defined(index, "index_add", "index");
  check_defined(src, "index_add", "source");
  check_same_device(self, index, "index_add");
  check_same_device(self, src, "index_add");
  FOCUS_CHECK(index.dim() <= 1, "[index_add] index must be 0-d or 1-d, got shape {}", index.shape());
  check_index_dtype(index, "index_add");
  FOCUS_CHECK(src.dtype() == self.dtype(), "[index_add] source dtype {} does not match self dtype {}", src.dtype(),
              self.dtype());
  const int64_t d = wrap_dim(dim, self.dim(), "index_add");
  const Tensor s = as_1d(self), v = as_1d(src);
  Shape expected = s.shape();
  expected[d] = index.numel();
  FOCUS_CHECK(v.shape() == expected, "[index_add] source shape {} does not match self shape {} with dim {} of size {}",
              src.shape(), self.shape(), d, index.numel());
  check_index_values(index, s.shape()[d], d, "index_add");
  if (v.numel() > 0) backend_of(self).index_add(make_view(s), static_cast<int>(d), make_view(index), make_view(v), skip);
  self.bump_version();
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "gather", "input");
  check_defined(index, "gather", "index");
  check_same_device(x, index, "gather");
  check_index_dtype(index, "gather");
  FOCUS_CHECK(index.dim() == x.dim(), "[gather] index must have as many dims as the input, got index shape {} and input shape {}",
              index.shape(), x.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  const Tensor xv = as_1d(x), iv = as_1d(index);
  for (int64_t k = 0; k < xv.dim(); ++k)
    FOCUS_CHECK(k == d || iv.shape()[k] <= xv.shape()[k],
                "[gather] index shape {} must not exceed the input shape {} outside dim {}", index.shape(), x.shape(), d);
  check_index_values(index, xv.shape()[d], d, "gather");
  Tensor out = empty(index.shape(), x.dtype(), x.device());
  if (out.numel() > 0) backend_of(x).gather(make_view(as_1d(out)), make_view(xv), static_cast<int>(d), make_view(iv));
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_defined(x, "scatter_add", "input");
  check_defined(index, "scatter_add", "index");
  check_defined(src, "scatter_add", "src");
  check_same_device(x, index, "scatter_add");
  check_same_device(x, src, "scatter_add");
  check_index_dtype(index, "scatter_add");
  FOCUS_CHECK(src.dtype() == x.dtype(), "[scatter_add] src dtype {} does not match input dtype {}", src.dtype(),
              x.dtype());
  FOCUS_CHECK(index.dim() == x.dim() && src.dim() == x.dim(),
              "[scatter_add] index and src must have as many dims as the input, got input shape {}, index shape {}, "
              "src shape {}",
              x.shape(), index.shape(), src.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  const Tensor xv = as_1d(x), iv = as_1d(index), sv = as_1d(src);
  for (int64_t k = 0; k < xv.dim(); ++k)
    FOCUS_CHECK(iv.shape()[k] <= sv.shape()[k] && (k == d || iv.shape()[k] <= xv.shape()[k]),
                "[scatter_add] index shape {} must not exceed the src shape {}, nor the input shape {} outside dim {}",
                index.shape(), src.shape(), x.shape(), d);
  check_index_values(index, xv.shape()[d], d, "scatter_add");
  Tensor out = clone(x);
  if (index.numel() > 0)
    backend_of(x).scatter_add(make_view(as_1d(out)), static_cast<int>(d), make_view(iv), make_view(sv));
  return out;
}

Tensor tril(const Tensor& x, int64_t k) { return trilu(x, k, true, "tril"); }
Tensor triu(const Tensor& x, int64_t k) { return trilu(x, k, false, "triu"); }

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  check_defined(indices, "one_hot", "input");
  check_index_dtype(indices, "one_hot", "indices");
  FOCUS_CHECK(num_classes >= -1, "[one_hot] num_classes must be -1 or non-negative, got {}", num_classes);
  const int64_t n = indices.numel();
  int64_t classes = num_classes;
  if (num_classes == -1) {
    FOCUS_CHECK(n > 0, "[one_hot] can not infer the number of classes from an empty tensor");
  }
  if (n > 0) {
    const int64_t hi = num_classes == -1 ? INT64_MAX : num_classes;
    const Backend::IndexScan r = backend_of(indices).scan_indices(make_view(indices), 0, hi);
    FOCUS_CHECK(r.first_bad < 0 || r.bad_value >= 0, "[one_hot] class values must be non-negative, got {}", r.bad_value);
    FOCUS_CHECK(r.first_bad < 0, "[one_hot] class value {} is out of range for num_classes {}", r.bad_value, num_classes);
    if (num_classes == -1) classes = r.max + 1;
  }
  Shape shape = indices.shape();
  shape.push_back(classes);
  Tensor out = empty(shape, kInt64, indices.device());
  if (out.numel() > 0) {
    const Tensor idx = to_contiguous(indices, indices.dtype(), indices.device());
    backend_of(indices).one_hot(make_view(as_strided(out, {n, classes}, {classes, 1}, 0)),
                                make_view(as_strided(idx, {n}, {1}, idx.storage_offset())));
  }
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  check_defined(weight, "embedding", "weight");
  check_defined(indices, "embedding", "indices");
  check_same_device(weight, indices, "embedding");
  FOCUS_CHECK(weight.dim() == 2, "[embedding] weight must be 2-D [num_embeddings, embedding_dim], got shape {}",
              weight.shape());
  check_index_dtype(indices, "embedding", "indices");
  const int64_t n = indices.numel(), dim = weight.shape()[1];
  const Tensor flat = reshape(indices, {n});
  check_index_values(flat, weight.shape()[0], 0, "embedding");
  Tensor out = empty({n, dim}, weight.dtype(), weight.device());
  if (out.numel() > 0) backend_of(weight).index_select(make_view(out), make_view(weight), 0, make_view(flat));
  Shape shape = indices.shape();
  shape.push_back(dim);
  return view(out, shape);
}

Tensor embedding_backward(const Tensor& grad, const Tensor& indices, int64_t num_weights, int64_t padding_idx) {
  check_defined(grad, "embedding_backward", "grad");
  check_defined(indices, "embedding_backward", "indices");
  FOCUS_CHECK(grad.dim() == indices.dim() + 1 &&
                  Shape(grad.shape().begin(), grad.shape().end() - 1) == indices.shape(),
              "[embedding_backward] grad shape {} does not match indices shape {} plus the embedding dim",
              grad.shape(), indices.shape());
  const int64_t n = indices.numel(), dim = grad.shape().back();
  Tensor out = zeros({num_weights, dim}, TensorOptions(grad.dtype()).device(grad.device()));
  index_add_(out, 0, reshape(indices, {n}), reshape(grad, {n, dim}), padding_idx);
  return out;
}

}  // namespace focus::raw
