// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::dropout_forward(const TensorView& out, const TensorView& mask, const TensorView& in, double p,
                       RandomState rng) {
  unsupported("dropout_forward");
}

void CudaBackend::dropout_backward(const TensorView& grad_in, const TensorView& grad, const TensorView& mask,
                        double p) {
  unsupported("dropout_backward");
}

}  // namespace focus::cuda_detail
