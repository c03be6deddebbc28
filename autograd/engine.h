#pragma once
/// The backward engine: runs the graph from some outputs back to the leaves.
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

}  // namespace focus::autograd
