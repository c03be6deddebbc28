#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/creation.h"
#include "core/safetensors.h"
#include "test_util.h"

using namespace focus;

namespace {

std::vector<uint8_t> raw_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  return std::vector<uint8_t>(p, p + c.numel() * c.element_size());
}

/// A raw file: 8-byte length, header text (unpadded unless given so), data.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data = {},
                               std::optional<uint64_t> len = std::nullopt) {
  std::vector<uint8_t> out(8);
  const uint64_t n = len.value_or(header.size());
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

TensorDict parse(const std::vector<uint8_t>& b, SafetensorsMetadata* m = nullptr) {
  return safetensors_deserialize(b.data(), b.size(), m);
}

/// Tensor of dtype t with some distinctive byte pattern.
Tensor patterned(DType t, const Shape& shape) {
  Tensor x = empty(shape, t);
  auto* p = static_cast<uint8_t*>(x.data_ptr());
  const size_t n = static_cast<size_t>(x.numel()) * x.element_size();
  for (size_t i = 0; i < n; ++i) p[i] = t == kBool ? static_cast<uint8_t>(i % 3 == 0) : static_cast<uint8_t>(i * 37 + 11);
  return x;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "focus_st_XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace

TEST_SUITE("safetensors") {

TEST_CASE("round trip of every dtype through bytes") {
  const DType all[] = {kFloat32, kFloat64, kInt64, kInt32, kUInt8, kBool, kFloat16, kBFloat16};
  TensorDict d;
  for (DType t : all) d.insert(std::string(dtype_name(t)), patterned(t, {3, 5}));
  const auto bytes = safetensors_serialize(d);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(bytes[8] == '{');
  TensorDict back = parse(bytes);
  REQUIRE(back.keys() == d.keys());
  for (const auto& [k, v] : d) {
    const Tensor& b = back.at(k);
    CHECK(b.dtype() == v.dtype());
    CHECK(b.shape() == v.shape());
    CHECK(raw_bytes(b) == raw_bytes(v));
  }
}

TEST_CASE("values, non-contiguous, empty and 0-d tensors, metadata") {
  Tensor a = arange(24, kFloat32).reshape({2, 3, 4});
  Tensor t = a.permute({2, 0, 1});  // non-contiguous
  Tensor s = a.slice(2, 1, 4, 2);    // strided
  Tensor e = empty({0, 3}, kFloat64);
  Tensor z = scalar_tensor(2.5, kFloat64);
  Tensor i = tensor<int64_t>({-1, 1LL << 40, 7});
  TensorDict d{{"t", t}, {"s", s}, {"e", e}, {"z", z}, {"i", i}};
  SafetensorsMetadata meta{{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  SafetensorsMetadata got;
  TensorDict back = parse(safetensors_serialize(d, meta), &got);
  CHECK(got == meta);
  CHECK(back.at("t").shape() == Shape{4, 2, 3});
  CHECK(back.at("t").to_vector<float>() == t.to_vector<float>());
  CHECK(back.at("s").to_vector<float>() == s.to_vector<float>());
  CHECK(back.at("e").shape() == Shape{0, 3});
  CHECK(back.at("z").dim() == 0);
  CHECK(back.at("z").item<double>() == 2.5);
  CHECK(back.at("i").to_vector<int64_t>() == std::vector<int64_t>{-1, 1LL << 40, 7});
  // An empty dict is a valid file.
  CHECK(parse(safetensors_serialize({})).empty());
}

TEST_CASE("files: save and load, atomic replace") {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  TensorDict d{{"w", randn({4, 4})}, {"b", zeros({4}, kInt32)}};
  save_safetensors(d, path, {{"k", "v"}});
  SafetensorsMetadata m;
  TensorDict back = load_safetensors(path, &m);
  CHECK(m.at("k") == "v");
  CHECK(back.at("w").to_vector<float>() == d.at("w").to_vector<float>());
  // Overwrite; no temporary file stays behind.
  save_safetensors({{"x", ones({2})}}, path);
  CHECK(load_safetensors(path).keys() == std::vector<std::string>{"x"});
  size_t files = 0;
  for (const auto& ent : std::filesystem::directory_iterator(dir.path)) files += ent.is_regular_file();
  CHECK(files == 1);
  CHECK_THROWS_WITH_AS(load_safetensors(dir.file("missing.safetensors")), doctest::Contains("[safetensors] cannot open"),
                       Error);
}

}  // TEST_SUITE
