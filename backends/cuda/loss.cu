// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::cross_entropy_forward(const TensorView& out, const TensorView& lse, const TensorView& logits,
                             const TensorView& target, const TensorView& weight, int64_t ignore_index,
                             double label_smoothing, LossReduction reduction) {
  unsupported("cross_entropy_forward");
}

void CudaBackend::cross_entropy_backward(const TensorView& grad_logits, const TensorView& grad, const TensorView& logits,
                              const TensorView& lse, const TensorView& target, const TensorView& weight,
                              int64_t ignore_index, double label_smoothing, LossReduction reduction) {
  unsupported("cross_entropy_backward");
}

void CudaBackend::nll_loss_forward(const TensorView& out, const TensorView& log_probs, const TensorView& target,
                        const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
  unsupported("nll_loss_forward");
}

void CudaBackend::nll_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& target,
                         const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
  unsupported("nll_loss_backward");
}

void CudaBackend::mse_loss_forward(const TensorView& out, const TensorView& input, const TensorView& target,
                        LossReduction reduction) {
  unsupported("mse_loss_forward");
}

void CudaBackend::mse_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& input,
                         const TensorView& target, LossReduction reduction) {
  unsupported("mse_loss_backward");
}

}  // namespace focus::cuda_detail
