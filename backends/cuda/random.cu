// CUDA random fills: uniform, normal, randint, from the same Philox (seed, offset) stream
// and the same per-element formulas as CpuBackend (backends/common/philox.h for the words,
// backends/common/scalar_math.h for the values), so a RandomState gives the CPU's values.
// One thread per Philox counter: it draws the counter's four words once and writes every
// element that uses them (4 float32 uniforms; 2 float64 uniforms, normals or randints).
//
// Output dtypes: uniform/normal float32 and float64 exactly as the CPU; float16/bfloat16
// (which the CPU's random kernels reject) take the float32 path's value rounded to the
// dtype (half.h), and for uniform, lo where that rounding reached hi (the CPU's rule for
// float32, applied in the output dtype). randint: int64, int32, uint8, float32, float64 as
// the CPU; float16/bfloat16 round the int64 value (half.h); bool is rejected as on the CPU.
//
// Bit-identity: uniform and randint are integer arithmetic plus one fma and one rounding,
// identical on both devices. normal calls log, sqrt, sin and cos in double: glibc and
// CUDA's libm agree to an ulp or two, so a float64 normal may differ from the CPU's in the
// last bits, and a float32 normal very rarely (when the double lies next to a float
// rounding boundary).
#include <cstdint>
#include <type_traits>

#include "backends/common/half.h"
#include "backends/common/philox.h"
#include "backends/common/scalar_math.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernel_utils.cuh"

namespace focus::cuda_detail {

namespace {

namespace cm = focus::common;

/// A float32 result in the output type S (float, or the float16/bfloat16 bits).
template <typename S> __device__ __forceinline__ S from_float(float v) { return cm::cast_value<S>(v); }

/// float32-path uniforms (float32, float16, bfloat16): element i = 4 c + k uses word k of
/// counter offset + c.
template <typename S>
__global__ void __launch_bounds__(kThreads) uniform_float_kernel(S* out, int64_t n, uint64_t seed, uint64_t offset,
                                                                 double lo, double hi, S lo_s, S hi_s) {
  const int64_t counters = (n + 3) / 4;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < counters; c += step) {
    const cm::Philox4 w = cm::philox4x32(offset + static_cast<uint64_t>(c), seed);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * c + k;
      if (i >= n) break;
      const float v = cm::uniform_float(cm::u32_to_unit_float(w[k]), lo, hi);
      if constexpr (std::is_same_v<S, float>) {
        out[i] = v;
      } else {
        // rounding to 16 bits may reach hi: lo then, as the float32 path does
        const S s = from_float<S>(v);
        out[i] = cm::cast_value<float>(s) < cm::cast_value<float>(hi_s) ? s : lo_s;
      }
    }
  }
}

/// float64 uniforms: element i = 2 c + k uses words 2k, 2k + 1 of counter offset + c.
__global__ void __launch_bounds__(kThreads) uniform_double_kernel(double* out, int64_t n, uint64_t seed,
                                                                  uint64_t offset, double lo, double hi) {
  const int64_t counters = (n + 1) / 2;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < counters; c += step) {
    const cm::Philox4 w = cm::philox4x32(offset + static_cast<uint64_t>(c), seed);
    out[2 * c] = cm::uniform_double(cm::u64_to_unit_double(w[0], w[1]), lo, hi);
    if (2 * c + 1 < n) out[2 * c + 1] = cm::uniform_double(cm::u64_to_unit_double(w[2], w[3]), lo, hi);
  }
}

/// Box-Muller pairs: elements 2j (cos) and 2j + 1 (sin) from counter offset + j.
template <typename S>
__global__ void __launch_bounds__(kThreads) normal_kernel(S* out, int64_t n, uint64_t seed, uint64_t offset,
                                                          double mean, double std) {
  const int64_t pairs = (n + 1) / 2;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < pairs; j += step) {
    const cm::Philox4 w = cm::philox4x32(offset + static_cast<uint64_t>(j), seed);
    double even, odd;
    if constexpr (std::is_same_v<S, double>) {
      cm::normal_pair_double(w[0], w[1], w[2], w[3], mean, std, even, odd);
      out[2 * j] = even;
      if (2 * j + 1 < n) out[2 * j + 1] = odd;
    } else {
      cm::normal_pair_float(w[0], w[1], mean, std, even, odd);
      out[2 * j] = from_float<S>(static_cast<float>(even));
      if (2 * j + 1 < n) out[2 * j + 1] = from_float<S>(static_cast<float>(odd));
    }
  }
}

/// Integers in [lo, lo + range): element i = 2 c + k uses words 2k, 2k + 1 of counter
/// offset + c; the int64 value converts to S as the CPU's static_cast (half.h for 16 bits).
template <typename S>
__global__ void __launch_bounds__(kThreads) randint_kernel(S* out, int64_t n, uint64_t seed, uint64_t offset,
                                                           int64_t lo, uint64_t range) {
  const int64_t counters = (n + 1) / 2;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < counters; c += step) {
    const cm::Philox4 w = cm::philox4x32(offset + static_cast<uint64_t>(c), seed);
    out[2 * c] = cm::cast_value<S>(cm::randint_value(w[0], w[1], lo, range));
    if (2 * c + 1 < n) out[2 * c + 1] = cm::cast_value<S>(cm::randint_value(w[2], w[3], lo, range));
  }
}

// Random kernels write a contiguous output in row-major order (the raw ops allocate it).
void check_random_out(const TensorView& out, const char* op) {
  FOCUS_CHECK(out.is_contiguous(), "[{}] random fill needs a contiguous tensor", op);
}

}  // namespace

// The generator's (seed, offset) is read on the host when the op is recorded, so every replay
// of a captured graph would draw the same numbers: refused instead (focus does not register
// its generator with graphs as PyTorch does).
const char* const kRandomInCaptureWhy =
    "a replay of the graph would draw the same random numbers every time (focus does not register its "
    "generator with CUDA graphs); draw them outside the captured region, or use dropout p = 0 / eval() in it";

void CudaBackend::uniform(const TensorView& out, double lo, double hi, RandomState rng) {
  check_random_out(out, "uniform_");
  fail_if_capturing("uniform_", kRandomInCaptureWhy);
  if (out.numel == 0) return;
  cudaStream_t stream = stream_of(index_);
  const int64_t n = out.numel;
  auto float_path = [&](auto tag) {
    using S = decltype(tag);
    uniform_float_kernel<S><<<blocks_for((n + 3) / 4), kThreads, 0, stream>>>(
        out.ptr<S>(), n, rng.seed, rng.offset, lo, hi, cm::cast_value<S>(lo), cm::cast_value<S>(hi));
  };
  switch (out.dtype) {
    case kFloat32: float_path(float{}); break;
    case kFloat16: float_path(cm::Half{}); break;
    case kBFloat16: float_path(cm::BFloat16{}); break;
    case kFloat64:
      uniform_double_kernel<<<blocks_for((n + 1) / 2), kThreads, 0, stream>>>(out.ptr<double>(), n, rng.seed,
                                                                             rng.offset, lo, hi);
      break;
    default: FOCUS_FAIL("[uniform_] expected a floating tensor on cuda, got {}", out.dtype);
  }
  FOCUS_CUDA_LAUNCH_CHECK("uniform_");
}

void CudaBackend::normal(const TensorView& out, double mean, double std, RandomState rng) {
  check_random_out(out, "normal_");
  fail_if_capturing("normal_", kRandomInCaptureWhy);
  if (out.numel == 0) return;
  cudaStream_t stream = stream_of(index_);
  const int64_t n = out.numel;
  auto run = [&](auto tag) {
    using S = decltype(tag);
    normal_kernel<S><<<blocks_for((n + 1) / 2), kThreads, 0, stream>>>(out.ptr<S>(), n, rng.seed, rng.offset, mean,
                                                                       std);
  };
  switch (out.dtype) {
    case kFloat32: run(float{}); break;
    case kFloat64: run(double{}); break;
    case kFloat16: run(cm::Half{}); break;
    case kBFloat16: run(cm::BFloat16{}); break;
    default: FOCUS_FAIL("[normal_] expected a floating tensor on cuda, got {}", out.dtype);
  }
  FOCUS_CUDA_LAUNCH_CHECK("normal_");
}

void CudaBackend::randint(const TensorView& out, int64_t lo, int64_t hi, RandomState rng) {
  check_random_out(out, "randint");
  fail_if_capturing("randint", kRandomInCaptureWhy);
  if (out.numel == 0) return;
  cudaStream_t stream = stream_of(index_);
  const int64_t n = out.numel;
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);  // no int64 overflow
  auto run = [&](auto tag) {
    using S = decltype(tag);
    randint_kernel<S><<<blocks_for((n + 1) / 2), kThreads, 0, stream>>>(out.ptr<S>(), n, rng.seed, rng.offset, lo,
                                                                        range);
  };
  switch (out.dtype) {
    case kInt64: run(int64_t{}); break;
    case kInt32: run(int32_t{}); break;
    case kUInt8: run(uint8_t{}); break;
    case kFloat32: run(float{}); break;
    case kFloat64: run(double{}); break;
    case kFloat16: run(cm::Half{}); break;
    case kBFloat16: run(cm::BFloat16{}); break;
    default: FOCUS_FAIL("[randint] not implemented for {} tensors on cuda", out.dtype);
  }
  FOCUS_CUDA_LAUNCH_CHECK("randint");
}

}  // namespace focus::cuda_detail
