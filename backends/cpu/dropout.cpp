// CPU kernel pair for dropout: the keep mask from the Philox (seed, offset) counters that
// the CUDA kernel draws too, so a seed gives the same mask on both devices.
#include <algorithm>
#include <cstdint>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/philox.h"

namespace focus::cpu {

namespace {

double keep_scale(double p) { return p < 1 ? 1.0 / (1.0 - p) : 0.0; }

}  // namespace

void CpuBackend::dropout_forward(const TensorView& out, const TensorView& mask, const TensorView& in, double p,
                                 RandomState rng) {
  if (any_16bit(out, in)) [[unlikely]] {
    Float32Scope f(*this);
    dropout_forward(f.out(out), mask, f.in(in), p, rng);
    return f.commit();
  }
  bool* m = mask.ptr<bool>();
  const int64_t n = mask.numel;
  // Chunks start on multiples of 4 so that each Philox call serves one chunk.
  const int64_t groups = (n + 3) / 4;
  parallel_for(0, groups, kGrain / 4, [&](int64_t b, int64_t e) {
    const int64_t lo = 4 * b, hi = std::min(n, 4 * e);
    keep_mask(rng.seed, rng.offset, static_cast<uint64_t>(lo), hi - lo, p, m + lo);
  });
  dispatch_float(out.dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T s = static_cast<T>(keep_scale(p));
    // x * 0 rather than 0 for dropped elements: nan and inf propagate, as in PyTorch.
    elementwise<T, T, bool>(out, [s](T x, bool k) { return x * (k ? s : T(0)); }, in, mask);
  });
}

void CpuBackend::dropout_backward(const TensorView& grad_in, const TensorView& grad, const TensorView& mask,
                                  double p) {
  if (any_16bit(grad_in, grad)) [[unlikely]] {
    Float32Scope f(*this);
    dropout_backward(f.out(grad_in), f.in(grad), mask, p);
    return f.commit();
  }
  dispatch_float(grad_in.dtype, "dropout_backward", [&](auto tag) {
    using T = decltype(tag);
    const T s = static_cast<T>(keep_scale(p));
    elementwise<T, T, bool>(grad_in, [s](T g, bool k) { return g * (k ? s : T(0)); }, grad, mask);
  });
}

}  // namespace focus::cpu
