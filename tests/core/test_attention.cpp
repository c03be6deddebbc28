// scaled_dot_product_attention: float64 loop references, masks, causal, dropout, broadcast
// batch dims, gradcheck and error messages.
#include <cmath>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

struct Ref {
  Tensor out, weights;
};

// Reference attention on contiguous float64 copies: q [B, L, E], k [B, S, E], v [B, S, Ev]
// after flattening the (already broadcast) batch dims; mask (optional) is expanded to
// [B, L, S]. Rows with nothing to attend to give 0 weights.
Ref ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, bool causal,
                  double scale) {
  const int64_t L = q.size(-2), E = q.size(-1), S = k.size(-2), Ev = v.size(-1);
  Shape batch(q.shape().begin(), q.shape().end() - 2);
  int64_t B = 1;
  for (int64_t s : batch) B *= s;
  auto qv = q.contiguous().to_vector<double>(), kv = k.contiguous().to_vector<double>(),
       vv = v.contiguous().to_vector<double>();
  Shape ms = batch;
  ms.push_back(L);
  ms.push_back(S);
  std::vector<double> mv;
  const bool bool_mask = mask.defined() && mask.dtype() == kBool;
  if (mask.defined()) mv = mask.expand(ms).contiguous().to_vector<double>();
  std::vector<double> out(static_cast<size_t>(B * L * Ev), 0.0), w(static_cast<size_t>(B * L * S), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      std::vector<double> z(static_cast<size_t>(S));
      double mx = -INFINITY;
      for (int64_t s = 0; s < S; ++s) {
        double d = 0;
        for (int64_t e = 0; e < E; ++e) d += qv[(b * L + l) * E + e] * kv[(b * S + s) * E + e];
        d *= scale;
        const double m = mask.defined() ? mv[(b * L + l) * S + s] : 0.0;
        if (bool_mask) d = m != 0 ? d : -INFINITY;
        else d += m;
        if (causal && s > l) d = -INFINITY;
        z[s] = d;
        mx = std::max(mx, d);
      }
      if (mx == -INFINITY) continue;
      double sum = 0;
      for (int64_t s = 0; s < S; ++s) sum += std::exp(z[s] - mx);
      for (int64_t s = 0; s < S; ++s) {
        const double p = std::exp(z[s] - mx) / sum;
        w[(b * L + l) * S + s] = p;
        for (int64_t e = 0; e < Ev; ++e) out[(b * L + l) * Ev + e] += p * vv[(b * S + s) * Ev + e];
      }
    }
  Shape os = batch;
  os.push_back(L);
  os.push_back(Ev);
  return {tensor<double>(out, os), tensor<double>(w, ms)};
}

std::tuple<Tensor, Tensor> sdpa(const Tensor& q, const Tensor& k, const Tensor& v, AttentionOptions o = {}) {
  return scaled_dot_product_attention(q, k, v, o.need_weights(true));
}

}  // namespace

TEST_SUITE("attention") {

TEST_CASE("forward against float64 loops: shapes, scale, float32, positional form") {
  manual_seed(21);
  Tensor q = randn({2, 3, 4, 5}, kFloat64), k = randn({2, 3, 6, 5}, kFloat64), v = randn({2, 3, 6, 7}, kFloat64);
  auto [o, w] = sdpa(q, k, v);
  Ref r = ref_attention(q, k, v, {}, false, 1 / std::sqrt(5.0));
  CHECK(o.shape() == Shape{2, 3, 4, 7});
  CHECK(w.shape() == Shape{2, 3, 4, 6});
  CHECK(allclose(o, r.out, 1e-12, 1e-12));
  CHECK(allclose(w, r.weights, 1e-12, 1e-12));
  auto [o2, w2] = sdpa(q, k, v, AttentionOptions().scale(0.37));
  Ref r2 = ref_attention(q, k, v, {}, false, 0.37);
  CHECK(allclose(o2, r2.out, 1e-12, 1e-12));
  CHECK(allclose(scaled_dot_product_attention(q, k, v, {}, 0.0, false, 0.37), r2.out, 1e-12, 1e-12));
  // weights are not returned unless asked for
  CHECK_FALSE(std::get<1>(scaled_dot_product_attention(q, k, v, AttentionOptions())).defined());
  // float32
  Tensor o32 = scaled_dot_product_attention(q.to(kFloat32), k.to(kFloat32), v.to(kFloat32));
  CHECK(o32.dtype() == kFloat32);
  CHECK(allclose(o32, r.out, 1e-4, 1e-5));
  // 2-D inputs (no batch dims) and a single key
  Tensor q2 = randn({3, 4}, kFloat64), k2 = randn({1, 4}, kFloat64), v2 = randn({1, 2}, kFloat64);
  CHECK(allclose(scaled_dot_product_attention(q2, k2, v2), v2.expand({3, 2}), 1e-14));
}

TEST_CASE("masks: bool (true = attend), additive float, causal, broadcast, fully masked rows") {
  manual_seed(22);
  Tensor q = randn({2, 2, 4, 3}, kFloat64), k = randn({2, 2, 5, 3}, kFloat64), v = randn({2, 2, 5, 2}, kFloat64);
  const double sc = 1 / std::sqrt(3.0);
  // [L, S] bool mask shared by every batch entry
  Tensor bm = gt(rand({4, 5}, kFloat64), 0.3);
  {
    auto [o, w] = sdpa(q, k, v, AttentionOptions().attn_mask(bm));
    Ref r = ref_attention(q, k, v, bm, false, sc);
    CHECK(allclose(o, r.out, 1e-12, 1e-12));
    CHECK(allclose(w, r.weights, 1e-12, 1e-12));
  }
  // key padding mask [B, 1, 1, S] with one fully masked batch entry
  Tensor kp = tensor<bool>({true, true, false, true, false, false, false, false, false, false}, {2, 1, 1, 5});
  {
    auto [o, w] = sdpa(q, k, v, AttentionOptions().attn_mask(kp));
    Ref r = ref_attention(q, k, v, kp, false, sc);
    CHECK(allclose(o, r.out, 1e-12, 1e-12));
    CHECK(allclose(w, r.weights, 1e-12, 1e-12));
    // fully masked rows: zeros, not NaN
    for (double x : o.select(0, 1).contiguous().to_vector<double>()) CHECK(x == 0.0);
    for (double x : w.select(0, 1).contiguous().to_vector<double>()) CHECK(x == 0.0);
  }
  // additive float mask [2, 1, 4, 5] with -inf entries, including a whole row
  Tensor fm = randn({2, 1, 4, 5}, kFloat64);
  fm = masked_fill(fm, gt(rand({2, 1, 4, 5}, kFloat64), 0.7), -INFINITY);
  fm = masked_fill(fm, tensor<bool>({false, true, false, false}, {1, 1, 4, 1}), -INFINITY);
  {
    auto [o, w] = sdpa(q, k, v, AttentionOptions().attn_mask(fm));
    Ref r = ref_attention(q, k, v, fm, false, sc);
    CHECK(allclose(o, r.out, 1e-12, 1e-12));
    CHECK(allclose(w, r.weights, 1e-12, 1e-12));
  }
  // causal, top-left aligned, for L < S and L > S
  for (auto [L, S] : {std::pair<int64_t, int64_t>{4, 5}, {5, 3}, {4, 4}}) {
    Tensor qc = randn({2, L, 3}, kFloat64), kc = randn({2, S, 3}, kFloat64), vc = randn({2, S, 2}, kFloat64);
    auto [o, w] = sdpa(qc, kc, vc, AttentionOptions().is_causal(true));
    Ref r = ref_attention(qc, kc, vc, {}, true, sc);
    CHECK(allclose(o, r.out, 1e-12, 1e-12));
    CHECK(allclose(w, r.weights, 1e-12, 1e-12));
    CHECK(w.select(-2, 0).select(-1, 0).to_vector<double>() == std::vector<double>{1.0, 1.0});
  }
}

TEST_CASE("non-contiguous and broadcast inputs") {
  manual_seed(23);
  // q from [B, L, H, E] transposed to [B, H, L, E] (the MultiheadAttention layout)
  Tensor q = randn({2, 4, 3, 5}, kFloat64).transpose(1, 2);
  // k and v shared by every head: [B, 1, S, E] broadcast against q's [B, H, ...]
  Tensor k = randn({2, 1, 6, 5}, kFloat64), v = randn({2, 1, 6, 2}, kFloat64);
  auto [o, w] = sdpa(q, k, v);
  CHECK(o.shape() == Shape{2, 3, 4, 2});
  Ref r = ref_attention(q, k.expand({2, 3, 6, 5}), v.expand({2, 3, 6, 2}), {}, false, 1 / std::sqrt(5.0));
  CHECK(allclose(o, r.out, 1e-12, 1e-12));
  CHECK(allclose(w, r.weights, 1e-12, 1e-12));
  // k given transposed in memory (column stride != 1) and v as an expanded view
  Tensor kt = randn({2, 3, 5, 6}, kFloat64).transpose(-1, -2);
  Tensor ve = randn({6, 2}, kFloat64).expand({2, 3, 6, 2});
  Tensor qs = randn({2, 3, 8, 5}, kFloat64).slice(2, 0, std::nullopt, 2);
  auto [o2, w2] = sdpa(qs, kt, ve);
  Ref r2 = ref_attention(qs, kt, ve, {}, false, 1 / std::sqrt(5.0));
  CHECK(allclose(o2, r2.out, 1e-12, 1e-12));
  // a larger batch runs its entries in parallel: same values as entry-by-entry
  Tensor qb = randn({16, 32, 16}), kb = randn({16, 24, 16}), vb = randn({16, 24, 8});
  Tensor ob = scaled_dot_product_attention(qb, kb, vb, {}, 0.0, true);
  Ref rb = ref_attention(qb, kb, vb, {}, true, 0.25);
  CHECK(allclose(ob, rb.out, 1e-4, 1e-5));
}

TEST_CASE("empty dims") {
  Tensor q = zeros({2, 0, 3}, kFloat64), k = ones({2, 4, 3}, kFloat64), v = ones({2, 4, 5}, kFloat64);
  CHECK(scaled_dot_product_attention(q, k, v).shape() == Shape{2, 0, 5});
  // no keys at all: nothing to attend to, output 0
  Tensor o = scaled_dot_product_attention(ones({2, 3, 3}), zeros({2, 0, 3}), zeros({2, 0, 5}));
  CHECK(o.shape() == Shape{2, 3, 5});
  CHECK(o.to_vector<float>() == std::vector<float>(30, 0.f));
  // zero batch
  CHECK(scaled_dot_product_attention(zeros({0, 3, 2}), zeros({0, 4, 2}), zeros({0, 4, 2})).shape() == Shape{0, 3, 2});
  // E = 0: uniform weights
  Tensor oe = scaled_dot_product_attention(zeros({1, 2, 0}, kFloat64), zeros({1, 4, 0}, kFloat64),
                                           arange(8, kFloat64).view({1, 4, 2}), {}, 0.0, false, 1.0);
  CHECK(allclose(oe, tensor<double>({3, 4, 3, 4}, {1, 2, 2})));
}

TEST_CASE("dropout on the weights") {
  manual_seed(24);
  Tensor q = randn({2, 3, 4}, kFloat64), k = randn({2, 5, 4}, kFloat64), v = randn({2, 5, 3}, kFloat64);
  const double p = 0.4;
  auto [o, w] = sdpa(q, k, v, AttentionOptions().dropout_p(p));
  Ref r = ref_attention(q, k, v, {}, false, 0.5);
  auto wv = w.to_vector<double>(), rv = r.weights.to_vector<double>();
  int64_t dropped = 0;
  for (size_t i = 0; i < wv.size(); ++i) {
    CHECK((wv[i] == 0.0 || wv[i] == doctest::Approx(rv[i] / (1 - p)).epsilon(1e-12)));
    dropped += wv[i] == 0.0;
  }
  CHECK(dropped > 0);
  CHECK(dropped < static_cast<int64_t>(wv.size()));
  // the output is the dropped weights times v
  Ref via = ref_attention(q, k, v, {}, false, 0.5);
  auto vv = v.to_vector<double>();
  std::vector<double> expect(2 * 3 * 3, 0.0);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t l = 0; l < 3; ++l)
      for (int64_t s = 0; s < 5; ++s)
        for (int64_t e = 0; e < 3; ++e) expect[(b * 3 + l) * 3 + e] += wv[(b * 3 + l) * 5 + s] * vv[(b * 5 + s) * 3 + e];
  CHECK(allclose(o, tensor<double>(expect, {2, 3, 3}), 1e-12, 1e-12));
  // reproducible under manual_seed, different on the next call
  manual_seed(5);
  Tensor a = scaled_dot_product_attention(q, k, v, {}, p);
  Tensor a2 = scaled_dot_product_attention(q, k, v, {}, p);
  manual_seed(5);
  CHECK(allclose(scaled_dot_product_attention(q, k, v, {}, p), a, 0, 0));
  CHECK(a2.to_vector<double>() != a.to_vector<double>());
  // p = 1 drops everything
  CHECK(scaled_dot_product_attention(q, k, v, {}, 1.0).to_vector<double>() == std::vector<double>(18, 0.0));
}

TEST_CASE("gradcheck: plain, masks, causal, dropout, returned weights") {
  manual_seed(25);
  auto mk = [](const Shape& s) { return randn(s, kFloat64).requires_grad_(); };
  Tensor q = mk({2, 3, 4}), k = mk({2, 5, 4}), v = mk({2, 5, 3});
  auto run = [&](AttentionOptions o) {
    return gradcheck([o](const std::vector<Tensor>& in) { return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2], o)); },
                     {q, k, v});
  };
  CHECK(run(AttentionOptions()));
  CHECK(run(AttentionOptions().scale(0.8)));
  CHECK(run(AttentionOptions().is_causal(true)));
  // bool mask with one fully masked row (its gradient is 0)
  Tensor bm = tensor<bool>({true, false, true, true, false, false, false, false, false, false, true, true, true, false,
                            true},
                           {3, 5});
  CHECK(run(AttentionOptions().attn_mask(bm)));
  // additive float mask, itself differentiable (full shape: no reduction needed)
  Tensor fm = mk({2, 3, 5});
  CHECK(gradcheck([](const std::vector<Tensor>& in) {
    return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().attn_mask(in[3])));
  }, {q, k, v, fm}));
  // an additive mask that needs no gradient, broadcast over the batch
  Tensor fm2 = randn({3, 5}, kFloat64);
  CHECK(run(AttentionOptions().attn_mask(fm2)));
  // dropout: reseed inside f so every evaluation draws the same mask
  CHECK(gradcheck([](const std::vector<Tensor>& in) {
    manual_seed(3);
    return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().dropout_p(0.3)));
  }, {q, k, v}));
  // the returned weights are differentiable, with and without dropout
  for (double p : {0.0, 0.5}) {
    CHECK(gradcheck([p](const std::vector<Tensor>& in) {
      manual_seed(4);
      return std::get<1>(scaled_dot_product_attention(
          in[0], in[1], in[2], AttentionOptions().dropout_p(p).need_weights(true).is_causal(true)));
    }, {q, k, v}));
  }
  // non-contiguous q (transposed) and k (column stride != 1), 4-D
  Tensor q4 = randn({1, 3, 2, 4}, kFloat64).transpose(1, 2).requires_grad_();
  Tensor k4 = randn({1, 2, 4, 3}, kFloat64).transpose(-1, -2).requires_grad_();
  Tensor v4 = mk({1, 2, 3, 2});
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); },
                  {q4, k4, v4}));
  // only some inputs require grad
  Tensor kk = randn({2, 5, 4}, kFloat64);
  CHECK(gradcheck([kk](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], kk, in[1]); },
                  {q, v}));
  Tensor out = scaled_dot_product_attention(q, k, v);
  CHECK(out.grad_fn()->name() == "ScaledDotProductAttentionBackward0");
}

TEST_CASE("errors") {
  Tensor q = zeros({2, 3, 4}), k = zeros({2, 5, 4}), v = zeros({2, 5, 6});
  const std::string op = "[scaled_dot_product_attention] ";
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, ones({3, 5}, kBool), 0.0, true),
                       (op + "explicit attn_mask should not be set when is_causal=True").c_str(), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, zeros({2, 5, 3}), v),
                       (op + "query and key must have the same embedding size, got [2, 3, 4] and [2, 5, 3]").c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, zeros({2, 4, 6})),
                       (op + "key and value must have the same sequence length, got [2, 5, 4] and [2, 4, 6]").c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k.to(kFloat64), v),
                       (op + "expected query, key and value of one dtype, got float32, float64 and float32").c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({4}), k, v),
                       (op + "query, key and value need at least 2 dims ([..., L, E]), got [4], [2, 5, 4] and [2, 5, 6]")
                           .c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, zeros({3, 5}, kInt64)),
                       (op + "attn_mask must be bool or of the query's dtype float32, got int64").c_str(), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, zeros({3, 5}, kFloat64)),
                       (op + "attn_mask must be bool or of the query's dtype float32, got float64").c_str(), Error);
  CHECK_THROWS_WITH_AS(
      scaled_dot_product_attention(q, k, v, ones({3, 4}, kBool)),
      (op + "attn_mask of shape [3, 4] cannot be broadcast to the attention scores' shape [2, 3, 5]").c_str(), Error);
  CHECK_THROWS_WITH_AS(
      scaled_dot_product_attention(q, k, v, ones({2, 2, 3, 5}, kBool)),
      (op + "attn_mask of shape [2, 2, 3, 5] cannot be broadcast to the attention scores' shape [2, 3, 5]").c_str(),
      Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v, {}, 1.5),
                       (op + "dropout_p must be between 0 and 1, got 1.5").c_str(), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({3, 3, 4}), k, v),
                       (op + "shapes [3] and [2] cannot be broadcast together (dim -1: 3 vs 2)").c_str(), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({2, 3, 4}, kInt64), k, v),
                       (op + "expected a floating point 'query', got int64").c_str(), Error);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, Tensor(), v), (op + "argument 'key' is an undefined tensor").c_str(),
                       Error);
  // double backward through the fused kernel is refused
  Tensor qg = randn({1, 2, 2}, kFloat64).requires_grad_();
  Tensor out = scaled_dot_product_attention(qg, qg, qg);
  CHECK_THROWS_WITH_AS(autograd::grad({out}, {qg}, {ones_like(out)}, true, true),
                       "[backward] double backward (create_graph=true) through ScaledDotProductAttentionBackward0 is not "
                       "supported",
                       Error);
}

}  // TEST_SUITE
