// safetensors files both ways between focus and PyTorch.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/creation.h"
#include "core/safetensors.h"
#include "parity/parity.h"
#include "test_util.h"

using namespace focus;

namespace {

std::vector<uint16_t> bits16(const Tensor& t) {
  std::vector<uint16_t> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), t.data_ptr(), out.size() * 2);
  return out;
}

std::vector<uint16_t> as_u16(const Tensor& bits) {
  std::vector<uint16_t> out;
  for (int32_t b : bits.to_vector<int32_t>()) out.push_back(static_cast<uint16_t>(b));
  return out;
}

std::vector<double> base() {
  std::vector<double> b(12);
  for (int i = 0; i < 12; ++i) b[i] = i;
  return b;
}

}  // namespace

TEST_SUITE("parity_safetensors") {

TEST_CASE("files written from PyTorch load in focus") {
  SafetensorsMetadata meta;
  TensorDict t = parity::load("safetensors_torch", &meta);
  CHECK(meta == SafetensorsMetadata{{"format", "pt"}, {"source", "gen_safetensors.py"}});
  const auto b = base();
  auto check_shape = [&](const char* k, DType dt, const Shape& s) {
    INFO(k);
    CHECK(t.at(k).dtype() == dt);
    CHECK(t.at(k).shape() == s);
  };
  check_shape("f32", kFloat32, {3, 4});
  check_shape("f64", kFloat64, {3, 4});
  check_shape("i64", kInt64, {3, 4});
  check_shape("i32", kInt32, {3, 4});
  check_shape("u8", kUInt8, {3, 4});
  check_shape("bool", kBool, {3, 4});
  check_shape("f16", kFloat16, {3, 4});
  check_shape("bf16", kBFloat16, {3, 4});
  check_shape("empty", kFloat32, {0, 4});
  check_shape("scalar", kFloat64, {});
  const auto f32 = t.at("f32").to_vector<float>();
  const auto f64 = t.at("f64").to_vector<double>();
  const auto i64 = t.at("i64").to_vector<int64_t>();
  const auto i32 = t.at("i32").to_vector<int32_t>();
  const auto u8 = t.at("u8").to_vector<uint8_t>();
  const auto bl = t.at("bool").to_vector<bool>();
  for (size_t i = 0; i < 12; ++i) {
    CHECK(f32[i] == static_cast<float>(b[i] * 0.5 - 2.0));
    CHECK(f64[i] == b[i] / 3.0);
    CHECK(i64[i] == (static_cast<int64_t>(b[i]) - 6) * (int64_t{1} << 33));
    CHECK(i32[i] == (static_cast<int32_t>(b[i]) - 6) * 1000);
    CHECK(u8[i] == static_cast<uint8_t>(static_cast<int>(b[i]) * 21));
    CHECK(bl[i] == (static_cast<int>(b[i]) % 3 == 0));
  }
  CHECK(bits16(t.at("f16")) == as_u16(t.at("f16_bits")));
  CHECK(bits16(t.at("bf16")) == as_u16(t.at("bf16_bits")));
  // Spot checks of the half encodings: f16(-1.0) = 0xBC00, bf16(-1.0) = 0xBF80.
  CHECK(bits16(t.at("f16"))[0] == 0xBC00);
  CHECK(bits16(t.at("bf16"))[0] == 0xBF80);
  const auto sp = t.at("f32_special").to_vector<float>();
  CHECK(std::isnan(sp[0]));
  CHECK(sp[1] == INFINITY);
  CHECK(sp[2] == -INFINITY);
  CHECK((sp[3] == 0.0f && std::signbit(sp[3])));
  CHECK(sp[4] == 1e-45f);
  CHECK(sp[5] == 3.4e38f);
  CHECK(t.at("f32_transposed").shape() == Shape{4, 3});
  CHECK(t.at("f32_transposed").to_vector<float>() == t.at("f32").t().to_vector<float>());
  CHECK(t.at("randn").to(kFloat64).to_vector<double>() == t.at("randn_f64").to_vector<double>());
  CHECK(t.at("scalar").item<double>() == 3.25);
}

TEST_CASE("files written by focus load in Python") {
  const auto b = base();
  Tensor f64 = tensor<double>(b, {3, 4});
  Tensor half_src = f64 * 0.25 - 1.0;
  // f16/bf16 bit patterns of base * 0.25 - 1 (all exactly representable), made by hand.
  auto f16_of = [](double v) -> uint16_t {  // exact values only: sign, exponent, 10-bit mantissa
    if (v == 0) return 0;
    uint16_t sign = v < 0 ? 0x8000 : 0;
    v = std::abs(v);
    int e = 0;
    double m = std::frexp(v, &e);  // v = m * 2^e, m in [0.5, 1)
    return static_cast<uint16_t>(sign | ((e - 1 + 15) << 10) | static_cast<uint16_t>((m * 2 - 1) * 1024));
  };
  auto bf16_of = [](double v) -> uint16_t {
    float f = static_cast<float>(v);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return static_cast<uint16_t>(u >> 16);
  };
  Tensor f16 = empty({3, 4}, kFloat16), bf16 = empty({3, 4}, kBFloat16);
  const auto hv = half_src.to_vector<double>();
  for (size_t i = 0; i < 12; ++i) {
    static_cast<uint16_t*>(f16.data_ptr())[i] = f16_of(hv[i]);
    static_cast<uint16_t*>(bf16.data_ptr())[i] = bf16_of(hv[i]);
  }
  TensorDict d;
  d.insert("f32", (f64 * 0.5 - 2.0).to(kFloat32));
  d.insert("f64", f64 / 3.0);
  d.insert("i64", (f64.to(kInt64) - 6) * (int64_t{1} << 33));
  d.insert("i32", ((f64.to(kInt64) - 6) * 1000).to(kInt32));
  d.insert("u8", (f64.to(kInt64) * 21).to(kUInt8));
  d.insert("bool", tensor<bool>({true, false, false, true, false, false, true, false, false, true, false, false}, {3, 4}));
  d.insert("f16", f16);
  d.insert("bf16", bf16);
  d.insert("f32_transposed", (f64 * 0.5 - 2.0).to(kFloat32).t());  // written from a non-contiguous view
  d.insert("empty", zeros({0, 4}));
  d.insert("scalar", scalar_tensor(3.25, kFloat64));
  const std::string path = parity::dir() + "/focus_written.safetensors";
  save_safetensors(d, path, {{"format", "focus"}, {"who", "test_safetensors.cpp"}});
  const std::string cmd =
      "/usr/bin/python3 " FOCUS_SOURCE_DIR "/tests/parity/check_focus_file.py '" + path + "'";
  const int rc = std::system(cmd.c_str());
  CHECK_MESSAGE(rc == 0, "python check failed: " << cmd);
}

}  // TEST_SUITE
