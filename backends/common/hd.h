#pragma once
/// FOCUS_HD marks functions written once for the host and the device: the CPU loops and the
/// CUDA kernels include the same headers (backends/common/*.h), so the CPU tests check the
/// math the GPU runs. Under nvcc they are __host__ __device__; elsewhere plain inline.
#if defined(__CUDACC__)
#define FOCUS_HD __host__ __device__ __forceinline__
#else
#define FOCUS_HD inline
#endif
