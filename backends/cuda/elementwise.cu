// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::copy(const TensorView& dst, const TensorView& src) {
  unsupported("copy");
}

void CudaBackend::fill(const TensorView& dst, Scalar value) {
  unsupported("fill");
}

void CudaBackend::unary(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p) {
  unsupported("unary");
}

void CudaBackend::unary_backward(UnaryBackwardOp op, const TensorView& out, const TensorView& grad, const TensorView& in,
                      const TensorView& result, UnaryParams p) {
  unsupported("unary_backward");
}

void CudaBackend::binary(BinaryOp op, const TensorView& out, const TensorView& a, const TensorView& b) {
  unsupported("binary");
}

void CudaBackend::where(const TensorView& out, const TensorView& cond, const TensorView& a, const TensorView& b) {
  unsupported("where");
}

}  // namespace focus::cuda_detail
