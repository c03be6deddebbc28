// Parity of an adapted Linear with PyTorch: PEFT's lora.Linear forward written out by hand in
// tests/parity/gen_lora.py (base + x A^T B^T * lora_alpha / r); output, gradients of x, A and
// B, and the merged weight compared.
#include "test_util.h"

#include "parity/parity.h"

using namespace focus;

TEST_SUITE("parity_lora") {

TEST_CASE("parity: an adapted Linear's forward, backward and merge against PyTorch") {
  for (const std::string tag : {"f32", "f64"}) {
    CAPTURE(tag);
    const bool f64 = tag == "f64";
    const double rtol = f64 ? 1e-10 : 1e-5, atol = f64 ? 1e-12 : 1e-6;
    const TensorDict d = parity::load("lora_linear_" + tag);
    auto lin = std::make_shared<nn::Linear>(6, 5);
    lin->to(f64 ? kFloat64 : kFloat32);
    lin->add_lora(3, 7.0 / 3.0);
    {
      NoGradGuard no_grad;
      lin->weight().copy_(d.at("weight"));
      lin->bias().copy_(d.at("bias"));
      lin->lora_A()->weight().copy_(d.at("lora_A"));
      lin->lora_B()->weight().copy_(d.at("lora_B"));
    }
    const Tensor x = d.at("x").clone().requires_grad_();
    const Tensor y = lin->forward(x);
    CHECK(focus::testing::allclose(y, d.at("y"), rtol, atol));
    (y * d.at("gy")).sum().backward();
    CHECK(focus::testing::allclose(x.grad(), d.at("grad.x"), rtol, atol));
    CHECK(focus::testing::allclose(lin->lora_A()->weight().grad(), d.at("grad.lora_A"), rtol, atol));
    CHECK(focus::testing::allclose(lin->lora_B()->weight().grad(), d.at("grad.lora_B"), rtol, atol));
    lin->merge_lora();
    CHECK(focus::testing::allclose(lin->weight(), d.at("merged"), rtol, atol));
  }
}

}  // TEST_SUITE
