// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::matmul(const TensorView& out, const TensorView& a, const TensorView& b, double alpha, double beta) {
  unsupported("matmul");
}

}  // namespace focus::cuda_detail
