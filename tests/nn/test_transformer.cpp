// nn::MultiheadAttention and the Transformer family: shapes, errors, state_dict names,
// initialization, mask semantics, and gradcheck in float64 (PyTorch parity lives in
// tests/parity/test_transformer.cpp).
#include <algorithm>
#include <cmath>
#include <set>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

std::vector<std::string> keys(const nn::Module& m) {
  std::vector<std::string> k;
  for (const auto& [name, t] : m.named_parameters()) k.push_back(name);
  return k;
}

double max_abs_diff(const Tensor& a, const Tensor& b) { return max((a - b).abs()).item<double>(); }

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_SUITE("nn_transformer") {
  TEST_CASE("MultiheadAttention: output and weight shapes") {
    manual_seed(0);
    nn::MultiheadAttention m(8, 2);
    const Tensor q = randn({5, 3, 8}), kv = randn({6, 3, 8});
    auto [o, w] = m(q, kv, kv);
    CHECK(o.shape() == Shape{5, 3, 8});
    CHECK(w.shape() == Shape{3, 5, 6});
    // Averaged weights are a distribution over the keys.
    CHECK(allclose(w.sum({-1}), ones({3, 5}), 1e-5, 1e-6));
    auto [o2, w2] = m(q, kv, kv, {}, true, {}, /*average_attn_weights=*/false);
    CHECK(w2.shape() == Shape{3, 2, 5, 6});
    CHECK(allclose(w2.mean({1}), w, 1e-5, 1e-7));
    CHECK(allclose(o2, o, 1e-5, 1e-6));
    auto [o3, w3] = m(q, kv, kv, {}, /*need_weights=*/false);
    CHECK_FALSE(w3.defined());
    CHECK(allclose(o3, o, 1e-5, 1e-6));
  }

  TEST_CASE("MultiheadAttention: batch_first and unbatched agree with the sequence-first layout") {
    manual_seed(1);
    nn::MultiheadAttention seq(nn::MultiheadAttentionOptions(8, 4).kdim(3).vdim(5));
    nn::MultiheadAttention bf(nn::MultiheadAttentionOptions(8, 4).kdim(3).vdim(5).batch_first(true));
    bf.load_state_dict(seq.state_dict());
    const Tensor q = randn({4, 2, 8}), k = randn({7, 2, 3}), v = randn({7, 2, 5});
    auto [o, w] = seq(q, k, v);
    auto [ob, wb] = bf(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1));
    CHECK(ob.shape() == Shape{2, 4, 8});
    CHECK(allclose(ob.transpose(0, 1), o, 1e-5, 1e-6));
    CHECK(allclose(wb, w, 1e-5, 1e-6));
    // Unbatched: [L, E] in, [L, E] out, whatever batch_first says.
    for (nn::MultiheadAttention* m : {&seq, &bf}) {
      auto [ou, wu] = (*m)(q.select(1, 1), k.select(1, 1), v.select(1, 1));
      CHECK(ou.shape() == Shape{4, 8});
      CHECK(wu.shape() == Shape{4, 7});
      CHECK(allclose(ou, o.select(1, 1), 1e-5, 1e-6));
      CHECK(allclose(wu, w.select(0, 1), 1e-5, 1e-6));
    }
  }

  TEST_CASE("MultiheadAttention: state_dict names and initialization") {
    manual_seed(2);
    nn::MultiheadAttention packed(16, 4);
    CHECK(keys(packed) == std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"});
    CHECK(packed.in_proj_weight().shape() == Shape{48, 16});
    CHECK(packed.in_proj_bias().abs().sum().item<double>() == 0.0);
    const TensorDict sd = packed.state_dict();
    CHECK(sd.at("out_proj.bias").abs().sum().item<double>() == 0.0);
    // xavier_uniform_ on [3E, E]: bound sqrt(6 / (E + 3E)).
    const double bound = std::sqrt(6.0 / (16 + 48));
    CHECK(max(packed.in_proj_weight().abs()).item<double>() <= bound);
    CHECK(max(packed.in_proj_weight().abs()).item<double>() > 0.8 * bound);
    CHECK(packed.num_parameters() == 48 * 16 + 48 + 16 * 16 + 16);

    nn::MultiheadAttention sep(nn::MultiheadAttentionOptions(16, 4).kdim(6).vdim(7).add_bias_kv(true));
    const auto k = keys(sep);
    for (const char* n : {"q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v",
                          "out_proj.weight", "out_proj.bias"})
      CHECK_MESSAGE(has(k, n), n);
    CHECK_FALSE(has(k, "in_proj_weight"));
    CHECK(sep.k_proj_weight().shape() == Shape{16, 6});
    CHECK(sep.v_proj_weight().shape() == Shape{16, 7});
    CHECK(sep.bias_k().shape() == Shape{1, 1, 16});

    nn::MultiheadAttention nobias(nn::MultiheadAttentionOptions(8, 2).bias(false));
    CHECK(keys(nobias) == std::vector<std::string>{"in_proj_weight", "out_proj.weight"});
  }

  TEST_CASE("MultiheadAttention: errors") {
    CHECK_THROWS_WITH_AS(nn::MultiheadAttention(10, 3), doctest::Contains("[MultiheadAttention] embed_dim must be divisible by num_heads"),
                         focus::Error);
    nn::MultiheadAttention m(8, 2);
    const Tensor q = randn({5, 3, 8}), kv = randn({6, 3, 8});
    CHECK_THROWS_WITH_AS(m(q, kv, kv, {}, true, zeros({5, 5}, kBool)),
                         doctest::Contains("the shape of the 2D attn_mask is [5, 5], but should be [5, 6]"), focus::Error);
    CHECK_THROWS_WITH_AS(m(q, kv, kv, {}, true, zeros({3, 5, 6}, kBool)),
                         doctest::Contains("the shape of the 3D attn_mask is [3, 5, 6], but should be [6, 5, 6]"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(m(q, kv, kv, {}, true, zeros({1, 6, 5, 6}, kBool)),
                         doctest::Contains("attn_mask's dimension 4 is not supported"), focus::Error);
    CHECK_THROWS_WITH_AS(m(q, kv, kv, zeros({3, 5}, kBool)),
                         doctest::Contains("expecting key_padding_mask shape of [3, 6], but got [3, 5]"), focus::Error);
    CHECK_THROWS_WITH_AS(m(q, kv, kv, zeros({3, 6}, kInt64)),
                         doctest::Contains("only bool and floating types of key_padding_mask are supported"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(m(randn({5, 3, 4}), kv, kv), doctest::Contains("was expecting embedding dimension of 8"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(m(q, randn({6, 2, 8}), randn({6, 2, 8})),
                         doctest::Contains("query and key must have the same batch size"), focus::Error);
    CHECK_THROWS_WITH_AS(m(q, kv, randn({7, 3, 8})), doctest::Contains("does not match value shape"), focus::Error);
    CHECK_THROWS_WITH_AS(m(randn({5, 8}), kv, kv), doctest::Contains("key and value must be 2-D too"), focus::Error);
    CHECK_THROWS_WITH_AS(m(randn({8}), randn({8}), randn({8})),
                         doctest::Contains("query should be unbatched 2-D [L, E] or batched 3-D"), focus::Error);
  }

  TEST_CASE("MultiheadAttention: bool masks (true = not allowed) equal the additive -inf masks") {
    manual_seed(3);
    nn::MultiheadAttention m(nn::MultiheadAttentionOptions(8, 2).add_bias_kv(true));
    const Tensor x = randn({4, 2, 8});
    Tensor am = lt(rand({4, 4}), 0.4);
    am = am.masked_fill(tensor<bool>({true, false, false, false}), false);  // column 0 stays allowed
    const Tensor kpm = tensor<bool>({false, false, false, true, false, false, true, true}, {2, 4});
    const double ninf = -INFINITY;
    const Tensor am_f = zeros({4, 4}).masked_fill(am, ninf), kpm_f = zeros({2, 4}).masked_fill(kpm, ninf);
    auto [o1, w1] = m(x, x, x, kpm, true, am);
    auto [o2, w2] = m(x, x, x, kpm_f, true, am_f);
    auto [o3, w3] = m(x, x, x, kpm, true, am_f);  // mixed kinds
    CHECK(allclose(o1, o2, 1e-6, 1e-7));
    CHECK(allclose(w1, w2, 1e-6, 1e-7));
    CHECK(allclose(o1, o3, 1e-6, 1e-7));
    // Masked keys get no weight; the bias_k column (last) always gets some.
    const auto w = w1.to_vector<float>();  // [2, 4, 5]
    const auto amv = am.to_vector<double>(), kpmv = kpm.to_vector<double>();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t l = 0; l < 4; ++l)
        for (int64_t s = 0; s < 4; ++s)
          if (amv[l * 4 + s] != 0 || kpmv[b * 4 + s] != 0) CHECK(w[(b * 4 + l) * 5 + s] == 0.0f);
    CHECK(min(w1.select(-1, 4)).item<float>() > 0.0f);
  }

  TEST_CASE("MultiheadAttention: is_causal equals the explicit causal mask") {
    manual_seed(4);
    for (bool bias_kv : {false, true}) {
      nn::MultiheadAttention m(nn::MultiheadAttentionOptions(8, 2).add_bias_kv(bias_kv).batch_first(true));
      const Tensor x = randn({3, 5, 8}).requires_grad_();
      const Tensor causal = nn::generate_square_subsequent_mask(5);
      for (bool need_weights : {false, true}) {
        for (bool with_kpm : {false, true}) {
          const Tensor kpm = with_kpm ? tensor<bool>({false, false, false, false, true, false, false, false, true,
                                                      true, false, false, false, false, false},
                                                     {3, 5})
                                      : Tensor();
          auto [a, wa] = m(x, x, x, kpm, need_weights, causal);
          auto [b, wb] = m(x, x, x, kpm, need_weights, {}, true, /*is_causal=*/true);
          auto [c, wc] = m(x, x, x, kpm, need_weights, causal, true, /*is_causal=*/true);
          CHECK(allclose(a, b, 1e-6, 1e-7));
          CHECK(allclose(a, c, 1e-6, 1e-7));
          if (need_weights) CHECK(allclose(wa, wb, 1e-6, 1e-7));
          Tensor ga = autograd::grad({a.sum()}, {x})[0], gb = autograd::grad({b.sum()}, {x})[0];
          CHECK(allclose(ga, gb, 1e-5, 1e-6));
        }
      }
    }
  }

  TEST_CASE("MultiheadAttention: dropout only in training") {
    manual_seed(5);
    nn::MultiheadAttention m(nn::MultiheadAttentionOptions(8, 2).dropout(0.5));
    const Tensor x = randn({4, 2, 8});
    m.eval();
    auto [e1, we1] = m(x, x, x);
    auto [e2, we2] = m(x, x, x);
    CHECK(allclose(e1, e2, 0, 0));
    m.train();
    auto [t1, wt1] = m(x, x, x, {}, true, {}, false);
    CHECK(max_abs_diff(t1, e1) > 1e-3);
    // Dropped weights are 0, kept ones are scaled by 2.
    CHECK(eq(wt1, 0).sum().item<int64_t>() > 0);
  }

  TEST_CASE("MultiheadAttention: gradcheck in float64 (packed, separate, masks, bias_kv, zero_attn)") {
    manual_seed(6);
    {
      nn::MultiheadAttention m(nn::MultiheadAttentionOptions(4, 2).add_bias_kv(true).add_zero_attn(true));
      m.to(kFloat64);
      const Tensor x = randn({3, 2, 4}, kFloat64).requires_grad_();
      const Tensor kpm = tensor<bool>({false, false, true, false, false, false}, {2, 3});
      const Tensor am = randn({3, 3}, kFloat64);
      std::vector<Tensor> inputs{x};
      for (auto& p : m.parameters()) inputs.push_back(p);
      CHECK(gradcheck(
          [&](const std::vector<Tensor>& in) {
            auto [o, w] = m(in[0], in[0], in[0], kpm, true, am, false);
            return cat({o.flatten(), w.flatten()});
          },
          inputs));
    }
    {
      nn::MultiheadAttention m(nn::MultiheadAttentionOptions(4, 2).kdim(3).vdim(2).batch_first(true));
      m.to(kFloat64);
      const Tensor q = randn({2, 3, 4}, kFloat64).requires_grad_(), k = randn({2, 2, 3}, kFloat64).requires_grad_(),
                   v = randn({2, 2, 2}, kFloat64).requires_grad_();
      const Tensor am = tensor<bool>({false, true, false, false, true, false}, {3, 2});
      std::vector<Tensor> inputs{q, k, v};
      for (auto& p : m.parameters()) inputs.push_back(p);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return std::get<0>(m(in[0], in[1], in[2], {}, false, am)); },
                      inputs));
    }
  }

  TEST_CASE("generate_square_subsequent_mask") {
    const Tensor m = nn::Transformer::generate_square_subsequent_mask(3);
    CHECK(m.dtype() == kFloat32);
    const auto v = m.to_vector<float>();
    const float ninf = -INFINITY;
    CHECK(v == std::vector<float>{0, ninf, ninf, 0, 0, ninf, 0, 0, 0});
    CHECK(nn::generate_square_subsequent_mask(2, kFloat64).dtype() == kFloat64);
    CHECK(nn::generate_square_subsequent_mask(0).numel() == 0);
  }

  TEST_CASE("TransformerEncoderLayer / DecoderLayer: shapes, names, errors") {
    manual_seed(7);
    nn::TransformerEncoderLayer enc(nn::TransformerLayerOptions(8, 2).dim_feedforward(16));
    CHECK(enc(randn({5, 3, 8})).shape() == Shape{5, 3, 8});
    CHECK(enc(randn({5, 8})).shape() == Shape{5, 8});
    const auto ek = keys(enc);
    for (const char* n : {"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                          "linear1.weight", "linear1.bias", "linear2.weight", "norm1.weight", "norm2.bias"})
      CHECK_MESSAGE(has(ek, n), n);
    std::set<std::string> children;
    for (const auto& [n, c] : enc.named_children()) children.insert(n);
    CHECK(children == std::set<std::string>{"self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1",
                                            "dropout2"});

    nn::TransformerDecoderLayer dec(nn::TransformerLayerOptions(8, 2).dim_feedforward(16).batch_first(true));
    CHECK(dec(randn({3, 4, 8}), randn({3, 6, 8})).shape() == Shape{3, 4, 8});
    children.clear();
    for (const auto& [n, c] : dec.named_children()) children.insert(n);
    CHECK(children == std::set<std::string>{"self_attn", "multihead_attn", "linear1", "dropout", "linear2", "norm1",
                                            "norm2", "norm3", "dropout1", "dropout2", "dropout3"});
    const std::string r = enc.repr();
    CHECK(r.rfind("TransformerEncoderLayer(", 0) == 0);
    CHECK(r.find("(self_attn): MultiheadAttention(") != std::string::npos);
    CHECK(r.find("(out_proj): Linear(in_features=8, out_features=8, bias=True)") != std::string::npos);
    CHECK(r.find("(dropout1): Dropout(p=0.1, inplace=False)") != std::string::npos);
    nn::TransformerEncoderLayer nobias(nn::TransformerLayerOptions(8, 2).dim_feedforward(16).bias(false));
    for (const auto& n : keys(nobias)) CHECK_MESSAGE(n.find("bias") == std::string::npos, n);

    CHECK_THROWS_WITH_AS(nn::TransformerEncoderLayer(nn::TransformerLayerOptions(8, 2).activation("tanh")),
                         doctest::Contains("activation should be relu/gelu, not tanh"), focus::Error);
    CHECK_THROWS_WITH_AS(nn::TransformerDecoderLayer(nn::TransformerLayerOptions(9, 2)),
                         doctest::Contains("embed_dim must be divisible by num_heads"), focus::Error);
    CHECK_THROWS_WITH_AS(enc(randn({5, 3, 8}), zeros({4, 4}, kBool)),
                         doctest::Contains("the shape of the 2D attn_mask is [4, 4], but should be [5, 5]"),
                         focus::Error);
  }

  TEST_CASE("TransformerEncoder / Decoder: deep copies start identical") {
    manual_seed(8);
    auto layer = std::make_shared<nn::TransformerEncoderLayer>(nn::TransformerLayerOptions(8, 2).dim_feedforward(16));
    nn::TransformerEncoder enc(layer, 3, std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({8})));
    const TensorDict sd = enc.state_dict();
    CHECK(sd.contains("layers.2.self_attn.in_proj_weight"));
    CHECK(sd.contains("norm.weight"));
    CHECK_FALSE(sd.contains("layers.3.linear1.weight"));
    const TensorDict l0 = layer->state_dict();
    for (int i = 0; i < 3; ++i)
      for (const auto& [k, v] : l0) CHECK(allclose(sd.at("layers." + std::to_string(i) + "." + k), v, 0, 0));
    // ... but they are copies: training one does not move the others.
    CHECK_FALSE(enc.layer(0)->self_attn()->in_proj_weight().is_same(enc.layer(1)->self_attn()->in_proj_weight()));
    CHECK(enc(randn({4, 2, 8})).shape() == Shape{4, 2, 8});

    auto dl = std::make_shared<nn::TransformerDecoderLayer>(nn::TransformerLayerOptions(8, 2).dim_feedforward(16));
    nn::TransformerDecoder dec(dl, 2);
    CHECK(dec.state_dict().contains("layers.1.multihead_attn.in_proj_weight"));
    CHECK_FALSE(dec.state_dict().contains("norm.weight"));
    CHECK(dec(randn({4, 2, 8}), randn({6, 2, 8})).shape() == Shape{4, 2, 8});
  }

  TEST_CASE("Transformer: defaults, names, shapes, errors") {
    manual_seed(9);
    const nn::TransformerOptions defaults;
    CHECK(defaults.d_model_ == 512);
    CHECK(defaults.nhead_ == 8);
    CHECK(defaults.num_encoder_layers_ == 6);
    CHECK(defaults.num_decoder_layers_ == 6);
    CHECK(defaults.dim_feedforward_ == 2048);
    CHECK(defaults.dropout_ == 0.1);
    CHECK(defaults.activation_ == "relu");
    CHECK(defaults.layer_norm_eps_ == 1e-5);
    nn::Transformer t(nn::TransformerOptions(8, 2).num_encoder_layers(2).num_decoder_layers(1).dim_feedforward(16));
    const auto k = keys(t);
    for (const char* n : {"encoder.layers.0.self_attn.in_proj_weight", "encoder.layers.1.linear2.bias",
                          "encoder.norm.weight", "encoder.norm.bias", "decoder.layers.0.multihead_attn.in_proj_weight",
                          "decoder.layers.0.norm3.weight", "decoder.norm.weight"})
      CHECK_MESSAGE(has(k, n), n);
    CHECK(k.size() == 2 * 12 + 2 + 1 * 18 + 2);
    // _reset_parameters: each matrix re-drawn, so the layers no longer share weights.
    const TensorDict sd = t.state_dict();
    CHECK(max_abs_diff(sd.at("encoder.layers.0.linear1.weight"), sd.at("encoder.layers.1.linear1.weight")) > 0.01);
    const Tensor src = randn({6, 3, 8}), tgt = randn({4, 3, 8});
    const Tensor out = t(src, tgt, {}, nn::generate_square_subsequent_mask(4));
    CHECK(out.shape() == Shape{4, 3, 8});
    CHECK(t(src.select(1, 0), tgt.select(1, 0)).shape() == Shape{4, 8});
    CHECK_THROWS_WITH_AS(t(src, randn({4, 2, 8})), doctest::Contains("the batch number of src and tgt must be equal"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(t(randn({6, 3, 4}), randn({4, 3, 4})),
                         doctest::Contains("the feature number of src and tgt must be equal to d_model"), focus::Error);
    // tgt_is_causal without a mask equals the explicit causal mask.
    t.eval();
    CHECK(allclose(t(src, tgt, {}, {}, {}, {}, {}, {}, false, true), t(src, tgt, {}, nn::generate_square_subsequent_mask(4)),
                   1e-5, 1e-6));
  }

  TEST_CASE("TransformerEncoderLayer and DecoderLayer: gradcheck in float64") {
    manual_seed(10);
    for (bool norm_first : {false, true}) {
      nn::TransformerEncoderLayer enc(
          nn::TransformerLayerOptions(4, 2).dim_feedforward(6).dropout(0).norm_first(norm_first).activation("gelu"));
      enc.to(kFloat64);
      const Tensor x = randn({3, 2, 4}, kFloat64).requires_grad_();
      const Tensor kpm = tensor<bool>({false, false, true, false, false, false}, {2, 3});
      std::vector<Tensor> inputs{x};
      for (auto& p : enc.parameters()) inputs.push_back(p);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) {
        return enc(in[0], nn::generate_square_subsequent_mask(3, kFloat64), kpm);
      }, inputs));
    }
    nn::TransformerDecoderLayer dec(nn::TransformerLayerOptions(4, 2).dim_feedforward(6).dropout(0).batch_first(true));
    dec.to(kFloat64);
    const Tensor tgt = randn({2, 3, 4}, kFloat64).requires_grad_(), mem = randn({2, 2, 4}, kFloat64).requires_grad_();
    std::vector<Tensor> inputs{tgt, mem};
    for (auto& p : dec.parameters()) inputs.push_back(p);
    CHECK(gradcheck([&](const std::vector<Tensor>& in) {
      return dec(in[0], in[1], nn::generate_square_subsequent_mask(3, kFloat64));
    }, inputs));
  }
}

TEST_SUITE("transformer") {

TEST_CASE("is_causal_mask and the causal hint: the same outputs and gradients as the mask") {
  CHECK(nn::is_causal_mask(nn::generate_square_subsequent_mask(5), 5));
  CHECK(nn::is_causal_mask(triu(ones({4, 4}, TensorOptions(kBool)), 1), 4));
  CHECK(nn::is_causal_mask(nn::generate_square_subsequent_mask(3, TensorOptions(kFloat64)), 3));
  CHECK_FALSE(nn::is_causal_mask(nn::generate_square_subsequent_mask(5), 4));
  CHECK_FALSE(nn::is_causal_mask(zeros({5, 5}), 5));
  CHECK_FALSE(nn::is_causal_mask(triu(ones({4, 4}, TensorOptions(kBool)), 2), 4));
  CHECK_FALSE(nn::is_causal_mask(Tensor(), 4));
  // a square mask with one entry changed
  auto with_entry = [](const Tensor& mask, int64_t r, int64_t c, float value) {
    std::vector<float> v = mask.to_vector<float>();
    v[static_cast<size_t>(r * mask.size(1) + c)] = value;
    return tensor(v, mask.shape(), kFloat32);
  };
  CHECK_FALSE(nn::is_causal_mask(with_entry(nn::generate_square_subsequent_mask(4), 3, 0, -1.0f), 4));

  // An encoder given generate_square_subsequent_mask (detected: the kernel's causal path)
  // against the same encoder given the mask plus one key it may not use (not detected:
  // the additive mask path): the key at -1e9 changes nothing, so outputs must agree.
  manual_seed(31);
  auto layer = std::make_shared<nn::TransformerEncoderLayer>(
      nn::TransformerLayerOptions(8, 2).dim_feedforward(16).dropout(0.0).batch_first(true).norm_first(true));
  nn::TransformerEncoder enc(layer, 2);
  const int64_t T = 70;
  Tensor x1 = randn({2, T, 8}).requires_grad_(), x2 = x1.detach().clone().requires_grad_();
  const Tensor causal = nn::generate_square_subsequent_mask(T);
  const Tensor almost = with_entry(causal, T - 1, T - 2, -1e9f);
  CHECK_FALSE(nn::is_causal_mask(almost, T));
  const Tensor y1 = enc.forward(x1, causal), y2 = enc.forward(x2, almost);
  const Tensor y3 = enc.forward(x1.detach(), Tensor(), Tensor(), true);
  // the last row differs (one key less in y2): compare the others
  CHECK(allclose(y1.narrow(1, 0, T - 1), y2.narrow(1, 0, T - 1), 1e-5, 1e-6));
  CHECK(allclose(y1, y3, 1e-6, 1e-7));
  y1.narrow(1, 0, T - 1).sum().backward();
  y2.narrow(1, 0, T - 1).sum().backward();
  CHECK(allclose(x1.grad(), x2.grad(), 1e-4, 1e-5));
}

}  // TEST_SUITE
