// Parity of nn::MultiheadAttention and the Transformer family with PyTorch: the weights of
// each case are loaded by name (load_state_dict), then the outputs, the attention weights
// and the gradients of every parameter and input are compared with PyTorch's
// (tests/parity/gen_transformer.py writes the references and the configuration).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>

#include <focus/focus.h>

#include "parity/parity.h"

using namespace focus;

namespace {

struct Case {
  TensorDict d;
  SafetensorsMetadata meta;
  DType dtype = kFloat32;
  int64_t i(const std::string& k) const {
    auto it = meta.find(k);
    REQUIRE_MESSAGE(it != meta.end(), "metadata key missing: " << k);
    return std::stoll(it->second);
  }
  std::string s(const std::string& k) const {
    auto it = meta.find(k);
    REQUIRE_MESSAGE(it != meta.end(), "metadata key missing: " << k);
    return it->second;
  }
  /// An input that requires grad (a fresh leaf).
  Tensor input(const std::string& k) const { return d.at("x." + k).clone().requires_grad_(); }
  /// A mask, or undefined when the case has none.
  Tensor mask(const std::string& k) const {
    const Tensor* t = d.find("m." + k);
    return t ? *t : Tensor();
  }
};

Case load_case(const std::string& name) {
  Case c;
  c.d = parity::load("transformer_" + name, &c.meta);
  c.dtype = c.s("dtype") == "float64" ? kFloat64 : kFloat32;
  return c;
}

// float32: rtol 1e-5, plus an atol of 1e-6 times the tensor's largest magnitude for the
// entries near 0 (a gradient entry that is a sum with cancellation, e.g. -0.0016 in a
// gradient whose largest entry is 3, carries PyTorch's own float32 rounding of ~1e-6: in
// tf_post_relu PyTorch's float32 value is 1.8e-6 from the float64 truth, focus's 3e-7);
// float64: rtol 1e-10 and atol 1e-10 times the largest magnitude.
void check_close(const Tensor& got, const Tensor& want, DType dt, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  CHECK(got.dtype() == dt);
  const auto a = got.to_vector<double>(), b = want.to_vector<double>();
  double scale = 1;
  for (double x : b) scale = std::max(scale, std::abs(x));
  const double rtol = dt == kFloat64 ? 1e-10 : 1e-5, atol = (dt == kFloat64 ? 1e-10 : 1e-6) * scale;
  double worst = 0;
  size_t at = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    const double excess = std::abs(a[k] - b[k]) - (atol + rtol * std::abs(b[k]));
    if (!(excess <= worst)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      at = k;
    }
  }
  if (worst > 0) FAIL_CHECK(what << ": mismatch at flat index " << at << ": got " << a[at] << ", PyTorch " << b[at]);
}

// Loads the weights, runs fwd, backpropagates PyTorch's upstream gradients and compares.
void run_case(const Case& c, const std::shared_ptr<nn::Module>& module, const std::vector<std::string>& input_names,
              const std::function<std::pair<Tensor, Tensor>(const std::map<std::string, Tensor>&)>& fwd) {
  module->to(c.dtype);
  module->load_state_dict(c.d.with_prefix_removed("p."));
  module->train();  // dropout is 0: train mode is PyTorch's standard path
  std::map<std::string, Tensor> in;
  for (const auto& n : input_names) in[n] = c.input(n);
  auto [out, w] = fwd(in);
  check_close(out, c.d.at("y.out"), c.dtype, "output");
  Tensor loss = (out * c.d.at("dy.out")).sum();
  if (c.d.contains("y.weights")) {
    check_close(w, c.d.at("y.weights"), c.dtype, "attention weights");
    loss = loss + (w * c.d.at("dy.weights")).sum();
  } else {
    CHECK_FALSE(w.defined());
  }
  loss.backward();
  int64_t n_grads = 0;
  for (const auto& [k, t] : c.d) n_grads += k.rfind("grad.p.", 0) == 0;
  const auto params = module->named_parameters();
  CHECK(static_cast<int64_t>(params.size()) == n_grads);
  for (const auto& [name, p] : params) check_close(p.grad(), c.d.at("grad.p." + name), c.dtype, "grad of " + name);
  for (const auto& [name, x] : in) check_close(x.grad(), c.d.at("grad.x." + name), c.dtype, "grad of input " + name);
}

void mha_case(const std::string& name) {
  INFO("case " << name);
  const Case c = load_case(name);
  const int64_t E = c.i("embed_dim");
  auto m = std::make_shared<nn::MultiheadAttention>(nn::MultiheadAttentionOptions(E, c.i("num_heads"))
                                                        .kdim(c.i("kdim"))
                                                        .vdim(c.i("vdim"))
                                                        .bias(c.i("bias") != 0)
                                                        .add_bias_kv(c.i("add_bias_kv") != 0)
                                                        .add_zero_attn(c.i("add_zero_attn") != 0)
                                                        .batch_first(c.i("batch_first") != 0));
  const std::string inputs = c.s("inputs");
  std::vector<std::string> names{"query"};
  if (inputs != "self") names.push_back("key");
  if (inputs == "distinct") names.push_back("value");
  const bool need_weights = c.i("need_weights") != 0, average = c.i("average") != 0;
  run_case(c, m, names, [&](const std::map<std::string, Tensor>& x) {
    // The same tensor object for self-attention (one packed projection), as in PyTorch.
    const Tensor& q = x.at("query");
    const Tensor& k = x.count("key") ? x.at("key") : q;
    const Tensor& v = x.count("value") ? x.at("value") : k;
    auto [o, w] = m->forward(q, k, v, c.mask("key_padding_mask"), need_weights, c.mask("attn_mask"), average);
    return std::pair{o, w};
  });
}

nn::TransformerLayerOptions layer_options(const Case& c) {
  return nn::TransformerLayerOptions(c.i("d_model"), c.i("nhead"))
      .dim_feedforward(c.i("dim_feedforward"))
      .dropout(0.0)
      .activation(c.s("activation"))
      .norm_first(c.i("norm_first") != 0)
      .batch_first(c.i("batch_first") != 0);
}

void encoder_layer_case(const std::string& name) {
  INFO("case " << name);
  const Case c = load_case(name);
  auto m = std::make_shared<nn::TransformerEncoderLayer>(layer_options(c));
  run_case(c, m, {"src"}, [&](const std::map<std::string, Tensor>& x) {
    return std::pair{m->forward(x.at("src"), c.mask("src_mask"), c.mask("src_key_padding_mask")), Tensor()};
  });
}

void decoder_layer_case(const std::string& name) {
  INFO("case " << name);
  const Case c = load_case(name);
  auto m = std::make_shared<nn::TransformerDecoderLayer>(layer_options(c));
  run_case(c, m, {"tgt", "memory"}, [&](const std::map<std::string, Tensor>& x) {
    return std::pair{m->forward(x.at("tgt"), x.at("memory"), c.mask("tgt_mask"), c.mask("memory_mask"),
                                c.mask("tgt_key_padding_mask"), c.mask("memory_key_padding_mask")),
                     Tensor()};
  });
}

void transformer_case(const std::string& name) {
  INFO("case " << name);
  const Case c = load_case(name);
  auto m = std::make_shared<nn::Transformer>(nn::TransformerOptions(c.i("d_model"), c.i("nhead"))
                                                 .num_encoder_layers(c.i("num_encoder_layers"))
                                                 .num_decoder_layers(c.i("num_decoder_layers"))
                                                 .dim_feedforward(c.i("dim_feedforward"))
                                                 .dropout(0.0)
                                                 .activation(c.s("activation"))
                                                 .norm_first(c.i("norm_first") != 0)
                                                 .batch_first(c.i("batch_first") != 0));
  run_case(c, m, {"src", "tgt"}, [&](const std::map<std::string, Tensor>& x) {
    return std::pair{m->forward(x.at("src"), x.at("tgt"), c.mask("src_mask"), c.mask("tgt_mask"),
                                c.mask("memory_mask"), c.mask("src_key_padding_mask"), c.mask("tgt_key_padding_mask"),
                                c.mask("memory_key_padding_mask")),
                     Tensor()};
  });
}

}  // namespace

TEST_SUITE("parity_transformer") {
  TEST_CASE("MultiheadAttention: packed self-attention, need_weights averaged") { mha_case("mha_self"); }
  TEST_CASE("MultiheadAttention: key is value (cross-attention), no weights") { mha_case("mha_kv_noweights"); }
  TEST_CASE("MultiheadAttention: distinct q/k/v, batch_first, per-head weights") {
    mha_case("mha_distinct_bf_heads");
  }
  TEST_CASE("MultiheadAttention: kdim/vdim, add_bias_kv, bool mask, key padding, batch_first") {
    mha_case("mha_kvdim_biaskv");
  }
  TEST_CASE("MultiheadAttention: self-attention, bool attn_mask + key padding") { mha_case("mha_self_bool_kpm"); }
  TEST_CASE("MultiheadAttention: additive 3-D attn_mask + key padding, batch_first") {
    mha_case("mha_float3_kpm_bf");
  }
  TEST_CASE("MultiheadAttention: additive 2-D attn_mask, per-head weights") { mha_case("mha_float2_weights"); }
  TEST_CASE("MultiheadAttention: bool 3-D attn_mask") { mha_case("mha_bool3"); }
  TEST_CASE("MultiheadAttention: add_bias_kv + add_zero_attn with masks") { mha_case("mha_zero_attn"); }
  TEST_CASE("MultiheadAttention: add_zero_attn, bool masks") { mha_case("mha_zero_attn_bool"); }
  TEST_CASE("MultiheadAttention: bias=false, causal float mask") { mha_case("mha_nobias"); }
  TEST_CASE("MultiheadAttention: unbatched, 3-D bool mask, key padding") { mha_case("mha_unbatched"); }
  TEST_CASE("MultiheadAttention: unbatched with batch_first, kdim/vdim") { mha_case("mha_unbatched_bf"); }
  TEST_CASE("MultiheadAttention: additive float key_padding_mask") { mha_case("mha_float_kpm"); }
  TEST_CASE("MultiheadAttention: float64, kdim/vdim, add_bias_kv, masks") { mha_case("mha_f64"); }
  TEST_CASE("MultiheadAttention: float64 self-attention, batch_first, masks") { mha_case("mha_f64_self_bf"); }

  TEST_CASE("TransformerEncoderLayer: post-norm relu, causal mask + key padding") {
    encoder_layer_case("enc_post_relu");
  }
  TEST_CASE("TransformerEncoderLayer: pre-norm gelu, batch_first, bool mask + key padding") {
    encoder_layer_case("enc_pre_gelu_bf");
  }
  TEST_CASE("TransformerEncoderLayer: post-norm gelu, 3-D additive mask") { encoder_layer_case("enc_post_gelu_float3"); }
  TEST_CASE("TransformerEncoderLayer: pre-norm relu, float64") { encoder_layer_case("enc_pre_relu_f64"); }

  TEST_CASE("TransformerDecoderLayer: post-norm relu, all masks") { decoder_layer_case("dec_post_relu"); }
  TEST_CASE("TransformerDecoderLayer: pre-norm gelu, batch_first") { decoder_layer_case("dec_pre_gelu_bf"); }
  TEST_CASE("TransformerDecoderLayer: post-norm gelu, no masks") { decoder_layer_case("dec_post_gelu_nomask"); }
  TEST_CASE("TransformerDecoderLayer: pre-norm relu, float64, all masks") { decoder_layer_case("dec_pre_relu_f64"); }

  TEST_CASE("Transformer: post-norm relu, all masks") { transformer_case("tf_post_relu"); }
  TEST_CASE("Transformer: pre-norm gelu, batch_first, all masks") { transformer_case("tf_pre_gelu_bf"); }
  TEST_CASE("Transformer: post-norm gelu, float64, all masks") { transformer_case("tf_post_gelu_f64"); }
}
