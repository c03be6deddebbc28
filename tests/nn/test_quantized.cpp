// Dynamic int8 quantization: the int8 dtype, the kernels against a reference written from
// backends/common/int8_math.h (both CPU kernels, bit for bit), the quantized Linear, its
// state_dict and safetensors round trip, and nn::quantize_dynamic on the zoo's GPT.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "backends/common/int8_math.h"
#include "backends/cpu/int8.h"
#include "core/ops/quantized.h"
#include "models/gpt/gpt.h"
#include "test_util.h"

using namespace focus;

TEST_SUITE("quantized") {

namespace {

// Runs f once per CPU kernel (the VNNI one only where the CPU has it), restoring "auto".
template <typename F> void for_each_kernel(const F& f) {
  std::vector<std::string> kernels{"generic"};
  if (cpu::cpu_has_avx512_vnni()) {
    kernels.push_back("avx512-vnni");
  } else {
    MESSAGE("this CPU has no AVX-512 VNNI: the VNNI int8 kernel is not tested");
  }
  if (cpu::cpu_has_amx()) {
    kernels.push_back("amx");
  } else {
    MESSAGE("this CPU (or Linux) gives no AMX-INT8: the AMX int8 kernel is not tested");
  }
  for (const auto& k : kernels) {
    cpu::set_int8_kernel(k);
    CAPTURE(k);
    try {
      f(k);
    } catch (...) {
      cpu::set_int8_kernel("auto");
      throw;
    }
  }
  cpu::set_int8_kernel("auto");
}

// The reference: every step of int8_math.h, one element at a time, in plain loops.
std::vector<float> reference(const Tensor& x, const Tensor& q, const Tensor& scale, const Tensor& bias) {
  const int64_t M = x.size(0), K = x.size(1), N = q.size(0);
  const auto xv = x.to_vector<float>();
  const auto sv = scale.to_vector<float>();
  const auto qv = q.to(kInt32).to_vector<int32_t>();
  std::vector<float> bv = bias.defined() ? bias.to_vector<float>() : std::vector<float>(static_cast<size_t>(N), 0.0f);
  std::vector<float> out(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m) {
    float lo = 0, hi = 0;
    bool bad = false;
    for (int64_t k = 0; k < K; ++k) {
      const float v = xv[static_cast<size_t>(m * K + k)];
      if (!std::isfinite(v)) bad = true;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const auto p = common::int8_row_params(lo, hi);
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0, colsum = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int32_t w = qv[static_cast<size_t>(n * K + k)];
        acc += static_cast<int32_t>(common::int8_quantize_activation(xv[static_cast<size_t>(m * K + k)], p)) * w;
        colsum += w;
      }
      out[static_cast<size_t>(m * N + n)] =
          bad ? std::numeric_limits<float>::quiet_NaN()
              : common::int8_output(acc, colsum, p, sv[static_cast<size_t>(n)], bv[static_cast<size_t>(n)]);
    }
  }
  return out;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector<float>() == b.to_vector<float>();
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector<float>()) m = std::max(m, static_cast<double>(std::fabs(v)));
  return m;
}

bool same_bits(const Tensor& a, const Tensor& b) { return same(a.contiguous(), b.contiguous()); }

bool all_nan(const Tensor& t) {
  for (float v : t.to_vector<float>())
    if (!std::isnan(v)) return false;
  return true;
}

bool any_nan(const Tensor& t) {
  for (float v : t.to_vector<float>())
    if (std::isnan(v)) return true;
  return false;
}

void check_bits(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      CHECK_MESSAGE(std::isnan(got[i]), "element " << i);
    } else {
      CHECK_MESSAGE(got[i] == want[i], "element " << i << ": " << got[i] << " vs " << want[i]);
    }
  }
}

}  // namespace

TEST_CASE("int8 is a storage dtype: conversion, printing, safetensors, promotion") {
  const Tensor f = tensor(std::vector<float>{-128.0f, -1.0f, 0.0f, 1.0f, 127.0f}, Shape{5});
  const Tensor i8 = f.to(kInt8);
  CHECK(i8.dtype() == kInt8);
  CHECK(dtype_size(kInt8) == 1);
  CHECK(dtype_name(kInt8) == "int8");
  CHECK(is_integral(kInt8));
  CHECK(!is_floating(kInt8));
  CHECK(i8.to(kFloat32).to_vector<float>() == f.to_vector<float>());
  CHECK(promote_types(kInt8, kUInt8) == kInt32);
  CHECK(promote_types(kUInt8, kInt8) == kInt32);
  CHECK(promote_types(kInt8, kInt64) == kInt64);
  CHECK(promote_types(kInt32, kInt8) == kInt32);
  CHECK(promote_types(kInt8, kFloat16) == kFloat16);
  CHECK(promote_types(kBool, kInt8) == kInt8);
  CHECK(fmt::format("{}", i8).find("dtype=int8") != std::string::npos);
  const auto path = std::filesystem::temp_directory_path() / "focus_int8_dtype.safetensors";
  TensorDict d;
  d.insert("q", i8);
  save_safetensors(d, path.string());
  const TensorDict back = load_safetensors(path.string());
  REQUIRE(back.find("q") != nullptr);
  CHECK(back.at("q").dtype() == kInt8);
  CHECK(back.at("q").to(kFloat32).to_vector<float>() == f.to_vector<float>());
  std::filesystem::remove(path);
}

TEST_CASE("per-channel weight quantization") {
  const Tensor w = tensor(std::vector<float>{0.5f, -1.27f, 0.0f, 0.01f,   // amax 1.27: scale 0.01
                                             0.0f, 0.0f, 0.0f, 0.0f,      // all zero: the smallest scale
                                             127.0f, 2.5f, 3.5f, -2.5f},  // scale 1: ties round to even
                          Shape{3, 4});
  auto [q, scale] = quantize_per_channel_int8(w);
  CHECK(q.dtype() == kInt8);
  CHECK(scale.dtype() == kFloat32);
  const auto s = scale.to_vector<float>();
  CHECK(s[0] == doctest::Approx(0.01).epsilon(1e-6));
  CHECK(s[1] == common::kInt8MinScale);
  CHECK(s[2] == 1.0f);
  const auto qv = q.to(kInt32).to_vector<int32_t>();
  CHECK(std::vector<int32_t>(qv.begin(), qv.begin() + 4) == std::vector<int32_t>{50, -127, 0, 1});
  CHECK(std::vector<int32_t>(qv.begin() + 4, qv.begin() + 8) == std::vector<int32_t>{0, 0, 0, 0});
  CHECK(std::vector<int32_t>(qv.begin() + 8, qv.end()) == std::vector<int32_t>{127, 2, 4, -2});
  // Every value within half a step of the original.
  const auto wv = w.to_vector<float>();
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t k = 0; k < 4; ++k)
      CHECK(std::fabs(qv[static_cast<size_t>(n * 4 + k)] * s[static_cast<size_t>(n)] - wv[static_cast<size_t>(n * 4 + k)]) <=
            0.5001 * s[static_cast<size_t>(n)]);
  CHECK_THROWS_WITH_AS(quantize_per_channel_int8(tensor(std::vector<float>{1.0f, NAN}, Shape{1, 2})),
                       doctest::Contains("non-finite value"), Error);
  CHECK_THROWS_WITH_AS(quantize_per_channel_int8(zeros({4})), doctest::Contains("2-D weight"), Error);
  CHECK_THROWS_WITH_AS(quantize_per_channel_int8(zeros({2, 2}, TensorOptions(kInt64))), doctest::Contains("floating"),
                       Error);
}

TEST_CASE("linear_int8 equals the reference bit for bit, on both kernels and any thread count") {
  Generator gen(3);
  struct Case {
    int64_t M, K, N;
    bool bias;
  };
  const Case cases[] = {{1, 1, 1, true},    {1, 7, 5, false},   {3, 16, 16, true},  {4, 33, 17, true},
                        {5, 64, 64, false}, {9, 130, 100, true}, {17, 128, 384, true}, {64, 256, 80, true}};
  for (const auto& c : cases) {
    CAPTURE(c.M);
    CAPTURE(c.K);
    CAPTURE(c.N);
    const Tensor w = randn({c.N, c.K}, TensorOptions(kFloat32), &gen);
    Tensor x = randn({c.M, c.K}, TensorOptions(kFloat32), &gen) * 3.0;
    if (c.M > 2) x.select(0, 1).fill_(0.0);                              // zero row
    if (c.M > 3) x.select(0, 2).copy_(x.select(0, 2).abs() * -1.0);      // all-negative row
    const Tensor b = c.bias ? randn({c.N}, TensorOptions(kFloat32), &gen) : Tensor();
    auto [q, scale] = quantize_per_channel_int8(w);
    const Int8PackedWeight packed = pack_int8(q, scale);
    const auto want = reference(x, q, scale, b);
    for_each_kernel([&](const std::string&) {
      for (int threads : {1, 2}) {
        CAPTURE(threads);
        const int before = get_num_threads();
        set_num_threads(threads);
        const Tensor y = linear_int8(x, packed, b);
        set_num_threads(before);
        CHECK(y.shape() == Shape{c.M, c.N});
        check_bits(y.to_vector<float>(), want);
      }
    });
    // Close to the float product: each output within the rounding of both operands.
    const Tensor exact = linear(x, w, b);
    const double err = max_abs(linear_int8(x, packed, b) - exact);
    const double bound = 0.02 * max_abs(exact) + 1e-4;
    CHECK(err <= bound);
  }
}

TEST_CASE("linear_int8: a slice of the output channels, batch dims, non-finite rows") {
  Generator gen(5);
  const Tensor w = randn({48, 20}, TensorOptions(kFloat32), &gen);
  const Tensor b = randn({48}, TensorOptions(kFloat32), &gen);
  auto [q, scale] = quantize_per_channel_int8(w);
  const Int8PackedWeight packed = pack_int8(q, scale);
  Tensor x = randn({2, 3, 20}, TensorOptions(kFloat32), &gen);
  const Tensor full = linear_int8(x, packed, b);
  CHECK(full.shape() == Shape{2, 3, 48});
  for_each_kernel([&](const std::string&) {
    const Tensor part = linear_int8(x, packed, b, 16, 20);
    CHECK(part.shape() == Shape{2, 3, 20});
    CHECK(same(part, full.narrow(2, 16, 20)));
  });
  // A row with NaN or infinity gives NaN in that row only.
  x.select(0, 0).select(0, 1).select(0, 4).fill_(std::numeric_limits<double>::infinity());
  x.select(0, 1).select(0, 2).select(0, 0).fill_(std::nan(""));
  for_each_kernel([&](const std::string&) {
    const Tensor y = linear_int8(x, packed, b);
    CHECK(all_nan(y.select(0, 0).select(0, 1)));
    CHECK(all_nan(y.select(0, 1).select(0, 2)));
    CHECK(same(y.select(0, 0).select(0, 0), full.select(0, 0).select(0, 0)));
    CHECK(!any_nan(y.select(0, 1).select(0, 0)));
  });
  // Errors name the op and what was wrong.
  CHECK_THROWS_WITH_AS(linear_int8(x.to(kFloat64), packed, b), doctest::Contains("expected a float32 input"), Error);
  CHECK_THROWS_WITH_AS(linear_int8(zeros({2, 21}), packed, b), doctest::Contains("last dimension 20"), Error);
  CHECK_THROWS_WITH_AS(linear_int8(x, packed, b, 8, 8), doctest::Contains("multiple of 16"), Error);
  CHECK_THROWS_WITH_AS(linear_int8(x, packed, b, 32, 17), doctest::Contains("range inside"), Error);
  CHECK_THROWS_WITH_AS(linear_int8(x, packed, zeros({47})), doctest::Contains("float32 bias [48]"), Error);
  const Tensor xg = x.detach().requires_grad_();
  CHECK_THROWS_WITH_AS(linear_int8(xg, packed, b), doctest::Contains("no backward"), Error);
  {
    NoGradGuard no_grad;
    CHECK_NOTHROW(linear_int8(xg, packed, b));
  }
  CHECK_THROWS_WITH_AS(pack_int8(zeros({2, 66001}, TensorOptions(kInt8)), ones({2})),
                       doctest::Contains("more than the int8 kernels take"), Error);
  CHECK_THROWS_WITH_AS(pack_int8(q, ones({48}) * 0.0), doctest::Contains("not a positive finite"), Error);
  CHECK_THROWS_WITH_AS(cpu::set_int8_kernel("sse2"), doctest::Contains("expected \"auto\", \"generic\""), Error);
}

TEST_CASE("Linear::quantize_int8: buffers, no parameters, close outputs, state_dict round trip") {
  Generator gen(11);
  manual_seed(11);
  nn::Linear lin(40, 24);
  lin.eval();
  const Tensor x = randn({6, 40}, TensorOptions(kFloat32), &gen);
  Tensor y_float;
  {
    NoGradGuard g;
    y_float = lin.forward(x);
  }
  lin.quantize_int8();
  CHECK(lin.is_quantized());
  CHECK(lin.parameters().empty());
  CHECK(lin.weight().dtype() == kInt8);
  CHECK(lin.weight_scale().shape() == Shape{24});
  CHECK(lin.extra_repr().find("dtype=qint8") != std::string::npos);
  const TensorDict sd = lin.state_dict();
  CHECK(sd.size() == 3);
  CHECK(sd.at("weight").dtype() == kInt8);
  CHECK(sd.at("weight_scale").dtype() == kFloat32);
  CHECK(sd.at("bias").dtype() == kFloat32);
  CHECK(nn::quantized_layer_names(sd) == std::vector<std::string>{""});
  Tensor y;
  {
    NoGradGuard g;
    y = lin.forward(x);
    CHECK(max_abs(y - y_float) <= 0.02 * max_abs(y_float));
    CHECK(same(lin.forward_gelu(x), gelu(y)));
  }
  // Saved and loaded into another quantized Linear: the same outputs (the packed weight is
  // rebuilt from the loaded buffers).
  const auto path = std::filesystem::temp_directory_path() / "focus_int8_linear.safetensors";
  save_safetensors(sd, path.string());
  nn::Linear other(40, 24);
  other.quantize_int8();
  {
    NoGradGuard g;
    CHECK(!same(other.forward(x), y));
    other.load_state_dict(load_safetensors(path.string()));
    CHECK(same(other.forward(x), y));
  }
  std::filesystem::remove(path);
  // Errors.
  CHECK_THROWS_WITH_AS(lin.quantize_int8(), doctest::Contains("quantized already"), Error);
  CHECK_THROWS_WITH_AS(lin.reset_parameters(), doctest::Contains("quantized to int8"), Error);
  CHECK_THROWS_WITH_AS(lin.add_lora(2, 1.0), doctest::Contains("floating point"), Error);
  nn::Linear adapted(8, 8);
  adapted.add_lora(2, 1.0);
  CHECK_THROWS_WITH_AS(adapted.quantize_int8(), doctest::Contains("unmerged LoRA adapter"), Error);
  nn::Linear no_bias(8, 4, false);
  no_bias.quantize_int8();
  CHECK(no_bias.state_dict().size() == 2);
}

TEST_CASE("quantize_dynamic on the zoo's GPT: every Linear, or those named; save and load") {
  const auto config = models::GPTConfig().n_layer(2).n_head(2).n_embd(32).block_size(16).vocab_size(23);
  Generator gen(2);
  auto model = std::make_shared<models::GPT>(config, &gen);
  model->eval();
  const Tensor idx = randint(0, 23, {2, 16}, TensorOptions(kInt64), &gen);
  NoGradGuard no_grad;
  const Tensor logits = model->forward(idx);
  const int64_t linears = 4 * 2 + 1;  // c_attn, c_proj, c_fc, mlp c_proj per block; lm_head
  CHECK(nn::quantize_dynamic(*model) == linears);
  CHECK(nn::quantize_dynamic(*model) == 0);  // quantized already
  const Tensor q_logits = model->forward(idx);
  // The int8 model's distribution stays close to the float one.
  const Tensor p = softmax(logits, -1), pq = softmax(q_logits, -1);
  CHECK(max_abs(p - pq) < 0.05);
  const TensorDict sd = model->state_dict();
  CHECK(nn::quantized_layer_names(sd).size() == static_cast<size_t>(linears));
  // A fresh float model quantized the same way loads the int8 state dict and agrees exactly.
  auto fresh = std::make_shared<models::GPT>(config);
  fresh->eval();
  nn::quantize_dynamic(*fresh);
  fresh->load_state_dict(sd);
  CHECK(same(fresh->forward(idx), q_logits));
  // A float model refuses it with the keys named.
  auto plain = std::make_shared<models::GPT>(config);
  CHECK_THROWS_WITH_AS(plain->load_state_dict(sd), doctest::Contains("weight_scale"), Error);
  // Only the named layers.
  auto some = std::make_shared<models::GPT>(config, &gen);
  CHECK(nn::quantize_dynamic(*some, {"lm_head", "h.0.mlp.c_fc"}) == 2);
  CHECK(nn::quantized_layer_names(some->state_dict()) ==
        std::vector<std::string>{"h.0.mlp.c_fc", "lm_head"});
  CHECK_THROWS_WITH_AS(nn::quantize_dynamic(*some, {"wte"}), doctest::Contains("not the name of a Linear or MultiheadAttention"),
                       Error);
}

TEST_CASE("MultiheadAttention::quantize_int8: in_projection, forward, separate q/k/v weights, state_dict") {
  manual_seed(4);
  Generator gen(4);
  for (bool same : {true, false}) {
    CAPTURE(same);
    auto o = nn::MultiheadAttentionOptions(24, 3).batch_first(true);
    if (!same) o.kdim(16).vdim(8);
    nn::MultiheadAttention mha(o);
    mha.eval();
    const Tensor q = randn({2, 5, 24}, TensorOptions(kFloat32), &gen);
    const Tensor k = randn({2, 7, same ? 24 : 16}, TensorOptions(kFloat32), &gen);
    const Tensor v = randn({2, 7, same ? 24 : 8}, TensorOptions(kFloat32), &gen);
    NoGradGuard no_grad;
    const auto [y, w] = mha.forward(q, k, v);
    // The float in_projection is what forward computes.
    if (same) {
      CHECK(same_bits(mha.in_projection(q, 0, 3).narrow(2, 0, 24), mha.in_projection(q, 0, 1)));
    }
    CHECK(nn::quantize_dynamic(mha) == 2);  // the attention and its out_proj
    CHECK(mha.is_quantized());
    CHECK(mha.parameters().size() == (same ? 0u : 0u));
    const TensorDict sd = mha.state_dict();
    if (same) {
      CHECK(sd.at("in_proj_weight").dtype() == kInt8);
      CHECK(sd.at("in_proj_weight_scale").shape() == Shape{72});
    } else {
      for (const char* n : {"q_proj_weight", "k_proj_weight", "v_proj_weight"}) {
        CHECK(sd.at(n).dtype() == kInt8);
        CHECK(sd.at(std::string(n) + "_scale").shape() == Shape{24});
      }
    }
    CHECK(sd.at("in_proj_bias").dtype() == kFloat32);
    CHECK(sd.at("out_proj.weight").dtype() == kInt8);
    const auto [yq, wq] = mha.forward(q, k, v);
    CHECK(max_abs(yq - y) <= 0.05 * max_abs(y) + 1e-3);
    CHECK(max_abs(wq - w) <= 0.05);
    // A slice of the packed projection that does not start at a multiple of 16 (k: rows
    // 24 .. 47) equals that part of the whole product.
    if (same) {
      CHECK(same_bits(mha.in_projection(q, 1, 1), mha.in_projection(q, 0, 3).narrow(2, 24, 24)));
      CHECK_THROWS_WITH_AS(mha.in_projection(q, 2, 2), doctest::Contains("do not exist"), Error);
    } else {
      CHECK_THROWS_WITH_AS(mha.in_projection(k, 1, 2), doctest::Contains("one part at a time"), Error);
    }
    CHECK_THROWS_WITH_AS(mha.quantize_int8(), doctest::Contains("quantized already"), Error);
    // Loaded into another quantized attention: the same outputs.
    nn::MultiheadAttention other(o);
    other.eval();
    nn::quantize_dynamic(other);
    other.load_state_dict(sd);
    CHECK(same_bits(std::get<0>(other.forward(q, k, v)), yq));
  }
}

}  // TEST_SUITE
