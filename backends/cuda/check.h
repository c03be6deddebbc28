#pragma once
/// Every CUDA runtime and cuBLAS call goes through one of these macros: a failure becomes a
/// focus::Error naming the call, the file and line, and the library's error string.
/// FOCUS_CUDA_LAUNCH_CHECK(op) follows every kernel launch: it reports a launch error and,
/// with FOCUS_CUDA_SYNC=1 in the environment, synchronises so that an error raised while
/// the kernel ran names the op that launched it.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace focus::cuda_detail {

[[noreturn]] void throw_cuda_error(const char* call, const char* file, int line, cudaError_t e);
[[noreturn]] void throw_cublas_error(const char* call, const char* file, int line, cublasStatus_t s);
void check_launch(const char* op, const char* file, int line);
/// True when FOCUS_CUDA_SYNC=1 (read once).
bool sync_after_every_kernel();

}  // namespace focus::cuda_detail

#define FOCUS_CUDA_CHECK(call)                                                      \
  do {                                                                              \
    const cudaError_t focus_err_ = (call);                                          \
    if (focus_err_ != cudaSuccess)                                                  \
      ::focus::cuda_detail::throw_cuda_error(#call, __FILE__, __LINE__, focus_err_); \
  } while (0)

#define FOCUS_CUBLAS_CHECK(call)                                                       \
  do {                                                                                 \
    const cublasStatus_t focus_st_ = (call);                                           \
    if (focus_st_ != CUBLAS_STATUS_SUCCESS)                                            \
      ::focus::cuda_detail::throw_cublas_error(#call, __FILE__, __LINE__, focus_st_); \
  } while (0)

#define FOCUS_CUDA_LAUNCH_CHECK(op) ::focus::cuda_detail::check_launch(op, __FILE__, __LINE__)
