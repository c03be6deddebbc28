// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::layer_norm(const TensorView& out, const TensorView& mean, const TensorView& rstd, const TensorView& in,
                  const TensorView& weight, const TensorView& bias, double eps) {
  unsupported("layer_norm");
}

void CudaBackend::layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                           const TensorView& dout, const TensorView& in, const TensorView& mean,
                           const TensorView& rstd, const TensorView& weight) {
  unsupported("layer_norm_backward");
}

}  // namespace focus::cuda_detail
