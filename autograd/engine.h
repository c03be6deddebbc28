#pragma once
/// The backward engine: runs the graph from some outputs back to the leaves.
#include <functional>
#include <vector>

#include "autograd/node.h"

namespace focus::autograd {

/// Accumulates d(outputs)/d(leaf) into every leaf's .grad, as torch.autograd.backward.
/// grad_outputs[i] may be undefined for a one-element output (implicit 1).
/// With create_graph, a leaf's .grad references a graph that holds the leaf: reset the
/// .grad (set_grad(Tensor())) after use to free them, as in PyTorch.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

/// Returns d(outputs)/d(inputs) without touching .grad, as torch.autograd.grad. An
/// input that the outputs do not depend on errors unless allow_unused (then undefined).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

/// Queues callback to run once the backward running on this thread has finished (every
/// node run and every leaf's .grad accumulated), as PyTorch's
/// Variable._execution_engine.queue_callback: for hooks that must act after the whole
/// backward (DistributedDataParallel waits for its gradient all-reduces there). Callbacks
/// run in the order queued; one may queue another. Errors outside a backward.
void queue_callback(std::function<void()> callback);

}  // namespace focus::autograd
