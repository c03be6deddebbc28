#pragma once
/// Compares autograd gradients with central finite differences, as torch.autograd.gradcheck.
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace focus {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  bool raise = true;  // throw focus::Error describing the first mismatch (else return false)
};

/// f maps the inputs to one tensor. Every input that requires grad must be a float64 CPU
/// tensor; it may be non-contiguous. Returns true when every entry of the Jacobian
/// matches: |analytical - numerical| <= atol + rtol * |numerical|.
bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
               const GradcheckOptions& options = {});

}  // namespace focus
