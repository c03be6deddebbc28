#pragma once
/// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace focus::optim {

/// Scales the gradients of params in place so that their total norm (the norm of all
/// gradients concatenated) is at most max_norm, and returns that total norm before
/// clipping as a 0-d tensor in the gradients' dtype on the first gradient's device (a CPU
/// float32 0 when no parameter has a gradient), as PyTorch. total = norm(stack(norm(g, p)
/// for g), p) (p = inf: the largest |g|); every gradient is multiplied by the 0-d tensor
/// min(max_norm / (total + 1e-6), 1), so nothing is read back to the host: call
/// `.item<double>()` on the result to print it. error_if_nonfinite: a NaN or infinite total
/// norm is an error (this one option reads the norm on the host, a synchronisation on a GPU).
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
/// Clamps every gradient element into [-clip_value, clip_value] in place.
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace focus::optim
