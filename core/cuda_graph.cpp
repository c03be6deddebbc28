// focus::cuda::Graph and GraphCapture: core's side of CUDA graphs. The work is the device's
// kernel table's (Backend::graph_*; backends/cuda/graph.cpp), so core calls no CUDA API.
#include <exception>

#include "backends/backend.h"
#include "core/cuda.h"
#include "core/error.h"

namespace focus::cuda {

namespace {
Backend& graph_backend(int device) { return backend_for(Device::cuda(device)); }
}  // namespace

Graph::~Graph() { reset(); }

void Graph::capture_begin(int device) {
  FOCUS_CHECK(is_available(),
              "[cuda.Graph.capture_begin] no CUDA device is available: CUDA graphs need a GPU (and a focus built "
              "with CUDA)");
  FOCUS_CHECK(handle_ == nullptr,
              "[cuda.Graph.capture_begin] this Graph already holds a {}; call reset() first or use a new Graph",
              capturing_ ? "capture under way" : "captured graph");
  const int d = device < 0 ? current_device() : device;
  handle_ = graph_backend(d).graph_capture_begin();
  device_ = d;
  capturing_ = true;
}

void Graph::capture_end() {
  FOCUS_CHECK(capturing_ && handle_ != nullptr,
              "[cuda.Graph.capture_end] no capture of this graph is under way (call capture_begin() first)");
  capturing_ = false;
  Backend& b = graph_backend(device_);
  try {
    b.graph_capture_end(handle_);
  } catch (...) {
    b.graph_destroy(handle_);
    handle_ = nullptr;
    throw;
  }
}

void Graph::replay() {
  FOCUS_CHECK(!capturing_, "[cuda.Graph.replay] the graph is still being captured (call capture_end() first)");
  FOCUS_CHECK(handle_ != nullptr, "[cuda.Graph.replay] the graph holds nothing to replay (capture it first)");
  graph_backend(device_).graph_replay(handle_);
}

void Graph::reset() {
  if (handle_ == nullptr) return;
  try {
    graph_backend(device_).graph_destroy(handle_);
  } catch (...) {  // backend_for cannot fail for a device that captured; never throw from here
  }
  handle_ = nullptr;
  capturing_ = false;
}

void Graph::abort_capture() noexcept {
  if (!capturing_ || handle_ == nullptr) return;
  try {
    Backend& b = graph_backend(device_);
    b.graph_capture_abort(handle_);
    b.graph_destroy(handle_);
  } catch (...) {
  }
  handle_ = nullptr;
  capturing_ = false;
}

GraphCapture::GraphCapture(Graph& graph, int device) : graph_(graph), uncaught_(std::uncaught_exceptions()) {
  graph_.capture_begin(device);
}

GraphCapture::~GraphCapture() noexcept(false) {
  if (done_) return;
  done_ = true;
  if (std::uncaught_exceptions() > uncaught_) {
    graph_.abort_capture();  // unwinding: never throw, leave the graph empty
    return;
  }
  graph_.capture_end();
}

void GraphCapture::end() {
  if (done_) return;
  done_ = true;
  graph_.capture_end();
}

}  // namespace focus::cuda
