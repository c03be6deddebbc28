#include "training/tensorboard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "training/png.h"

namespace focus::training {

// ---------------------------------------------------------------------------------------
// CRC-32C and TFRecord framing

namespace detail {
namespace {

// Reflected Castagnoli polynomial; the table for one byte at a time is fast enough for logs.
constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kCrcTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out.data(), 8), 4);
  out.append(data);
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Protocol buffer wire format: just the field kinds the event protos use.

namespace {

class Proto {
 public:
  const std::string& bytes() const { return buf_; }

  void varint_field(int field, uint64_t v) {
    key(field, 0);
    varint(v);
  }
  // int32/int64 fields: negative values are 10-byte two's complement varints.
  void int_field(int field, int64_t v) { varint_field(field, uint64_t(v)); }
  void double_field(int field, double v) {
    key(field, 1);
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    detail_put(bits, 8);
  }
  void float_field(int field, float v) {
    key(field, 5);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    detail_put(bits, 4);
  }
  void bytes_field(int field, std::string_view v) {
    key(field, 2);
    varint(v.size());
    buf_.append(v);
  }
  void message_field(int field, const Proto& m) { bytes_field(field, m.bytes()); }
  void packed_doubles(int field, const std::vector<double>& v) {
    key(field, 2);
    varint(v.size() * 8);
    for (double d : v) {
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      detail_put(bits, 8);
    }
  }

 private:
  void key(int field, int wire_type) { varint((uint64_t(field) << 3) | uint64_t(wire_type)); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(char((v & 0x7f) | 0x80));
      v >>= 7;
    }
    buf_.push_back(char(v));
  }
  void detail_put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) buf_.push_back(char((v >> (8 * i)) & 0xff));
  }
  std::string buf_;
};

// Field numbers of tensorboard/compat/proto/{event,summary,tensor,tensor_shape,types}.proto.
namespace event {
constexpr int kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 6;
constexpr int kSessionLogStatus = 1, kSessionStart = 1;  // SessionLog.status, SessionLog.START
}
namespace value {
constexpr int kTag = 1, kSimpleValue = 2, kImage = 4, kHisto = 5, kTensor = 8, kMetadata = 9;
}
namespace image {
constexpr int kHeight = 1, kWidth = 2, kColorspace = 3, kEncoded = 4;
}
namespace histo {
constexpr int kMin = 1, kMax = 2, kNum = 3, kSum = 4, kSumSquares = 5, kBucketLimit = 6, kBucket = 7;
}
namespace tensor {
constexpr int kDtype = 1, kShape = 2, kStringVal = 8;
constexpr int kShapeDim = 2, kDimSize = 1;
constexpr int kDtString = 7;  // types.proto DataType.DT_STRING
}
namespace metadata {
constexpr int kPluginData = 1, kPluginName = 1;
}
constexpr int kSummaryValue = 1;

// Summary{value: [v]}
std::string summary_of(const Proto& v) {
  Proto s;
  s.message_field(kSummaryValue, v);
  return s.bytes();
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// PyTorch's default log_dir: runs/<datetime.now().strftime("%b%d_%H-%M-%S")>_<host><comment>.
std::string default_log_dir(const std::string& comment) {
  const std::time_t t = std::time(nullptr);
  std::tm local{};
  localtime_r(&t, &local);
  char when[64] = {};
  std::strftime(when, sizeof when, "%b%d_%H-%M-%S", &local);
  return (std::filesystem::path("runs") / (std::string(when) + "_" + hostname() + comment)).string();
}

// tensorboard's EventFileWriter numbers its files with one counter per process.
std::atomic<uint64_t> g_file_counter{0};

}  // namespace

// ---------------------------------------------------------------------------------------
// One event file

struct SummaryWriter::FileWriter {
  std::string dir;
  std::string path;
  int fd = -1;
  std::string pending;  // framed records not yet written
  int64_t pending_events = 0;

  FileWriter(const std::string& log_dir, const std::string& suffix) : dir(log_dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    FOCUS_CHECK(!ec, "[SummaryWriter] cannot create the directory '{}': {}", dir, ec.message());
    const auto seconds = static_cast<long long>(std::time(nullptr));
    path = (fs::path(dir) / fmt::format("events.out.tfevents.{:010d}.{}.{}.{}{}", seconds, hostname(),
                                        static_cast<long long>(getpid()), g_file_counter.fetch_add(1), suffix))
               .string();
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    FOCUS_CHECK(fd >= 0, "[SummaryWriter] cannot create the event file '{}': {}", path, io::errno_text());
    Proto first;
    first.double_field(event::kWallTime, now_seconds());
    first.bytes_field(event::kFileVersion, "brain.Event:2");
    add(first.bytes());
    write_pending();
  }
  ~FileWriter() {
    if (fd >= 0) ::close(fd);
  }

  void add(const std::string& event_bytes) {
    pending += detail::tfrecord(event_bytes);
    ++pending_events;
  }

  void write_pending() {
    FOCUS_CHECK(fd >= 0, "[SummaryWriter] '{}' is closed", path);
    size_t done = 0;
    while (done < pending.size()) {
      const ssize_t n = ::write(fd, pending.data() + done, pending.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const std::string why = io::errno_text();
        // Keep what was not written, so a later flush can try again.
        pending.erase(0, done);
        FOCUS_FAIL("[SummaryWriter] cannot write '{}': {}", path, why);
      }
      done += size_t(n);
    }
    pending.clear();
    pending_events = 0;
  }

  void close_file() {
    if (fd < 0) return;
    write_pending();
    const int rc = ::close(fd);
    fd = -1;
    FOCUS_CHECK(rc == 0, "[SummaryWriter] cannot close '{}': {}", path, io::errno_text());
  }
};

// ---------------------------------------------------------------------------------------
// Histograms

namespace {

const std::vector<double>& tensorflow_bins() {
  // PyTorch's SummaryWriter.default_bins, computed the same way in double precision so the
  // edges are bit for bit the same.
  static const std::vector<double> bins = [] {
    std::vector<double> pos;
    for (double v = 1e-12; v < 1e20; v *= 1.1) pos.push_back(v);
    std::vector<double> all;
    all.reserve(pos.size() * 2 + 1);
    for (auto it = pos.rbegin(); it != pos.rend(); ++it) all.push_back(-*it);
    all.push_back(0.0);
    all.insert(all.end(), pos.begin(), pos.end());
    return all;
  }();
  return bins;
}

}  // namespace

namespace {

// op: the start of every error message ("[make_histogram]").
Histogram histogram_of(const Tensor& values, const HistogramBins& bins, int64_t max_bins, const std::string& op) {
  FOCUS_CHECK(values.defined(), "{} the values tensor is undefined", op);
  FOCUS_CHECK(values.numel() > 0, "{} the values are empty (shape {}): a histogram needs at least one value", op,
              values.shape());
  FOCUS_CHECK(max_bins >= 0, "{} max_bins must be >= 0 (0 = no limit), got {}", op, max_bins);
  std::vector<double> v = values.detach().to_vector<double>();
  Histogram h;
  h.min = v[0];
  h.max = v[0];
  for (double x : v) {
    FOCUS_CHECK(std::isfinite(x), "{} the values hold a non-finite number ({})", op, x);
    h.min = std::min(h.min, x);
    h.max = std::max(h.max, x);
    h.sum += x;
    h.sum_squares += x * x;
  }
  h.num = double(v.size());

  // numpy.histogram's edges.
  std::vector<double> edges;
  if (bins.edges_) {
    edges = *bins.edges_;
    FOCUS_CHECK(edges.size() >= 2, "{} explicit bins need at least 2 edges, got {}", op, edges.size());
    for (size_t i = 0; i < edges.size(); ++i) {
      FOCUS_CHECK(std::isfinite(edges[i]), "{} bin edge {} is not finite ({})", op, i, edges[i]);
      FOCUS_CHECK(i == 0 || edges[i] > edges[i - 1], "{} bin edges must increase: edge {} is {} after {}", op, i,
                  edges[i], edges[i - 1]);
    }
  } else if (bins.count_) {
    const int64_t n = *bins.count_;
    FOCUS_CHECK(n >= 1 && n <= 10'000'000, "{} the number of bins must be in 1..10000000, got {}", op, n);
    double first = h.min, last = h.max;
    if (first == last) {
      first -= 0.5;
      last += 0.5;
    }
    // numpy.linspace(first, last, n + 1): i * step + first, the last edge exactly `last`.
    const double step = (last - first) / double(n);
    edges.resize(size_t(n) + 1);
    for (int64_t i = 0; i <= n; ++i) edges[size_t(i)] = double(i) * step + first;
    edges.back() = last;
  } else {
    FOCUS_CHECK(bins.name_ == "tensorflow",
                "{} unknown bins '{}': use \"tensorflow\", a number of bins, or explicit bin edges", op, bins.name_);
    edges = tensorflow_bins();
  }

  // counts[i] = #{x : edges[i] <= x < edges[i+1]}, the last bin closed on the right.
  std::sort(v.begin(), v.end());
  const size_t nb = edges.size() - 1;
  std::vector<double> counts(nb);
  for (size_t i = 0; i < nb; ++i) {
    const auto lo = std::lower_bound(v.begin(), v.end(), edges[i]);
    const auto hi = i + 1 == nb ? std::upper_bound(v.begin(), v.end(), edges[i + 1])
                                : std::lower_bound(v.begin(), v.end(), edges[i + 1]);
    counts[i] = double(hi - lo);
  }

  if (max_bins > 0 && int64_t(nb) > max_bins) {
    // PyTorch: pad the counts to a multiple of nb / max_bins, then sum groups of that many.
    const size_t sub = nb / size_t(max_bins);
    const size_t rem = nb % sub;
    if (rem != 0) counts.resize(nb + (sub - rem), 0.0);
    std::vector<double> merged(counts.size() / sub, 0.0);
    for (size_t i = 0; i < counts.size(); ++i) merged[i / sub] += counts[i];
    std::vector<double> merged_edges;
    for (size_t i = 0; i + 1 < edges.size(); i += sub) merged_edges.push_back(edges[i]);
    merged_edges.push_back(edges.back());
    counts = std::move(merged);
    edges = std::move(merged_edges);
  }

  // Keep the bins from the first to the last non-empty one, plus the empty bin on the left
  // (TensorBoard only stores right edges), as PyTorch's make_histogram.
  size_t first = counts.size(), last = 0;
  for (size_t i = 0; i < counts.size(); ++i)
    if (counts[i] > 0) {
      first = std::min(first, i);
      last = i;
    }
  FOCUS_CHECK(first < counts.size(), "{} no value lies within the bins ({} .. {}); the values span {} .. {}", op,
              edges.front(), edges.back(), h.min, h.max);
  const size_t end = last + 1;
  if (first > 0) {
    h.bucket.assign(counts.begin() + std::ptrdiff_t(first - 1), counts.begin() + std::ptrdiff_t(end));
  } else {
    h.bucket.push_back(0.0);
    h.bucket.insert(h.bucket.end(), counts.begin(), counts.begin() + std::ptrdiff_t(end));
  }
  h.bucket_limit.assign(edges.begin() + std::ptrdiff_t(first), edges.begin() + std::ptrdiff_t(end + 1));
  return h;
}

}  // namespace

Histogram make_histogram(const Tensor& values, const HistogramBins& bins, int64_t max_bins) {
  return histogram_of(values, bins, max_bins, "[make_histogram]");
}

// ---------------------------------------------------------------------------------------
// SummaryWriter

SummaryWriter::SummaryWriter(SummaryWriterOptions options) : options_(std::move(options)) {
  FOCUS_CHECK(options_.max_queue_ >= 1, "[SummaryWriter] max_queue must be >= 1, got {}", options_.max_queue_);
  FOCUS_CHECK(std::isfinite(options_.flush_secs_) && options_.flush_secs_ > 0,
              "[SummaryWriter] flush_secs must be a positive number of seconds, got {}", options_.flush_secs_);
  FOCUS_CHECK(options_.filename_suffix_.find('/') == std::string::npos,
              "[SummaryWriter] filename_suffix '{}' holds a '/'", options_.filename_suffix_);
  log_dir_ = options_.log_dir_.empty() ? default_log_dir(options_.comment_) : options_.log_dir_;
  main_ = std::make_unique<FileWriter>(log_dir_, options_.filename_suffix_);
  if (options_.purge_step_) {
    // PyTorch: Event(step, file_version) and Event(step, session_log=SessionLog(START)).
    Proto version, start, log;
    version.double_field(event::kWallTime, now_seconds());
    version.int_field(event::kStep, *options_.purge_step_);
    version.bytes_field(event::kFileVersion, "brain.Event:2");
    log.int_field(event::kSessionLogStatus, event::kSessionStart);
    start.double_field(event::kWallTime, now_seconds());
    start.int_field(event::kStep, *options_.purge_step_);
    start.message_field(event::kSessionLog, log);
    main_->add(version.bytes());
    main_->add(start.bytes());
    main_->write_pending();
  }
  flusher_ = std::thread([this] { flusher_loop(); });
}

SummaryWriter::~SummaryWriter() {
  try {
    close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "focus: %s\n", e.what());
  }
}

const std::string& SummaryWriter::file_path() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return main_->path;
}

void SummaryWriter::flusher_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  // At most a year: wait_for converts to the clock's int64 nanoseconds, which a huge
  // flush_secs would overflow; a yearly flush is as good as none.
  const auto period = std::chrono::duration<double>(std::min(options_.flush_secs_, 3.2e7));
  while (!closed_) {
    wake_.wait_for(lock, period);
    if (closed_) break;
    try {
      flush_locked();
    } catch (const std::exception& e) {
      if (background_error_.empty()) background_error_ = e.what();
    }
  }
}

SummaryWriter::FileWriter& SummaryWriter::main_writer(const char* op) {
  FOCUS_CHECK(!closed_, "[SummaryWriter] {}: the writer of '{}' is closed", op, log_dir_);
  if (!background_error_.empty()) {
    std::string e;
    std::swap(e, background_error_);
    FOCUS_FAIL("{} (while writing in the background; {} not written)", e, op);
  }
  return *main_;
}

void SummaryWriter::add_summary(const char* op, FileWriter& writer, const std::string& summary, int64_t step,
                                std::optional<double> walltime) {
  const double wall = walltime ? *walltime : now_seconds();
  FOCUS_CHECK(std::isfinite(wall), "[SummaryWriter] {}: walltime must be finite, got {}", op, wall);
  Proto e;
  e.double_field(event::kWallTime, wall);
  if (step != 0) e.int_field(event::kStep, step);
  e.bytes_field(event::kSummary, summary);
  writer.add(e.bytes());
  if (writer.pending_events >= options_.max_queue_) writer.write_pending();
}

namespace {
void check_tag(const char* op, const std::string& tag) {
  FOCUS_CHECK(!tag.empty(), "[SummaryWriter] {}: empty tag", op);
}
}  // namespace

void SummaryWriter::add_scalar(const std::string& tag, double scalar_value, int64_t global_step,
                               std::optional<double> walltime) {
  std::lock_guard<std::mutex> lock(mutex_);
  FileWriter& w = main_writer("add_scalar");
  check_tag("add_scalar", tag);
  Proto v;
  v.bytes_field(value::kTag, tag);
  v.float_field(value::kSimpleValue, float(scalar_value));
  add_summary("add_scalar", w, summary_of(v), global_step, walltime);
}

void SummaryWriter::add_scalar(const std::string& tag, const Tensor& scalar_value, int64_t global_step,
                               std::optional<double> walltime) {
  FOCUS_CHECK(scalar_value.defined(), "[SummaryWriter] add_scalar: '{}': the tensor is undefined", tag);
  FOCUS_CHECK(scalar_value.numel() == 1,
              "[SummaryWriter] add_scalar: '{}': a scalar needs a one-element tensor, got shape {}", tag,
              scalar_value.shape());
  add_scalar(tag, scalar_value.detach().item<double>(), global_step, walltime);
}

void SummaryWriter::add_scalars(const std::string& main_tag, const std::map<std::string, double>& tag_scalar_dict,
                                int64_t global_step, std::optional<double> walltime) {
  std::lock_guard<std::mutex> lock(mutex_);
  main_writer("add_scalars");
  check_tag("add_scalars", main_tag);
  const double wall = walltime ? *walltime : now_seconds();  // one time for all, as PyTorch
  std::string prefix = main_tag;
  std::replace(prefix.begin(), prefix.end(), '/', '_');
  for (const auto& [tag, scalar] : tag_scalar_dict) {
    FOCUS_CHECK(!tag.empty() && tag.find('/') == std::string::npos && tag != "." && tag != "..",
                "[SummaryWriter] add_scalars: '{}': the tag '{}' must be a non-empty directory name without '/'",
                main_tag, tag);
    const std::string dir = (std::filesystem::path(log_dir_) / (prefix + "_" + tag)).string();
    auto it = sub_writers_.find(dir);
    if (it == sub_writers_.end())
      it = sub_writers_.emplace(dir, std::make_unique<FileWriter>(dir, options_.filename_suffix_)).first;
    Proto v;
    v.bytes_field(value::kTag, main_tag);
    v.float_field(value::kSimpleValue, float(scalar));
    add_summary("add_scalars", *it->second, summary_of(v), global_step, wall);
  }
}

void SummaryWriter::add_histogram(const std::string& tag, const Tensor& values, int64_t global_step,
                                  const HistogramBins& bins, std::optional<double> walltime, int64_t max_bins) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    main_writer("add_histogram");
    check_tag("add_histogram", tag);
  }
  // Outside the lock: reading the values may wait for a device.
  const Histogram h = histogram_of(values, bins, max_bins, fmt::format("[SummaryWriter] add_histogram: '{}':", tag));
  Proto hp;
  hp.double_field(histo::kMin, h.min);
  hp.double_field(histo::kMax, h.max);
  hp.double_field(histo::kNum, h.num);
  hp.double_field(histo::kSum, h.sum);
  hp.double_field(histo::kSumSquares, h.sum_squares);
  hp.packed_doubles(histo::kBucketLimit, h.bucket_limit);
  hp.packed_doubles(histo::kBucket, h.bucket);
  Proto v;
  v.bytes_field(value::kTag, tag);
  v.message_field(value::kHisto, hp);
  std::lock_guard<std::mutex> lock(mutex_);
  add_summary("add_histogram", main_writer("add_histogram"), summary_of(v), global_step, walltime);
}

void SummaryWriter::add_image(const std::string& tag, const Tensor& img, int64_t global_step,
                              std::optional<double> walltime, const std::string& dataformats) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    main_writer("add_image");
    check_tag("add_image", tag);
  }
  const char* op = "[SummaryWriter] add_image";
  FOCUS_CHECK(img.defined(), "{}: '{}': the image tensor is undefined", op, tag);
  std::string fmt_upper = dataformats;
  for (char& c : fmt_upper) c = char(std::toupper(static_cast<unsigned char>(c)));
  FOCUS_CHECK(fmt_upper == "CHW" || fmt_upper == "HWC" || fmt_upper == "HW",
              "{}: '{}': unknown dataformats '{}': use \"CHW\", \"HWC\" or \"HW\"", op, tag, dataformats);
  FOCUS_CHECK(img.dim() == int64_t(fmt_upper.size()), "{}: '{}': dataformats '{}' needs a {}-D tensor, got shape {}", op,
              tag, dataformats, fmt_upper.size(), img.shape());
  const bool is_uint8 = img.dtype() == kUInt8;
  const bool is_float = img.dtype() == kFloat32 || img.dtype() == kFloat64 || img.dtype() == kFloat16 ||
                        img.dtype() == kBFloat16;
  FOCUS_CHECK(is_uint8 || is_float, "{}: '{}': the image must be uint8 (0..255) or floating point (0..1), got {}", op,
              tag, img.dtype());
  const auto pos = [&](char c) { return int64_t(fmt_upper.find(c)); };
  const int64_t H = img.size(pos('H')), W = img.size(pos('W'));
  const int64_t C = fmt_upper.size() == 3 ? img.size(pos('C')) : 1;
  FOCUS_CHECK(C == 1 || C == 3 || C == 4, "{}: '{}': an image has 1, 3 or 4 channels, got {} (shape {}, {})", op, tag,
              C, img.shape(), dataformats);
  FOCUS_CHECK(H >= 1 && W >= 1 && H <= 100000 && W <= 100000,
              "{}: '{}': the image must be 1..100000 pixels high and wide, got {}x{} (shape {})", op, tag, H, W,
              img.shape());
  // Host copy laid out as HWC.
  Tensor hwc = fmt_upper == "CHW" ? img.detach().permute({1, 2, 0}) : img.detach();
  std::vector<uint8_t> pixels;
  if (is_uint8) {
    pixels = hwc.to_vector<uint8_t>();
  } else {
    const std::vector<float> f = hwc.to_vector<float>();
    pixels.resize(f.size());
    for (size_t i = 0; i < f.size(); ++i) {
      FOCUS_CHECK(!std::isnan(f[i]), "{}: '{}': the image holds NaN", op, tag);
      // PyTorch: (x * 255).astype(uint8), which truncates; focus clamps what lies outside.
      pixels[i] = uint8_t(std::clamp(f[i] * 255.0f, 0.0f, 255.0f));
    }
  }
  int channels = int(C);
  if (C == 1) {  // gray -> RGB, as PyTorch's convert_to_HWC
    std::vector<uint8_t> rgb(pixels.size() * 3);
    for (size_t i = 0; i < pixels.size(); ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = pixels[i];
    pixels = std::move(rgb);
    channels = 3;
  }
  const std::string png = encode_png(pixels.data(), int(W), int(H), channels, fmt::format("{}: '{}':", op, tag));
  add_encoded_image("add_image", tag, png, H, W, channels, global_step, walltime);
}

void SummaryWriter::add_encoded_image(const char* what, const std::string& tag, const std::string& png, int64_t H,
                                      int64_t W, int channels, int64_t global_step, std::optional<double> walltime) {
  Proto im;
  im.int_field(image::kHeight, H);
  im.int_field(image::kWidth, W);
  im.int_field(image::kColorspace, channels);
  im.bytes_field(image::kEncoded, png);
  Proto v;
  v.bytes_field(value::kTag, tag);
  v.message_field(value::kImage, im);
  std::lock_guard<std::mutex> lock(mutex_);
  add_summary(what, main_writer(what), summary_of(v), global_step, walltime);
}

void SummaryWriter::add_png(const std::string& tag, const std::string& png, int64_t global_step,
                            std::optional<double> walltime) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    main_writer("add_png");
    check_tag("add_png", tag);
  }
  // The signature, then the IHDR chunk: length 13, "IHDR", width, height (big-endian),
  // bit depth, colour type.
  static constexpr unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  FOCUS_CHECK(png.size() >= 33 && std::memcmp(png.data(), kSignature, 8) == 0 && png.compare(12, 4, "IHDR") == 0,
              "[SummaryWriter] add_png: '{}': not a PNG file ({} bytes)", tag, png.size());
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(png[at + i]);
    return int64_t(v);
  };
  const int64_t W = be32(16), H = be32(20);
  const int colour = static_cast<unsigned char>(png[25]);
  // PNG colour types: 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA.
  const int channels = colour == 0 ? 1 : colour == 4 ? 2 : colour == 6 ? 4 : 3;
  FOCUS_CHECK(W >= 1 && H >= 1, "[SummaryWriter] add_png: '{}': a PNG of {}x{} pixels", tag, W, H);
  add_encoded_image("add_png", tag, png, H, W, channels, global_step, walltime);
}

void SummaryWriter::add_text(const std::string& tag, const std::string& text_string, int64_t global_step,
                             std::optional<double> walltime) {
  std::lock_guard<std::mutex> lock(mutex_);
  FileWriter& w = main_writer("add_text");
  check_tag("add_text", tag);
  // PyTorch's summary.text(): plugin "text" (its content, TextPluginData{version: 0}, is
  // empty on the wire), a DT_STRING tensor of shape [1].
  Proto plugin;
  plugin.bytes_field(metadata::kPluginName, "text");
  Proto meta;
  meta.message_field(metadata::kPluginData, plugin);
  Proto dim;
  dim.int_field(tensor::kDimSize, 1);
  Proto shape;
  shape.message_field(tensor::kShapeDim, dim);
  Proto t;
  t.int_field(tensor::kDtype, tensor::kDtString);
  t.message_field(tensor::kShape, shape);
  t.bytes_field(tensor::kStringVal, text_string);
  Proto v;
  v.bytes_field(value::kTag, tag + "/text_summary");
  v.message_field(value::kMetadata, meta);
  v.message_field(value::kTensor, t);
  add_summary("add_text", w, summary_of(v), global_step, walltime);
}

void SummaryWriter::flush_locked() {
  if (closed_) return;
  main_->write_pending();
  for (auto& [dir, w] : sub_writers_) w->write_pending();
}

void SummaryWriter::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!background_error_.empty()) {
    std::string e;
    std::swap(e, background_error_);
    FOCUS_FAIL("{} (while writing in the background)", e);
  }
  flush_locked();
}

void SummaryWriter::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
  }
  wake_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  // Close every file even when one fails; report the first failure.
  std::string first_error = background_error_;
  background_error_.clear();
  auto close_one = [&](FileWriter& w) {
    try {
      w.close_file();
    } catch (const std::exception& e) {
      if (first_error.empty()) first_error = e.what();
    }
  };
  close_one(*main_);
  for (auto& [dir, w] : sub_writers_) close_one(*w);
  if (!first_error.empty()) FOCUS_FAIL("{}", first_error);
}

}  // namespace focus::training
