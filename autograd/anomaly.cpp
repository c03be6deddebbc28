#include "autograd/anomaly.h"

#include <bit>
#include <cctype>
#include <cstdint>
#include <cmath>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/reduce.h"
#include "autograd/node.h"

namespace focus::autograd {

namespace anomaly_detail {
// Process-wide, as PyTorch's AnomalyMode::_enabled / _check_nan (static bools).
std::atomic<bool> enabled{false};
std::atomic<bool> check_nan{true};
}  // namespace anomaly_detail

void set_detect_anomaly(bool mode, bool check_nan) {
  anomaly_detail::check_nan.store(check_nan, std::memory_order_relaxed);
  anomaly_detail::enabled.store(mode, std::memory_order_relaxed);
}

DetectAnomalyGuard::DetectAnomalyGuard(bool check_nan)
    : prev_enabled_(is_anomaly_enabled()), prev_check_nan_(is_anomaly_check_nan_enabled()) {
  set_detect_anomaly(true, check_nan);
}

DetectAnomalyGuard::~DetectAnomalyGuard() { set_detect_anomaly(prev_enabled_, prev_check_nan_); }

std::string anomaly_forward_op(const Node& node) {
  return node.anomaly_metadata ? node.anomaly_metadata->forward : std::string();
}

namespace anomaly_detail {
namespace {

thread_local const Node* t_running = nullptr;

// The forward op a backward node is named after, as PyTorch names them: "DivBackward0" ->
// "div", "NativeLayerNormBackward0" -> "native_layer_norm", "Log1PBackward0" -> "log1p".
std::string forward_name(std::string_view node_name) {
  std::string_view s = node_name;
  while (!s.empty() && std::isdigit(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  constexpr std::string_view kSuffix = "Backward";
  if (s.size() <= kSuffix.size() || s.substr(s.size() - kSuffix.size()) != kSuffix) return std::string(node_name);
  s.remove_suffix(kSuffix.size());
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (std::isupper(c)) {
      if (i > 0 && std::islower(static_cast<unsigned char>(s[i - 1]))) r += '_';
      r += static_cast<char>(std::tolower(c));
    } else {
      r += static_cast<char>(c);
    }
  }
  return r;
}

std::string describe(const Tensor& t, bool with_device) {
  if (!t.defined()) return "undefined";
  std::string s = fmt::format("{} {}", t.shape(), t.dtype());
  if (with_device) s += fmt::format(" {}", t.device());
  return s;
}

std::string describe_forward(std::string_view node_name, TensorList inputs, TensorList outputs) {
  // One device for all (the usual case) is named once at the end.
  const Tensor* first = nullptr;
  bool one_device = true;
  for (TensorList l : {inputs, outputs})
    for (const Tensor& t : l) {
      if (!t.defined()) continue;
      if (!first) first = &t;
      else if (t.device() != first->device()) one_device = false;
    }
  auto list = [&](TensorList l) {
    std::string s;
    for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + describe(l[i], !one_device);
    return s;
  };
  std::string s = fmt::format("{}({}) -> ", forward_name(node_name), list(inputs));
  s += outputs.size() == 1 ? list(outputs) : "(" + list(outputs) + ")";
  if (one_device && first) s += fmt::format(" on {}", first->device());
  return s;
}

// "created by the forward op div(...)", for "it was ..." / "which was ...".
std::string created_by(const Node& node) {
  if (!node.anomaly_metadata)
    return "created while anomaly detection was off, so its forward op is unknown (turn anomaly detection on "
           "before the forward pass)";
  std::string s = fmt::format("created by the forward op {}", node.anomaly_metadata->forward);
  if (!node.anomaly_metadata->parent.empty())
    s += fmt::format(" during the backward of {}", node.anomaly_metadata->parent);
  return s;
}

constexpr std::string_view kNote =
    "anomaly detection is on (autograd::set_detect_anomaly, DetectAnomalyGuard or focus train --detect-anomaly); "
    "it slows every step, so turn it off once the cause is found";

struct NonFinite {
  int64_t nan = 0;
  int64_t inf = 0;
  int64_t first = -1;  // flat index of the first non-finite element
};

// Any exponent field all ones (inf or NaN): an integer OR-reduction the compiler vectorizes
// (contiguous rows). Walks t's strides, so views (a transposed or expanded gradient) are
// read in place rather than copied first.
template <typename T, typename Bits> bool any_non_finite(const Tensor& t, Bits exp_mask) {
  const T* base = t.data_ptr<T>();
  auto row = [exp_mask](const T* p, int64_t n, int64_t stride) {
    Bits hit = 0;
    if (stride == 1) {
      for (int64_t i = 0; i < n; ++i) hit |= static_cast<Bits>((std::bit_cast<Bits>(p[i]) & exp_mask) == exp_mask);
    } else {
      for (int64_t i = 0; i < n; ++i)
        hit |= static_cast<Bits>((std::bit_cast<Bits>(p[i * stride]) & exp_mask) == exp_mask);
    }
    return hit != 0;
  };
  if (t.is_contiguous() || t.dim() == 0) return row(base, t.numel(), 1);
  const Shape& shape = t.shape();
  const Shape& strides = t.strides();
  const int64_t nd = t.dim();
  std::vector<int64_t> idx(nd - 1, 0);
  int64_t offset = 0;
  while (true) {
    if (row(base + offset, shape[nd - 1], strides[nd - 1])) return true;
    int64_t d = nd - 2;
    for (; d >= 0; --d) {  // next row: an odometer over the outer dims
      if (++idx[d] < shape[d]) {
        offset += strides[d];
        break;
      }
      offset -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
    if (d < 0) return false;
  }
}

template <typename T> NonFinite count(const T* p, int64_t n) {
  NonFinite r;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isfinite(p[i])) continue;
    if (r.first < 0) r.first = i;
    if (std::isnan(p[i])) ++r.nan;
    else ++r.inf;
  }
  return r;
}

NonFinite non_finite(const Tensor& g) {
  NoGradGuard no_grad;
  Tensor t = g.detach();
  if (!t.device().is_cpu()) {
    // One small read back: g * 0 is 0 where g is finite and NaN elsewhere.
    if (std::isfinite(sum(t * 0.0).item<double>())) return {};
    t = t.to(kCPU);
  }
  if (t.dtype() != kFloat32 && t.dtype() != kFloat64) t = t.to(kFloat32);
  const bool bad = t.dtype() == kFloat32 ? any_non_finite<float>(t, uint32_t{0x7f800000u})
                                         : any_non_finite<double>(t, uint64_t{0x7ff0000000000000ull});
  if (!bad) return {};
  // The error path: count over a contiguous copy.
  t = t.contiguous();
  if (t.dtype() == kFloat32) return count(t.data_ptr<float>(), t.numel());
  return count(t.data_ptr<double>(), t.numel());
}

Shape unravel(int64_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return idx;
}

}  // namespace

void record(Node& node, TensorList inputs, TensorList outputs) {
  auto m = std::make_unique<AnomalyMetadata>();
  m->forward = describe_forward(node.name(), inputs, outputs);
  if (t_running) {
    m->parent = t_running->anomaly_metadata
                    ? fmt::format("'{}' (forward op {})", t_running->name(), t_running->anomaly_metadata->forward)
                    : fmt::format("'{}'", t_running->name());
  }
  node.anomaly_metadata = std::move(m);
}

void check_gradients(const Node& node, const std::vector<Tensor>& grads) {
  for (size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    if (!g.defined() || !g.is_floating_point() || g.numel() == 0) continue;
    const NonFinite bad = non_finite(g);
    if (bad.first < 0) continue;
    const char* what = bad.nan && bad.inf ? "nan and inf" : bad.nan ? "nan" : "inf";
    FOCUS_FAIL(
        "[backward] function '{}' returned {} values in its output {} (the gradient for input {} of its forward "
        "op, {} {}: {} nan and {} inf of {} elements, the first at {}); it was {}. Raised because {}",
        node.name(), what, i, i, g.shape(), g.dtype(), bad.nan, bad.inf, g.numel(), unravel(bad.first, g.shape()),
        created_by(node), kNote);
  }
}

void rethrow_with_node(const Node& node) {
  try {
    throw;
  } catch (const Error& e) {
    const std::string msg = e.what();
    // A backward inside a backward (recomputation) has already named its node.
    if (msg.find(kNote) != std::string::npos) throw;
    throw Error(fmt::format("{}\n(raised in the backward of '{}', which was {}; {})", msg, node.name(),
                            created_by(node), kNote));
  }
}

RunningNodeScope::RunningNodeScope(const Node* node) : prev_(t_running) { t_running = node; }
RunningNodeScope::~RunningNodeScope() { t_running = prev_; }

}  // namespace anomaly_detail

}  // namespace focus::autograd
