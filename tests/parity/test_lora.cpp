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

TEST_CASE("parity: an adapter saved in PEFT's layout by Python loads into focus and gives PyTorch's output") {
  // gen_lora.py: Sequential(Linear(4, 6), ReLU(), Linear(6, 3)), target_modules ["2", "0"],
  // r 2, lora_alpha 6, lora_B stored as float16; adapter_config.json as PEFT 0.13 writes it.
  const TensorDict base = parity::load("lora_peft_base");
  auto net = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 6), std::make_shared<nn::ReLU>(),
                                              std::make_shared<nn::Linear>(6, 3));
  TensorDict weights = base;
  weights.erase("x");
  weights.erase("y");
  net->load_state_dict(weights);
  auto lora = nn::LoraModel::from_pretrained(net, parity::dir() + "/lora_peft_adapter");
  CHECK(lora.targeted_module_names() == std::vector<std::string>{"0", "2"});
  CHECK(lora.config().scaling() == 3.0);
  CHECK(lora.config().lora_dropout_ == 0.1);
  CHECK(lora.config().base_model_name_or_path_ == "tiny-mlp");
  CHECK(lora.adapted_layers()[1]->lora_B()->weight().dtype() == kFloat32);
  net->eval();
  CHECK(focus::testing::allclose(net->forward(base.at("x")), base.at("y"), 1e-5, 1e-6));
}

}  // TEST_SUITE
