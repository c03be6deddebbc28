// linear_gelu on CUDA (Backend::linear_gelu / linear_gelu_backward) against the CPU
// composition gelu(linear(...)) in float64 from the same rounded inputs: float32 (TF32 off),
// float16 and bfloat16, both GELU forms, with and without bias, forward and all gradients.
// The cases cover the cuBLASLt paths (tanh: the GELU_AUX(_BIAS) epilogue, N % 8 == 0; the
// BGRADB weight-gradient GEMM) and their fallbacks (N not a multiple of 8, x whose rows do
// not fold, column-major views, no bias, float64). Skipped, with the printed reason, where
// there is no GPU.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <string>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::have_cuda;

namespace {

struct GeluCase {
  std::string name;
  Shape x_shape;  // as the leaf is stored
  int64_t N;
  bool bias;
  bool transpose_x = false;  // the op sees the leaf's first two dims swapped
  bool transpose_w = false;  // the op sees weight as a column-major view
};

std::vector<GeluCase> gelu_cases() {
  return {
      {"2-D, N % 8 == 0 (epilogue)", {33, 64}, 48, true},
      {"2-D no bias (GELU_AUX)", {33, 64}, 48, false},
      {"3-D rows fold", {2, 7, 64}, 32, true},
      {"N not a multiple of 8 (fallback)", {5, 13}, 11, true},
      {"one row", {1, 64}, 16, true},
      {"column-major x and weight", {64, 9}, 24, true, true, true},
      {"3-D x whose rows do not fold", {7, 2, 32}, 16, true, true, false},
  };
}

// out and the gradients of x, weight, bias from sum(out * g): on device d in dtype t
// (fused), or with the CPU float64 composition (reference), as float64 CPU tensors.
std::vector<Tensor> run(const GeluCase& c, const char* approx, DType t, Device d, bool reference) {
  manual_seed(41);
  const int64_t K = c.x_shape.back();
  const Tensor x0 = randn(c.x_shape), w0 = c.transpose_w ? randn({K, c.N}) : randn({c.N, K}), b0 = randn({c.N});
  Shape out_shape = c.x_shape;
  if (c.transpose_x) std::swap(out_shape[0], out_shape[1]);
  out_shape.back() = c.N;
  const Tensor g0 = randn(out_shape);
  const DType rt = reference ? kFloat64 : t;
  const Device rd = reference ? Device(kCPU) : d;
  // Inputs rounded to t first, so both sides see the same values.
  Tensor x = x0.to(t).to(rt).to(rd).requires_grad_(), w = w0.to(t).to(rt).to(rd).requires_grad_();
  Tensor b = c.bias ? b0.to(t).to(rt).to(rd).requires_grad_() : Tensor();
  const Tensor g = g0.to(t).to(rt).to(rd);
  const Tensor xv = c.transpose_x ? x.transpose(0, 1) : x, wv = c.transpose_w ? w.t() : w;
  const Tensor y = reference ? gelu(linear(xv, wv, b), approx) : linear_gelu(xv, wv, b, approx);
  CHECK(y.dtype() == rt);
  (y * g).sum().backward();
  std::vector<Tensor> r{y.detach(), x.grad(), w.grad()};
  if (c.bias) r.push_back(b.grad());
  for (Tensor& v : r) v = v.to(kFloat64).cpu();
  return r;
}

void check_dtype(DType t, double rtol, double atol) {
  const Device gpu = Device::cuda(0);
  for (const GeluCase& c : gelu_cases()) {
    for (const char* approx : {"none", "tanh"}) {
      INFO("case " << c.name << ", approximate " << approx << ", " << fmt::format("{}", t));
      const auto want = run(c, approx, t, gpu, true);
      const auto got = run(c, approx, t, gpu, false);
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("result " << i << " (out, grad_x, grad_w, grad_b)");
        // Gradients are sums over rows of products: scale the tolerance with the row count.
        const double scale = i == 0 ? 1.0 : 4.0;
        CHECK(allclose(got[i], want[i], rtol * scale, atol * scale));
      }
    }
  }
}

}  // namespace

TEST_SUITE("cuda_linear") {
  TEST_CASE("linear_gelu on CUDA agrees with the CPU composition: float32, float16, bfloat16, float64") {
    if (!have_cuda()) return;
    set_float32_matmul_precision("highest");
    check_dtype(kFloat32, 1e-4, 1e-4);
    check_dtype(kFloat64, 1e-10, 1e-10);
    // Roundings of float32 sums to the 16-bit type: of pre, of out (the epilogue rounds out
    // from the unrounded pre), of d_pre and of each gradient.
    check_dtype(kFloat16, 8e-3, 8e-3);
    check_dtype(kBFloat16, 4e-2, 4e-2);
  }

  TEST_CASE("linear_gelu on CUDA with TF32 allowed stays within TF32's error") {
    if (!have_cuda()) return;
    set_float32_matmul_precision("high");
    check_dtype(kFloat32, 1e-2, 2e-2);
    set_float32_matmul_precision("highest");
    CHECK_FALSE(allow_tf32());
  }

  TEST_CASE("linear_gelu on CUDA: NaN left in reused memory never leaks into out or pre") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    manual_seed(42);
    const Tensor x = randn({16, 32}), w = randn({24, 32}), b = randn({24});
    for (const char* approx : {"none", "tanh"}) {
      const Tensor want = gelu(linear(x, w, b), approx);
      for (int i = 0; i < 3; ++i) {
        { Tensor junk = full({2, 16, 24}, std::nan(""), TensorOptions(kFloat32).device(gpu)); }
        CHECK(allclose(linear_gelu(x.to(gpu), w.to(gpu), b.to(gpu), approx).cpu(), want, 1e-4, 1e-4));
      }
    }
  }
}
