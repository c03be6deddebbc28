// Parity with PyTorch's CPU bfloat16 (tests/parity/gen_half.py): linear + gelu + layer_norm +
// softmax forward and backward, computed by focus in bfloat16 from the same bfloat16 inputs.
// Both compute each op in float32 and round its result to bfloat16, but where each rounds
// (and PyTorch's own kernels' orders) differs, so results agree to a few bfloat16 ulps: a
// tolerance of 3% of the largest reference value, not float32's 1e-5.
#include <string>

#include "parity/parity.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

// |got - want| <= 3% of max |want| (each element), both bfloat16.
void check_bf16(const std::string& what, const Tensor& got, const Tensor& want) {
  INFO(what);
  CHECK(got.dtype() == kBFloat16);
  CHECK(want.dtype() == kBFloat16);
  const double scale = max(abs(want.to(kFloat64))).item<double>();
  CHECK(allclose(got.to(kFloat64), want.to(kFloat64), 0, 3e-2 * scale));
}

}  // namespace

TEST_SUITE("parity_half") {

TEST_CASE("bfloat16 linear + gelu + layer_norm + softmax, forward and backward, as PyTorch's CPU") {
  for (const std::string file : {"half_bf16_mlp", "half_bf16_mlp_f32"}) {
    INFO("reference " << file);
    const TensorDict ref = parity::load(file);
    auto leaf = [&](const char* name) { return ref.at(name).clone().requires_grad_(); };
    Tensor x = leaf("x"), w = leaf("weight"), b = leaf("bias"), lw = leaf("ln.weight"), lb = leaf("ln.bias");
    Tensor y = softmax(layer_norm(gelu(linear(x, w, b)), {8}, lw, lb), -1);
    sum(y * ref.at("gy")).backward();
    check_bf16("y", y.detach(), ref.at("y"));
    check_bf16("grad.x", x.grad(), ref.at("grad.x"));
    check_bf16("grad.weight", w.grad(), ref.at("grad.weight"));
    check_bf16("grad.bias", b.grad(), ref.at("grad.bias"));
    check_bf16("grad.ln.weight", lw.grad(), ref.at("grad.ln.weight"));
    check_bf16("grad.ln.bias", lb.grad(), ref.at("grad.ln.bias"));
  }
}

}  // TEST_SUITE
