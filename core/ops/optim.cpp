#include "core/ops/optim.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "core/ops/common.h"

namespace focus::raw {

namespace {

// `prefix` names the entry of a multi-tensor step ("entries[3].") and is empty otherwise.
void check_param_grad(const Tensor& param, const Tensor& grad, const char* op, const std::string& prefix = "") {
  check_defined(param, op, (prefix + "param").c_str());
  check_defined(grad, op, (prefix + "grad").c_str());
  check_floating(param, op, (prefix + "param").c_str());
  check_floating(grad, op, (prefix + "grad").c_str());
  FOCUS_CHECK(grad.shape() == param.shape(), "[{}] {}grad of shape {} does not match {}param of shape {}", op, prefix,
              grad.shape(), prefix, param.shape());
  if (prefix.empty()) {
    check_same_device(param, grad, op);
  } else {
    FOCUS_CHECK(grad.device() == param.device(), "[{}] {}grad is on {} but {}param on {}", op, prefix, grad.device(),
                prefix, param.device());
  }
}

void check_state(const Tensor& param, const Tensor& s, const char* op, const std::string& arg) {
  check_defined(s, op, arg.c_str());
  FOCUS_CHECK(s.shape() == param.shape() && s.dtype() == param.dtype() && s.device() == param.device() &&
                  s.is_contiguous(),
              "[{}] {} must be a contiguous {} tensor of shape {} on {}, got {} of shape {} on {}", op, arg,
              param.dtype(), param.shape(), param.device(), s.dtype(), s.shape(), s.device());
}

// ---- multi-tensor steps ------------------------------------------------------------------

// The bytes of its storage that a tensor spans (from its lowest to its highest element).
struct Extent {
  const Storage* storage;
  int64_t begin, end;
  size_t entry;
  const char* name;
};

Extent extent_of(const Tensor& t, size_t entry, const char* name) {
  int64_t lo = t.storage_offset(), hi = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t span = (t.shape()[d] - 1) * t.strides()[d];
    (span < 0 ? lo : hi) += span;
  }
  const auto es = static_cast<int64_t>(t.element_size());
  return Extent{t.storage().get(), lo * es, (hi + 1) * es, entry, name};
}

// Errors when two of the tensors written share memory: the kernels update the entries
// concurrently (and one entry twice would not be the step of either order). Sorting makes
// it O(n log n); extents are conservative (a strided tensor spans its gaps).
void check_no_overlap(std::vector<Extent>& written, const char* op) {
  std::sort(written.begin(), written.end(), [](const Extent& a, const Extent& b) {
    return a.storage != b.storage ? std::less<const Storage*>()(a.storage, b.storage) : a.begin < b.begin;
  });
  // reach: among the extents of the current storage so far, the one that ends furthest (an
  // extent overlaps an earlier one exactly when it starts before that one's end).
  size_t reach = 0;
  for (size_t i = 1; i < written.size(); ++i) {
    const Extent& b = written[i];
    if (b.storage != written[reach].storage) {
      reach = i;
      continue;
    }
    const Extent& a = written[reach];
    if (b.begin < a.end) {
      const Extent& first = a.entry <= b.entry ? a : b;
      const Extent& second = a.entry <= b.entry ? b : a;
      FOCUS_FAIL("[{}] entries[{}].{} and entries[{}].{} share memory", op, first.entry, first.name, second.entry,
                 second.name);
    }
    if (b.end > a.end) reach = i;
  }
}

// What every multi-tensor step does around its kernels: each entry's grad made contiguous in
// the param's dtype, a non-contiguous param replaced by a contiguous copy (written back
// afterwards), and the entries grouped by device in order of first appearance.
struct Prepared {
  std::vector<Tensor> grads;   // contiguous, param's dtype
  std::vector<Tensor> params;  // contiguous: the param itself or a copy
  std::vector<std::pair<Device, std::vector<size_t>>> groups;
};

template <typename Entry> Prepared prepare(std::span<const Entry> entries) {
  Prepared out;
  out.grads.reserve(entries.size());
  out.params.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const Tensor& param = entries[i].param;
    out.grads.push_back(param.numel() == 0 ? Tensor() : to_contiguous(entries[i].grad, param.dtype(), param.device()));
    out.params.push_back(param.numel() == 0 || param.is_contiguous() ? param : clone(param));
    if (param.numel() == 0) continue;
    auto g = std::find_if(out.groups.begin(), out.groups.end(),
                          [&](const auto& group) { return group.first == param.device(); });
    if (g == out.groups.end()) {
      out.groups.emplace_back(param.device(), std::vector<size_t>{});
      g = std::prev(out.groups.end());
    }
    g->second.push_back(i);
  }
  return out;
}

// Copies the updated contiguous copies back into non-contiguous params.
template <typename Entry> void copy_back(std::span<const Entry> entries, const Prepared& prep) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const Tensor& param = entries[i].param;
    if (param.numel() == 0) continue;
    if (!prep.params[i].is_same(param)) copy_(param, prep.params[i]);
  }
}

}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const Backend::SgdStepParams& p) {
  constexpr const char* op = "sgd_step";
  check_param_grad(param, grad, op);
  const bool momentum = p.momentum != 0;
  if (momentum) check_state(param, momentum_buffer, op, "momentum_buffer");
  if (param.numel() == 0) return;
  const Tensor g = to_contiguous(grad, param.dtype(), param.device());
  const Tensor pc = param.is_contiguous() ? param : clone(param);
  const TensorView none;
  backend_of(param).sgd_step(make_view(pc), make_view(g), momentum ? make_view(momentum_buffer) : none, p);
  if (!pc.is_same(param)) copy_(param, pc);
  param.bump_version();
  if (momentum) momentum_buffer.bump_version();
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const Backend::AdamStepParams& p) {
  constexpr const char* op = "adam_step";
  check_param_grad(param, grad, op);
  check_state(param, exp_avg, op, "exp_avg");
  check_state(param, exp_avg_sq, op, "exp_avg_sq");
  if (p.amsgrad) check_state(param, max_exp_avg_sq, op, "max_exp_avg_sq");
  if (param.numel() == 0) return;
  const Tensor g = to_contiguous(grad, param.dtype(), param.device());
  const Tensor pc = param.is_contiguous() ? param : clone(param);
  const TensorView none;
  backend_of(param).adam_step(make_view(pc), make_view(g), make_view(exp_avg), make_view(exp_avg_sq),
                              p.amsgrad ? make_view(max_exp_avg_sq) : none, p);
  if (!pc.is_same(param)) copy_(param, pc);
  param.bump_version();
  exp_avg.bump_version();
  exp_avg_sq.bump_version();
  if (p.amsgrad) max_exp_avg_sq.bump_version();
}

void adam_step_multi(std::span<const AdamStepTensors> entries, const Backend::AdamStepParams& p) {
  constexpr const char* op = "adam_step_multi";
  std::vector<Extent> written;
  written.reserve(entries.size() * (p.amsgrad ? 4 : 3));
  for (size_t i = 0; i < entries.size(); ++i) {
    const AdamStepTensors& e = entries[i];
    const std::string prefix = "entries[" + std::to_string(i) + "].";
    check_param_grad(e.param, e.grad, op, prefix);
    check_state(e.param, e.exp_avg, op, prefix + "exp_avg");
    check_state(e.param, e.exp_avg_sq, op, prefix + "exp_avg_sq");
    if (p.amsgrad) check_state(e.param, e.max_exp_avg_sq, op, prefix + "max_exp_avg_sq");
    if (p.capturable) {
      FOCUS_CHECK(e.param.device().type == DeviceType::CUDA,
                  "[{}] capturable=True needs the parameters on a CUDA device (as PyTorch's), but {}param is on {}",
                  op, prefix, e.param.device());
      FOCUS_CHECK(e.step.defined() && e.step.numel() == 1 && e.step.dtype() == kFloat32 &&
                      e.step.device() == e.param.device() && e.step.is_contiguous(),
                  "[{}] capturable: {}step must be a one-element float32 tensor on {}", op, prefix, e.param.device());
    }
    if (e.param.numel() == 0) continue;
    written.push_back(extent_of(e.param, i, "param"));
    written.push_back(extent_of(e.exp_avg, i, "exp_avg"));
    written.push_back(extent_of(e.exp_avg_sq, i, "exp_avg_sq"));
    if (p.amsgrad) written.push_back(extent_of(e.max_exp_avg_sq, i, "max_exp_avg_sq"));
    if (p.capturable) written.push_back(extent_of(e.step, i, "step"));
  }
  check_no_overlap(written, op);
  const Prepared prep = prepare(entries);
  const TensorView none;
  std::vector<Backend::AdamTensorRef> refs;
  for (const auto& [device, members] : prep.groups) {
    refs.clear();
    for (const size_t i : members) {
      const AdamStepTensors& e = entries[i];
      refs.push_back(Backend::AdamTensorRef{make_view(prep.params[i]), make_view(prep.grads[i]), make_view(e.exp_avg),
                                            make_view(e.exp_avg_sq), p.amsgrad ? make_view(e.max_exp_avg_sq) : none,
                                            e.step_size, e.bias_correction2_sqrt,
                                            p.capturable ? e.step.data_ptr<float>() : nullptr});
    }
    backend_for(device).adam_step_multi(refs.data(), refs.size(), p);
  }
  copy_back(entries, prep);
  for (const AdamStepTensors& e : entries) {
    if (e.param.numel() == 0) continue;
    e.param.bump_version();
    e.exp_avg.bump_version();
    e.exp_avg_sq.bump_version();
    if (p.amsgrad) e.max_exp_avg_sq.bump_version();
    if (p.capturable) e.step.bump_version();
  }
}

void sgd_step_multi(std::span<const SgdStepTensors> entries, const Backend::SgdStepParams& p) {
  constexpr const char* op = "sgd_step_multi";
  const bool momentum = p.momentum != 0;
  std::vector<Extent> written;
  written.reserve(entries.size() * (momentum ? 2 : 1));
  for (size_t i = 0; i < entries.size(); ++i) {
    const SgdStepTensors& e = entries[i];
    const std::string prefix = "entries[" + std::to_string(i) + "].";
    check_param_grad(e.param, e.grad, op, prefix);
    if (momentum) check_state(e.param, e.momentum_buffer, op, prefix + "momentum_buffer");
    if (e.param.numel() == 0) continue;
    written.push_back(extent_of(e.param, i, "param"));
    if (momentum) written.push_back(extent_of(e.momentum_buffer, i, "momentum_buffer"));
  }
  check_no_overlap(written, op);
  const Prepared prep = prepare(entries);
  const TensorView none;
  std::vector<Backend::SgdTensorRef> refs;
  for (const auto& [device, members] : prep.groups) {
    refs.clear();
    for (const size_t i : members) {
      const SgdStepTensors& e = entries[i];
      refs.push_back(Backend::SgdTensorRef{make_view(prep.params[i]), make_view(prep.grads[i]),
                                           momentum ? make_view(e.momentum_buffer) : none, e.first_step});
    }
    backend_for(device).sgd_step_multi(refs.data(), refs.size(), p);
  }
  copy_back(entries, prep);
  for (const SgdStepTensors& e : entries) {
    if (e.param.numel() == 0) continue;
    e.param.bump_version();
    if (momentum) e.momentum_buffer.bump_version();
  }
}

}  // namespace focus::raw
