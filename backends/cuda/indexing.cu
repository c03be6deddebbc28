// PLACEHOLDER: not yet implemented on CUDA (each method reports it clearly).
#include "backends/cuda/cuda_backend.h"

namespace focus::cuda_detail {

Backend::IndexScan CudaBackend::scan_indices(const TensorView& index, int64_t lo, int64_t hi) {
  unsupported("scan_indices");
}

void CudaBackend::check_indices(const TensorView& index, int64_t lo, int64_t hi, int64_t skip, const char* op,
                     const char* what) {
  unsupported("check_indices");
}

void CudaBackend::index_select(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
  unsupported("index_select");
}

void CudaBackend::index_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src,
                 int64_t skip) {
  unsupported("index_add");
}

void CudaBackend::gather(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
  unsupported("gather");
}

void CudaBackend::scatter_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src) {
  unsupported("scatter_add");
}

void CudaBackend::trilu(const TensorView& out, const TensorView& x, int64_t k, bool lower) {
  unsupported("trilu");
}

void CudaBackend::one_hot(const TensorView& out, const TensorView& index) {
  unsupported("one_hot");
}

}  // namespace focus::cuda_detail
