#pragma once
/// Raw fused optimizer updates (no autograd): validate, dispatch to the device's kernel.
#include "backends/backend.h"
#include "core/tensor.h"

namespace focus::raw {

/// One Adam/AdamW update of param in place (see Backend::adam_step for the formula).
/// param, exp_avg, exp_avg_sq (and max_exp_avg_sq when p.amsgrad) are floating tensors of
/// one shape, dtype and device, exp_avg* contiguous; grad has param's shape (any layout
/// and floating dtype: converted when it differs). A non-contiguous param is updated
/// through a contiguous copy. Bumps the versions of every tensor written.
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const Backend::AdamStepParams& p);

}  // namespace focus::raw
