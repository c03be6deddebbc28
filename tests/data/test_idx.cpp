// read_idx on fixtures written by the test: good files of each type, and malformed ones.
#include <filesystem>
#include <fstream>

#include "test_util.h"

using namespace focus;
using namespace focus::data;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           fmt::format("focus_idx_test_{}_{}", ::getpid(), reinterpret_cast<uintptr_t>(this));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& bytes) const {
    auto p = (path / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
};

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string header(uint8_t type, std::vector<uint32_t> dims) {
  std::string h = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (auto d : dims) h += be32(d);
  return h;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("read_idx reads uint8 images and labels with their shapes") {
  TempDir dir;
  std::string images = header(0x08, {3, 2, 2});
  for (int i = 0; i < 12; ++i) images += static_cast<char>(i * 20);
  auto t = read_idx(dir.write("images-idx3-ubyte", images));
  CHECK(t.dtype() == kUInt8);
  CHECK(t.shape() == Shape{3, 2, 2});
  auto v = t.to_vector<int64_t>();
  CHECK(v[0] == 0);
  CHECK(v[11] == 220);
  std::string labels = header(0x08, {4}) + std::string{9, 0, 3, 7};
  auto l = read_idx(dir.write("labels-idx1-ubyte", labels));
  CHECK(l.shape() == Shape{4});
  CHECK(l.to_vector<int64_t>() == std::vector<int64_t>{9, 0, 3, 7});
  auto empty = read_idx(dir.write("empty", header(0x08, {0, 28})));
  CHECK(empty.shape() == Shape{0, 28});
}

TEST_CASE("read_idx decodes big-endian wider types") {
  // int32 -2 and 258; int16 -1; int8 -128; float32 1.5; float64 -0.25
  auto i32 = parse_idx(header(0x0C, {2}) + be32(0xFFFFFFFEu) + be32(258));
  CHECK(i32.dtype() == kInt32);
  CHECK(i32.to_vector<int64_t>() == std::vector<int64_t>{-2, 258});
  auto i16 = parse_idx(header(0x0B, {1, 1}) + std::string{'\xFF', '\xFF'});
  CHECK(i16.dtype() == kInt32);
  CHECK(i16.to_vector<int64_t>() == std::vector<int64_t>{-1});
  auto i8 = parse_idx(header(0x09, {1}) + std::string{'\x80'});
  CHECK(i8.to_vector<int64_t>() == std::vector<int64_t>{-128});
  auto f32 = parse_idx(header(0x0D, {1}) + be32(0x3FC00000u));
  CHECK(f32.dtype() == kFloat32);
  CHECK(f32.to_vector<double>() == std::vector<double>{1.5});
  auto f64 = parse_idx(header(0x0E, {1}) + be32(0xBFD00000u) + be32(0));
  CHECK(f64.dtype() == kFloat64);
  CHECK(f64.to_vector<double>() == std::vector<double>{-0.25});
}

TEST_CASE("read_idx rejects malformed files with clear errors") {
  TempDir dir;
  const std::string good = header(0x08, {2, 3}) + std::string(6, '\x01');
  CHECK_THROWS_WITH_AS(read_idx(dir.write("magic", "\x01\x02" + good.substr(2))),
                       doctest::Contains("bad magic 01 02"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("trunc_data", good.substr(0, good.size() - 1))),
                       doctest::Contains("truncated: shape [2, 3] needs 6 bytes of data, file has 5"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("trunc_header", good.substr(0, 9))),
                       doctest::Contains("truncated header (9 bytes, 2 dimensions need 12)"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("tiny", std::string(2, '\0'))), doctest::Contains("truncated header (2 bytes"),
                       Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("trailing", good + "xx")), doctest::Contains("2 unexpected trailing bytes"),
                       Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("type", header(0x0A, {1}) + "x")),
                       doctest::Contains("unknown element type byte 0x0a"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("zero_dims", header(0x08, {}))), doctest::Contains("0 dimensions"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("gz", "\x1f\x8b\x08\x00rest")), doctest::Contains("gzip-compressed"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.write("huge", header(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}))),
                       doctest::Contains("too large"), Error);
  const auto missing = (dir.path / "nope").string();
  CHECK_THROWS_WITH_AS(read_idx(missing), doctest::Contains("[read_idx] no such file"), Error);
  CHECK_THROWS_WITH_AS(read_idx(dir.path.string()), doctest::Contains("is a directory"), Error);
  // The file name is in the message.
  CHECK_THROWS_WITH_AS(read_idx(dir.write("named.idx", "\x01")), doctest::Contains("named.idx"), Error);
}

}  // TEST_SUITE
