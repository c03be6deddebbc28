// FlashAttention-2's tiling on the host (backends/cpu/flash_attention.cpp, the math of
// backends/common/flash.h that the CUDA kernels share): the online-softmax merge against a
// one-pass softmax, the flash path against the composed path (forward and every gradient,
// lengths across the 64-row and 64-key tile edges, every mask kind, causal with L != S,
// dropout from the same Philox stream, broadcast and strided inputs, empty rows), gradcheck
// in float64, and SDPBackend / SdpaKernelGuard semantics.
#include <cmath>
#include <limits>

#include "backends/common/flash.h"
#include "core/ops/attention.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

// Output and the gradients of q, k, v (and of an additive mask when it requires grad) under
// the given backend, from fresh leaves holding the same values.
std::vector<Tensor> run(SDPBackend backend, const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionOptions& o, uint64_t seed = 5) {
  SdpaKernelGuard guard({backend});
  Tensor a = q.detach().requires_grad_(), b = k.detach().requires_grad_(), c = v.detach().requires_grad_();
  AttentionOptions oo = o;
  Tensor m;
  if (o.attn_mask_.defined() && o.attn_mask_.is_floating_point()) {
    m = o.attn_mask_.detach().requires_grad_();
    oo.attn_mask(m);
  }
  manual_seed(seed);
  Tensor out = std::get<0>(scaled_dot_product_attention(a, b, c, oo));
  manual_seed(99);
  Tensor go = randn(out.shape(), out.dtype());
  out.backward(go);
  std::vector<Tensor> r{out, a.grad(), b.grad(), c.grad()};
  if (m.defined()) r.push_back(m.grad());
  return r;
}

void check_same(const std::vector<Tensor>& flash, const std::vector<Tensor>& math, double rtol, double atol) {
  REQUIRE(flash.size() == math.size());
  const char* names[] = {"out", "grad_q", "grad_k", "grad_v", "grad_mask"};
  for (size_t i = 0; i < flash.size(); ++i) {
    INFO(names[i]);
    CHECK(allclose(flash[i], math[i], rtol, atol));
  }
}

}  // namespace

TEST_CASE("flash math: the online merge over tiles equals a one-pass softmax") {
  // Scores in three tiles, including a tile of -inf only and a later larger max.
  const double z[] = {0.5, -1.0, -INFINITY, -INFINITY, -INFINITY, 3.0, 2.5, -0.25};
  const double v[] = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0};
  double m = -INFINITY, l = 0, acc = 0;
  for (int t0 : {0, 2, 5}) {
    const int t1 = t0 == 0 ? 2 : t0 == 2 ? 5 : 8;
    double tmax = -INFINITY;
    for (int j = t0; j < t1; ++j) tmax = std::max(tmax, z[j]);
    const double c = common::flash_rescale(m, tmax);
    l *= c;
    acc *= c;
    for (int j = t0; j < t1; ++j) {
      const double p = common::flash_prob(z[j], m);
      l += p;
      acc += p * v[j];
    }
  }
  double lse = 0;
  const double out = acc * common::flash_finish(m, l, lse);
  double mx = 3.0, s = 0, o = 0;
  for (int j = 0; j < 8; ++j) s += std::exp(z[j] - mx);
  for (int j = 0; j < 8; ++j) o += std::exp(z[j] - mx) / s * v[j];
  CHECK(out == doctest::Approx(o).epsilon(1e-14));
  CHECK(lse == doctest::Approx(mx + std::log(s)).epsilon(1e-14));

  // A row with nothing allowed: factor 1, probabilities 0, lse +inf, out 0 (no NaN).
  double m2 = -INFINITY, l2 = 0;
  CHECK(common::flash_rescale(m2, -double(INFINITY)) == 1.0);
  CHECK(common::flash_prob(-double(INFINITY), m2) == 0.0);
  double lse2 = 0;
  CHECK(common::flash_finish(m2, l2, lse2) == 0.0);
  CHECK(lse2 == INFINITY);
  CHECK(common::flash_prob(1.0, double(INFINITY)) == 0.0);  // backward on an empty row
  CHECK(common::flash_score(2.0, common::kFlashBoolMask, false, 0.0, false, 0, 0) == -INFINITY);
  CHECK(common::flash_score(2.0, common::kFlashAddMask, true, 0.5, false, 0, 0) == 2.5);
  CHECK(common::flash_score(2.0, common::kFlashNoMask, true, 0.0, true, 1, 2) == -INFINITY);
  CHECK(common::flash_score(2.0, common::kFlashNoMask, true, 0.0, true, 2, 2) == 2.0);
  CHECK(common::flash_causal_key_end(64, 64, 100) == 100);
  CHECK(common::flash_causal_key_end(0, 64, 100) == 64);
  CHECK(common::flash_head_dim_ok(64));
  CHECK_FALSE(common::flash_head_dim_ok(48));
}

TEST_CASE("flash path equals the composed path: tile edges, masks, causal, dropout, broadcast") {
  manual_seed(61);
  struct Len {
    int64_t L, S;
  };
  for (Len n : {Len{1, 1}, Len{17, 17}, Len{64, 64}, Len{65, 130}, Len{130, 65}, Len{128, 1}, Len{1, 129}}) {
    CAPTURE(n.L);
    CAPTURE(n.S);
    for (DType dt : {kFloat64, kFloat32}) {
      const double rtol = dt == kFloat64 ? 1e-10 : 2e-4, atol = dt == kFloat64 ? 1e-11 : 2e-5;
      Tensor q = randn({2, 3, n.L, 8}, dt), k = randn({2, 3, n.S, 8}, dt), v = randn({2, 3, n.S, 6}, dt);
      SUBCASE("no mask") {
        check_same(run(SDPBackend::FlashAttention, q, k, v, {}), run(SDPBackend::Math, q, k, v, {}), rtol, atol);
      }
      SUBCASE("causal") {
        AttentionOptions o = AttentionOptions().is_causal(true);
        check_same(run(SDPBackend::FlashAttention, q, k, v, o), run(SDPBackend::Math, q, k, v, o), rtol, atol);
      }
      SUBCASE("bool mask [L, S] and key padding [B, 1, 1, S]") {
        Tensor bm = gt(rand({n.L, n.S}), 0.3), kp = gt(rand({2, 1, 1, n.S}), 0.5);
        for (const Tensor& m : {bm, kp}) {
          AttentionOptions o = AttentionOptions().attn_mask(m);
          check_same(run(SDPBackend::FlashAttention, q, k, v, o), run(SDPBackend::Math, q, k, v, o), rtol, atol);
        }
      }
      SUBCASE("additive mask with its gradient, -inf entries") {
        Tensor am = masked_fill(randn({3, n.L, n.S}, dt), gt(rand({3, n.L, n.S}), 0.8), -INFINITY);
        AttentionOptions o = AttentionOptions().attn_mask(am);
        check_same(run(SDPBackend::FlashAttention, q, k, v, o), run(SDPBackend::Math, q, k, v, o), rtol, atol);
      }
      SUBCASE("dropout: the same Philox mask on both paths") {
        for (bool causal : {false, true}) {
          AttentionOptions o = AttentionOptions().dropout_p(0.3).is_causal(causal);
          check_same(run(SDPBackend::FlashAttention, q, k, v, o), run(SDPBackend::Math, q, k, v, o), rtol, atol);
        }
      }
      SUBCASE("k and v broadcast over the heads, q transposed (strided)") {
        Tensor kb = randn({2, 1, n.S, 8}, dt), vb = randn({2, 1, n.S, 6}, dt);
        Tensor qt = randn({2, n.L, 3, 8}, dt).transpose(1, 2);
        check_same(run(SDPBackend::FlashAttention, qt, kb, vb, {}), run(SDPBackend::Math, qt, kb, vb, {}), rtol,
                   atol);
      }
    }
  }
}

TEST_CASE("flash path: fully masked rows give 0 and +inf lse, S == 0, lse dtype") {
  manual_seed(62);
  Tensor q = randn({2, 5, 4}), k = randn({2, 7, 4}), v = randn({2, 7, 3});
  Tensor m = ones({5, 7}, kBool);
  m = masked_fill(m, tensor<bool>({false, true, false, false, false}, {5, 1}).expand({5, 7}), false);
  SdpaKernelGuard guard({SDPBackend::FlashAttention});
  raw::AttentionResult r = raw::scaled_dot_product_attention(q, k, v, m, 0.0, false, std::nullopt, false);
  CHECK(r.flash);
  CHECK(r.lse.dtype() == kFloat32);
  for (double x : r.out.select(1, 1).contiguous().to_vector<double>()) CHECK(x == 0.0);
  for (double x : r.lse.select(1, 1).contiguous().to_vector<double>()) CHECK(x == INFINITY);
  Tensor k0 = randn({2, 0, 4}), v0 = randn({2, 0, 3});
  raw::AttentionResult e = raw::scaled_dot_product_attention(q, k0, v0, Tensor(), 0.0, false, std::nullopt, false);
  for (double x : e.out.contiguous().to_vector<double>()) CHECK(x == 0.0);
  Tensor qd = randn({2, 5, 4}, kFloat64);
  CHECK(raw::scaled_dot_product_attention(qd, k.to(kFloat64), v.to(kFloat64), Tensor(), 0.0, false, std::nullopt,
                                          false)
            .lse.dtype() == kFloat64);
}

TEST_CASE("gradcheck through the flash tiling: masks, causal, dropout, broadcast, tile edges") {
  manual_seed(63);
  SdpaKernelGuard guard({SDPBackend::FlashAttention});
  auto mk = [](const Shape& s) { return randn(s, kFloat64).requires_grad_(); };
  auto out_of = [](AttentionOptions o) {
    return [o](const std::vector<Tensor>& in) {
      manual_seed(4);
      return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2], o));
    };
  };
  Tensor q = mk({2, 2, 3, 4}), k = mk({2, 2, 5, 4}), v = mk({2, 2, 5, 3});
  CHECK(gradcheck(out_of(AttentionOptions()), {q, k, v}));
  CHECK(gradcheck(out_of(AttentionOptions().is_causal(true)), {q, k, v}));
  CHECK(gradcheck(out_of(AttentionOptions().dropout_p(0.3)), {q, k, v}));
  Tensor bm = tensor<bool>({true, false, true, true, false, false, false, false, false, false, true, true, true,
                            false, true},
                           {3, 5});
  CHECK(gradcheck(out_of(AttentionOptions().attn_mask(bm)), {q, k, v}));
  Tensor fm = mk({2, 1, 3, 5});
  CHECK(gradcheck([](const std::vector<Tensor>& in) {
    return std::get<0>(scaled_dot_product_attention(in[0], in[1], in[2], AttentionOptions().attn_mask(in[3])));
  }, {q, k, v, fm}));
  Tensor kb = mk({2, 1, 5, 4}), vb = mk({2, 1, 5, 3});
  CHECK(gradcheck(out_of(AttentionOptions()), {q, kb, vb}));
  // Across a key tile edge and a query tile edge (64), causal with L > S.
  Tensor q2 = mk({1, 66, 2}), k2 = mk({1, 65, 2}), v2 = mk({1, 65, 2});
  CHECK(gradcheck(out_of(AttentionOptions().is_causal(true)), {q2, k2, v2}));
}

TEST_CASE("SDPBackend selection and SdpaKernelGuard") {
  manual_seed(64);
  Tensor q = randn({1, 3, 4}), k = randn({1, 5, 4}), v = randn({1, 5, 4});
  // The CPU's default is the composed path; flash only when Math is not allowed.
  CHECK_FALSE(raw::scaled_dot_product_attention(q, k, v, Tensor(), 0.0, false, std::nullopt, false).flash);
  CHECK(sdp_backend_allowed(SDPBackend::Math));
  {
    SdpaKernelGuard outer({SDPBackend::FlashAttention});
    CHECK_FALSE(sdp_backend_allowed(SDPBackend::Math));
    CHECK(raw::scaled_dot_product_attention(q, k, v, Tensor(), 0.0, false, std::nullopt, false).flash);
    {
      SdpaKernelGuard inner({SDPBackend::Math});
      CHECK_FALSE(sdp_backend_allowed(SDPBackend::FlashAttention));
      CHECK_FALSE(raw::scaled_dot_product_attention(q, k, v, Tensor(), 0.0, false, std::nullopt, false).flash);
    }
    CHECK_FALSE(sdp_backend_allowed(SDPBackend::Math));
    // Flash never returns weights: with flash alone, need_weights is an error naming why.
    CHECK_THROWS_WITH_AS(raw::scaled_dot_product_attention(q, k, v, Tensor(), 0.0, false, std::nullopt, true),
                         doctest::Contains("[scaled_dot_product_attention] no allowed backend"), Error);
    CHECK_THROWS_WITH_AS(raw::scaled_dot_product_attention(q, k, v, Tensor(), 0.0, false, std::nullopt, true),
                         doctest::Contains("need_weights"), Error);
  }
  CHECK(sdp_backend_allowed(SDPBackend::Math));
  CHECK(sdp_backend_allowed(SDPBackend::FlashAttention));
  CHECK_THROWS_WITH_AS(SdpaKernelGuard({}), "[sdpa_kernel] expected at least one backend, got an empty list", Error);
}
