// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::reduce(ReduceOp op, const TensorView& out, const TensorView& in, int nreduce, double p) {
  unsupported("reduce");
}

void CudaBackend::arg_reduce(bool is_max, const TensorView& values, const TensorView& indices, const TensorView& in) {
  unsupported("arg_reduce");
}

}  // namespace focus::cuda_detail
