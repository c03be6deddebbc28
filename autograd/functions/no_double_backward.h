#pragma once
/// Internal to autograd/functions/*.cpp: the guard of the nodes whose backward calls a fused
/// backward kernel.
#include "autograd/node.h"
#include "core/error.h"

namespace focus::detail {

/// Fused backward kernels are not themselves differentiable: refuse create_graph (grad
/// mode on inside a backward) rather than return silently wrong second derivatives. name
/// is the node's.
inline void no_double_backward(const char* name) {
  FOCUS_CHECK(!GradMode::is_enabled(), "[backward] double backward (create_graph=true) through {} is not supported",
              name);
}

}  // namespace focus::detail
