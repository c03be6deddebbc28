#include "autograd/node.h"

#include <atomic>
#include <mutex>

#include "autograd/anomaly.h"
#include "autograd/functions/elementwise.h"
#include "core/creation.h"
#include "core/ops/common.h"

namespace focus {

namespace {
thread_local bool grad_enabled = true;
thread_local bool releasing_saved = false;  // see autograd_detail::backward_releases_saved
std::atomic<uint64_t> next_sequence_nr{0};

// Guards what threads share through a leaf (a parameter of a model several threads use):
// its accumulator (made on first use by whichever thread records an op on the leaf) and its
// .grad (added to by every backward that reaches it), as PyTorch locks them. One mutex for
// all leaves: it is held briefly, and rarely wanted by two threads at once. Recursive: with
// create_graph, accumulating records ops, which may reach a leaf's accumulator again.
std::recursive_mutex leaf_mutex;

// Accumulates into a leaf's .grad. Leaf and accumulator hold each other only weakly
// (the graph owns the accumulator): a gradient built with create_graph references the
// graph, and a strong link back to the leaf would make leaf -> grad -> graph -> leaf a
// leaking cycle. A leaf nobody holds any more has no .grad anyone could read.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : leaf_(leaf) {}
  std::string_view name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  std::weak_ptr<TensorImpl> leaf_;
};
}  // namespace

Node::~Node() {
  // Each node owns the next ones through its edges, so dropping a long chain would
  // recurse once per node. Nodes whose last owner is this one are queued instead and
  // destroyed by a loop in the outermost ~Node of this thread.
  thread_local std::vector<std::shared_ptr<Node>>* queue = nullptr;
  std::vector<std::shared_ptr<Node>> local;
  const bool outermost = queue == nullptr;
  if (outermost) queue = &local;
  for (Edge& e : next_edges)
    if (e.fn && e.fn.use_count() == 1) queue->push_back(std::move(e.fn));
  if (!outermost) return;
  while (!local.empty()) {
    std::shared_ptr<Node> n = std::move(local.back());
    local.pop_back();
    n.reset();  // may queue more nodes onto local
  }
  queue = nullptr;
}

bool GradMode::is_enabled() { return grad_enabled; }
void GradMode::set_enabled(bool e) { grad_enabled = e; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

SavedTensor::SavedTensor(const Tensor& t, bool is_output) : defined_(t.defined()) {
  if (!t.defined()) return;
  version_ = t.version();
  if (is_output) {
    // A fresh handle on the same storage, without autograd meta: no cycle output -> node -> output.
    data_ = raw::as_strided(t, t.shape(), t.strides(), t.storage_offset());
    is_output_ = true;
  } else {
    data_ = t;
  }
}

void SavedTensor::bind_output(const std::shared_ptr<Node>& node, TensorList outputs) {
  if (!is_output_ || !data_.defined()) return;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& o = outputs[i];
    if (o.defined() && o.storage() == data_.storage() && o.storage_offset() == data_.storage_offset() &&
        o.shape() == data_.shape() && o.strides() == data_.strides()) {
      owner_ = node;
      output_nr_ = static_cast<uint32_t>(i);
      return;
    }
  }
}

SavedTensor SavedTensor::recomputable(const Tensor& t) {
  if (t.defined() && t.requires_grad() && t.storage_offset() == 0 && t.is_contiguous()) {
    const AutogradMeta* am = t.unsafe_impl()->autograd.get();
    const std::shared_ptr<Node> fn = t.grad_fn();
    if (am && am->output_nr == 0 && fn && fn->can_recompute() &&
        static_cast<size_t>(t.numel()) * t.element_size() == t.storage()->nbytes) {
      SavedTensor s;
      s.defined_ = true;
      s.producer_ = fn;
      s.shape_ = t.shape();
      return s;
    }
  }
  return SavedTensor(t, false);
}

Tensor SavedTensor::unpack(std::string_view node_name) const {
  FOCUS_CHECK(!released_,
              "[backward] trying to backward through the graph a second time (or to use saved tensors after "
              "they were freed) in {}: pass retain_graph=true to the first backward",
              node_name);
  if (!defined_) return Tensor();
  if (producer_) {
    Tensor t = producer_->recompute_output();
    FOCUS_CHECK(t.defined() && t.shape() == shape_, "[backward] {} could not recompute a saved tensor of shape {} in {}",
                producer_->name(), shape_, node_name);
    if (GradMode::is_enabled()) {
      // create_graph: the recomputed tensor gets the producer as its history, as the original had.
      AutogradMeta& m = t.unsafe_impl()->meta();
      m.requires_grad = true;
      m.grad_fn = producer_;
      m.output_nr = 0;
    }
    return t;
  }
  FOCUS_CHECK(data_.version() == version_,
              "[backward] a tensor needed for gradient computation by {} was modified by an in-place "
              "operation: it had version {} when saved and has version {} now (shape {})",
              node_name, version_, data_.version(), data_.shape());
  if (is_output_ && GradMode::is_enabled()) {
    // create_graph: the output with its history, so the backward formula using it is
    // itself differentiated correctly.
    if (auto node = owner_.lock()) {
      Tensor t = raw::as_strided(data_, data_.shape(), data_.strides(), data_.storage_offset());
      AutogradMeta& m = t.unsafe_impl()->meta();
      m.requires_grad = true;
      m.grad_fn = std::move(node);
      m.output_nr = output_nr_;
      return t;
    }
  }
  return data_;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  DimList dims;
  for (int64_t d = 0; d < grad.dim(); ++d) {
    if (d < lead || (shape[d - lead] == 1 && grad.shape()[d] != 1)) dims.push_back(d);
  }
  Tensor r = dims.empty() ? grad : grad.sum(dims, true);
  if (lead > 0 || r.shape() != shape) r = r.reshape(shape);
  return r;
}

Tensor BackwardContext::take_saved(size_t i) {
  Tensor t = saved_[i].unpack(name_);
  if (autograd_detail::backward_releases_saved()) saved_[i].release();
  return t;
}

namespace autograd_detail {

bool backward_releases_saved() { return releasing_saved; }
ReleaseSavedScope::ReleaseSavedScope(bool releases) : prev_(releasing_saved) { releasing_saved = releases; }
ReleaseSavedScope::~ReleaseSavedScope() { releasing_saved = prev_; }

void fill_missing_grads(const Node& node, std::vector<Tensor>& grads) {
  grads.resize(node.num_outputs);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined() && i < node.output_shapes.size())
      grads[i] = zeros(node.output_shapes[i], TensorOptions(node.output_dtypes[i]).device(node.output_device));
  }
}

void check_not_released(const Node& node, const std::vector<SavedTensor>& saved) {
  // SavedTensor::unpack reports the error; nothing to do for nodes without saved tensors.
  (void)node;
  (void)saved;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  AutogradMeta& m = t.unsafe_impl()->meta();
  if (m.grad_fn) return {m.grad_fn, m.output_nr};
  std::lock_guard<std::recursive_mutex> lock(leaf_mutex);
  auto acc = m.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    m.grad_accumulator = acc;
  }
  return {acc, 0};
}

static void finish_node(Node& node, TensorList outputs) {
  node.sequence_nr = next_sequence_nr.fetch_add(1, std::memory_order_relaxed);
  node.num_outputs = static_cast<uint32_t>(outputs.size());
  for (const auto& o : outputs)
    if (o.defined()) node.output_device = o.device();
  if (outputs.size() <= 1) return;  // see Node::output_shapes
  node.output_shapes.reserve(outputs.size());
  node.output_dtypes.reserve(outputs.size());
  for (const auto& o : outputs) {
    node.output_shapes.push_back(o.defined() ? o.shape() : Shape{});
    node.output_dtypes.push_back(o.defined() ? o.dtype() : kFloat32);
  }
}

static void set_history(const std::shared_ptr<Node>& node, TensorList outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& o = outputs[i];
    if (!o.defined() || !o.is_floating_point()) continue;  // integer outputs (indices) carry no grad
    AutogradMeta& m = o.unsafe_impl()->meta();
    m.requires_grad = true;
    m.grad_fn = node;
    m.output_nr = static_cast<uint32_t>(i);
  }
}

std::shared_ptr<Node> init_node(std::shared_ptr<Node> node, TensorList inputs, TensorList outputs) {
  node->next_edges.reserve(inputs.size());
  for (const auto& t : inputs) node->next_edges.push_back(gradient_edge(t));
  finish_node(*node, outputs);
  set_history(node, outputs);
  if (autograd::is_anomaly_enabled()) [[unlikely]]
    autograd::anomaly_detail::record(*node, inputs, outputs);
  return node;
}

std::shared_ptr<Node> init_node(std::shared_ptr<Node> node, std::initializer_list<const Tensor*> inputs,
                                TensorList outputs) {
  node->next_edges.reserve(inputs.size());
  for (const Tensor* t : inputs) node->next_edges.push_back(gradient_edge(*t));
  finish_node(*node, outputs);
  set_history(node, outputs);
  if (autograd::is_anomaly_enabled()) [[unlikely]] {
    std::vector<Tensor> in;
    in.reserve(inputs.size());
    for (const Tensor* t : inputs) in.push_back(*t);
    autograd::anomaly_detail::record(*node, in, outputs);
  }
  return node;
}

}  // namespace autograd_detail

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grads) {
  Tensor g = std::move(grads.at(0));
  std::shared_ptr<TensorImpl> impl = leaf_.lock();
  if (!g.defined() || !impl) return {};
  Tensor leaf(impl);
  std::unique_lock<std::recursive_mutex> lock(leaf_mutex);
  AutogradMeta& m = impl->meta();
  if (!m.grad || !m.grad->defined()) {
    // Own the storage: the incoming gradient may alias a tensor the user still holds.
    Tensor own = g.impl_ptr().use_count() == 1 && g.is_contiguous() && !g.requires_grad()
                     ? g
                     : (GradMode::is_enabled() ? g.clone() : raw::clone(g));
    if (own.shape() != leaf.shape()) own = own.reshape(leaf.shape());
    m.grad = std::make_shared<Tensor>(own);
  } else if (GradMode::is_enabled()) {
    m.grad = std::make_shared<Tensor>(*m.grad + g);  // create_graph: keep it differentiable
  } else {
    m.grad->add_(g);
  }
  // The hooks run unlocked: they may record ops on leaves or start communication (DDP).
  std::shared_ptr<PostAccumulateGradHooks> hooks_ptr = m.post_accumulate_hooks;
  lock.unlock();
  if (hooks_ptr && !hooks_ptr->hooks.empty()) {
    // A copy: a hook may remove itself or register others.
    auto hooks = hooks_ptr->hooks;
    for (auto& [id, hook] : hooks) hook(leaf);
  }
  return {};
}

void check_inplace(const Tensor& t, const char* op, bool will_record) {
  if (!GradMode::is_enabled()) return;
  if (t.requires_grad() && t.is_leaf())
    FOCUS_FAIL("[{}] a leaf tensor that requires grad is used in an in-place operation; wrap it in NoGradGuard "
               "or work on a clone()",
               op);
  if (will_record && t.unsafe_impl()->autograd && t.unsafe_impl()->autograd->is_view)
    FOCUS_FAIL("[{}] in-place operation on a view is not supported while it records autograd history (the "
               "viewed tensor would not get the gradient); apply it to a clone() of the view, or to the viewed "
               "tensor itself",
               op);
}

void rebase_history(const Tensor& t, const std::shared_ptr<Node>& node) {
  AutogradMeta& m = t.unsafe_impl()->meta();
  m.requires_grad = true;
  m.grad_fn = node;
  m.output_nr = 0;
}

}  // namespace focus

namespace focus {
// Used by core/format.cpp to print grad_fn without core depending on Node's definition.
std::string grad_fn_name(const Tensor& t) {
  auto fn = t.grad_fn();
  return fn ? std::string(fn->name()) : std::string();
}
}  // namespace focus
