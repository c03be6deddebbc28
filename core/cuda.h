#pragma once
/// The CUDA runtime as a user program sees it (torch.cuda's names). Every function exists
/// in every build: without CUDA (a build with FOCUS_CUDA=OFF, or no GPU on the machine)
/// is_available() is false, device_count() is 0 and the others throw focus::Error saying so.
#include <cstddef>
#include <cstdint>
#include <string>

namespace focus::cuda {

/// True when this build has the CUDA backend and at least one GPU is visible.
bool is_available();
/// Number of visible GPUs (0 without CUDA).
int device_count();
/// The device the calls below use when given device -1.
int current_device();
/// Makes device the current one (as torch.cuda.set_device).
void set_device(int device);
/// The GPU's name, e.g. "NVIDIA H200". device -1: the current device.
std::string get_device_name(int device = -1);
/// Waits for every kernel queued on the device and reports an error recorded on it as
/// focus::Error. device -1: the current device.
void synchronize(int device = -1);

/// Caching allocator figures, in bytes (torch.cuda.memory_allocated and friends): bytes
/// held by tensors now; the peak of that since the start or the last reset; bytes held
/// from the driver (tensors plus the cache).
size_t memory_allocated(int device = -1);
size_t max_memory_allocated(int device = -1);
size_t memory_reserved(int device = -1);
void reset_peak_memory_stats(int device = -1);
/// Gives the cached, unused blocks back to the driver.
void empty_cache();

/// Whether a CUDA graph capture is under way on device (-1: the current one); false
/// without CUDA (torch.cuda.is_current_stream_capturing).
bool is_current_stream_capturing(int device = -1);

/// A CUDA graph, as torch.cuda.CUDAGraph: the kernels that one stretch of work (say a
/// whole training step) queues on a GPU, recorded once and replayed with one launch.
///
///   cuda::Graph graph;
///   {
///     cuda::GraphCapture capture(graph);   // with torch.cuda.graph(graph):
///     static_loss = step(static_x, static_y);
///   }
///   static_x.copy_(next_batch);            // new data into the same memory
///   graph.replay();                        // static_loss now holds the new loss
///
/// Replays run the recorded kernels on the recorded memory: inputs are read from, and
/// outputs written to, the tensors that existed during the capture ("static" tensors), so
/// new data is copied into those and results read from them. Tensors created during the
/// capture live in a memory pool private to the graph, which no allocation outside it uses
/// while the graph lives; reset() or destruction gives the pool back to the cache.
/// Host values used by the captured ops (scalars, lr, shapes) are frozen at capture.
/// Not allowed during capture, each a focus::Error naming the op that also abandons the
/// capture (the device is usable again and the graph stays empty): anything that waits for
/// the device on the host (item(), copies to or from the host, cuda::synchronize(),
/// cuda::empty_cache(), index scans that read their result), and random ops (rand,
/// randn, randint, dropout with p > 0), since replays would repeat the same numbers.
/// Warm up with a few eager steps first, so that lazily created state (optimizer state,
/// cuBLAS handles, grads) exists before the capture.
class Graph {
 public:
  Graph() = default;
  /// Frees the graph (reset()); never throws.
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// Starts recording the work queued on device (-1: the current one). Synchronises the
  /// device first. Errors without a GPU, when this graph already holds one (reset() it or
  /// use a new Graph, as PyTorch), or while another capture is under way on the device.
  void capture_begin(int device = -1);
  /// Stops recording and instantiates the graph. Errors when no capture is under way, or
  /// when the capture was abandoned or failed (the graph is then left empty).
  void capture_end();
  /// Queues one run of the graph on its device and returns (asynchronous, like a kernel).
  void replay();
  /// Frees the graph and gives its memory pool back (after the replays queued so far);
  /// the Graph can capture again.
  void reset();
  /// Abandons a capture under way, leaving the graph empty; a no-op otherwise. Never throws.
  void abort_capture() noexcept;
  /// Whether a capture of this graph is under way.
  bool is_capturing() const { return capturing_; }
  /// Whether the graph holds a captured graph that replay() runs.
  bool has_graph() const { return handle_ != nullptr && !capturing_; }
  /// The device of the graph (-1 before the first capture).
  int device() const { return device_; }

 private:
  void* handle_ = nullptr;  // the backend's graph (Backend::graph_capture_begin)
  int device_ = -1;
  bool capturing_ = false;
};

/// `with torch.cuda.graph(graph):` as a scope: begins capturing graph on construction and
/// ends the capture when the scope ends. When the scope is left by an exception, the
/// capture is abandoned instead (the graph stays empty) and the exception goes on; when it
/// ends normally, a failed capture_end() throws from the destructor (the scope's end is
/// where PyTorch's `with` raises it too). end() ends it explicitly, earlier.
class GraphCapture {
 public:
  explicit GraphCapture(Graph& graph, int device = -1);
  ~GraphCapture() noexcept(false);
  GraphCapture(const GraphCapture&) = delete;
  GraphCapture& operator=(const GraphCapture&) = delete;
  /// Ends the capture now (capture_end()); the destructor then does nothing.
  void end();

 private:
  Graph& graph_;
  int uncaught_;
  bool done_ = false;
};

/// Makes `device` current for its lifetime and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

}  // namespace focus::cuda
