#pragma once
/// TensorBoard event files, as PyTorch's torch.utils.tensorboard.SummaryWriter writes them:
/// scalars, histograms, images and text, readable by TensorBoard (`tensorboard --logdir runs`).
///
///   focus::training::SummaryWriter writer("runs/exp1");
///   for (int64_t step = 0; step < steps; ++step) {
///     ...
///     writer.add_scalar("loss/train", loss.item<double>(), step);
///   }
///   writer.add_histogram("fc1.weight", model->fc1->weight, steps);
///   writer.close();  // or let the destructor close it

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace focus::training {

/// Options of a SummaryWriter, named as PyTorch's constructor arguments.
struct SummaryWriterOptions {
  SummaryWriterOptions() = default;
  /// SummaryWriterOptions("runs/exp1") = SummaryWriterOptions().log_dir("runs/exp1").
  SummaryWriterOptions(std::string log_dir) : log_dir_(std::move(log_dir)) {}
  SummaryWriterOptions(const char* log_dir) : log_dir_(log_dir) {}
  /// Directory of the event files, created with its parents when missing. "" (the default) =
  /// runs/<MonDD_HH-MM-SS>_<hostname><comment>, in local time (e.g. runs/Dec07_13-05-09_box).
  std::string log_dir_;
  /// Appended to the default log_dir; ignored when log_dir is given.
  std::string comment_;
  /// Events held in memory before they are written to the file (>= 1).
  int64_t max_queue_ = 10;
  /// Seconds between writes of pending events by a background thread (> 0).
  double flush_secs_ = 120;
  /// Appended to every event file's name.
  std::string filename_suffix_;
  /// Resuming at this step: the event file starts with a SessionLog START event at it, so
  /// TensorBoard drops the events of earlier files at this step and after (the steps a
  /// resumed run trains again), as PyTorch's purge_step.
  std::optional<int64_t> purge_step_;
  SummaryWriterOptions& log_dir(std::string v) { log_dir_ = std::move(v); return *this; }
  SummaryWriterOptions& comment(std::string v) { comment_ = std::move(v); return *this; }
  SummaryWriterOptions& max_queue(int64_t v) { max_queue_ = v; return *this; }
  SummaryWriterOptions& flush_secs(double v) { flush_secs_ = v; return *this; }
  SummaryWriterOptions& filename_suffix(std::string v) { filename_suffix_ = std::move(v); return *this; }
  SummaryWriterOptions& purge_step(int64_t step) { purge_step_ = step; return *this; }
};

/// How add_histogram bins its values (numpy.histogram's `bins`):
/// - "tensorflow" (the default): PyTorch's fixed bins, edges 0, +-1e-12 * 1.1^k up to 1e20
///   (values beyond +-1e20 are not counted, as in PyTorch);
/// - a count n >= 1: n equal bins from the smallest to the largest value (+-0.5 around a
///   single value);
/// - explicit edges: a strictly increasing list of >= 2 finite numbers; each bin holds
///   [edge_i, edge_i+1), the last one its right edge too; values outside are not counted.
/// Any other name -> focus::Error (numpy's "auto", "fd", ... are not supported).
struct HistogramBins {
  HistogramBins() = default;
  HistogramBins(const char* name) : name_(name) {}
  HistogramBins(std::string name) : name_(std::move(name)) {}
  HistogramBins(int count) : count_(count) {}
  HistogramBins(int64_t count) : count_(count) {}
  HistogramBins(std::vector<double> edges) : edges_(std::move(edges)) {}
  std::string name_ = "tensorflow";  // used when count_ and edges_ are unset
  std::optional<int64_t> count_;
  std::optional<std::vector<double>> edges_;
};

/// A TensorBoard histogram (HistogramProto), as PyTorch's make_histogram builds it: the
/// statistics of all values, and the bins from the first to the last non-empty one plus an
/// empty bin on the left; bucket_limit[i] is the right edge of bucket i.
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;
  std::vector<double> bucket;
};

/// Builds the histogram of values (any shape, dtype and device) as add_histogram writes it.
/// max_bins > 0 merges neighbouring bins as PyTorch's max_bins does. No values, a non-finite
/// value, bad bins, or no value within the bins -> focus::Error "[make_histogram] ...".
Histogram make_histogram(const Tensor& values, const HistogramBins& bins = {}, int64_t max_bins = 0);

/// Writes TensorBoard event files in log_dir, as torch.utils.tensorboard.SummaryWriter:
/// one file events.out.tfevents.<unix time>.<hostname>.<pid>.<n><filename_suffix> per writer
/// (add_scalars adds one writer per sub-directory). Each file starts with the event
/// file_version "brain.Event:2" and is written as soon as the writer is made.
///
/// Events are buffered: written when max_queue are pending, every flush_secs by a background
/// thread, and by flush() and close(). Steps may be negative (as in PyTorch); walltime
/// defaults to the current time (seconds since the epoch). Tensor arguments may live on any
/// device; they are read to the host.
///
/// Thread-safe: one mutex guards each writer, so threads may add events to one writer.
/// After close(), add_* -> focus::Error (PyTorch would start a new file; focus says so
/// instead); flush() and close() again do nothing. The destructor closes, and reports an I/O
/// error there on stderr (a destructor cannot throw).
class SummaryWriter {
 public:
  explicit SummaryWriter(SummaryWriterOptions options = {});
  ~SummaryWriter();
  SummaryWriter(const SummaryWriter&) = delete;
  SummaryWriter& operator=(const SummaryWriter&) = delete;

  /// The directory of the event files (PyTorch's get_logdir()).
  const std::string& log_dir() const { return log_dir_; }
  /// The path of the main event file (the one add_scalar and the others write).
  const std::string& file_path() const;

  /// A scalar: Summary.Value{tag, simple_value (float32)}. NaN and infinities are written as
  /// they are (a diverging loss is worth seeing).
  void add_scalar(const std::string& tag, double scalar_value, int64_t global_step = 0,
                  std::optional<double> walltime = std::nullopt);
  /// A one-element tensor's value (else focus::Error).
  void add_scalar(const std::string& tag, const Tensor& scalar_value, int64_t global_step = 0,
                  std::optional<double> walltime = std::nullopt);
  /// Several scalars on one chart: each value goes to its own writer in
  /// log_dir/<main_tag with '/' -> '_'>_<tag>/, under the tag main_tag (as PyTorch).
  void add_scalars(const std::string& main_tag, const std::map<std::string, double>& tag_scalar_dict,
                   int64_t global_step = 0, std::optional<double> walltime = std::nullopt);
  /// The histogram of values (make_histogram); empty or non-finite values -> focus::Error.
  void add_histogram(const std::string& tag, const Tensor& values, int64_t global_step = 0,
                     const HistogramBins& bins = {}, std::optional<double> walltime = std::nullopt,
                     int64_t max_bins = 0);
  /// An image, PNG-encoded: img is uint8 (0..255) or floating point (0..1, scaled by 255 and
  /// truncated as PyTorch; values outside are clamped, NaN -> focus::Error), laid out as
  /// dataformats says: "CHW" (default), "HWC" or "HW"; 1 channel (gray, written as RGB as
  /// PyTorch does), 3 (RGB) or 4 (RGBA).
  void add_image(const std::string& tag, const Tensor& img_tensor, int64_t global_step = 0,
                 std::optional<double> walltime = std::nullopt, const std::string& dataformats = "CHW");
  /// An image already encoded as PNG (a file's bytes), written as it is; its size and
  /// channels are read from its header. Not in PyTorch (whose add_image takes pixels): for
  /// pictures a program has drawn to files. Not a PNG -> focus::Error.
  void add_png(const std::string& tag, const std::string& png, int64_t global_step = 0,
               std::optional<double> walltime = std::nullopt);
  /// Text (markdown in TensorBoard), under the tag "<tag>/text_summary" as PyTorch: a string
  /// tensor of shape [1] with the text plugin's metadata.
  void add_text(const std::string& tag, const std::string& text_string, int64_t global_step = 0,
                std::optional<double> walltime = std::nullopt);

  /// Writes every pending event of every file to the operating system.
  void flush();
  /// Flushes and closes every file; stops the background thread. A second call does nothing.
  void close();

 private:
  void add_encoded_image(const char* what, const std::string& tag, const std::string& png, int64_t height,
                         int64_t width, int channels, int64_t global_step, std::optional<double> walltime);
  struct FileWriter;  // one event file
  FileWriter& main_writer(const char* op);
  void add_summary(const char* op, FileWriter& writer, const std::string& summary, int64_t step,
                   std::optional<double> walltime);
  void flush_locked();
  void flusher_loop();

  std::string log_dir_;
  SummaryWriterOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool closed_ = false;
  std::string background_error_;  // an I/O error of the background thread, thrown by the next call
  std::unique_ptr<FileWriter> main_;
  std::map<std::string, std::unique_ptr<FileWriter>> sub_writers_;  // add_scalars, by directory
  std::thread flusher_;
};

namespace detail {
/// CRC-32C (Castagnoli), as TFRecord framing uses; crc continues an earlier value.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
/// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);
/// One TFRecord: uint64 length (little-endian), masked CRC of those 8 bytes, data, masked
/// CRC of the data.
std::string tfrecord(std::string_view data);
}  // namespace detail

}  // namespace focus::training
