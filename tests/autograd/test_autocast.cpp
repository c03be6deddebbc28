// Autocast (AutocastGuard): which ops run in the lower precision and which in float32, the
// promotion of mixed inputs, float64 left alone, the cast cache for weights, gradients in
// the leaves' own dtypes, the backward outside autocast, nesting, and errors. On the CPU,
// with bfloat16 and float16 (stored in 16 bits, computed in float32, as PyTorch's CPU).
#include <cmath>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

TEST_CASE("autocast: guard state, nesting and errors") {
  CHECK_FALSE(is_autocast_enabled(DeviceType::CPU));
  CHECK_FALSE(autocast::active());
  {
    AutocastGuard g(Device::cpu());
    CHECK(is_autocast_enabled(DeviceType::CPU));
    CHECK_FALSE(is_autocast_enabled(DeviceType::CUDA));
    CHECK(get_autocast_dtype(DeviceType::CPU) == kBFloat16);  // PyTorch's CPU default
    {
      AutocastGuard h(Device::cpu(), kFloat16);
      CHECK(get_autocast_dtype(DeviceType::CPU) == kFloat16);
      {
        AutocastGuard off(Device::cpu(), std::nullopt, false);
        CHECK_FALSE(is_autocast_enabled(DeviceType::CPU));
      }
      CHECK(is_autocast_enabled(DeviceType::CPU));
    }
    CHECK(get_autocast_dtype(DeviceType::CPU) == kBFloat16);
  }
  CHECK_FALSE(is_autocast_enabled(DeviceType::CPU));
  {
    AutocastGuard g(Device::cuda());
    CHECK(get_autocast_dtype(DeviceType::CUDA) == kFloat16);
  }
  CHECK_THROWS_WITH_AS(AutocastGuard(Device::cpu(), kFloat32),
                       "[autocast] expected dtype float16 or bfloat16, got float32", Error);
}

TEST_CASE("autocast: lower-precision ops, float32 ops, promotion, float64 untouched") {
  manual_seed(71);
  Tensor x = randn({4, 8}), w = randn({6, 8}), b = randn({6}), m = randn({8, 5});
  for (DType low : {kBFloat16, kFloat16}) {
    CAPTURE(low);
    AutocastGuard g(Device::cpu(), low);
    Tensor y = linear(x, w, b);
    CHECK(y.dtype() == low);
    // The value: the product of the 16-bit inputs in float32, rounded once to 16 bits.
    Tensor ref = linear(x.to(low).to(kFloat32), w.to(low).to(kFloat32), b.to(low).to(kFloat32));
    {
      AutocastGuard off(Device::cpu(), std::nullopt, false);
      ref = ref.to(low).to(kFloat32);
    }
    CHECK(allclose(y.to(kFloat32), ref, 1e-2, 1e-2));
    CHECK(matmul(x, m).dtype() == low);
    CHECK(mm(x, m).dtype() == low);
    CHECK(bmm(x.unsqueeze(0), m.unsqueeze(0)).dtype() == low);
    Tensor q = randn({2, 3, 4}), k = randn({2, 5, 4}), v = randn({2, 5, 4});
    CHECK(scaled_dot_product_attention(q, k, v).dtype() == low);
    // float32 ops on 16-bit inputs give float32
    CHECK(softmax(y, -1).dtype() == kFloat32);
    CHECK(log_softmax(y, -1).dtype() == kFloat32);
    CHECK(layer_norm(y, {6}, Tensor(), Tensor(), 1e-5).dtype() == kFloat32);
    CHECK(sum(y).dtype() == kFloat32);
    CHECK(exp(y).dtype() == kFloat32);
    CHECK(pow(y, 2.0).dtype() == kFloat32);
    CHECK(cross_entropy(y, tensor<int64_t>({0, 1, 2, 3}, {4})).dtype() == kFloat32);
    CHECK(mse_loss(y, zeros({4, 6})).dtype() == kFloat32);
    // ops on no list keep the dtype; mixed inputs promote as usual
    CHECK(relu(y).dtype() == low);
    CHECK(gelu(y).dtype() == low);
    CHECK((y + y).dtype() == low);
    CHECK((y + randn({4, 6})).dtype() == kFloat32);
    CHECK(cat({y, randn({4, 6})}, 0).dtype() == kFloat32);
    CHECK(stack({y, y}, 0).dtype() == low);
    // float64 is never cast
    CHECK(linear(x.to(kFloat64), w.to(kFloat64), b.to(kFloat64)).dtype() == kFloat64);
    CHECK(softmax(randn({3}, kFloat64), 0).dtype() == kFloat64);
  }
  // Off again: float32 in, float32 out.
  CHECK(linear(x, w, b).dtype() == kFloat32);
  // A CUDA guard leaves CPU tensors alone.
  AutocastGuard g(Device::cuda(), kBFloat16);
  CHECK(linear(x, w, b).dtype() == kFloat32);
}

TEST_CASE("autocast: gradients in the leaves' dtypes, the weight cast cached, backward outside autocast") {
  manual_seed(72);
  Tensor x = randn({5, 8});
  Tensor w1 = (randn({16, 8}) * 0.3).requires_grad_(), w2 = (randn({3, 16}) * 0.3).requires_grad_();
  Tensor target = tensor<int64_t>({0, 2, 1, 1, 0}, {5});
  Tensor loss;
  {
    AutocastGuard g(Device::cpu(), kBFloat16);
    // One cast per weight per guard: the same tensor comes back.
    CHECK(autocast::cast(w1, autocast::Policy::Lower).is_same(autocast::cast(w1, autocast::Policy::Lower)));
    Tensor h = gelu(linear(x, w1, Tensor()));
    CHECK(h.dtype() == kBFloat16);
    Tensor logits = linear(h, w2, Tensor());
    loss = cross_entropy(logits, target);
    CHECK(loss.dtype() == kFloat32);
    loss.backward();  // inside the guard: the backward still runs without autocast
  }
  CHECK(w1.grad().dtype() == kFloat32);
  CHECK(w2.grad().dtype() == kFloat32);
  // Close to the float32 gradients (the usual mixed-precision gap).
  Tensor a = w1.detach().requires_grad_(), c = w2.detach().requires_grad_();
  Tensor ref = cross_entropy(linear(gelu(linear(x, a, Tensor())), c, Tensor()), target);
  ref.backward();
  CHECK(std::abs(loss.item<double>() - ref.item<double>()) < 0.05);
  CHECK(allclose(w1.grad(), a.grad(), 0.1, 0.02));
  CHECK(allclose(w2.grad(), c.grad(), 0.1, 0.02));
}

TEST_CASE("autocast: binary_cross_entropy is refused, as in PyTorch") {
  AutocastGuard g(Device::cpu());
  Tensor p = sigmoid(randn({4})), t = rand({4});
  CHECK_THROWS_WITH_AS(binary_cross_entropy(p, t), doctest::Contains("[binary_cross_entropy] is unsafe to autocast"),
                       Error);
  CHECK(binary_cross_entropy_with_logits(randn({4}), t).dtype() == kFloat32);
}
