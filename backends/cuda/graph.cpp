// CUDA graphs (focus::cuda::Graph's kernel-table entries): stream capture on the device's one
// stream, instantiation, replay, and the bookkeeping that keeps a capture well-formed: the
// allocator's private pool, the graph's own check slots, and abandoning a capture that met an
// operation it cannot contain.
#include <memory>
#include <string>

#include "backends/cuda/check.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "core/error.h"

namespace focus::cuda_detail {

void abandon_capture(DeviceContext& ctx, CudaGraph* g, const std::string& why) noexcept {
  if (g->abandoned.empty()) g->abandoned = why;
  if (!g->capturing) return;
  g->capturing = false;
  --*g->thread_counter;
  ctx.end_capture();
  ctx.allocator().end_capture();
  // Ending the capture returns the stream to normal (eager) use whatever state the capture
  // was in (an invalidated capture ends with an error and no graph).
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(ctx.stream(), &graph) == cudaSuccess && graph != nullptr) (void)cudaGraphDestroy(graph);
  (void)cudaGetLastError();
}

namespace {
CudaGraph* as_graph(void* h) { return static_cast<CudaGraph*>(h); }
}  // namespace

void* CudaBackend::graph_capture_begin() {
  DeviceContext& ctx = context(index_);
  FOCUS_CHECK(ctx.capturing() == nullptr,
              "[cuda.Graph.capture_begin] a capture is already under way on cuda:{} (captures do not nest)", index_);
  // Start from an idle device: pending checks are reported now (not attributed to the
  // graph), and no asynchronous copy is still tracked with an event.
  synchronize();
  // Handles and the cuBLASLt workspace are created on first use; create them now, since
  // cublasCreate and cudaMalloc cannot be recorded.
  ctx.cublas();
  ctx.cublas_lt();
  CachingAllocator& alloc = ctx.allocator();
  auto g = std::make_unique<CudaGraph>();
  g->device = index_;
  // The graph's check slots: reset here, in stream order before every replay, and after
  // each report that found a failure (never inside the graph: see CudaGraph).
  g->slots = static_cast<CheckSlot*>(alloc.allocate(kGraphChecks * sizeof(CheckSlot)));
  try {
    FOCUS_CUDA_CHECK(cudaMemsetAsync(g->slots, 0xFF, kGraphChecks * sizeof(CheckSlot), ctx.stream()));
    g->pool = alloc.begin_capture();
    ctx.begin_capture(g.get());
    // ThreadLocal: this thread may not make "potentially unsafe" calls (cudaMalloc, host
    // synchronisation) while it captures, which would otherwise go unnoticed and make the
    // graph invalid; other threads (data loading) are not affected, as they would be in
    // Global mode. focus checks the synchronising calls itself first and throws a clear
    // error; the caching allocator relaxes the mode around the one unsafe call it needs
    // (cudaMalloc of a new block for the graph's pool, which the capture does not record).
    // Relaxed would let a forbidden call through silently.
    const cudaError_t e = cudaStreamBeginCapture(ctx.stream(), cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      FOCUS_FAIL("[cuda.Graph.capture_begin] cudaStreamBeginCapture failed on cuda:{}: {} ({})", index_,
                 cudaGetErrorString(e), cudaGetErrorName(e));
    }
  } catch (...) {
    ctx.end_capture();
    if (g->pool != 0) alloc.release_pool(g->pool);
    alloc.deallocate(g->slots);
    throw;
  }
  g->capturing = true;
  g->thread_counter = thread_capture_counter();
  ++*g->thread_counter;
  return g.release();
}

void CudaBackend::graph_capture_end(void* h) {
  CudaGraph* g = as_graph(h);
  DeviceContext& ctx = context(index_);
  if (!g->abandoned.empty()) FOCUS_FAIL("[cuda.Graph.capture_end] the capture was abandoned: {}", g->abandoned);
  FOCUS_CHECK(g->capturing && ctx.capturing() == g,
              "[cuda.Graph.capture_end] no capture of this graph is under way on cuda:{}", index_);
  g->capturing = false;
  --*g->thread_counter;
  ctx.end_capture();
  ctx.allocator().end_capture();
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(ctx.stream(), &graph);
  if (e != cudaSuccess || graph == nullptr) {
    (void)cudaGetLastError();
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    g->abandoned = "capture failed";
    FOCUS_FAIL("[cuda.Graph.capture_end] the capture on cuda:{} failed: {} ({}); a CUDA call that a capture "
               "cannot contain ran while capturing (look for an earlier error in the captured region)",
               index_, cudaGetErrorString(e), cudaGetErrorName(e));
  }
  const cudaError_t ie = cudaGraphInstantiate(&g->exec, graph, 0);
  (void)cudaGraphDestroy(graph);  // the executable keeps what it needs
  if (ie != cudaSuccess) {
    g->exec = nullptr;
    (void)cudaGetLastError();
    FOCUS_FAIL("[cuda.Graph.capture_end] cudaGraphInstantiate failed on cuda:{}: {} ({})", index_,
               cudaGetErrorString(ie), cudaGetErrorName(ie));
  }
}

void CudaBackend::graph_capture_abort(void* h) noexcept {
  try {
    abandon_capture(context(index_), as_graph(h), "the capture was aborted (an exception left the capture scope)");
  } catch (...) {
  }
}

void CudaBackend::graph_replay(void* h) {
  CudaGraph* g = as_graph(h);
  DeviceContext& ctx = context(index_);
  FOCUS_CHECK(g->exec != nullptr, "[cuda.Graph.replay] the graph holds nothing to replay (capture it first)");
  FOCUS_CHECK(ctx.capturing() == nullptr,
              "[cuda.Graph.replay] cannot replay a graph while a capture is under way on cuda:{}", index_);
  make_current(index_);
  FOCUS_CUDA_CHECK(cudaGraphLaunch(g->exec, ctx.stream()));
  ctx.note_replay(g);
}

void CudaBackend::graph_destroy(void* h) noexcept {
  CudaGraph* g = as_graph(h);
  if (g == nullptr) return;
  try {
    DeviceContext& ctx = context(index_);
    if (g->capturing) abandon_capture(ctx, g, "the graph was destroyed during its capture");
    ctx.forget_graph(g);
    // A replay still running finishes first: the executable is then freed asynchronously,
    // and the pool's blocks go to kernels queued after it on the same stream.
    if (g->exec != nullptr) (void)cudaGraphExecDestroy(g->exec);
    if (g->pool != 0) ctx.allocator().release_pool(g->pool);
    if (g->slots != nullptr) ctx.allocator().deallocate(g->slots);
  } catch (...) {
  }
  delete g;
}

bool CudaBackend::is_capturing() const { return context(index_).capturing() != nullptr; }

void CudaBackend::fail_if_capturing(const char* op, const char* why) { context(index_).fail_if_capturing(op, why); }

}  // namespace focus::cuda_detail
