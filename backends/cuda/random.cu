// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

void CudaBackend::uniform(const TensorView& out, double lo, double hi, RandomState rng) {
  unsupported("uniform");
}

void CudaBackend::normal(const TensorView& out, double mean, double std, RandomState rng) {
  unsupported("normal");
}

void CudaBackend::randint(const TensorView& out, int64_t lo, int64_t hi, RandomState rng) {
  unsupported("randint");
}

}  // namespace focus::cuda_detail
