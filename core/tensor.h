#pragma once
/// Tensor: a cheap shared handle to storage + shape + strides + offset + dtype + device,
/// with an optional autograd record (requires_grad, grad, grad_fn).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/scalar.h"

namespace focus {

/// Sizes of a tensor, outermost first (PyTorch's `x.shape`).
using Shape = std::vector<int64_t>;
/// A list of dims for reductions and permutes; negative dims count from the end.
using DimList = std::vector<int64_t>;

class Tensor;
class Node;  // autograd graph node (autograd/node.h)

/// Raw memory of one device. Views share one Storage; its version counter counts
/// in-place writes so that backward can detect a saved tensor modified in place.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  uint64_t version = 0;
  /// Page-locked CPU memory (from the CUDA backend): copies from it to a GPU can be
  /// asynchronous (Tensor::pin_memory, to(device, non_blocking)).
  bool pinned = false;
  Storage(size_t nbytes, Device device);  // allocates through the device's backend
  /// Page-locked CPU memory of nbytes (needs a CUDA build with a GPU).
  struct Pinned {};
  Storage(size_t nbytes, Pinned);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

/// A leaf's hooks run after its gradient has been accumulated
/// (Tensor::register_post_accumulate_grad_hook), in registration order.
struct PostAccumulateGradHooks {
  uint64_t next_id = 0;
  std::vector<std::pair<uint64_t, std::function<void(const Tensor&)>>> hooks;
};

/// What hook registration returns, as torch.utils.hooks.RemovableHandle: remove()
/// unregisters the hook (again, or after the tensor is gone, it does nothing).
class RemovableHandle {
 public:
  RemovableHandle() = default;
  RemovableHandle(std::weak_ptr<PostAccumulateGradHooks> hooks, uint64_t id) : hooks_(std::move(hooks)), id_(id) {}
  void remove();

 private:
  std::weak_ptr<PostAccumulateGradHooks> hooks_;
  uint64_t id_ = 0;
};

/// Autograd bookkeeping, present only on tensors that take part in autograd.
struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;
  bool is_view = false;  // shares storage with a tensor that has autograd history
  uint32_t output_nr = 0;
  std::shared_ptr<Tensor> grad;
  std::shared_ptr<Node> grad_fn;
  std::weak_ptr<Node> grad_accumulator;  // leaves only
  std::shared_ptr<PostAccumulateGradHooks> post_accumulate_hooks;  // leaves only
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  int64_t numel = 0;
  DType dtype = kFloat32;
  std::unique_ptr<AutogradMeta> autograd;
  std::string name;  // optional, shown when printing

  AutogradMeta& meta() {
    if (!autograd) autograd = std::make_unique<AutogradMeta>();
    return *autograd;
  }
};

/// Options for creation functions: dtype, device, requires_grad. Implicitly built from a
/// DType or a Device, so `zeros({2, 3}, kFloat64)` works.
struct TensorOptions {
  std::optional<DType> dtype_;  // unset: the function's default (float32, or int64 for arange of ints)
  Device device_;
  bool requires_grad_ = false;
  TensorOptions() = default;
  TensorOptions(DType t) : dtype_(t) {}
  DType dtype_or(DType d) const { return dtype_.value_or(d); }
  TensorOptions(Device d) : device_(d) {}
  TensorOptions dtype(DType t) const { auto o = *this; o.dtype_ = t; return o; }
  TensorOptions device(Device d) const { auto o = *this; o.device_ = d; return o; }
  TensorOptions requires_grad(bool r = true) const { auto o = *this; o.requires_grad_ = r; return o; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata -------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& sizes() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  /// Size of dim d; negative d counts from the end.
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t numel() const { return impl().numel; }
  int64_t storage_offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  TensorOptions options() const { return TensorOptions(dtype()).device(device()); }
  size_t element_size() const { return dtype_size(dtype()); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  /// Storage version: bumped by every in-place write to this tensor or its views.
  uint64_t version() const { return impl().storage->version; }
  void bump_version() const { ++impl().storage->version; }
  /// True when both handles point at the same tensor object.
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  TensorImpl* unsafe_impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- data access (CPU) -------------------------------------------------------------
  /// Pointer to element 0 (storage + offset). Typed access checks the dtype.
  void* data_ptr() const;
  template <typename T> T* data_ptr() const {
    check_dtype_access(dtype_of_v<T>, "data_ptr");
    return static_cast<T*>(data_ptr());
  }
  /// The single value of a one-element tensor, converted to T (any device).
  template <typename T> T item() const;
  /// All values in row-major order, converted to T (any layout, any device).
  template <typename T> std::vector<T> to_vector() const;

  // ---- autograd -------------------------------------------------------------------
  bool requires_grad() const { return impl_ && impl_->autograd && impl_->autograd->requires_grad; }
  /// Marks a leaf as requiring grad (floating dtypes only). Returns *this.
  const Tensor& requires_grad_(bool r = true) const;
  /// The accumulated gradient; undefined until a backward reaches this tensor.
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  /// The node that produced this tensor, or null for leaves.
  std::shared_ptr<Node> grad_fn() const;
  bool is_leaf() const { return !grad_fn(); }
  /// Keeps .grad on a non-leaf after backward.
  void retain_grad() const;
  /// Registers hook(tensor) to run after a backward has accumulated a gradient into this
  /// leaf's .grad (torch.Tensor.register_post_accumulate_grad_hook, PyTorch 2.1): the hook
  /// sees the tensor, reads or replaces its .grad, and returns nothing. Hooks run in
  /// registration order, on the thread running backward, once per accumulation; not in
  /// autograd::grad() (which accumulates nothing). Leaves that require grad only.
  RemovableHandle register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const;
  /// Runs backward from this tensor; gradient defaults to 1 for a one-element tensor.
  void backward(const Tensor& gradient = {}, bool retain_graph = false, bool create_graph = false) const;
  /// Same data, cut from the graph.
  Tensor detach() const;
  /// Detaches in place: drops grad_fn and requires_grad.
  const Tensor& detach_() const;
  /// A debugging name shown when printing.
  const Tensor& set_name(std::string name) const;
  const std::string& name() const { return impl().name; }

  // ---- views (share storage; differentiable) --------------------------------------
  /// Same data, new shape; one dim may be -1. Needs compatible strides (else use reshape).
  Tensor view(const Shape& shape) const;
  /// view when possible, otherwise a contiguous copy.
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const DimList& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  /// 2-D transpose (0-D and 1-D returned as is), as torch.t.
  Tensor t() const;
  /// Elements start..start+length-1 of dim.
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  /// Python's x[..., start:end:step, ...] on one dim; indices are clamped like Python.
  Tensor slice(int64_t dim, std::optional<int64_t> start = std::nullopt,
               std::optional<int64_t> end = std::nullopt, int64_t step = 1) const;
  /// x[..., index, ...]: removes dim.
  Tensor select(int64_t dim, int64_t index) const;
  /// Broadcast view; -1 keeps a size. New leading dims may be added.
  Tensor expand(const Shape& shape) const;
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unflatten(int64_t dim, const Shape& sizes) const;
  /// x itself if contiguous, else a contiguous copy (differentiable).
  Tensor contiguous() const;
  /// A copy with its own storage (differentiable).
  Tensor clone() const;
  /// Converts dtype (differentiable between floating dtypes); returns *this if equal.
  Tensor to(DType dtype) const;
  /// Moves to a device (differentiable); returns *this if equal. non_blocking, as in
  /// PyTorch: a copy from pinned CPU memory to a GPU is queued (later work on that GPU is
  /// ordered after it); a copy from a GPU to the CPU lands in pinned memory and is queued:
  /// its values are there after cuda::synchronize() (or any later synchronisation of that
  /// GPU). Every other copy completes before returning.
  Tensor to(Device device, bool non_blocking = false) const;
  Tensor cpu() const { return to(kCPU); }
  /// Shorthand for to(Device::cuda(index), non_blocking).
  Tensor cuda(int index = 0, bool non_blocking = false) const { return to(Device(DeviceType::CUDA, index), non_blocking); }
  /// A copy in page-locked CPU memory (itself if already pinned), for asynchronous copies
  /// to a GPU; needs a CUDA build with a GPU. CPU tensors only.
  Tensor pin_memory() const;
  bool is_pinned() const { return defined() && impl().storage->pinned; }

  // ---- in-place (bump the version; differentiable where it makes sense) ----------------
  const Tensor& copy_(const Tensor& src) const;
  const Tensor& fill_(Scalar value) const;
  const Tensor& zero_() const { return fill_(0); }
  const Tensor& add_(const Tensor& other, Scalar alpha = 1) const;
  const Tensor& add_(Scalar other) const;
  const Tensor& sub_(const Tensor& other, Scalar alpha = 1) const;
  const Tensor& sub_(Scalar other) const;
  const Tensor& mul_(const Tensor& other) const;
  const Tensor& mul_(Scalar other) const;
  const Tensor& div_(const Tensor& other) const;
  const Tensor& div_(Scalar other) const;
  const Tensor& clamp_(std::optional<Scalar> min, std::optional<Scalar> max) const;
  const Tensor& masked_fill_(const Tensor& mask, Scalar value) const;

  // ---- common methods (same as the free functions in autograd/functions) --------------
  Tensor sum() const;
  Tensor sum(const DimList& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const DimList& dims, bool keepdim = false) const;
  Tensor matmul(const Tensor& other) const;
  Tensor pow(Scalar exponent) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor abs() const;
  Tensor sqrt() const;
  Tensor argmax(std::optional<int64_t> dim = std::nullopt, bool keepdim = false) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;
  Tensor masked_fill(const Tensor& mask, Scalar value) const;

  // ---- indexing sugar -----------------------------------------------------------------
  /// x[i] on dim 0, as select(0, i).
  Tensor operator[](int64_t i) const { return select(0, i); }

  /// PyTorch-like text: values (abbreviated when large), shape, dtype, device, grad_fn.
  std::string str() const;

 private:
  TensorImpl& impl() const {
    if (!impl_) [[unlikely]] throw_undefined();
    return *impl_;
  }
  [[noreturn]] static void throw_undefined();
  void check_dtype_access(DType t, const char* op) const;
  std::shared_ptr<TensorImpl> impl_;
};

// ---- shape helpers shared by ops --------------------------------------------------------
/// Product of sizes, with overflow and negative-size checks naming op.
int64_t checked_numel(const Shape& shape, const char* op);
/// Row-major strides of a contiguous tensor of this shape.
Shape contiguous_strides(const Shape& shape);
/// Wraps a possibly negative dim into [0, ndim); error names op.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
/// NumPy broadcasting of two shapes; error names op.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace focus

template <> struct fmt::formatter<focus::Tensor> : fmt::formatter<std::string> {
  template <typename Ctx> auto format(const focus::Tensor& t, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(t.defined() ? t.str() : std::string("Tensor(undefined)"), ctx);
  }
};
