// CUDA kernels for dropout. The keep mask is the CPU's bit for bit (backends/cpu/philox.h
// keep_mask): element i keeps when the float32 uniform of Philox counter rng.offset + i / 4,
// word i % 4 (backends/common/philox.h) is >= p. One thread per group of 4 elements draws
// its counter once. out = x * (keep ? 1 / (1 - p) : 0): x * 0 rather than 0 for dropped
// elements, so nan and inf propagate, as on the CPU and in PyTorch.
#include "backends/common/loss_math.h"
#include "backends/common/philox.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/fused_utils.cuh"

namespace focus::cuda_detail {

using namespace fused;

namespace {

// mask (contiguous bool, n elements) and out (contiguous) from in (strided, its offsets
// from ix in row-major order).
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads, 1)
    dropout_forward_kernel(T* __restrict__ out, bool* __restrict__ mask, const T* __restrict__ in, Indexer<1, I> ix,
                           int64_t n, uint64_t seed, uint64_t offset, double p, acc_t<T> scale) {
  using A = acc_t<T>;
  const int64_t groups = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < groups; k += stride) {
    const common::Philox4 words = common::philox4x32(offset + static_cast<uint64_t>(k), seed);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = 4 * k + j;
      if (i >= n) break;
      const bool keep = static_cast<double>(common::u32_to_unit_float(words[j])) >= p;
      I off[1];
      ix.offsets(static_cast<I>(i), off);
      mask[i] = keep;
      out[i] = convert<T>(convert<A>(in[off[0]]) * (keep ? scale : A(0)));
    }
  }
}

// grad_in = grad * (mask ? scale : 0).
template <typename T> struct DropoutBackward {
  T* gx;
  const T* g;
  const bool* mask;
  acc_t<T> scale;
  template <typename I> __device__ void operator()(const I (&off)[3]) const {
    using A = acc_t<T>;
    gx[off[0]] = convert<T>(convert<A>(g[off[1]]) * (mask[off[2]] ? scale : A(0)));
  }
};

}  // namespace

void CudaBackend::dropout_forward(const TensorView& out, const TensorView& mask, const TensorView& in, double p,
                                  RandomState rng) {
  const int64_t n = mask.numel;
  if (n == 0) return;
  fail_if_capturing("dropout", kRandomInCaptureWhy);
  const cudaStream_t stream = stream_of(index_);
  dispatch_float(out.dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    // The scale rounded to T as on the CPU (float32: the same bits), applied in acc_t<T>.
    const A scale = convert<A>(convert<T>(common::dropout_scale(p)));
    const Coalesced<1> c = coalesce<1>({&in});
    with_indexer(c, [&](auto ix) {
      using I = std::remove_reference_t<decltype(ix.sizes[0])>;
      dropout_forward_kernel<T, I><<<blocks_for((n + 3) / 4), kThreads, 0, stream>>>(
          out.ptr<T>(), mask.ptr<bool>(), in.ptr<T>(), ix, n, rng.seed, rng.offset, p, scale);
      FOCUS_CUDA_LAUNCH_CHECK("dropout");
    });
  });
}

void CudaBackend::dropout_backward(const TensorView& grad_in, const TensorView& grad, const TensorView& mask,
                                   double p) {
  dispatch_float(grad_in.dtype, "dropout_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const A scale = convert<A>(convert<T>(common::dropout_scale(p)));
    launch_strided<3>(index_, {&grad_in, &grad, &mask},
                      DropoutBackward<T>{grad_in.ptr<T>(), grad.ptr<T>(), mask.ptr<bool>(), scale},
                      "dropout_backward");
  });
}

}  // namespace focus::cuda_detail
