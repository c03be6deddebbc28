#include "core/safetensors.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "core/creation.h"
#include "core/file_io.h"

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace focus {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // as the reference implementation

std::atomic<int64_t> g_write_fault_after{-1};
std::atomic<int64_t> g_write_stop_after{-1};  // one-shot; see set_safetensors_write_stop

const char* st_dtype_name(DType t) {
  switch (t) {
    case kFloat32: return "F32";
    case kFloat64: return "F64";
    case kInt64: return "I64";
    case kInt32: return "I32";
    case kUInt8: return "U8";
    case kInt8: return "I8";
    case kBool: return "BOOL";
    case kFloat16: return "F16";
    case kBFloat16: return "BF16";
  }
  FOCUS_FAIL("[safetensors] unsupported dtype {}", static_cast<int>(t));
}

bool parse_st_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", kFloat32}, {"F64", kFloat64}, {"I64", kInt64},     {"I32", kInt32},
      {"U8", kUInt8},    {"I8", kInt8},    {"BOOL", kBool},   {"F16", kFloat16},   {"BF16", kBFloat16}};
  for (const auto& [name, t] : table)
    if (s == name) {
      *out = t;
      return true;
    }
  return false;
}

/// One tensor of a parsed header.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // relative to the data region
};

/// JSON text of a string (escaped); invalid UTF-8 is an error naming what.
std::string json_string(const std::string& s, const char* what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    FOCUS_FAIL("[safetensors] {} is not valid UTF-8: '{}'", what, s);
  }
}

/// Parses and validates the header against a data region of data_size bytes. Entries come
/// back in data order (ties, i.e. empty tensors, in header order).
std::vector<Entry> parse_header(const char* text, size_t n, uint64_t data_size, SafetensorsMetadata* metadata) {
  FOCUS_CHECK(n > 0 && text[0] == '{', "[safetensors] header does not start with '{{' (not a safetensors file?)");
  // nlohmann stops at a NUL as if the input ended; JSON never contains a raw one.
  FOCUS_CHECK(std::memchr(text, 0, n) == nullptr, "[safetensors] header contains a NUL byte");
  // nlohmann keeps the last of duplicate keys silently: the callback sees every key first.
  // It also bounds nesting, which a valid header never takes beyond 3 levels.
  std::vector<std::unordered_set<std::string>> seen;
  std::vector<std::string> top_order;
  json root;
  try {
    root = json::parse(
        text, text + n,
        [&](int /*depth*/, json::parse_event_t ev, json& parsed) -> bool {
          switch (ev) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
              FOCUS_CHECK(seen.size() < 3, "[safetensors] header nests too deeply (at most 3 levels)");
              seen.emplace_back();
              break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
              if (!seen.empty()) seen.pop_back();
              break;
            case json::parse_event_t::key: {
              const std::string& k = parsed.get_ref<const std::string&>();
              FOCUS_CHECK(!seen.empty() && seen.back().insert(k).second, "[safetensors] duplicate key '{}' in header",
                          k);
              if (seen.size() == 1) top_order.push_back(k);
              break;
            }
            case json::parse_event_t::value: break;
          }
          return true;
        },
        /*allow_exceptions=*/true);
  } catch (const json::parse_error& e) {
    FOCUS_FAIL("[safetensors] header is not valid JSON: {}", e.what());
  } catch (const json::exception& e) {
    FOCUS_FAIL("[safetensors] header is not valid JSON: {}", e.what());
  }
  FOCUS_CHECK(root.is_object(), "[safetensors] header is not a JSON object");

  std::vector<Entry> entries;
  entries.reserve(top_order.size());
  for (const std::string& name : top_order) {
    const json& v = root.at(name);
    if (name == "__metadata__") {
      FOCUS_CHECK(v.is_object(), "[safetensors] __metadata__ is not an object of strings");
      for (const auto& [k, s] : v.items()) {
        FOCUS_CHECK(s.is_string(), "[safetensors] __metadata__ value for '{}' is not a string", k);
        if (metadata) (*metadata)[k] = s.get<std::string>();
      }
      continue;
    }
    FOCUS_CHECK(v.is_object(), "[safetensors] tensor '{}': entry is not an object", name);
    for (const auto& [k, _] : v.items())
      FOCUS_CHECK(k == "dtype" || k == "shape" || k == "data_offsets", "[safetensors] tensor '{}': unknown field '{}'",
                  name, k);
    Entry e;
    e.name = name;
    auto dt = v.find("dtype");
    FOCUS_CHECK(dt != v.end() && dt->is_string(), "[safetensors] tensor '{}': missing or non-string dtype", name);
    FOCUS_CHECK(parse_st_dtype(dt->get<std::string>(), &e.dtype), "[safetensors] tensor '{}': unknown dtype '{}'",
                name, dt->get<std::string>());
    auto sh = v.find("shape");
    FOCUS_CHECK(sh != v.end() && sh->is_array(), "[safetensors] tensor '{}': missing or non-array shape", name);
    FOCUS_CHECK(sh->size() <= static_cast<size_t>(kMaxDims), "[safetensors] tensor '{}': {} dims (at most {})", name,
                sh->size(), kMaxDims);
    uint64_t numel = 1, span = 1;  // span: the product of max(size, 1), which the strides reach
    bool overflow = false;
    for (const json& d : *sh) {
      FOCUS_CHECK(d.is_number_unsigned(), "[safetensors] tensor '{}': shape entry {} is not a non-negative integer",
                  name, d.dump());
      const uint64_t x = d.get<uint64_t>();
      FOCUS_CHECK(x <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                  "[safetensors] tensor '{}': shape entry {} is too large", name, x);
      e.shape.push_back(static_cast<int64_t>(x));
      const uint64_t m = std::max<uint64_t>(x, 1);
      if (span > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / m) overflow = true;
      span *= m;  // numel <= span, so neither wraps before overflow is seen
      numel *= x;
    }
    const uint64_t es = dtype_size(e.dtype);
    FOCUS_CHECK(!overflow && numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / es,
                "[safetensors] tensor '{}': shape {} overflows the byte count or the strides", name, e.shape);
    auto off = v.find("data_offsets");
    FOCUS_CHECK(off != v.end() && off->is_array() && off->size() == 2,
                "[safetensors] tensor '{}': data_offsets is not a pair [begin, end]", name);
    FOCUS_CHECK((*off)[0].is_number_unsigned() && (*off)[1].is_number_unsigned(),
                "[safetensors] tensor '{}': data_offsets are not non-negative integers", name);
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    FOCUS_CHECK(e.begin <= e.end, "[safetensors] tensor '{}': data_offsets [{}, {}] end before they begin", name,
                e.begin, e.end);
    FOCUS_CHECK(e.end <= data_size, "[safetensors] tensor '{}': data_offsets [{}, {}] go past the data ({} bytes)",
                name, e.begin, e.end, data_size);
    FOCUS_CHECK(e.end - e.begin == numel * es,
                "[safetensors] tensor '{}': {} bytes for dtype {} and shape {} (needs {})", name, e.end - e.begin,
                dt->get<std::string>(), e.shape, numel * es);
    entries.push_back(std::move(e));
  }
  // Offsets must tile the data region exactly: sorted by begin, each starts where the
  // previous ended, and the last ends at the end of the file.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  uint64_t pos = 0;
  for (const Entry& e : entries) {
    FOCUS_CHECK(e.begin >= pos, "[safetensors] tensor '{}': data_offsets [{}, {}] overlap the previous tensor", e.name,
                e.begin, e.end);
    FOCUS_CHECK(e.begin == pos, "[safetensors] tensor '{}': data_offsets [{}, {}] leave a gap after byte {}", e.name,
                e.begin, e.end, pos);
    pos = e.end;
  }
  FOCUS_CHECK(pos == data_size, "[safetensors] {} bytes after the last tensor (trailing data or a bad header)",
              data_size - pos);
  return entries;
}

/// Reads the 8-byte header length and checks it against the file size.
uint64_t header_length(const uint8_t* p, uint64_t file_size) {
  FOCUS_CHECK(file_size >= 8, "[safetensors] file too short for the header length ({} bytes)", file_size);
  uint64_t n = 0;
  std::memcpy(&n, p, 8);
  FOCUS_CHECK(n <= kMaxHeaderSize, "[safetensors] header length {} exceeds the limit of {} bytes", n, kMaxHeaderSize);
  FOCUS_CHECK(n <= file_size - 8, "[safetensors] header length {} goes past the end of the file ({} bytes)", n,
              file_size);
  return n;
}

/// Bool tensors must hold 0 or 1 in every byte (anything else is not a valid bool).
void check_bool_bytes(const Entry& e, const uint8_t* p) {
  for (uint64_t i = 0; i < e.end - e.begin; ++i)
    FOCUS_CHECK(p[i] <= 1, "[safetensors] tensor '{}': BOOL byte {} is {} (must be 0 or 1)", e.name, i, p[i]);
}

Tensor make_tensor(const Entry& e) { return empty(e.shape, TensorOptions(e.dtype)); }

/// Writes the file layout through sink(bytes, n).
void write_layout(const TensorDict& tensors, const SafetensorsMetadata& metadata,
                  const std::function<void(const void*, size_t)>& sink) {
  std::vector<Tensor> cpu;
  cpu.reserve(tensors.size());
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : metadata) {
      if (!first) header += ",";
      first = false;
      header += json_string(k, "metadata key") + ":" + json_string(v, "metadata value");
    }
    header += "}";
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    FOCUS_CHECK(name != "__metadata__", "[safetensors] a tensor cannot be named '__metadata__'");
    FOCUS_CHECK(t.defined(), "[safetensors] tensor '{}' is undefined", name);
    Tensor c = t.device().is_cpu() ? t : t.detach().cpu();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header += first ? "" : ",";
    first = false;
    header += fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", json_string(name, "key"),
                          st_dtype_name(c.dtype()), fmt::join(c.shape(), ","), offset, offset + nbytes);
    offset += nbytes;
    cpu.push_back(std::move(c));
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  uint8_t len[8];
  std::memcpy(len, &n, 8);
  sink(len, 8);
  sink(header.data(), header.size());

  std::vector<uint8_t> buf;
  for (const Tensor& t : cpu) {
    if (t.numel() == 0) continue;
    const size_t es = t.element_size();
    const uint8_t* base = static_cast<const uint8_t*>(t.data_ptr());
    if (t.is_contiguous()) {
      sink(base, static_cast<size_t>(t.numel()) * es);
      continue;
    }
    // Strided gather, one innermost row at a time, in chunks of about 1 MiB.
    const int64_t nd = t.dim();
    const int64_t inner = t.shape()[nd - 1];
    const int64_t inner_stride = t.strides()[nd - 1];
    const int64_t rows = t.numel() / inner;
    std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
    buf.clear();
    for (int64_t r = 0; r < rows; ++r) {
      int64_t off = 0;
      for (int64_t d = 0; d < nd - 1; ++d) off += idx[d] * t.strides()[d];
      const size_t start = buf.size();
      buf.resize(start + static_cast<size_t>(inner) * es);
      for (int64_t i = 0; i < inner; ++i)
        std::memcpy(buf.data() + start + static_cast<size_t>(i) * es, base + (off + i * inner_stride) * es, es);
      for (int64_t d = nd - 2; d >= 0; --d) {
        if (++idx[d] < t.shape()[d]) break;
        idx[d] = 0;
      }
      if (buf.size() >= (1u << 20)) {
        sink(buf.data(), buf.size());
        buf.clear();
      }
    }
    if (!buf.empty()) sink(buf.data(), buf.size());
  }
}

using io::errno_text;
using io::Fd;

void pread_all(int fd, void* dst, size_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t r = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    FOCUS_CHECK(r >= 0, "[safetensors] reading '{}' failed: {}", path, errno_text());
    FOCUS_CHECK(r > 0, "[safetensors] '{}' ended early (file changed while reading?)", path);
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

}  // namespace

namespace detail {
void set_safetensors_write_fault(int64_t fail_after_bytes) { g_write_fault_after = fail_after_bytes; }
void set_safetensors_write_stop(int64_t stop_after_bytes) { g_write_stop_after = stop_after_bytes; }
}  // namespace detail

std::vector<uint8_t> safetensors_serialize(const TensorDict& tensors, const SafetensorsMetadata& metadata) {
  std::vector<uint8_t> out;
  write_layout(tensors, metadata, [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

TensorDict safetensors_deserialize(const uint8_t* data, size_t size, SafetensorsMetadata* metadata) {
  FOCUS_CHECK(data != nullptr || size == 0, "[safetensors] null buffer");
  const uint64_t n = header_length(data, size);
  SafetensorsMetadata meta;
  const std::vector<Entry> entries =
      parse_header(reinterpret_cast<const char*>(data + 8), n, size - 8 - n, metadata ? &meta : nullptr);
  const uint8_t* region = data + 8 + n;
  TensorDict out;
  for (const Entry& e : entries) {
    if (e.dtype == kBool) check_bool_bytes(e, region + e.begin);
    Tensor t = make_tensor(e);
    if (e.end > e.begin) std::memcpy(t.data_ptr(), region + e.begin, e.end - e.begin);
    out.insert(e.name, t);
  }
  if (metadata) *metadata = std::move(meta);
  return out;
}

void save_safetensors(const TensorDict& tensors, const std::string& path, const SafetensorsMetadata& metadata) {
  const int64_t fault = g_write_fault_after.load();
  int64_t stop = g_write_stop_after.exchange(-1);  // one-shot
  io::write_file_atomic(path, "safetensors", [&](const io::WriteFn& write) {
    int64_t written = 0;
    write_layout(tensors, metadata, [&](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      if (stop >= 0 && written + static_cast<int64_t>(n) > stop) {  // the stop hook: SIGSTOP after `stop` bytes
        const size_t before = static_cast<size_t>(stop - written);
        if (before > 0) write(b, before);
        written += static_cast<int64_t>(before);
        b += before;
        n -= before;
        stop = -1;
        ::raise(SIGSTOP);  // a test kills the process here, or continues it
      }
      if (fault >= 0) {  // the test hook: fail after `fault` bytes
        const size_t before = static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(int64_t(n), fault - written)));
        if (before > 0) write(b, before);
        written += static_cast<int64_t>(before);
        FOCUS_CHECK(before == n, "[safetensors] writing '{}' failed: simulated fault after {} bytes", path, written);
        return;
      }
      write(b, n);
      written += static_cast<int64_t>(n);
    });
  });
}

TensorDict load_safetensors(const std::string& path, SafetensorsMetadata* metadata) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  FOCUS_CHECK(fd.get() >= 0, "[safetensors] cannot open '{}': {}", path, errno_text());
  struct stat st{};
  FOCUS_CHECK(::fstat(fd.get(), &st) == 0, "[safetensors] cannot stat '{}': {}", path, errno_text());
  FOCUS_CHECK(S_ISREG(st.st_mode), "[safetensors] '{}' is not a regular file", path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint8_t len[8] = {};
  if (size >= 8) pread_all(fd.get(), len, 8, 0, path);
  const uint64_t n = header_length(len, size);
  std::string header(n, '\0');
  pread_all(fd.get(), header.data(), n, 8, path);
  SafetensorsMetadata meta;
  std::vector<Entry> entries;
  try {
    entries = parse_header(header.data(), n, size - 8 - n, metadata ? &meta : nullptr);
  } catch (const Error& e) {
    FOCUS_FAIL("{} (file '{}')", e.what(), path);
  }
  TensorDict out;
  for (const Entry& e : entries) {
    Tensor t = make_tensor(e);
    if (e.end > e.begin) {
      pread_all(fd.get(), t.data_ptr(), e.end - e.begin, 8 + n + e.begin, path);
      if (e.dtype == kBool) check_bool_bytes(e, static_cast<const uint8_t*>(t.data_ptr()));
    }
    out.insert(e.name, t);
  }
  if (metadata) *metadata = std::move(meta);
  return out;
}

}  // namespace focus
