#pragma once
/// Raw fused optimizer updates (no autograd): validate, dispatch to the device's kernel.
#include <span>

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

/// One SGD update of param in place (see Backend::sgd_step). momentum_buffer (used when
/// p.momentum != 0) is a contiguous tensor of param's shape, dtype and device; grad as for
/// adam_step.
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const Backend::SgdStepParams& p);

/// One parameter of adam_step_multi: adam_step's tensors plus its own bias corrections
/// (step_size = lr / (1 - beta1^step), bias_correction2_sqrt = sqrt(1 - beta2^step)).
struct AdamStepTensors {
  Tensor param, grad, exp_avg, exp_avg_sq;
  Tensor max_exp_avg_sq;  // only with amsgrad
  double step_size = 0;
  double bias_correction2_sqrt = 1;
  /// Only with p.capturable: the parameter's step count, a one-element float32 tensor on
  /// the parameter's (CUDA) device that the step increments and derives step_size and
  /// bias_correction2_sqrt from (the two fields above are then unused).
  Tensor step;
};

/// adam_step of every entry with p's shared scalars (p.step_size and
/// p.bias_correction2_sqrt are ignored: each entry's own apply). Each entry follows
/// adam_step's contract; entries may mix shapes, dtypes and devices. They are grouped by
/// device and each device's kernels run once for its whole group (a few launches on a GPU
/// instead of one per parameter); every element gets exactly adam_step's bits. The
/// tensors an entry writes (param, exp_avg, exp_avg_sq, max_exp_avg_sq) must not share
/// memory with any other tensor written. Everything is checked before anything is
/// written: on an error (naming the entry) no tensor has changed. p.capturable (PyTorch's
/// capturable=True) needs every entry on a CUDA device, with its `step`.
void adam_step_multi(std::span<const AdamStepTensors> entries, const Backend::AdamStepParams& p);

/// One parameter of sgd_step_multi: sgd_step's tensors and whether its momentum buffer is
/// still to be initialized (buf = g).
struct SgdStepTensors {
  Tensor param, grad;
  Tensor momentum_buffer;  // only with momentum
  bool first_step = false;
};

/// sgd_step of every entry with p's shared scalars (p.first_step is ignored: each entry's
/// own applies). Same contract as adam_step_multi.
void sgd_step_multi(std::span<const SgdStepTensors> entries, const Backend::SgdStepParams& p);

}  // namespace focus::raw
