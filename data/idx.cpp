#include "data/idx.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/creation.h"
#include "core/error.h"

namespace focus::data {

namespace {

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

template <class Out, class Raw>
void decode_be(const unsigned char* src, int64_t n, Out* dst) {
  for (int64_t i = 0; i < n; ++i) {
    unsigned char b[sizeof(Raw)];
    for (size_t k = 0; k < sizeof(Raw); ++k) b[k] = src[i * static_cast<int64_t>(sizeof(Raw)) + static_cast<int64_t>(sizeof(Raw) - 1 - k)];
    Raw v;
    std::memcpy(&v, b, sizeof(Raw));
    dst[i] = static_cast<Out>(v);
  }
}

}  // namespace

Tensor parse_idx(std::string_view bytes, const std::string& source) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t size = bytes.size();
  FOCUS_CHECK(!(size >= 2 && p[0] == 0x1f && p[1] == 0x8b),
              "[read_idx] {}: is gzip-compressed; decompress it first (gunzip)", source);
  FOCUS_CHECK(size >= 4, "[read_idx] {}: truncated header ({} bytes, need at least 4)", source, size);
  FOCUS_CHECK(p[0] == 0 && p[1] == 0, "[read_idx] {}: bad magic {:02x} {:02x} (an IDX file starts with 00 00)",
              source, p[0], p[1]);
  const unsigned type = p[2];
  const int64_t ndim = p[3];
  FOCUS_CHECK(ndim >= 1, "[read_idx] {}: header says 0 dimensions", source);
  DType dtype;
  size_t elem;
  switch (type) {
    case 0x08: dtype = kUInt8; elem = 1; break;
    case 0x09: dtype = kInt32; elem = 1; break;
    case 0x0B: dtype = kInt32; elem = 2; break;
    case 0x0C: dtype = kInt32; elem = 4; break;
    case 0x0D: dtype = kFloat32; elem = 4; break;
    case 0x0E: dtype = kFloat64; elem = 8; break;
    default:
      FOCUS_FAIL("[read_idx] {}: unknown element type byte 0x{:02x} (expected 08, 09, 0b, 0c, 0d or 0e)", source,
                 type);
  }
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  FOCUS_CHECK(size >= header, "[read_idx] {}: truncated header ({} bytes, {} dimensions need {})", source, size,
              ndim, header);
  Shape shape;
  int64_t numel = 1;
  for (int64_t d = 0; d < ndim; ++d) {
    const int64_t dim = be32(p + 4 + 4 * d);
    shape.push_back(dim);
    // Each dim < 2^32, so numel * dim overflows only when numel is already huge.
    FOCUS_CHECK(dim == 0 || numel <= (int64_t{1} << 40) / dim,
                "[read_idx] {}: dimensions {} are too large", source, shape);
    numel *= dim;
  }
  const size_t expected = header + static_cast<size_t>(numel) * elem;
  FOCUS_CHECK(size >= expected, "[read_idx] {}: truncated: shape {} needs {} bytes of data, file has {}", source,
              shape, expected - header, size - header);
  FOCUS_CHECK(size == expected, "[read_idx] {}: {} unexpected trailing bytes after the data of shape {}", source,
              size - expected, shape);
  Tensor out = empty(shape, dtype);
  const unsigned char* data = p + header;
  switch (type) {
    case 0x08: std::memcpy(out.data_ptr<uint8_t>(), data, static_cast<size_t>(numel)); break;
    case 0x09: decode_be<int32_t, int8_t>(data, numel, out.data_ptr<int32_t>()); break;
    case 0x0B: decode_be<int32_t, int16_t>(data, numel, out.data_ptr<int32_t>()); break;
    case 0x0C: decode_be<int32_t, int32_t>(data, numel, out.data_ptr<int32_t>()); break;
    case 0x0D: decode_be<float, float>(data, numel, out.data_ptr<float>()); break;
    case 0x0E: decode_be<double, double>(data, numel, out.data_ptr<double>()); break;
  }
  return out;
}

Tensor read_idx(const std::string& path) {
  std::error_code ec;
  FOCUS_CHECK(std::filesystem::exists(path, ec), "[read_idx] no such file '{}'", path);
  FOCUS_CHECK(!std::filesystem::is_directory(path, ec), "[read_idx] '{}' is a directory, not an IDX file", path);
  std::ifstream in(path, std::ios::binary);
  FOCUS_CHECK(in.good(), "[read_idx] cannot open '{}'", path);
  std::ostringstream buf;
  buf << in.rdbuf();
  FOCUS_CHECK(!in.bad(), "[read_idx] error reading '{}'", path);
  return parse_idx(buf.view(), "'" + path + "'");
}

}  // namespace focus::data
