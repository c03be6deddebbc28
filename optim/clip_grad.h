#pragma once
/// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace focus::optim {

/// Scales the gradients of params in place so that their total norm (the norm of all
/// gradients concatenated) is at most max_norm, and returns that total norm before
/// clipping. As PyTorch: total = norm(stack(norm(g, p) for g), p) computed in the
/// gradients' dtype (p = inf: the largest |g|), coefficient = min(max_norm / (total + 1e-6),
/// 1), every gradient multiplied by it. Parameters without a gradient are skipped (0 when
/// none has one). error_if_nonfinite: a NaN or infinite total norm is an error.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);
/// Clamps every gradient element into [-clip_value, clip_value] in place.
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace focus::optim
