// linear (Backend::linear): on every device against a float64 reference, and on CUDA for
// float32 (TF32 off and on), float16, bfloat16 and float64, over the layouts that take
// cuBLASLt's bias epilogue (2-D and 3-D x folded into rows, row- and column-major weight
// and x, offset pointers) and those that fall back to the bias copy + GEMM (no bias,
// strided bias, x whose rows do not fold, K == 0, float64). The CUDA cases are skipped,
// with the printed reason, where there is no GPU.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::have_cuda;

namespace {

// One linear call: contiguous float32 values for x, weight and bias made on the CPU (bias
// undefined = none), and the view of each that the call takes, applied on the device the
// values were moved to (so a transposed or offset view is one there too).
struct LinearCase {
  std::string name;
  Tensor x, w, b;
  std::function<Tensor(const Tensor&)> xv = [](const Tensor& t) { return t; };
  std::function<Tensor(const Tensor&)> wv = [](const Tensor& t) { return t; };
  std::function<Tensor(const Tensor&)> bv = [](const Tensor& t) { return t; };
};

std::vector<LinearCase> linear_cases() {
  manual_seed(11);
  const int64_t K = 64, N = 48;
  std::vector<LinearCase> v;
  v.push_back({"2-D", randn({33, K}), randn({N, K}), randn({N})});
  v.push_back({"2-D no bias", randn({33, K}), randn({N, K}), Tensor()});
  v.push_back({"3-D (rows fold)", randn({2, 7, K}), randn({N, K}), randn({N})});
  v.push_back({"3-D no bias", randn({2, 7, K}), randn({N, K}), Tensor()});
  v.push_back({"4-D (rows fold)", randn({2, 3, 5, K}), randn({N, K}), randn({N})});
  v.push_back({"1-D x", randn({K}), randn({N, K}), randn({N})});
  {
    LinearCase c{"transposed weight view (column-major)", randn({33, K}), randn({K, N}), randn({N})};
    c.wv = [](const Tensor& t) { return t.t(); };
    v.push_back(c);
  }
  {
    LinearCase c{"3-D x, transposed weight view", randn({3, 5, K}), randn({K, N}), randn({N})};
    c.wv = [](const Tensor& t) { return t.t(); };
    v.push_back(c);
  }
  {
    LinearCase c{"column-major x", randn({K, 33}), randn({N, K}), randn({N})};
    c.xv = [](const Tensor& t) { return t.t(); };
    v.push_back(c);
  }
  {
    LinearCase c{"column-major x and weight", randn({K, 33}), randn({K, N}), randn({N})};
    c.xv = [](const Tensor& t) { return t.t(); };
    c.wv = [](const Tensor& t) { return t.t(); };
    v.push_back(c);
  }
  {
    // [2, 7, K] whose dims 0 and 1 are swapped in memory: its rows do not fold into one
    // matrix, so the kernel loops over the batch (CUDA: the default path).
    LinearCase c{"3-D x whose rows do not fold", randn({7, 2, K}), randn({N, K}), randn({N})};
    c.xv = [](const Tensor& t) { return t.transpose(0, 1); };
    v.push_back(c);
  }
  {
    LinearCase c{"strided bias", randn({33, K}), randn({N, K}), randn({2 * N})};
    c.bv = [](const Tensor& t) { return t.slice(0, 0, std::nullopt, 2); };
    v.push_back(c);
  }
  {
    // Row views starting one element in: operands not aligned to 16 bytes.
    LinearCase c{"offset views (unaligned)", randn({33 * K + 1}), randn({N * K + 1}), randn({N + 1})};
    c.xv = [](const Tensor& t) { return t.narrow(0, 1, 33 * 64).reshape({33, 64}); };
    c.wv = [](const Tensor& t) { return t.narrow(0, 1, 48 * 64).reshape({48, 64}); };
    c.bv = [](const Tensor& t) { return t.narrow(0, 1, 48); };
    v.push_back(c);
  }
  {
    // Odd sizes: leading dimensions that are not multiples of 8 (16-bit types).
    LinearCase c{"odd sizes", randn({3, 5, 13}), randn({11, 13}), randn({11})};
    v.push_back(c);
  }
  v.push_back({"one row", randn({1, K}), randn({N, K}), randn({N})});
  v.push_back({"one output feature", randn({9, K}), randn({1, K}), randn({1})});
  v.push_back({"one input feature", randn({9, 1}), randn({N, 1}), randn({N})});
  v.push_back({"K == 0: out = bias", randn({5, 0}), randn({4, 0}), randn({4})});
  v.push_back({"no rows", randn({0, K}), randn({N, K}), randn({N})});
  return v;
}

// The case's linear on device d in dtype t, returned as float64 on the CPU.
Tensor run(const LinearCase& c, DType t, Device d) {
  const Tensor x = c.xv(c.x.to(t).to(d));
  const Tensor w = c.wv(c.w.to(t).to(d));
  const Tensor b = c.b.defined() ? c.bv(c.b.to(t).to(d)) : Tensor();
  const Tensor y = linear(x, w, b);
  CHECK(y.dtype() == t);
  CHECK(y.device() == d);
  return y.to(kFloat64).cpu();
}

// The reference: float64 on the CPU from the inputs rounded to dtype t.
Tensor reference(const LinearCase& c, DType t) {
  const Tensor x = c.xv(c.x.to(t).to(kFloat64));
  const Tensor w = c.wv(c.w.to(t).to(kFloat64));
  const Tensor b = c.b.defined() ? c.bv(c.b.to(t).to(kFloat64)) : Tensor();
  return linear(x, w, b);
}

struct Tol {
  double rtol, atol;
};

void check_dtype(DType t, Device d, Tol tol) {
  for (const LinearCase& c : linear_cases()) {
    INFO("case " << c.name << ", " << fmt::format("{}", t) << " on " << d.str());
    const Tensor want = reference(c, t);
    const Tensor got = run(c, t, d);
    CHECK(got.shape() == want.shape());
    CHECK(allclose(got, want, tol.rtol, tol.atol));
  }
}

}  // namespace

TEST_SUITE("cuda_linear") {
  TEST_CASE("linear matches a float64 reference on every device (float32, float64)") {
    FOR_EACH_DEVICE(dev) {
      check_dtype(kFloat32, dev, {1e-4, 1e-4});
      check_dtype(kFloat64, dev, {1e-10, 1e-10});
    }
  }

  TEST_CASE("linear's default path is exact on integers, batch loops and strided bias included") {
    // Integer products are exact, so every layout of the default path (the bias broadcast
    // into out, then one GEMM with beta 1 per batch) must give the float64 reference's
    // numbers bit for bit.
    manual_seed(3);
    const Tensor x = randint(-9, 10, {7, 2, 6}, TensorOptions(kInt64)).transpose(0, 1);  // rows do not fold
    const Tensor w = randint(-9, 10, {6, 5}, TensorOptions(kInt64)).t();                  // column-major [5, 6]
    const Tensor b = randint(-9, 10, {10}, TensorOptions(kInt64)).slice(0, 0, std::nullopt, 2);
    const Tensor y = linear(x, w, b);
    CHECK(y.dtype() == kInt64);
    CHECK(y.shape() == Shape{2, 7, 5});
    CHECK(allclose(y.to(kFloat64), linear(x.to(kFloat64), w.to(kFloat64), b.to(kFloat64)), 0, 0));
    CHECK(allclose(linear(x, w, Tensor()).to(kFloat64), linear(x.to(kFloat64), w.to(kFloat64)), 0, 0));
  }

  TEST_CASE("linear on CUDA agrees with the CPU: float32, float16, bfloat16, float64") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    set_float32_matmul_precision("highest");
    check_dtype(kFloat32, gpu, {1e-4, 1e-4});
    check_dtype(kFloat64, gpu, {1e-10, 1e-10});
    // One rounding of a float32 sum to the output type (bias added before it).
    check_dtype(kFloat16, gpu, {4e-3, 4e-3});
    check_dtype(kBFloat16, gpu, {2e-2, 2e-2});
  }

  TEST_CASE("linear on CUDA with TF32 allowed stays within TF32's error") {
    if (!have_cuda()) return;
    set_float32_matmul_precision("high");
    check_dtype(kFloat32, Device::cuda(0), {1e-2, 2e-2});
    set_float32_matmul_precision("highest");
    CHECK_FALSE(allow_tf32());
  }

  TEST_CASE("linear on CUDA: the output is fresh memory and NaN in it never leaks") {
    if (!have_cuda()) return;
    // The caching allocator hands back blocks that held NaN: beta = 0 must ignore them.
    const Device gpu = Device::cuda(0);
    manual_seed(5);
    const Tensor x = randn({16, 32}), w = randn({8, 32}), b = randn({8});
    const Tensor want = linear(x, w, b);
    for (int i = 0; i < 3; ++i) {
      { Tensor junk = full({16, 8}, std::nan(""), TensorOptions(kFloat32).device(gpu)); }
      CHECK(allclose(linear(x.to(gpu), w.to(gpu), b.to(gpu)).cpu(), want, 1e-4, 1e-4));
    }
  }

  TEST_CASE("linear on CUDA: autograd through the fused forward") {
    if (!have_cuda()) return;
    // The backward is unchanged; this checks the fused forward's output feeds it correctly.
    const Device gpu = Device::cuda(0);
    manual_seed(9);
    const Tensor x0 = randn({3, 5, 16}), w0 = randn({12, 16}), b0 = randn({12}), g0 = randn({3, 5, 12});
    std::vector<Tensor> grads[2];
    int i = 0;
    for (Device d : {kCPU, gpu}) {
      Tensor x = x0.to(d).detach().requires_grad_(), w = w0.to(d).detach().requires_grad_(),
             b = b0.to(d).detach().requires_grad_();
      sum(linear(x, w, b) * g0.to(d)).backward();
      grads[i++] = {x.grad().cpu(), w.grad().cpu(), b.grad().cpu()};
    }
    for (size_t k = 0; k < 3; ++k) CHECK(allclose(grads[1][k], grads[0][k], 1e-4, 1e-4));
  }
}
