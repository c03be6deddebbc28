// Differentiable shape and indexing ops: forward through raw ops (core/ops/indexing.h),
// backward right beside it. Backward formulas are themselves differentiable ops (gather
// <-> scatter_add, index_select <-> index_add), so create_graph works through them.
#include "autograd/functions/indexing.h"

#include "autograd/functions/elementwise.h"
#include "autograd/functions/reduce.h"
#include "autograd/autocast.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/common.h"
#include "core/ops/indexing.h"
#include "core/ops/view.h"

namespace focus {

namespace {

// Flags a piece of x as a view of it (as view.cpp's mark_view), so in-place ops on the piece
// alone are refused instead of giving x wrong gradients.
void mark_view_of(const Tensor& out, const Tensor& in) {
  if (out.storage() == in.storage()) out.unsafe_impl()->meta().is_view = true;
}

// zeros(shape).index_add_(dim, index, src), ignoring entries whose index equals skip (>= 0;
// only used with dim 0 and a 2-D src, by embedding).
Tensor index_add_into_zeros(const Tensor& src, const Shape& shape, int64_t dim, const Tensor& index, int64_t skip) {
  Tensor out = zeros(shape, src.options());
  raw::index_add_(out, dim, index, src, skip);
  if (needs_grad(src)) {
    record("IndexAddBackward0", {src}, {out}, {save(index)}, [dim, skip](BackwardContext& c) {
      // grad_src = grad.index_select(dim, index) : [.., S, ..] -> [.., n, ..], 0 where index == skip
      Tensor index = c.saved(0);
      Tensor g = index_select(c.grad(0), dim, index);
      if (skip >= 0) g = masked_fill(g, eq(index, Scalar(skip)).unsqueeze(1), 0);
      return grads(g);
    });
  }
  return out;
}

}  // namespace

// ---- joining and splitting ---------------------------------------------------------------

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (autocast::active()) {
    const std::vector<Tensor> ts = autocast::promote(tensors);
    autocast::Suspend s;
    return cat(ts, dim);
  }
  Tensor out = raw::cat(tensors, dim);
  if (needs_grad(tensors)) {
    // Where each input sits along dim in the output; skipped legacy empty tensors get
    // an empty gradient.
    struct Piece {
      int64_t start, length;
      DType dtype;
      bool skipped;
    };
    std::vector<Piece> pieces;
    const int64_t d = out.dim() == 1 && out.numel() == 0 ? 0 : wrap_dim(dim, out.dim(), "cat");
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      const bool skipped = t.dim() == 1 && t.shape()[0] == 0;
      const int64_t len = skipped ? 0 : t.shape()[d];
      pieces.push_back({offset, len, t.dtype(), skipped});
      offset += len;
    }
    record("CatBackward0", tensors, {out}, {}, [pieces, d](BackwardContext& c) {
      // grad_i = grad.narrow(dim, start_i, length_i) : [.., sum(len), ..] -> [.., len_i, ..]
      const Tensor& g = c.grad(0);
      std::vector<Tensor> out;
      for (size_t i = 0; i < pieces.size(); ++i) {
        const Piece& p = pieces[i];
        if (!c.needs_input_grad(i)) {
          out.emplace_back();
        } else if (p.skipped) {
          out.push_back(zeros({0}, TensorOptions(p.dtype).device(g.device())));
        } else {
          out.push_back(g.narrow(d, p.start, p.length).to(p.dtype));
        }
      }
      return out;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  if (autocast::active()) {
    const std::vector<Tensor> ts = autocast::promote(tensors);
    autocast::Suspend s;
    return stack(ts, dim);
  }
  FOCUS_CHECK(!tensors.empty(), "[stack] expected a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    FOCUS_CHECK(tensors[i].defined(), "[stack] tensor {} in the list is undefined", i);
    FOCUS_CHECK(tensors[i].shape() == tensors[0].shape(),
                "[stack] expects each tensor to be equal size, but got {} at entry 0 and {} at entry {}",
                tensors[0].shape(), tensors[i].shape(), i);
  }
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(t.unsqueeze(d));
  return cat(parts, d);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  raw::check_defined(x, "split", "input");
  FOCUS_CHECK(x.dim() > 0, "[split] expects at least a 1-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  const int64_t size = x.shape()[d];
  FOCUS_CHECK(split_size >= 0, "[split] split_size must be non-negative, got {}", split_size);
  FOCUS_CHECK(split_size > 0 || size == 0,
              "[split] split_size can only be 0 if dimension size is 0, but got dimension size of {}", size);
  const int64_t n = split_size == 0 ? 1 : std::max<int64_t>((size + split_size - 1) / split_size, 1);
  std::vector<int64_t> sizes;
  sizes.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) sizes.push_back(std::min(split_size, size - i * split_size));
  return split(x, sizes, d);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  raw::check_defined(x, "split", "input");
  FOCUS_CHECK(x.dim() > 0, "[split] expects at least a 1-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  const int64_t size = x.shape()[d];
  int64_t total = 0;
  for (int64_t s : sizes) {
    FOCUS_CHECK(s >= 0, "[split] split sizes must be non-negative, got {}", sizes);
    total += s;
  }
  FOCUS_CHECK(total == size, "[split] split sizes {} must sum exactly to {} (the size of dim {}), got {}", sizes, size,
              d, total);
  std::vector<Tensor> pieces;
  pieces.reserve(sizes.size());
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(raw::narrow(x, d, start, s));
    start += s;
  }
  // One node for all pieces: the backward joins their gradients with one cat (pieces that
  // got none contribute zeros), instead of one zero-filled input-sized tensor per piece.
  const size_t n = pieces.size();
  if (needs_grad(x)) record("SplitWithSizesBackward0", {x}, pieces, {}, [d, n](BackwardContext& c) {
      std::vector<Tensor> gs;  // grad_x = cat(grad_0, grad_1, ...) along dim
      for (size_t i = 0; i < n; ++i) gs.push_back(c.grad(i));
      return grads(cat(gs, d));
    });
  for (const Tensor& p : pieces) mark_view_of(p, x);
  return pieces;
}

std::vector<Tensor> unbind(const Tensor& x, int64_t dim) {
  raw::check_defined(x, "unbind", "input");
  FOCUS_CHECK(x.dim() > 0, "[unbind] expects at least a 1-dimensional tensor");
  const int64_t d = wrap_dim(dim, x.dim(), "unbind");
  const int64_t n = x.shape()[d];
  std::vector<Tensor> pieces;
  pieces.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pieces.push_back(raw::select(x, d, i));
  // grad_x = stack(grad_0, grad_1, ...) along dim: one node and one copy for all slices.
  if (needs_grad(x) && n > 0) record("UnbindBackward0", {x}, pieces, {}, [d, n](BackwardContext& c) {
      std::vector<Tensor> gs;
      for (int64_t i = 0; i < n; ++i) gs.push_back(c.grad(static_cast<size_t>(i)));
      return grads(stack(gs, d));
    });
  for (const Tensor& p : pieces) mark_view_of(p, x);
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  raw::check_defined(x, "chunk", "input");
  FOCUS_CHECK(x.dim() > 0, "[chunk] expects at least a 1-dimensional tensor");
  FOCUS_CHECK(chunks > 0, "[chunk] chunks must be greater than 0, got {}", chunks);
  const int64_t d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t size = x.shape()[d];
  // As torch.chunk: an empty dim still gives `chunks` (empty) pieces.
  if (size == 0) return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), d);
  return split(x, (size + chunks - 1) / chunks, d);
}

Tensor repeat(const Tensor& x, const Shape& repeats) {
  Tensor out = raw::repeat(x, repeats);
  if (needs_grad(x)) {
    const Shape shape = x.shape();
    record("RepeatBackward0", {x}, {out}, {}, [shape, repeats](BackwardContext& c) {
      // grad_x = sum over the tiles: grad viewed as [r0, s0, r1, s1, ...] summed over r_i
      const int64_t R = static_cast<int64_t>(repeats.size()), lead = R - static_cast<int64_t>(shape.size());
      Shape tiled;
      DimList tile_dims;
      for (int64_t i = 0; i < R; ++i) {
        tile_dims.push_back(static_cast<int64_t>(tiled.size()));
        tiled.push_back(repeats[i]);
        tiled.push_back(i < lead ? 1 : shape[i - lead]);
      }
      return grads(c.grad(0).reshape(tiled).sum(tile_dims).reshape(shape));
    });
  }
  return out;
}

// ---- indexing ------------------------------------------------------------------------------

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = raw::index_select(x, dim, index);
  if (needs_grad(x)) {
    const Shape shape = x.shape();
    const int64_t d = wrap_dim(dim, x.dim(), "index_select");
    record("IndexSelectBackward0", {x}, {out}, {save(index)}, [shape, d](BackwardContext& c) {
      // grad_x = zeros(x.shape).index_add_(dim, index, grad) : [.., n, ..] -> [.., S, ..]
      return grads(index_add_into_zeros(c.grad(0), shape, d, c.saved(0), -1));
    });
  }
  return out;
}

const Tensor& index_select_out(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  raw::check_defined(out, "index_select_out", "out");
  raw::check_defined(x, "index_select_out", "input");
  FOCUS_CHECK(!needs_grad(x, out),
              "[index_select_out] functions with out= arguments do not support autograd, but the {} requires grad; "
              "use index_select, or run under NoGradGuard",
              needs_grad(x) ? "input" : "out tensor");
  raw::index_select_out(out, x, dim, index);
  out.bump_version();
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = raw::gather(x, dim, index);
  if (needs_grad(x)) {
    const Shape shape = x.shape();
    record("GatherBackward0", {x}, {out}, {save(index)}, [shape, dim](BackwardContext& c) {
      // grad_x = zeros(x.shape).scatter_add(dim, index, grad) : index.shape -> x.shape
      const Tensor& g = c.grad(0);
      return grads(scatter_add(zeros(shape, g.options()), dim, c.saved(0), g));
    });
  }
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = raw::scatter_add(x, dim, index, src);
  if (needs_grad(x, src)) {
    const Shape src_shape = src.shape();
    record("ScatterAddBackward0", {x, src}, {out}, {save(index)}, [src_shape, dim](BackwardContext& c) {
      // grad_x = grad; grad_src = gather(grad, dim, index) : x.shape -> index.shape, then
      // zero-padded to src.shape where src is larger than index (those entries were unused)
      const Tensor& g = c.grad(0);
      Tensor gs;
      if (c.needs_input_grad(1)) {
        gs = gather(g, dim, c.saved(0));
        for (int64_t d = 0; d < gs.dim(); ++d) {
          if (gs.shape()[d] == src_shape[d]) continue;
          Shape pad = gs.shape();
          pad[d] = src_shape[d] - gs.shape()[d];
          gs = cat({gs, zeros(pad, gs.options())}, d);
        }
      }
      return grads(c.needs_input_grad(0) ? g : Tensor(), gs);
    });
  }
  return out;
}

Tensor take_along_dim(const Tensor& x, const Tensor& indices, int64_t dim) {
  raw::check_defined(x, "take_along_dim", "input");
  raw::check_defined(indices, "take_along_dim", "indices");
  FOCUS_CHECK(x.dim() == indices.dim(),
              "[take_along_dim] input and indices must have the same number of dims, got input shape {} and indices "
              "shape {}",
              x.shape(), indices.shape());
  const int64_t d = wrap_dim(dim, x.dim(), "take_along_dim");
  if (x.dim() == 0) return gather(x, d, indices);
  // Broadcast x and indices against each other in every dim but `dim`.
  Shape xs = x.shape();
  xs[d] = indices.shape()[d];
  const Shape bs = broadcast_shapes(xs, indices.shape(), "take_along_dim");
  Shape xb = bs;
  xb[d] = x.shape()[d];
  const Tensor xe = xb == x.shape() ? x : x.expand(xb);
  const Tensor ie = bs == indices.shape() ? indices : indices.expand(bs);
  return gather(xe, d, ie);
}

// ---- triangles, one-hot, embedding ----------------------------------------------------------

Tensor tril(const Tensor& x, int64_t k) {
  Tensor out = raw::tril(x, k);
  if (needs_grad(x))
    record("TrilBackward0", {x}, {out}, {}, [k](BackwardContext& c) {
      // grad_x = tril(grad, k) : same shape
      return grads(tril(c.grad(0), k));
    });
  return out;
}

Tensor triu(const Tensor& x, int64_t k) {
  Tensor out = raw::triu(x, k);
  if (needs_grad(x))
    record("TriuBackward0", {x}, {out}, {}, [k](BackwardContext& c) {
      // grad_x = triu(grad, k) : same shape
      return grads(triu(c.grad(0), k));
    });
  return out;
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) { return raw::one_hot(indices, num_classes); }

Tensor embedding(const Tensor& weight, const Tensor& indices, std::optional<int64_t> padding_idx) {
  raw::check_defined(weight, "embedding", "weight");
  FOCUS_CHECK(weight.dim() == 2, "[embedding] weight must be 2-D [num_embeddings, embedding_dim], got shape {}",
              weight.shape());
  const int64_t num = weight.shape()[0], dim = weight.shape()[1];
  int64_t pad = -1;
  if (padding_idx) {
    FOCUS_CHECK(*padding_idx >= -num && *padding_idx < num,
                "[embedding] padding_idx {} must be within num_embeddings {}", *padding_idx, num);
    pad = *padding_idx < 0 ? *padding_idx + num : *padding_idx;
  }
  Tensor out = raw::embedding(weight, indices);
  if (needs_grad(weight)) {
    record("EmbeddingBackward0", {weight}, {out}, {save(indices)}, [num, dim, pad](BackwardContext& c) {
      // grad_weight[r] = sum of grad[i] over i with indices[i] == r, none at padding_idx :
      // [..., D] -> [num, D]
      Tensor index = c.saved(0);
      const int64_t n = index.numel();
      return grads(index_add_into_zeros(c.grad(0).reshape({n, dim}), {num, dim}, 0, index.reshape({n}), pad));
    });
  }
  return out;
}

}  // namespace focus
