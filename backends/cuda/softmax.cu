// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::softmax(const TensorView& out, const TensorView& in, int dim, bool log) {
  unsupported("softmax");
}

void CudaBackend::softmax_backward(const TensorView& grad_in, const TensorView& grad_out, const TensorView& out, int dim,
                        bool log) {
  unsupported("softmax_backward");
}

}  // namespace focus::cuda_detail
