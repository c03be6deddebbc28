// The CUDA matrix products (backends/cuda/matmul.cpp) and attention (backends/cuda/attention.cu)
// against the CPU, forward and backward, on the layouts that take different paths on the
// GPU: transposed and stepped operands (op flags vs packing), batch dims that fold, merge or
// loop, broadcast (stride 0) batches, need_weights with a gradient through the weights,
// dropout (same Philox stream: the GPU must drop exactly the CPU's elements), fully masked
// rows, empty key sets, float64, float16/bfloat16 and TF32. Without a GPU every case prints
// why it is skipped (test_util.h's have_cuda()).
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::check_results_close;
using focus::testing::have_cuda;
using focus::testing::run_with_grads;

namespace {

const Device kGpu = Device::cuda(0);

struct Tol {
  double rtol, atol;
};
constexpr Tol kMm{1e-4, 1e-4};
constexpr Tol kAttn{1e-4, 1e-5};
constexpr Tol kF64{1e-10, 1e-12};

using Inputs = std::vector<Tensor>;
using Op = focus::testing::DeviceOp;
constexpr uint64_t kWeightSeed = 4321;  // the backward pass's output weights

// The op on both devices from the same inputs, compared result by result.
std::vector<Tensor> check_parity(const std::string& name, const Inputs& inputs, const Op& op, Tol tol) {
  INFO("case " << name);
  const std::vector<Tensor> want = run_with_grads(inputs, op, kCPU, kWeightSeed);
  const std::vector<Tensor> got = run_with_grads(inputs, op, kGpu, kWeightSeed);
  check_results_close(want, got, tol.rtol, tol.atol);
  return got;
}

Tensor rnd(const Shape& s, DType t = kFloat32) { return randn(s, TensorOptions(t)); }

bool all_finite(const Tensor& t) {
  for (double x : t.to_vector<double>())
    if (!std::isfinite(x)) return false;
  return true;
}

Op matmul_op() {
  return [](const Inputs& in) { return std::vector{matmul(in[0], in[1])}; };
}

}  // namespace

TEST_SUITE("cuda_matmul_attention") {

TEST_CASE("matmul layouts: op flags, packing, folded, merged and looped batch dims") {
  if (!have_cuda()) return;
  manual_seed(11);
  // Transposed operands go as operation flags.
  check_parity("both transposed", {rnd({33, 17}).t(), rnd({9, 33}).t()}, matmul_op(), kMm);
  // Stepped columns: neither row- nor column-major, packed first.
  check_parity("stepped", {rnd({17, 66}).slice(1, 0, 66, 2), rnd({33, 18}).slice(1, 0, 18, 2)}, matmul_op(), kMm);
  // [B, M, K] @ [K, N] with a transposed: b broadcast (stride 0) in a strided batch.
  check_parity("transposed batch @ matrix", {rnd({3, 8, 5}).transpose(1, 2), rnd({8, 6})}, matmul_op(), kMm);
  // Broadcast batch dims on both sides.
  check_parity("broadcast both", {rnd({4, 1, 3, 5}), rnd({1, 2, 5, 6})}, matmul_op(), kMm);
  // Batch dims that do not merge (a permuted): one dim batched, the other looped.
  check_parity("permuted batch", {rnd({3, 2, 4, 5}).permute({1, 0, 2, 3}), rnd({2, 3, 5, 6})}, matmul_op(), kMm);
  // Heads as in multi-head attention: [B, L, H, D] viewed as [B, H, L, D].
  check_parity("head views", {rnd({2, 7, 3, 8}).transpose(1, 2), rnd({2, 5, 3, 8}).permute({0, 2, 3, 1})},
               matmul_op(), kMm);
  check_parity("float64", {rnd({2, 9, 8}, kFloat64), rnd({2, 3, 8}, kFloat64).transpose(1, 2)},
               matmul_op(), kF64);
  check_parity("size-1 dims", {rnd({1, 1, 7}), rnd({5, 7, 1})}, matmul_op(), kMm);
}

TEST_CASE("matmul: K == 0 gives zeros, integer products are a clear error") {
  if (!have_cuda()) return;
  Tensor z = matmul(rnd({3, 0}).to(kGpu), rnd({0, 4}).to(kGpu));
  CHECK(allclose(z.cpu(), zeros({3, 4}), 0, 0));
  Tensor a = randint(0, 5, {3, 4}).to(kGpu), b = randint(0, 5, {4, 2}).to(kGpu);
  CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("[matmul] int64 matrix products are not supported on cuda"),
                       Error);
}

TEST_CASE("matmul float16, bfloat16 (float32 accumulation) and TF32") {
  if (!have_cuda()) return;
  manual_seed(12);
  const Tensor a = rnd({4, 24, 40}), b = rnd({40, 16});
  for (DType t : {kFloat16, kBFloat16}) {
    INFO("dtype " << std::string(dtype_name(t)));
    // The reference: the same rounded inputs, multiplied in float32 on the CPU.
    const Tensor ar = a.to(kGpu).to(t), br = b.to(kGpu).to(t);
    const Tensor want = matmul(ar.to(kFloat32).cpu(), br.to(kFloat32).cpu());
    const Tensor got = matmul(ar, br);
    CHECK(got.dtype() == t);
    CHECK(allclose(got.to(kFloat32).cpu(), want, 2e-2, 2e-2));
  }
  set_float32_matmul_precision("high");
  const Tensor tf32 = matmul(a.to(kGpu), b.to(kGpu)).cpu();
  set_float32_matmul_precision("highest");
  CHECK(allclose(tf32, matmul(a, b), 1e-2, 1e-2));
}

TEST_CASE("attention: masks, causal, broadcast batches, strided heads") {
  if (!have_cuda()) return;
  manual_seed(13);
  // k and v shared by the heads (stride 0 after broadcasting); masks broadcast over batch.
  const Inputs in{rnd({2, 7, 3, 8}), rnd({2, 1, 5, 8}), rnd({2, 1, 5, 4}), rnd({7, 5}), rnd({1, 3, 7, 5})};
  check_parity("bool and float masks",
               in,
               [](const Inputs& x) {
                 Tensor q = x[0].transpose(1, 2);  // [2, 3, 7, 8], heads strided
                 Tensor bool_mask = gt(x[3].detach(), -0.5);
                 return std::vector{scaled_dot_product_attention(q, x[1], x[2], bool_mask),
                                    scaled_dot_product_attention(q, x[1], x[2], x[4])};
               },
               kAttn);
  check_parity("causal, L > S and L < S", {rnd({2, 3, 7, 8}), rnd({2, 3, 5, 8}), rnd({2, 3, 5, 6})},
               [](const Inputs& x) {
                 return std::vector{scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, true),
                                    scaled_dot_product_attention(x[1], x[0], x[0], {}, 0.0, true, 0.3)};
               },
               kAttn);
  check_parity("float64", {rnd({2, 6, 5}, kFloat64), rnd({2, 4, 5}, kFloat64), rnd({2, 4, 3}, kFloat64)},
               [](const Inputs& x) { return std::vector{scaled_dot_product_attention(x[0], x[1], x[2])}; }, kF64);
  // grad_out with stride 0 (the gradient of a sum over the last dim): packed for the GEMMs.
  check_parity("broadcast grad_out", {rnd({2, 6, 5}), rnd({2, 4, 5}), rnd({2, 4, 3})},
               [](const Inputs& x) { return std::vector{sum(scaled_dot_product_attention(x[0], x[1], x[2]), {-1})}; },
               kAttn);
}

TEST_CASE("attention: need_weights with a gradient through the weights, and dropout on the same Philox stream") {
  if (!have_cuda()) return;
  manual_seed(14);
  const Inputs in{rnd({2, 2, 6, 8}), rnd({2, 2, 9, 8}), rnd({2, 2, 9, 5}), rnd({6, 9})};
  for (double p : {0.0, 0.3}) {
    INFO("dropout_p " << p);
    check_parity("weights", in,
                 [p](const Inputs& x) {
                   manual_seed(99);  // the same dropout draw on both devices
                   auto [o, w] = scaled_dot_product_attention(
                       x[0], x[1], x[2], AttentionOptions().attn_mask(x[3]).dropout_p(p).need_weights(true));
                   return std::vector{o, w};
                 },
                 kAttn);
  }
  // Dropped elements are exactly the CPU's: the weights are 0 at the same places.
  manual_seed(99);
  auto [oc, wc] = scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().dropout_p(0.5).need_weights(true));
  manual_seed(99);
  auto [og, wg] = scaled_dot_product_attention(in[0].to(kGpu), in[1].to(kGpu), in[2].to(kGpu),
                                               AttentionOptions().dropout_p(0.5).need_weights(true));
  CHECK(allclose(eq(wg.cpu(), 0).to(kFloat32), eq(wc, 0).to(kFloat32), 0, 0));
}

TEST_CASE("attention: fully masked rows and empty key sets give zeros, never NaN") {
  if (!have_cuda()) return;
  manual_seed(15);
  Tensor mask = ones({5, 6}, TensorOptions(kBool));
  mask.select(0, 2).fill_(false);  // query 2 sees no key
  const std::vector<Tensor> got =
      check_parity("fully masked row", {rnd({2, 5, 4}), rnd({2, 6, 4}), rnd({2, 6, 3})},
                   [mask](const Inputs& x) {
                     return std::vector{scaled_dot_product_attention(x[0], x[1], x[2], mask.to(x[0].device()))};
                   },
                   kAttn);
  for (const Tensor& t : got) CHECK(all_finite(t));
  CHECK(allclose(got[0].select(1, 2), zeros({2, 3}), 0, 0));
  const std::vector<Tensor> empty = check_parity(
      "no keys", {rnd({2, 5, 4}), rnd({2, 0, 4}), rnd({2, 0, 3})},
      [](const Inputs& x) { return std::vector{scaled_dot_product_attention(x[0], x[1], x[2])}; }, kAttn);
  CHECK(allclose(empty[0], zeros({2, 5, 3}), 0, 0));
}

TEST_CASE("attention float16 and bfloat16 against float32") {
  if (!have_cuda()) return;
  manual_seed(16);
  const Tensor q = rnd({2, 3, 7, 16}), k = rnd({2, 3, 9, 16}), v = rnd({2, 3, 9, 8});
  const Tensor m = rnd({7, 9});
  for (DType t : {kFloat16, kBFloat16}) {
    INFO("dtype " << std::string(dtype_name(t)));
    const Tensor qh = q.to(kGpu).to(t), kh = k.to(kGpu).to(t), vh = v.to(kGpu).to(t), mh = m.to(kGpu).to(t);
    const Tensor want = scaled_dot_product_attention(qh.to(kFloat32).cpu(), kh.to(kFloat32).cpu(),
                                                     vh.to(kFloat32).cpu(), mh.to(kFloat32).cpu());
    const Tensor got = scaled_dot_product_attention(qh, kh, vh, mh);
    CHECK(got.dtype() == t);
    CHECK(allclose(got.to(kFloat32).cpu(), want, 3e-2, 3e-2));
  }
}

}  // TEST_SUITE
