// Tensor printing, in the manner of PyTorch's repr: nested brackets, a shared number
// format per tensor, "..." summaries past 1000 elements (3 items at each edge), then
// shape, dtype, device and grad_fn.
#include <cmath>
#include <string>
#include <vector>

#include "core/ops/common.h"
#include "core/tensor.h"

namespace focus {

// Defined in autograd/node.cpp: the name of t's grad_fn, or "" for none.
std::string grad_fn_name(const Tensor& t);

namespace {

constexpr int64_t kThreshold = 1000;
constexpr int64_t kEdge = 3;

struct Formatter {
  bool floating = false;
  bool is_bool = false;
  bool sci = false;
  bool int_mode = false;  // floats that are all integers print as "1."
  int precision = 4;
  size_t width = 1;

  std::string one(double v) const {
    if (is_bool) return v != 0 ? "True" : "False";
    if (!floating) return fmt::format("{}", static_cast<int64_t>(v));
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (sci) return fmt::format("{:.{}e}", v, precision);
    if (int_mode) return fmt::format("{:.0f}.", v);
    return fmt::format("{:.{}f}", v, precision);
  }
  std::string padded(double v) const {
    std::string s = one(v);
    return std::string(width > s.size() ? width - s.size() : 0, ' ') + s;
  }
};

void print_dim(std::string& out, const Formatter& f, const std::vector<double>& vals, const Shape& shape,
               const Shape& strides, size_t dim, int64_t offset, bool summarize, int indent) {
  if (shape.empty()) {
    out += f.one(vals[static_cast<size_t>(offset)]);
    return;
  }
  out += '[';
  const int64_t n = shape[dim];
  const bool cut = summarize && n > 2 * kEdge;
  const bool last = dim + 1 == shape.size();
  for (int64_t i = 0; i < n; ++i) {
    if (cut && i == kEdge) {
      out += last ? "..., " : fmt::format("...,\n{:{}}", "", indent + 1);
      if (!last && dim + 2 < shape.size()) out += "\n" + std::string(static_cast<size_t>(indent + 1), ' ');
      i = n - kEdge;
    }
    const int64_t off = offset + i * strides[dim];
    if (last) out += f.padded(vals[static_cast<size_t>(off)]);
    else print_dim(out, f, vals, shape, strides, dim + 1, off, summarize, indent + 1);
    if (i + 1 < n) {
      if (last) out += ", ";
      else out += "," + std::string(shape.size() - dim - 1, '\n') + std::string(static_cast<size_t>(indent + 1), ' ');
    }
  }
  out += ']';
}

}  // namespace

std::string Tensor::str() const {
  Tensor c = raw::to_contiguous(*this, kFloat64, kCPU);
  std::vector<double> vals = c.to_vector<double>();
  Formatter f;
  f.floating = is_floating_point();
  f.is_bool = dtype() == kBool;
  const bool summarize = numel() > kThreshold;
  if (f.floating) {
    double maxabs = 0, minabs = INFINITY;
    bool all_int = true;
    for (double v : vals) {
      if (!std::isfinite(v)) continue;
      maxabs = std::max(maxabs, std::abs(v));
      if (v != 0) minabs = std::min(minabs, std::abs(v));
      if (v != std::floor(v)) all_int = false;
    }
    f.int_mode = all_int && maxabs < 1e8;
    f.sci = !f.int_mode && (maxabs >= 1e8 || (minabs < 1e-4 && minabs != INFINITY) || (minabs != INFINITY && maxabs / minabs > 1000 && maxabs > 1e3));
  }
  for (double v : vals) f.width = std::max(f.width, f.one(v).size());

  std::string out = "tensor(";
  if (numel() == 0) out += "[]";
  else print_dim(out, f, vals, c.shape(), c.strides(), 0, 0, summarize, 7);
  out += fmt::format(", shape={}, dtype={}, device={}", shape(), dtype(), device());
  const std::string fn = grad_fn_name(*this);
  if (!fn.empty()) out += fmt::format(", grad_fn=<{}>", fn);
  else if (requires_grad()) out += ", requires_grad=True";
  if (!name().empty()) out += fmt::format(", name='{}'", name());
  out += ')';
  return out;
}

}  // namespace focus
