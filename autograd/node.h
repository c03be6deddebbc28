#pragma once
/// The autograd graph: nodes (one per recorded op), edges to the nodes of the op's inputs,
/// saved tensors with version checks, and the helpers differentiable functions use to
/// record themselves:
///
///   Tensor exp(const Tensor& x) {
///     Tensor y = raw::exp(x);
///     if (needs_grad(x))
///       record("ExpBackward0", {x}, {y}, {save(y, true)}, [](BackwardContext& c) {
///         return grads(mul(c.grad(0), c.saved(0)));   // grad_x = grad * exp(x)
///       });
///     return y;
///   }
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace focus {

/// Grad mode: when off (inside NoGradGuard), ops record nothing.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

/// Disables gradient recording for its scope (torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// Enables gradient recording for its scope (torch.enable_grad()).
class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

/// A read-only list of tensors for record() and init_node(): a braced list `{a, b}` (no
/// heap allocation; valid until the end of the full expression) or a std::vector.
class TensorList {
 public:
  TensorList() = default;
  TensorList(std::initializer_list<Tensor> l) : data_(std::data(l)), size_(l.size()) {}
  TensorList(const std::vector<Tensor>& v) : data_(v.data()), size_(v.size()) {}
  const Tensor* begin() const { return data_; }
  const Tensor* end() const { return data_ + size_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Tensor& operator[](size_t i) const { return data_[i]; }

 private:
  const Tensor* data_ = nullptr;
  size_t size_ = 0;
};

/// Where a gradient goes: input number input_nr of node fn (null fn: nowhere).
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

/// A tensor kept for backward. Records the storage version at save time, so a later
/// in-place write is detected instead of silently giving wrong gradients. Outputs of
/// the saving node are stored without their grad_fn (no reference cycle) and a weak
/// link to the node; under create_graph, unpack() gives them their history back so
/// second derivatives through them are right.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, bool is_output);
  /// Saves t by reference to the node that made it when that node can recompute it
  /// (Node::recompute_output: layer_norm, gelu) and t is that output itself (not a view):
  /// the saving node then does not keep t's memory alive, and unpack() recomputes it from
  /// the producer's own saved tensors. Otherwise the same as SavedTensor(t, false). The
  /// producer is upstream of the saving node, so its saved tensors are still there when
  /// the saving node's backward runs.
  static SavedTensor recomputable(const Tensor& t);
  /// The saved tensor; errors if it was modified in place since, or already freed.
  Tensor unpack(std::string_view node_name) const;
  void release() {
    data_ = Tensor();
    producer_.reset();
    released_ = true;
  }
  bool defined() const { return defined_; }
  /// For a saved output: links it to its node once the node exists (record() does this).
  void bind_output(const std::shared_ptr<Node>& node, TensorList outputs);

 private:
  Tensor data_;
  std::shared_ptr<Node> producer_;  // recomputable(): the node whose output 0 this is
  Shape shape_;                     // recomputable(): the shape the recomputed tensor must have
  std::weak_ptr<Node> owner_;
  uint64_t version_ = 0;
  uint32_t output_nr_ = 0;
  bool defined_ = false;
  bool released_ = false;
  bool is_output_ = false;
};

/// What anomaly detection (autograd/anomaly.h) records about a node when it is made.
struct AnomalyMetadata {
  /// The forward op: "div([4, 3] float32, [4, 3] float32) -> [4, 3] float32 on cpu".
  std::string forward;
  /// Under create_graph, the node whose backward made this one: "'MulBackward0' (forward op
  /// mul(...))"; "" for a node made by a forward pass.
  std::string parent;
};

/// A recorded op. apply() maps gradients of its outputs to gradients of its inputs.
class Node : public std::enable_shared_from_this<Node> {
 public:
  /// Frees the graph behind this node without recursing once per node (long graphs
  /// would overflow the stack).
  virtual ~Node();
  /// PyTorch-style name, e.g. "MulBackward0".
  virtual std::string_view name() const = 0;
  /// grads: one per output (undefined when no gradient flowed to that output).
  /// Returns one gradient per input edge (undefined for inputs that get none).
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grads) = 0;
  /// Frees saved tensors after a backward without retain_graph.
  virtual void release_saved() {}
  /// Whether recompute_output() can give this node's output 0 again (SavedTensor::recomputable).
  virtual bool can_recompute() const { return false; }
  /// Output 0 computed again from this node's saved tensors (without history).
  virtual Tensor recompute_output() { return Tensor(); }

  std::vector<Edge> next_edges;
  uint32_t num_outputs = 1;
  uint64_t sequence_nr = 0;
  /// Output shapes/dtypes, to build zero gradients for outputs that got none. Filled only
  /// for nodes with several outputs: the engine never runs a node that received no
  /// gradient at all, so a one-output node always has its gradient.
  std::vector<Shape> output_shapes;
  std::vector<DType> output_dtypes;
  Device output_device;
  /// Non-leaf tensors that asked retain_grad(): (output_nr, tensor).
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained;
  /// Where the node came from; set only while anomaly detection is on (null otherwise).
  std::unique_ptr<AnomalyMetadata> anomaly_metadata;
};

namespace autograd_detail {
/// True while the engine runs a node's backward after which it frees the node's saved
/// tensors (a backward without retain_graph).
bool frees_saved_after_apply();
}  // namespace autograd_detail

/// Gives a backward function its incoming gradients and saved tensors.
class BackwardContext {
 public:
  BackwardContext(std::string_view name, std::vector<Tensor>& grads, std::vector<SavedTensor>& saved,
                  const std::vector<Edge>& edges)
      : name_(name), grads_(grads), saved_(saved), edges_(edges) {}
  /// Gradient of output i; zeros of its shape if none flowed.
  const Tensor& grad(size_t i = 0) const { return grads_[i]; }
  /// True when output i received a gradient.
  bool has_grad(size_t i) const { return grads_[i].defined(); }
  Tensor saved(size_t i) const { return saved_[i].unpack(name_); }
  /// Saved tensor i, handed over: when this backward frees the node's saved tensors after
  /// it runs (no retain_graph, no create_graph), the node's own reference is dropped now,
  /// so the returned handle may be the last one on that memory and the backward may write
  /// its gradient there (cross_entropy does). Otherwise the same as saved(i).
  Tensor take_saved(size_t i);
  /// Whether input i needs a gradient (skip computing it otherwise).
  bool needs_input_grad(size_t i) const { return i < edges_.size() && edges_[i].valid(); }
  /// Frees saved tensor i now, before this backward returns, when the engine would free it
  /// right after (no retain_graph); otherwise nothing. For a fused backward that is done with
  /// a large saved tensor before its remaining products run (LinearGeluBackward0's pre).
  void release_saved_early(size_t i) {
    if (autograd_detail::frees_saved_after_apply()) saved_[i].release();
  }

 private:
  std::string_view name_;
  std::vector<Tensor>& grads_;
  std::vector<SavedTensor>& saved_;
  const std::vector<Edge>& edges_;
};

/// A node whose backward is a function object F(BackwardContext&) -> std::vector<Tensor>.
/// F must hold tensors only through the saved list (so they are freed after backward).
template <typename F> class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, std::vector<SavedTensor> saved, F f)
      : name_(name), saved_(std::move(saved)), f_(std::move(f)) {}
  std::string_view name() const override { return name_; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  void release_saved() override {
    for (auto& s : saved_) s.release();
  }
  /// recompute(ctx) -> output 0 from the saved tensors (ctx has no gradients).
  void set_recompute(std::function<Tensor(BackwardContext&)> recompute) { recompute_ = std::move(recompute); }
  bool can_recompute() const override { return static_cast<bool>(recompute_); }
  Tensor recompute_output() override;
  /// Links saved outputs to this node (see SavedTensor).
  void bind_saved_outputs(const std::shared_ptr<Node>& self, TensorList outputs) {
    for (auto& s : saved_) s.bind_output(self, outputs);
  }

 private:
  const char* name_;
  std::vector<SavedTensor> saved_;
  F f_;
  std::function<Tensor(BackwardContext&)> recompute_;
};

namespace autograd_detail {
/// The edge a gradient for t flows into: its grad_fn, or its (created on demand) leaf
/// accumulator; invalid when t does not require grad.
Edge gradient_edge(const Tensor& t);
/// Fills undefined output gradients with zeros of the recorded shape.
void fill_missing_grads(const Node& node, std::vector<Tensor>& grads);
/// Errors if backward already released this node's saved tensors.
void check_not_released(const Node& node, const std::vector<SavedTensor>& saved);
/// Whether the backward now running frees each node's saved tensors after the node runs
/// (no retain_graph): set by the engine for the duration of a backward (ReleaseSavedScope).
bool backward_releases_saved();
class ReleaseSavedScope {
 public:
  explicit ReleaseSavedScope(bool releases);
  ~ReleaseSavedScope();
  ReleaseSavedScope(const ReleaseSavedScope&) = delete;
  ReleaseSavedScope& operator=(const ReleaseSavedScope&) = delete;

 private:
  bool prev_;
};
/// Gives node one edge per input and makes it the grad_fn of every floating output.
std::shared_ptr<Node> init_node(std::shared_ptr<Node> node, std::initializer_list<const Tensor*> inputs,
                                TensorList outputs);
std::shared_ptr<Node> init_node(std::shared_ptr<Node> node, TensorList inputs, TensorList outputs);
}  // namespace autograd_detail

template <typename F> std::vector<Tensor> FunctionNode<F>::apply(std::vector<Tensor>&& grads) {
  autograd_detail::check_not_released(*this, saved_);
  autograd_detail::fill_missing_grads(*this, grads);
  BackwardContext ctx(name_, grads, saved_, next_edges);
  return f_(ctx);
}

template <typename F> Tensor FunctionNode<F>::recompute_output() {
  autograd_detail::check_not_released(*this, saved_);
  std::vector<Tensor> no_grads;
  BackwardContext ctx(name_, no_grads, saved_, next_edges);
  return recompute_(ctx);
}

/// True when grad mode is on and any input requires grad.
inline bool needs_grad(const Tensor& a) { return GradMode::is_enabled() && a.defined() && a.requires_grad(); }
inline bool needs_grad(const Tensor& a, const Tensor& b) {
  return GradMode::is_enabled() && ((a.defined() && a.requires_grad()) || (b.defined() && b.requires_grad()));
}
inline bool needs_grad(const Tensor& a, const Tensor& b, const Tensor& c) {
  return needs_grad(a, b) || needs_grad(c);
}
bool needs_grad(const std::vector<Tensor>& inputs);

/// Saves t for backward; is_output = t is an output of the op being recorded.
inline SavedTensor save(const Tensor& t, bool is_output = false) { return SavedTensor(t, is_output); }

/// Records an op: a node named name with one edge per input (in order) becomes the
/// grad_fn of every output (output_nr = position). Inputs that do not require grad get
/// no edge, and their gradient is ignored.
template <typename F>
void record(const char* name, TensorList inputs, TensorList outputs, std::vector<SavedTensor> saved,
            F&& backward) {
  auto node = std::make_shared<FunctionNode<std::decay_t<F>>>(name, std::move(saved), std::forward<F>(backward));
  node->bind_saved_outputs(node, outputs);
  autograd_detail::init_node(std::move(node), inputs, outputs);
}

/// record() for an op whose output 0 recompute(ctx) can compute again from the saved
/// tensors (see SavedTensor::recomputable): consumers may then save it by reference.
template <typename F, typename R>
void record_recomputable(const char* name, TensorList inputs, TensorList outputs, std::vector<SavedTensor> saved,
                         F&& backward, R&& recompute) {
  auto node = std::make_shared<FunctionNode<std::decay_t<F>>>(name, std::move(saved), std::forward<F>(backward));
  node->set_recompute(std::forward<R>(recompute));
  node->bind_saved_outputs(node, outputs);
  autograd_detail::init_node(std::move(node), inputs, outputs);
}

/// Convenience for returning gradients: grads(ga, gb).
template <typename... T> std::vector<Tensor> grads(T&&... g) { return {std::forward<T>(g)...}; }

/// Reduces a broadcast gradient back to shape (sums over broadcast dims).
Tensor sum_to(const Tensor& grad, const Shape& shape);

/// For in-place ops: errors if writing into t in place would corrupt autograd (a leaf
/// that requires grad, or a view of a tensor with history, while grad mode is on).
void check_inplace(const Tensor& t, const char* op, bool will_record);
/// For in-place ops that record: makes node the new grad_fn of t (after the write).
void rebase_history(const Tensor& t, const std::shared_ptr<Node>& node);

}  // namespace focus
