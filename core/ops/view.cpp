#include "core/ops/view.h"

#include <algorithm>

#include "core/ops/common.h"

namespace focus::raw {

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      FOCUS_CHECK(infer < 0, "[{}] only one dimension can be inferred (-1) in shape {}", op, shape);
      infer = static_cast<int>(i);
    } else {
      FOCUS_CHECK(out[i] >= 0, "[{}] invalid size {} in shape {}", op, out[i], shape);
      known = checked_numel({known, out[i]}, op);
    }
  }
  if (infer >= 0) {
    FOCUS_CHECK(known != 0 && numel % known == 0, "[{}] shape {} is invalid for input of size {}", op, shape, numel);
    out[infer] = numel / known;
  }
  FOCUS_CHECK(checked_numel(out, op) == numel, "[{}] shape {} is invalid for input of size {}", op, shape, numel);
  return out;
}

std::optional<Shape> view_strides(const Tensor& t, const Shape& shape) {
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  if (t.numel() == 0 || os.empty()) return contiguous_strides(shape);
  Shape ns(shape.size());
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base = ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(os.size()) - 1; d >= 0; --d) {
    tensor_numel *= os[d];
    // A chunk ends where the next-outer dim is not contiguous with this one.
    if (d == 0 || (os[d - 1] != 1 && ost[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        ns[view_d] = view_numel * chunk_base;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base = ost[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return ns;
}

Tensor view(const Tensor& t, const Shape& shape) {
  check_defined(t, "view", "input");
  Shape s = infer_shape(shape, t.numel(), "view");
  auto st = view_strides(t, s);
  FOCUS_CHECK(st.has_value(),
              "[view] view size {} is not compatible with input size {} and strides {} (at least one dimension "
              "spans across two contiguous subspaces); use reshape instead",
              s, t.shape(), t.strides());
  return as_strided(t, s, *st, t.storage_offset());
}

Tensor reshape(const Tensor& t, const Shape& shape) {
  check_defined(t, "reshape", "input");
  Shape s = infer_shape(shape, t.numel(), "reshape");
  if (auto st = view_strides(t, s)) return as_strided(t, s, *st, t.storage_offset());
  Tensor c = clone(t);
  return as_strided(c, s, contiguous_strides(s), 0);
}

Tensor permute(const Tensor& t, const DimList& dims) {
  check_defined(t, "permute", "input");
  const int64_t n = t.dim();
  FOCUS_CHECK(static_cast<int64_t>(dims.size()) == n,
              "[permute] number of dims {} does not match the tensor's {} dims (shape {})", dims.size(), n,
              t.shape());
  Shape s(n), st(n);
  std::vector<bool> seen(n, false);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t d = wrap_dim(dims[i], n, "permute");
    FOCUS_CHECK(!seen[d], "[permute] dim {} repeats in {}", d, dims);
    seen[d] = true;
    s[i] = t.shape()[d];
    st[i] = t.strides()[d];
  }
  return as_strided(t, s, st, t.storage_offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  check_defined(t, "transpose", "input");
  const int64_t n = t.dim();
  if (n == 0) {
    wrap_dim(d0, n, "transpose");
    wrap_dim(d1, n, "transpose");
    return as_strided(t, t.shape(), t.strides(), t.storage_offset());
  }
  d0 = wrap_dim(d0, n, "transpose");
  d1 = wrap_dim(d1, n, "transpose");
  Shape s = t.shape(), st = t.strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return as_strided(t, s, st, t.storage_offset());
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  check_defined(t, "narrow", "input");
  FOCUS_CHECK(t.dim() > 0, "[narrow] cannot narrow a 0-d tensor");
  dim = wrap_dim(dim, t.dim(), "narrow");
  const int64_t size = t.shape()[dim];
  if (start < 0) start += size;
  FOCUS_CHECK(start >= 0 && start <= size, "[narrow] start {} is out of range for dim {} of size {}", start, dim,
              size);
  FOCUS_CHECK(length >= 0 && start + length <= size,
              "[narrow] start ({}) + length ({}) exceeds dim {} of size {}", start, length, dim, size);
  Shape s = t.shape();
  s[dim] = length;
  return as_strided(t, s, t.strides(), t.storage_offset() + start * t.strides()[dim]);
}

Tensor slice(const Tensor& t, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step) {
  check_defined(t, "slice", "input");
  FOCUS_CHECK(t.dim() > 0, "[slice] cannot slice a 0-d tensor");
  FOCUS_CHECK(step > 0, "[slice] step must be positive, got {}", step);
  dim = wrap_dim(dim, t.dim(), "slice");
  const int64_t size = t.shape()[dim];
  auto clampi = [size](int64_t v) {
    if (v < 0) v += size;
    return std::clamp<int64_t>(v, 0, size);
  };
  const int64_t b = start ? clampi(*start) : 0;
  const int64_t e = std::max(b, end ? clampi(*end) : size);
  Shape s = t.shape(), st = t.strides();
  s[dim] = (e - b + step - 1) / step;
  st[dim] *= step;
  return as_strided(t, s, st, t.storage_offset() + b * t.strides()[dim]);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  check_defined(t, "select", "input");
  FOCUS_CHECK(t.dim() > 0, "[select] cannot select from a 0-d tensor");
  dim = wrap_dim(dim, t.dim(), "select");
  const int64_t size = t.shape()[dim];
  FOCUS_CHECK(index >= -size && index < size, "[select] index {} is out of range for dim {} of size {}", index, dim,
              size);
  if (index < 0) index += size;
  Shape s = t.shape(), st = t.strides();
  s.erase(s.begin() + dim);
  st.erase(st.begin() + dim);
  return as_strided(t, s, st, t.storage_offset() + index * t.strides()[dim]);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  check_defined(t, "expand", "input");
  const int64_t n = static_cast<int64_t>(shape.size());
  FOCUS_CHECK(n >= t.dim(), "[expand] the number of sizes ({}) must be at least the number of dims ({}): {} -> {}",
              n, t.dim(), t.shape(), shape);
  Shape s(n), st(n);
  const int64_t lead = n - t.dim();
  for (int64_t d = 0; d < n; ++d) {
    const int64_t want = shape[d];
    if (d < lead) {
      FOCUS_CHECK(want >= 0, "[expand] size -1 is not allowed in a new leading dim: {} -> {}", t.shape(), shape);
      s[d] = want;
      st[d] = 0;
      continue;
    }
    const int64_t have = t.shape()[d - lead];
    if (want == -1 || want == have) {
      s[d] = have;
      st[d] = t.strides()[d - lead];
    } else {
      FOCUS_CHECK(have == 1 && want >= 0,
                  "[expand] the expanded size {} must match the existing size {} at non-singleton dim {}: {} -> {}",
                  want, have, d, t.shape(), shape);
      s[d] = want;
      st[d] = 0;
    }
  }
  return as_strided(t, s, st, t.storage_offset());
}

Tensor squeeze(const Tensor& t, std::optional<int64_t> dim) {
  check_defined(t, "squeeze", "input");
  Shape s, st;
  if (dim) {
    const int64_t d0 = wrap_dim(*dim, t.dim(), "squeeze");
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (d == d0 && t.shape()[d] == 1) continue;
      s.push_back(t.shape()[d]);
      st.push_back(t.strides()[d]);
    }
  } else {
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (t.shape()[d] == 1) continue;
      s.push_back(t.shape()[d]);
      st.push_back(t.strides()[d]);
    }
  }
  return as_strided(t, s, st, t.storage_offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  check_defined(t, "unsqueeze", "input");
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape s = t.shape(), st = t.strides();
  const int64_t inner = dim < t.dim() ? s[dim] * st[dim] : 1;
  s.insert(s.begin() + dim, 1);
  st.insert(st.begin() + dim, inner);
  return as_strided(t, s, st, t.storage_offset());
}

Shape flatten_shape(const Shape& shape, int64_t start_dim, int64_t end_dim) {
  const int64_t n = static_cast<int64_t>(shape.size());
  if (n == 0) {
    wrap_dim(start_dim, n, "flatten");
    wrap_dim(end_dim, n, "flatten");
    return {1};
  }
  start_dim = wrap_dim(start_dim, n, "flatten");
  end_dim = wrap_dim(end_dim, n, "flatten");
  FOCUS_CHECK(start_dim <= end_dim, "[flatten] start_dim {} cannot come after end_dim {}", start_dim, end_dim);
  Shape s(shape.begin(), shape.begin() + start_dim);
  int64_t m = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) m *= shape[d];
  s.push_back(m);
  s.insert(s.end(), shape.begin() + end_dim + 1, shape.end());
  return s;
}

Tensor flatten(const Tensor& t, int64_t start_dim, int64_t end_dim) {
  check_defined(t, "flatten", "input");
  return reshape(t, flatten_shape(t.shape(), start_dim, end_dim));
}

Shape unflatten_shape(const Shape& shape, int64_t dim, const Shape& sizes) {
  dim = wrap_dim(dim, static_cast<int64_t>(shape.size()), "unflatten");
  FOCUS_CHECK(!sizes.empty(), "[unflatten] sizes must be non-empty");
  FOCUS_CHECK(!shape.empty(), "[unflatten] cannot unflatten a 0-d tensor");
  Shape inner = infer_shape(sizes, shape[dim], "unflatten");
  Shape s(shape.begin(), shape.begin() + dim);
  s.insert(s.end(), inner.begin(), inner.end());
  s.insert(s.end(), shape.begin() + dim + 1, shape.end());
  return s;
}

Tensor unflatten(const Tensor& t, int64_t dim, const Shape& sizes) {
  check_defined(t, "unflatten", "input");
  return view(t, unflatten_shape(t.shape(), dim, sizes));
}

}  // namespace focus::raw
