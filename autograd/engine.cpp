#include "autograd/engine.h"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "autograd/anomaly.h"
#include "autograd/autocast.h"
#include "autograd/functions/elementwise.h"
#include "core/creation.h"

namespace focus {

namespace autograd_detail {
namespace {
thread_local bool t_frees_saved = false;
}  // namespace
bool frees_saved_after_apply() { return t_frees_saved; }
}  // namespace autograd_detail

namespace autograd {

namespace {

// Sets what frees_saved_after_apply() answers while one node's backward runs (restored on
// every path, so a backward run inside a backward sees its own setting).
struct FreesSavedScope {
  bool prev;
  explicit FreesSavedScope(bool frees) : prev(autograd_detail::t_frees_saved) { autograd_detail::t_frees_saved = frees; }
  ~FreesSavedScope() { autograd_detail::t_frees_saved = prev; }
  FreesSavedScope(const FreesSavedScope&) = delete;
  FreesSavedScope& operator=(const FreesSavedScope&) = delete;
};

struct NodeTask {
  Node* node;
  uint64_t seq;
  bool operator<(const NodeTask& o) const { return seq < o.seq; }  // newest first
};

struct Capture {  // autograd::grad: where an input's gradient arrives
  Node* node;
  uint32_t input_nr;
  size_t slot;
};

Tensor implicit_grad(const Tensor& out, const Tensor& given, size_t i) {
  if (given.defined()) {
    FOCUS_CHECK(given.shape() == out.shape(),
                "[backward] gradient {} has shape {} but the output has shape {}", i, given.shape(), out.shape());
    return given;
  }
  FOCUS_CHECK(out.numel() == 1,
              "[backward] grad can be implicitly created only for one-element outputs; output {} has shape {}: "
              "pass a gradient",
              i, out.shape());
  return ones_like(out);
}

// The callbacks of the backward running on this thread (queue_callback).
thread_local std::vector<std::function<void()>>* t_callbacks = nullptr;

void accumulate(std::vector<Tensor>& buf, uint32_t nr, Tensor g) {
  if (buf.size() <= nr) buf.resize(nr + 1);
  if (!buf[nr].defined()) buf[nr] = std::move(g);
  else buf[nr] = buf[nr] + g;
}

// node->apply(in) while anomaly detection is on: an error raised inside names the node and
// its forward op, nodes recorded inside (create_graph) name this one as their parent, and
// the gradients returned are checked for NaN/inf (unless check_nan is off).
std::vector<Tensor> apply_detecting_anomaly(Node& node, std::vector<Tensor>&& in) {
  std::vector<Tensor> out;
  {
    anomaly_detail::RunningNodeScope running(&node);
    try {
      out = node.apply(std::move(in));
    } catch (const Error&) {
      anomaly_detail::rethrow_with_node(node);
    }
  }
  if (is_anomaly_check_nan_enabled()) anomaly_detail::check_gradients(node, out);
  return out;
}

// Runs the graph. With captures (autograd::grad), gradients for the captured (node,
// input_nr) pairs are stored in results and leaves are not touched.
void run(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph,
         bool create_graph, const std::vector<Capture>* captures, std::vector<Tensor>* results) {
  FOCUS_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(),
              "[backward] got {} gradients for {} outputs", grad_outputs.size(), outputs.size());
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  std::vector<std::shared_ptr<Node>> roots;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    FOCUS_CHECK(out.defined(), "[backward] output {} is an undefined tensor", i);
    FOCUS_CHECK(out.requires_grad(),
                "[backward] element {} of tensors does not require grad and does not have a grad_fn", i);
    Tensor g = implicit_grad(out, grad_outputs.empty() ? Tensor() : grad_outputs[i], i);
    const Edge e = autograd_detail::gradient_edge(out);
    std::shared_ptr<Node> fn = e.fn;
    const uint32_t nr = e.input_nr;
    accumulate(buffers[fn.get()], nr, std::move(g));
    roots.push_back(fn);
  }

  // Count how many edges point at each reachable node.
  std::unordered_map<Node*, int> deps;
  std::unordered_map<Node*, std::shared_ptr<Node>> keep;  // keep nodes alive while running
  {
    std::vector<Node*> stack;
    std::unordered_set<Node*> seen;
    for (auto& r : roots) {
      keep[r.get()] = r;
      if (seen.insert(r.get()).second) stack.push_back(r.get());
    }
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges) {
        if (!e.fn) continue;
        ++deps[e.fn.get()];
        if (seen.insert(e.fn.get()).second) {
          keep[e.fn.get()] = e.fn;
          stack.push_back(e.fn.get());
        }
      }
    }
  }

  std::priority_queue<NodeTask> ready;
  {
    std::unordered_set<Node*> pushed;
    for (auto& r : roots)
      if (deps[r.get()] == 0 && pushed.insert(r.get()).second) ready.push({r.get(), r->sequence_nr});
  }

  const bool accumulate_leaves = captures == nullptr;
  std::vector<std::function<void()>> callbacks;
  struct CallbackScope {
    std::vector<std::function<void()>>* prev;
    explicit CallbackScope(std::vector<std::function<void()>>* mine) : prev(t_callbacks) { t_callbacks = mine; }
    ~CallbackScope() { t_callbacks = prev; }
  } callback_scope(&callbacks);
  // The backward runs in the dtypes the forward chose: autocast never applies to it.
  autocast::Suspend no_autocast;
  // Nodes may take over their saved tensors (BackwardContext::take_saved) when they are
  // freed after the node runs anyway.
  autograd_detail::ReleaseSavedScope release_scope(!retain_graph);
  std::unique_ptr<NoGradGuard> no_grad;
  std::unique_ptr<EnableGradGuard> with_grad;
  if (create_graph) with_grad = std::make_unique<EnableGradGuard>();
  else no_grad = std::make_unique<NoGradGuard>();

  while (!ready.empty()) {
    Node* node = ready.top().node;
    ready.pop();
    std::vector<Tensor> in = std::move(buffers[node]);
    buffers.erase(node);
    in.resize(node->num_outputs);

    if (captures) {
      for (const Capture& c : *captures)
        if (c.node == node && c.input_nr < in.size() && in[c.input_nr].defined())
          (*results)[c.slot] = in[c.input_nr];
    }
    for (auto& [nr, weak] : node->retained) {
      if (auto impl = weak.lock(); impl && nr < in.size() && in[nr].defined()) {
        AutogradMeta& m = impl->meta();
        Tensor g = create_graph ? in[nr] : in[nr].detach();
        if (!m.grad || !m.grad->defined()) m.grad = std::make_shared<Tensor>(g.clone());
        else m.grad = std::make_shared<Tensor>(*m.grad + g);
      }
    }

    const bool is_accumulator = node->name() == "AccumulateGrad";
    // A node that received no gradient at all passes none on (backward is linear in the
    // incoming gradients), so it is not run; its saved tensors are freed all the same.
    bool any_grad = false;
    for (const Tensor& g : in) any_grad = any_grad || g.defined();
    std::vector<Tensor> out;
    if (any_grad && (!is_accumulator || accumulate_leaves)) {
      FreesSavedScope scope(!retain_graph);  // release_saved() follows apply() exactly then
      if (is_anomaly_enabled()) [[unlikely]]
        out = apply_detecting_anomaly(*node, std::move(in));
      else
        out = node->apply(std::move(in));
    }
    if (!retain_graph && (!is_accumulator || accumulate_leaves)) node->release_saved();
    FOCUS_CHECK(is_accumulator || !any_grad || out.size() == node->next_edges.size(),
                "[backward] {} returned {} gradients for {} inputs", node->name(), out.size(),
                node->next_edges.size());
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.fn) continue;
      if (i < out.size() && out[i].defined()) accumulate(buffers[e.fn.get()], e.input_nr, std::move(out[i]));
      if (--deps[e.fn.get()] == 0) ready.push({e.fn.get(), e.fn->sequence_nr});
    }
  }
  // Indexed: a callback may queue another.
  for (size_t i = 0; i < callbacks.size(); ++i) {
    std::function<void()> cb = std::move(callbacks[i]);
    cb();
  }
}

}  // namespace

void queue_callback(std::function<void()> callback) {
  FOCUS_CHECK(t_callbacks != nullptr, "[queue_callback] no backward is running on this thread");
  FOCUS_CHECK(static_cast<bool>(callback), "[queue_callback] the callback is empty");
  t_callbacks->push_back(std::move(callback));
}

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph,
              bool create_graph) {
  run(outputs, grad_outputs, retain_graph || create_graph, create_graph, nullptr, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph,
                         bool allow_unused) {
  std::vector<Capture> caps;
  std::vector<Tensor> results(inputs.size());
  std::vector<std::shared_ptr<Node>> hold;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    FOCUS_CHECK(x.defined(), "[grad] input {} is an undefined tensor", i);
    FOCUS_CHECK(x.requires_grad(), "[grad] input {} does not require grad", i);
    AutogradMeta& m = x.unsafe_impl()->meta();
    if (m.grad_fn) {
      caps.push_back({m.grad_fn.get(), m.output_nr, i});
    } else {
      // The leaf's accumulator (created if the leaf is in no graph yet: it may still be
      // one of the outputs, as in grad({x}, {x})).
      std::shared_ptr<Node> acc = autograd_detail::gradient_edge(x).fn;
      hold.push_back(acc);
      caps.push_back({acc.get(), 0, i});
    }
  }
  run(outputs, grad_outputs, retain_graph || create_graph, create_graph, &caps, &results);
  for (size_t i = 0; i < results.size(); ++i)
    FOCUS_CHECK(results[i].defined() || allow_unused,
                "[grad] one of the differentiated tensors (input {}) appears to not have been used in the graph; "
                "pass allow_unused=true if this is intended",
                i);
  return results;
}

}  // namespace autograd

}  // namespace focus
