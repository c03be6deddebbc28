#include <doctest/doctest.h>

#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
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
  std::vector<uint8_t> out(8 + header.size() + data.size());
  const uint64_t n = len.value_or(header.size());
  std::memcpy(out.data(), &n, 8);
  std::copy(header.begin(), header.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
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

TEST_CASE("malformed files are rejected with a clear error") {
  const std::vector<uint8_t> d8(8, 0), d12(12, 0);
  struct Case {
    const char* what;
    std::string header;
    std::vector<uint8_t> data;
    const char* message;
  };
  const Case cases[] = {
      {"not JSON", "{\"a\":", {}, "header is not valid JSON"},
      {"not an object", "[1, 2]", {}, "does not start with '{'"},
      {"a bare number", "1", {}, "does not start with '{'"},
      {"empty header", "", {}, "does not start with '{'"},
      {"duplicate tensor", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", d8, "duplicate key 'a'"},
      {"duplicate field", R"({"a":{"dtype":"U8","dtype":"F32","shape":[8],"data_offsets":[0,8]}})", d8, "duplicate key 'dtype'"},
      {"duplicate metadata", R"({"__metadata__":{"k":"1","k":"2"}})", {}, "duplicate key 'k'"},
      {"overlapping", R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", d12, "overlap the previous tensor"},
      {"gap", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})", d12, "leave a gap after byte 4"},
      {"gap at the start", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", d8, "leave a gap after byte 0"},
      {"past the data", R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})", d8, "go past the data (8 bytes)"},
      {"huge offsets", R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})", {}, "go past the data"},
      {"end before begin", R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", d8, "end before they begin"},
      {"byte count", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8, "8 bytes for dtype F32 and shape [3] (needs 12)"},
      {"overflowing shape", R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}})", d8, "overflows the byte count"},
      {"overflowing bytes", R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}})", d8, "overflows the byte count"},
      // No elements, but contiguous strides of 2^64 (they multiply max(size, 1)): once undefined behaviour.
      {"zero-element shape with overflowing strides", R"({"a":{"dtype":"U8","shape":[4294967296,0,4294967296],"data_offsets":[0,0]}})", {}, "overflows the byte count or the strides"},
      {"shape beyond int64", R"({"a":{"dtype":"U8","shape":[18446744073709551615,0],"data_offsets":[0,0]}})", {}, "is too large"},
      {"shape beyond uint64", R"({"a":{"dtype":"U8","shape":[184467440737095516150],"data_offsets":[0,0]}})", {}, "not a non-negative integer"},
      {"negative shape", R"({"a":{"dtype":"U8","shape":[-8],"data_offsets":[0,8]}})", d8, "shape entry -8 is not a non-negative integer"},
      {"fractional shape", R"({"a":{"dtype":"U8","shape":[8.0],"data_offsets":[0,8]}})", d8, "shape entry 8.0 is not a non-negative integer"},
      {"string shape", R"({"a":{"dtype":"U8","shape":"8","data_offsets":[0,8]}})", d8, "missing or non-array shape"},
      {"too many dims", R"({"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", {0, 0, 0, 0, 0, 0, 0, 0}, "17 dims (at most 16)"},
      {"unknown dtype", R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", d8, "unknown dtype 'F8_E4M3'"},
      {"dtype not a string", R"({"a":{"dtype":4,"shape":[8],"data_offsets":[0,8]}})", d8, "missing or non-string dtype"},
      {"missing dtype", R"({"a":{"shape":[8],"data_offsets":[0,8]}})", d8, "missing or non-string dtype"},
      {"missing offsets", R"({"a":{"dtype":"U8","shape":[8]}})", d8, "data_offsets is not a pair"},
      {"three offsets", R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8,8]}})", d8, "data_offsets is not a pair"},
      {"negative offsets", R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[-8,0]}})", d8, "data_offsets are not non-negative integers"},
      {"unknown field", R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8],"x":1}})", d8, "unknown field 'x'"},
      {"entry not an object", R"({"a":[1,2]})", {}, "tensor 'a': entry is not an object"},
      {"metadata not an object", R"({"__metadata__":["a"]})", {}, "__metadata__ is not an object of strings"},
      {"metadata not strings", R"({"__metadata__":{"epoch":3}})", {}, "__metadata__ value for 'epoch' is not a string"},
      {"deep nesting", R"({"a":{"dtype":"U8","shape":[[[8]]],"data_offsets":[0,8]}})", d8, "nests too deeply"},
      {"very deep nesting", std::string(100000, '[') , {}, "does not start with"},
      {"very deep objects", [] { std::string h; for (int i = 0; i < 100000; ++i) h += "{\"a\":"; return h; }(), {}, "nests too deeply"},
      {"trailing data", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", d8, "4 bytes after the last tensor"},
      {"data but no tensors", "{}", d8, "8 bytes after the last tensor"},
      {"garbage after JSON", R"({} x)", {}, "header is not valid JSON"},
      {"invalid UTF-8", "{\"\xff\xfe\":{}}", {}, "header is not valid JSON"},
      {"NUL padding", std::string("{}\0\0\0\0\0\0", 8), {}, "contains a NUL byte"},
      {"bool byte", R"({"a":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}})", {0, 1, 2, 1}, "BOOL byte 2 is 2"},
  };
  TempDir dir;
  for (const Case& c : cases) {
    INFO(c.what);
    const auto bytes = make_file(c.header, c.data);
    CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains("[safetensors] "), Error);
    CHECK_THROWS_WITH_AS(parse(bytes), doctest::Contains(c.message), Error);
    // The same through a file, where the message also names the file.
    const std::string path = dir.file("bad.safetensors");
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains(c.message), Error);
  }
}

TEST_CASE("malformed header lengths") {
  const std::vector<uint8_t> tiny{1, 0, 0};
  CHECK_THROWS_WITH_AS(parse(tiny), doctest::Contains("[safetensors] file too short for the header length (3 bytes)"),
                       Error);
  CHECK_THROWS_WITH_AS(parse({}), doctest::Contains("file too short"), Error);
  CHECK_THROWS_WITH_AS(parse(make_file("{}", {}, 3)), doctest::Contains("goes past the end of the file"), Error);
  CHECK_THROWS_WITH_AS(parse(make_file("{}", {}, ~uint64_t{0})), doctest::Contains("exceeds the limit of 100000000"),
                       Error);
  CHECK_THROWS_WITH_AS(parse(make_file("{}", {}, 100000001)), doctest::Contains("exceeds the limit"), Error);
  CHECK_THROWS_WITH_AS(parse(make_file("{}", {}, 0)), doctest::Contains("does not start with"), Error);
  CHECK(parse(make_file("{}      ")).empty());  // space padding is fine
  CHECK(parse(make_file("{}")).empty());        // and optional
  TempDir dir;
  CHECK_THROWS_WITH_AS(load_safetensors(dir.path.string()), doctest::Contains("not a regular file"), Error);
  const std::string path = dir.file("short.safetensors");
  std::ofstream(path, std::ios::binary).write("\x10\0\0", 3);
  CHECK_THROWS_WITH_AS(load_safetensors(path), doctest::Contains("file too short"), Error);
}

TEST_CASE("writer errors") {
  TensorDict bad;
  bad.insert("__metadata__", zeros({1}));
  CHECK_THROWS_WITH_AS(safetensors_serialize(bad), doctest::Contains("cannot be named '__metadata__'"), Error);
  TensorDict undef;
  undef.insert("x", Tensor());
  CHECK_THROWS_WITH_AS(safetensors_serialize(undef), doctest::Contains("tensor 'x' is undefined"), Error);
  TensorDict utf;
  utf.insert("\xff", zeros({1}));
  CHECK_THROWS_WITH_AS(safetensors_serialize(utf), doctest::Contains("key is not valid UTF-8"), Error);
  CHECK_THROWS_WITH_AS(safetensors_serialize({}, {{"k", "\xc3"}}), doctest::Contains("metadata value is not valid UTF-8"),
                       Error);
  CHECK_THROWS_WITH_AS(save_safetensors({}, ""), doctest::Contains("empty path"), Error);
  CHECK_THROWS_WITH_AS(save_safetensors({}, "/nonexistent_dir_focus/x.safetensors"),
                       doctest::Contains("cannot create a temporary file"), Error);
  // Tricky but valid names survive the JSON escaping.
  TensorDict names;
  names.insert("", zeros({1}));
  names.insert("a\"b\\c\n\t", ones({1}));
  names.insert("ünï", ones({1}));
  CHECK(parse(safetensors_serialize(names)).keys() == names.keys());
}

TEST_CASE("a failed write leaves the previous file intact") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  TensorDict old{{"w", arange(100, kFloat32)}};
  save_safetensors(old, path);
  TensorDict fresh{{"w", zeros({100})}, {"v", ones({1000})}};
  for (int64_t fault : {0, 5, 8, 100, 3000}) {
    INFO(fault);
    detail::set_safetensors_write_fault(fault);
    CHECK_THROWS_WITH_AS(save_safetensors(fresh, path), doctest::Contains("simulated fault"), Error);
  }
  detail::set_safetensors_write_fault(-1);
  CHECK(load_safetensors(path).at("w").to_vector<float>() == old.at("w").to_vector<float>());
  size_t files = 0;
  for (const auto& ent : std::filesystem::directory_iterator(dir.path)) files += ent.is_regular_file();
  CHECK(files == 1);  // no temporary file left behind
  if (::geteuid() != 0) {  // root ignores permissions
    std::filesystem::permissions(dir.path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
    CHECK_THROWS_WITH_AS(save_safetensors(fresh, path), doctest::Contains("cannot create a temporary file"), Error);
    std::filesystem::permissions(dir.path, std::filesystem::perms::owner_all);
    CHECK(load_safetensors(path).at("w").to_vector<float>() == old.at("w").to_vector<float>());
  }
}

TEST_CASE("fuzz: mutated files only ever raise focus::Error") {
  TensorDict d{{"w", randn({3, 4})},
               {"b", arange(5, kInt64)},
               {"m", tensor<bool>({true, false, true})},
               {"e", empty({0}, kFloat64)},
               {"h", patterned(kBFloat16, {2})},
               {"s", scalar_tensor(1, kInt32)}};
  const auto good = safetensors_serialize(d, {{"format", "focus"}});
  uint64_t n;
  std::memcpy(&n, good.data(), 8);
  std::mt19937_64 rng(1234);
  int ok = 0, rejected = 0;
  const char* tokens[] = {"{", "}", "[", "]", ",", ":", "\"", "-", "0", "9", "1e9", "null", "\\", "__metadata__"};
  for (int it = 0; it < 20000; ++it) {
    std::vector<uint8_t> b = good;
    const int kind = static_cast<int>(rng() % 6);
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      // Mostly hit the header, where the parsing happens.
      const size_t span = rng() % 4 == 0 ? b.size() : std::min<size_t>(b.size(), 8 + n);
      const size_t pos = span ? rng() % span : 0;
      if (kind == 0 && !b.empty()) b[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
      else if (kind == 1 && !b.empty()) b[pos] = static_cast<uint8_t>(rng());
      else if (kind == 2) b.resize(rng() % (b.size() + 1));
      else if (kind == 3 && pos <= b.size()) b.insert(b.begin() + static_cast<std::ptrdiff_t>(pos), static_cast<uint8_t>(rng()));
      else if (kind == 4 && pos < b.size()) b.erase(b.begin() + static_cast<std::ptrdiff_t>(pos));
      else if (kind == 5 && pos <= b.size()) {
        const std::string tok = tokens[rng() % std::size(tokens)];
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(pos), tok.begin(), tok.end());
      }
    }
    try {
      TensorDict got = safetensors_deserialize(b.data(), b.size());
      for (const auto& [k, v] : got) CHECK(v.numel() >= 0);
      ++ok;
    } catch (const Error& e) {
      CHECK(std::string(e.what()).rfind("[safetensors]", 0) == 0);
      ++rejected;
    }
  }
  MESSAGE("fuzz: " << ok << " mutated files loaded, " << rejected << " rejected");
  CHECK(rejected > 10000);
}

TEST_CASE("fuzz: headers with random numbers only ever raise focus::Error") {
  // Keeps the JSON well formed and swaps the numbers (shapes, offsets) for random ones, so
  // the shape/offset/byte-count checks are exercised rather than the JSON parser.
  TensorDict d{{"w", randn({3, 4})}, {"b", arange(5, kInt64)}, {"e", empty({0, 2}, kFloat64)},
               {"m", tensor<bool>({true, false})}, {"s", scalar_tensor(1, kInt32)}};
  const auto good = safetensors_serialize(d);
  uint64_t n;
  std::memcpy(&n, good.data(), 8);
  const std::string header(good.begin() + 8, good.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  const std::vector<uint8_t> data(good.begin() + 8 + static_cast<std::ptrdiff_t>(n), good.end());
  std::mt19937_64 rng(99);
  const uint64_t specials[] = {0, 1, 2, 3, 4, 8, 12, 16, 20, 40, 48, 88, 89, 96, 1ull << 31, 1ull << 32, 1ull << 62,
                               ~0ull, ~0ull >> 1, (~0ull >> 1) + 1};
  int ok = 0;
  for (int it = 0; it < 5000; ++it) {
    std::string h;
    for (size_t i = 0; i < header.size();) {
      if (std::isdigit(static_cast<unsigned char>(header[i]))) {
        size_t j = i;
        while (j < header.size() && std::isdigit(static_cast<unsigned char>(header[j]))) ++j;
        if (rng() % 12 == 0) {
          const uint64_t v = rng() % 2 ? specials[rng() % std::size(specials)] : rng() % 100;
          h += (rng() % 10 == 0 ? "-" : "") + std::to_string(v);
        } else {
          h += header.substr(i, j - i);
        }
        i = j;
      } else {
        h += header[i++];
      }
    }
    std::vector<uint8_t> extra = data;
    if (rng() % 2) extra.resize(rng() % (data.size() + 16));
    try {
      safetensors_deserialize(make_file(h, extra).data(), 8 + h.size() + extra.size());
      ++ok;
    } catch (const Error& e) {
      CHECK(std::string(e.what()).rfind("[safetensors]", 0) == 0);
    }
  }
  MESSAGE("number fuzz: " << ok << " of 5000 loaded");
}

}  // TEST_SUITE
