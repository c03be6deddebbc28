// scaled_dot_product_attention: float64 loop references, masks, causal, dropout, broadcast
// batch dims, the saved logsumexp (the backward recomputes the probabilities), gradcheck and
// error messages.
#include <cmath>
#include <limits>

#include "core/ops/attention.h"
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

TEST_CASE("raw op saves the row logsumexp [B..., L], not the [B..., L, S] probabilities") {
  manual_seed(26);
  const double inf = std::numeric_limits<double>::infinity();
  // q [2, 3, 4, 5] against k / v shared by the heads [2, 1, 6, 5]; batch entry 1 has no key.
  Tensor q = randn({2, 3, 4, 5}, kFloat64), k = randn({2, 1, 6, 5}, kFloat64), v = randn({2, 1, 6, 2}, kFloat64);
  Tensor kp = tensor<bool>({true, false, true, true, false, true, false, false, false, false, false, false},
                           {2, 1, 1, 6});
  const double sc = 1 / std::sqrt(5.0);
  raw::AttentionResult r = raw::scaled_dot_product_attention(q, k, v, kp, 0.0, false, std::nullopt, false);
  CHECK(r.out.shape() == Shape{2, 3, 4, 2});
  CHECK(r.lse.shape() == Shape{2, 3, 4});
  CHECK(r.lse.dtype() == kFloat64);
  CHECK(r.lse.is_contiguous());
  CHECK_FALSE(r.weights.defined());  // nothing [B, L, S] is kept without need_weights
  CHECK(r.batch == Shape{2, 3});
  CHECK(r.scale == doctest::Approx(sc));
  // lse = logsumexp of the masked, scaled scores; +inf on the rows with no allowed key
  Tensor z = masked_fill(matmul(q, k.transpose(-1, -2)) * sc, logical_not(kp), -inf);
  Tensor ref = logsumexp(z, {-1});
  CHECK(allclose(r.lse.select(0, 0), ref.select(0, 0), 1e-13, 1e-13));
  for (double x : r.lse.select(0, 1).contiguous().to_vector<double>()) CHECK(x == inf);
  Ref rr = ref_attention(q, k.expand({2, 3, 6, 5}), v.expand({2, 3, 6, 2}), kp, false, sc);
  CHECK(allclose(r.out, rr.out, 1e-12, 1e-12));
  // float32 inputs give a float32 lse; need_weights adds the weights [B..., L, S] = exp(Z - lse)
  raw::AttentionResult r32 = raw::scaled_dot_product_attention(q.to(kFloat32), k.to(kFloat32), v.to(kFloat32), kp,
                                                               0.0, false, std::nullopt, true);
  CHECK(r32.lse.dtype() == kFloat32);
  CHECK(r32.lse.shape() == Shape{2, 3, 4});
  CHECK(allclose(r32.lse.select(0, 0), ref.select(0, 0), 1e-5, 1e-5));
  CHECK(r32.weights.shape() == Shape{2, 3, 4, 6});
  CHECK(allclose(r32.weights, rr.weights, 1e-5, 1e-6));
  // causal: row l sees keys 0..l; with L > S every row still has key 0
  Tensor qc = randn({3, 5, 4}, kFloat64), kc = randn({3, 3, 4}, kFloat64), vc = randn({3, 3, 2}, kFloat64);
  raw::AttentionResult rc = raw::scaled_dot_product_attention(qc, kc, vc, {}, 0.0, true, 0.5, false);
  Tensor zc = masked_fill(matmul(qc, kc.transpose(-1, -2)) * 0.5,
                          logical_not(tensor<bool>({1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {5, 3})), -inf);
  CHECK(allclose(rc.lse, logsumexp(zc, {-1}), 1e-13, 1e-13));
  // no keys at all: every row is fully masked
  raw::AttentionResult r0 = raw::scaled_dot_product_attention(ones({2, 3, 3}, kFloat64), zeros({2, 0, 3}, kFloat64),
                                                              zeros({2, 0, 5}, kFloat64), {}, 0.0, false,
                                                              std::nullopt, false);
  CHECK(r0.lse.to_vector<double>() == std::vector<double>(6, inf));
  CHECK(r0.out.to_vector<double>() == std::vector<double>(30, 0.0));
}

TEST_CASE("raw backward from lse against the composite matmul + softmax graph") {
  manual_seed(27);
  // additive float mask [2, 1, 4, 6] broadcast over 3 heads, with -inf entries and one
  // fully masked row; every gradient (grad_mask included) against autograd through
  // matmul / softmax / matmul, where the probabilities are kept
  Tensor q = randn({2, 3, 4, 5}, kFloat64), k = randn({2, 3, 6, 5}, kFloat64), v = randn({2, 1, 6, 2}, kFloat64);
  Tensor fm = randn({2, 1, 4, 6}, kFloat64);
  fm = masked_fill(fm, gt(rand({2, 1, 4, 6}, kFloat64), 0.7), -INFINITY);
  fm = masked_fill(fm, tensor<bool>({false, false, true, false}, {1, 1, 4, 1}), -INFINITY);
  const double sc = 0.6;
  raw::AttentionResult r = raw::scaled_dot_product_attention(q, k, v, fm, 0.0, false, sc, true);
  Tensor go = randn({2, 3, 4, 2}, kFloat64), gw = randn({2, 3, 4, 6}, kFloat64);
  raw::AttentionGrads g = raw::scaled_dot_product_attention_backward(go, gw, q, k, v, fm, false, r.out, r.lse, r.batch,
                                                                     sc, 0.0, r.rng, true, true, true, true);
  CHECK(g.q.shape() == Shape{2, 3, 4, 5});
  CHECK(g.k.shape() == Shape{2, 3, 6, 5});
  CHECK(g.v.shape() == Shape{2, 3, 6, 2});  // at the broadcast batch shape
  CHECK(g.mask.shape() == Shape{2, 3, 4, 6});
  Tensor qg = q.clone().requires_grad_(), kg = k.clone().requires_grad_(), vg = v.clone().requires_grad_();
  Tensor zq = matmul(qg, kg.transpose(-1, -2)) * sc;
  Tensor zr = (zq.detach() + fm.expand({2, 3, 4, 6})).requires_grad_();
  // the fully masked row: its probabilities are zeroed by hand (softmax of a row of -inf)
  Tensor allowed = logical_not(tensor<bool>({false, false, true, false}, {1, 1, 4, 1}));
  Tensor pr = where(allowed, softmax(zr, -1), 0.0);
  Tensor outr = matmul(pr, vg);
  CHECK(allclose(r.out, outr, 1e-12, 1e-12));
  CHECK(allclose(r.weights, pr, 1e-12, 1e-12));
  ((outr * go).sum() + (pr * gw).sum()).backward();
  const Tensor dz = where(allowed, zr.grad(), 0.0);
  CHECK(allclose(g.mask, dz, 1e-10, 1e-12));
  CHECK(allclose(g.v.sum({1}, true), vg.grad(), 1e-10, 1e-12));
  zq.backward(dz);
  CHECK(allclose(g.q, qg.grad(), 1e-10, 1e-12));
  CHECK(allclose(g.k, kg.grad(), 1e-10, 1e-12));
  // only grad_v wanted: still needs the scores recomputed; matches
  raw::AttentionGrads gv = raw::scaled_dot_product_attention_backward(
      go, {}, q, k, v, fm, false, r.out, r.lse, r.batch, sc, 0.0, r.rng, false, false, true, false);
  CHECK_FALSE(gv.q.defined());
  CHECK_FALSE(gv.mask.defined());
  CHECK(allclose(gv.v.sum({1}, true), vg.grad(), 1e-10, 1e-12));
}

TEST_CASE("gradcheck with the recomputed probabilities: every mask kind, dropout, broadcast, weights") {
  manual_seed(28);
  auto mk = [](const Shape& s) { return randn(s, kFloat64).requires_grad_(); };
  // 4-D with heads so that the batch parallel path runs too
  Tensor q = mk({2, 2, 3, 4}), k = mk({2, 2, 5, 4}), v = mk({2, 2, 5, 3});
  auto out_of = [](AttentionOptions o) {
    return [o](const std::vector<Tensor>& in) { return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2], o)); };
  };
  SUBCASE("no mask") { CHECK(gradcheck(out_of(AttentionOptions()), {q, k, v})); }
  SUBCASE("bool mask, broadcast [L, S], with a fully masked row") {
    Tensor bm = tensor<bool>({true, false, true, true, false, false, false, false, false, false, true, true, true,
                              false, true},
                             {3, 5});
    CHECK(gradcheck(out_of(AttentionOptions().attn_mask(bm)), {q, k, v}));
  }
  SUBCASE("key padding mask with a fully masked batch entry (zero gradient there)") {
    Tensor kp = tensor<bool>({true, true, false, true, false, false, false, false, false, false}, {2, 1, 1, 5});
    CHECK(gradcheck(out_of(AttentionOptions().attn_mask(kp)), {q, k, v}));
    Tensor qq = q.detach().requires_grad_(), kk = k.detach().requires_grad_(), vv = v.detach().requires_grad_();
    auto [o, w] = scaled_dot_product_attention(qq, kk, vv, AttentionOptions().attn_mask(kp).need_weights(true));
    (o.sum() + w.sum()).backward();
    for (const Tensor& gr : {qq.grad(), kk.grad(), vv.grad()})
      for (double x : gr.select(0, 1).contiguous().to_vector<double>()) CHECK(x == 0.0);
    for (double x : qq.grad().select(0, 0).contiguous().to_vector<double>()) CHECK(std::isfinite(x));
  }
  SUBCASE("additive float mask with its gradient, broadcast over batch and heads, -inf entries") {
    Tensor fm = randn({3, 5}, kFloat64);
    fm = masked_fill(fm, tensor<bool>({false, true, false, false, false, true, true, true, true, true, false, false,
                                       true, false, false},
                                      {3, 5}),
                     -INFINITY)
             .requires_grad_();  // row 1 fully masked
    CHECK(gradcheck([](const std::vector<Tensor>& in) {
      return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().attn_mask(in[3])));
    }, {q, k, v, fm}));
    // its gradient is 0 at -inf entries and on the fully masked row, and sums over the batch
    Tensor fmg = fm.detach().requires_grad_();
    std::get<0>(scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), AttentionOptions().attn_mask(fmg)))
        .sum()
        .backward();
    CHECK(fmg.grad().shape() == Shape{3, 5});
    for (double x : fmg.grad().select(0, 1).to_vector<double>()) CHECK(x == 0.0);
    CHECK(fmg.grad().select(0, 0).to_vector<double>()[1] == 0.0);
  }
  SUBCASE("additive float mask [B, 1, L, S] with grad, with need_weights") {
    Tensor fm = mk({2, 1, 3, 5});
    CHECK(gradcheck([](const std::vector<Tensor>& in) {
      auto [o, w] = scaled_dot_product_attention(in[0], in[1], in[2],
                                                 AttentionOptions().attn_mask(in[3]).need_weights(true));
      return o.sum() + (w * w).sum();
    }, {q, k, v, fm}));
  }
  SUBCASE("causal, L < S, L > S") {
    CHECK(gradcheck(out_of(AttentionOptions().is_causal(true)), {q, k, v}));
    Tensor q6 = mk({2, 6, 4}), k3 = mk({2, 3, 4}), v3 = mk({2, 3, 2});
    CHECK(gradcheck(out_of(AttentionOptions().is_causal(true).scale(0.7)), {q6, k3, v3}));
  }
  SUBCASE("dropout with a fixed stream") {
    for (bool causal : {false, true})
      CHECK(gradcheck([causal](const std::vector<Tensor>& in) {
        manual_seed(3);
        return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2],
                                                        AttentionOptions().dropout_p(0.3).is_causal(causal)));
      }, {q, k, v}));
  }
  SUBCASE("broadcast batch dims: k and v shared by the heads, q broadcast over the batch") {
    Tensor kb = mk({2, 1, 5, 4}), vb = mk({2, 1, 5, 3}), qb = mk({1, 2, 3, 4});
    CHECK(gradcheck(out_of(AttentionOptions()), {q, kb, vb}));
    CHECK(gradcheck(out_of(AttentionOptions().is_causal(true)), {qb, kb, vb}));
    // k as a stride-0 expanded view of a 2-D tensor
    Tensor k2 = mk({5, 4});
    CHECK(gradcheck([](const std::vector<Tensor>& in) {
      return scaled_dot_product_attention(in[0], in[1].expand({2, 2, 5, 4}), in[2]);
    }, {q, k2, v}));
  }
  SUBCASE("need_weights: gradient through the returned weights alone and with the output") {
    for (double p : {0.0, 0.4}) {
      CHECK(gradcheck([p](const std::vector<Tensor>& in) {
        manual_seed(6);
        auto [o, w] = scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().dropout_p(p).need_weights(true));
        return w;
      }, {q, k, v}));
      Tensor bm = gt(rand({2, 1, 3, 5}, kFloat64), 0.4), cw = randn({2, 2, 3, 5}, kFloat64);
      CHECK(gradcheck([p, bm, cw](const std::vector<Tensor>& in) {
        manual_seed(7);
        auto [o, w] = scaled_dot_product_attention(
            in[0], in[1], in[2], AttentionOptions().attn_mask(bm).dropout_p(p).need_weights(true));
        return (o * 0.5).sum() + (w * cw).sum() + (w * w).sum() + o.select(-1, 0).sum();
      }, {q, k, v}));
    }
  }
}

TEST_CASE("float32 gradients from the float32 lse match float64") {
  manual_seed(29);
  Tensor q = randn({4, 16, 8}, kFloat64), k = randn({4, 24, 8}, kFloat64), v = randn({4, 24, 8}, kFloat64);
  Tensor go = randn({4, 16, 8}, kFloat64);
  for (bool causal : {false, true}) {
    std::vector<Tensor> g64, g32;
    for (DType dt : {kFloat64, kFloat32}) {
      Tensor a = q.to(dt).detach().requires_grad_(), b = k.to(dt).detach().requires_grad_(),
             c = v.to(dt).detach().requires_grad_();
      Tensor o = scaled_dot_product_attention(a, b, c, {}, 0.0, causal);
      o.backward(go.to(dt));
      auto& dst = dt == kFloat64 ? g64 : g32;
      dst = {a.grad(), b.grad(), c.grad()};
    }
    for (int i = 0; i < 3; ++i) CHECK(allclose(g32[i], g64[i], 1e-4, 1e-5));
  }
}

TEST_CASE("query blocks: rows past one block, causal with L != S, masks, weights and gradients") {
  // The CPU kernel runs in blocks of 64 query rows (with is_causal, each block only over
  // the keys its rows see): lengths across block edges against the float64 loops and the
  // composite matmul + softmax graph.
  manual_seed(41);
  struct Case {
    int64_t L, S;
  };
  for (const Case& c : {Case{150, 150}, Case{150, 100}, Case{100, 170}, Case{65, 3}, Case{64, 64}}) {
    for (bool causal : {false, true}) {
      for (bool masked : {false, true}) {
        if (causal && masked) continue;
        INFO("L " << c.L << " S " << c.S << " causal " << causal << " mask " << masked);
        const Tensor q = randn({2, 2, c.L, 4}, kFloat64), k = randn({2, 2, c.S, 4}, kFloat64),
                     v = randn({2, 2, c.S, 3}, kFloat64);
        // a bool mask allowing ~70% of the keys, key 0 always (no fully masked rows)
        Tensor bm;
        if (masked) bm = logical_or(gt(rand({c.L, c.S}, kFloat64), 0.3), eq(arange(c.S, TensorOptions(kInt64)), 0));
        const double sc = 0.45;
        AttentionOptions o = AttentionOptions().is_causal(causal).scale(sc).need_weights(true);
        if (masked) o.attn_mask(bm);
        Tensor qg = q.clone().requires_grad_(), kg = k.clone().requires_grad_(), vg = v.clone().requires_grad_();
        auto [out, w] = scaled_dot_product_attention(qg, kg, vg, o);
        const Ref r = ref_attention(q, k, v, bm, causal, sc);
        CHECK(allclose(out, r.out, 1e-12, 1e-12));
        CHECK(allclose(w, r.weights, 1e-12, 1e-12));
        const Tensor go = randn(out.shape(), kFloat64), gw = randn(w.shape(), kFloat64);
        ((out * go).sum() + (w * gw).sum()).backward();
        // composite: scores, masks as -inf, softmax, product
        Tensor qc = q.clone().requires_grad_(), kc = k.clone().requires_grad_(), vc = v.clone().requires_grad_();
        Tensor z = matmul(qc, kc.transpose(-1, -2)) * sc;
        Tensor allow = ones({c.L, c.S}, TensorOptions(kBool));
        if (masked) allow = bm;
        if (causal) allow = logical_and(allow, tril(ones({c.L, c.S}, TensorOptions(kBool))));
        const Tensor pc = softmax(masked_fill(z, logical_not(allow), -INFINITY), -1);
        const Tensor oc = matmul(pc, vc);
        ((oc * go).sum() + (pc * gw).sum()).backward();
        CHECK(allclose(qg.grad(), qc.grad(), 1e-10, 1e-12));
        CHECK(allclose(kg.grad(), kc.grad(), 1e-10, 1e-12));
        CHECK(allclose(vg.grad(), vc.grad(), 1e-10, 1e-12));
      }
    }
  }
  // dropout across blocks: the returned (dropped) weights times v give the output, and
  // gradients pass gradcheck with the stream fixed
  auto mk = [](const Shape& s) { return randn(s, kFloat64).requires_grad_(); };
  const Tensor q = mk({1, 70, 2}), k = mk({1, 70, 2}), v = mk({1, 70, 2});
  for (bool causal : {false, true}) {
    manual_seed(3);
    auto [o, w] = scaled_dot_product_attention(q, k, v, AttentionOptions().dropout_p(0.3).is_causal(causal).need_weights(true));
    CHECK(allclose(o, matmul(w, v), 1e-12, 1e-12));
    CHECK(gradcheck(
        [causal](const std::vector<Tensor>& in) {
          manual_seed(3);
          return std::get<0>(
              scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().dropout_p(0.3).is_causal(causal)));
        },
        {q, k, v}));
  }
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
