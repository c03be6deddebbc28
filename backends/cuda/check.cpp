#include "backends/cuda/check.h"

#include <cstdlib>
#include <cstring>

#include "backends/cuda/context.h"
#include "core/error.h"

namespace focus::cuda_detail {

void throw_cuda_error(const char* call, const char* file, int line, cudaError_t e) {
  FOCUS_FAIL("[cuda] {} failed at {}:{}: {} ({})", call, file, line, cudaGetErrorString(e), cudaGetErrorName(e));
}

void throw_cublas_error(const char* call, const char* file, int line, cublasStatus_t s) {
  FOCUS_FAIL("[cublas] {} failed at {}:{}: {} ({})", call, file, line, cublasGetStatusString(s),
             cublasGetStatusName(s));
}

bool sync_after_every_kernel() {
  static const bool on = [] {
    const char* v = std::getenv("FOCUS_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
  }();
  return on;
}

void check_launch(const char* op, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  // A capture records kernels without running them, and forbids synchronising.
  if (e == cudaSuccess && sync_after_every_kernel() && !thread_is_capturing()) e = cudaDeviceSynchronize();
  if (e != cudaSuccess)
    FOCUS_FAIL("[{}] CUDA kernel failed ({}:{}): {} ({}){}", op, file, line, cudaGetErrorString(e),
               cudaGetErrorName(e),
               sync_after_every_kernel() ? "" : "; run with FOCUS_CUDA_SYNC=1 to find the op that caused it");
}

}  // namespace focus::cuda_detail
