#pragma once
/// Per-GPU state: its one stream (every kernel, copy and cuBLAS call of the device runs on
/// it, so work is ordered without events), cuBLAS/cuBLASLt handles and workspace, the
/// caching allocator, and the checks that kernels recorded on the device and that the next
/// synchronisation reports (check_indices).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backends/cuda/allocator.h"

namespace focus::cuda_detail {

/// What a deferred check tests, and so how its failure is worded.
enum class CheckKind : uint8_t {
  Index,  // check_indices: "[op] <what> <value> is out of bounds for [lo, hi) (at position p; ...)"
  Range,  // check_range: "[op] <what>, got <value> (at position p; ...)", the value a double
};

/// What a deferred check reports when its slot on the device holds a bad position.
struct PendingCheck {
  const char* op;
  const char* what;
  int64_t lo, hi;  // Index: the allowed [lo, hi); unused for Range
  CheckKind kind = CheckKind::Index;
};

/// One deferred check's slot in device memory: the first bad flat position (ULLONG_MAX
/// when none) and the value found there: the index for CheckKind::Index, the bits of the
/// value as a double (__double_as_longlong) for CheckKind::Range.
struct CheckSlot {
  unsigned long long first_bad;
  long long value;
};

/// One CUDA graph (the opaque handle behind focus::cuda::Graph): its executable, its
/// allocator pool, and the deferred checks (check_indices, check_range) recorded in it.
/// Each recorded check writes a slot of the graph's own array on every replay; the slots
/// are reset once before the capture and again after each report, never by the graph, so
/// a failure in any replay since the last synchronisation is reported at it.
struct CudaGraph {
  int device = 0;
  uint64_t pool = 0;           // the allocator pool (0 once released)
  cudaGraphExec_t exec = nullptr;
  CheckSlot* slots = nullptr;  // kGraphChecks slots from the caching allocator
  std::vector<PendingCheck> checks;  // checks[i] uses slots[i]
  bool capturing = false;
  int* thread_counter = nullptr;  // the capturing thread's thread_capture_counter()
  std::string abandoned;       // why the capture was abandoned (empty: it was not)
};

/// Most deferred checks one captured graph may record.
inline constexpr size_t kGraphChecks = 1024;

/// Whether the calling thread is capturing a graph (on any device).
bool thread_is_capturing();
/// The calling thread's count of captures under way (a capture keeps the address of its
/// thread's counter, since it may be abandoned from another thread).
int* thread_capture_counter() noexcept;

class DeviceContext {
 public:
  explicit DeviceContext(int index);
  int index() const { return index_; }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas();
  cublasLtHandle_t cublas_lt();
  /// cuBLASLt workspace (32 MiB) on this device.
  void* lt_workspace(size_t* size);
  CachingAllocator& allocator() { return allocator_; }

  /// A fresh slot (reset on the device, in stream order) for a check reported at the next
  /// synchronisation; synchronises first when every slot is pending.
  CheckSlot* reserve_check(const PendingCheck& c);
  /// Waits for the stream, then throws focus::Error for the first failed pending check.
  void synchronize();
  /// Throws for a failed pending check; the stream must already be idle.
  void report_checks();

  // ---- CUDA graphs (backends/cuda/graph.cpp) --------------------------------------------
  /// The graph being captured on this device, or null.
  CudaGraph* capturing() const { return capturing_; }
  void begin_capture(CudaGraph* g);
  /// Ends the capture's routing (allocator pool, checks); the stream capture itself is the
  /// caller's to end.
  void end_capture() noexcept;
  /// Remembers that g ran, so that the next report reads its check slots.
  void note_replay(CudaGraph* g);
  /// Forgets g (it is being destroyed): its unreported check failures are dropped.
  void forget_graph(CudaGraph* g) noexcept;
  /// When a capture is under way: abandons it and throws "[op] cannot run during CUDA
  /// graph capture: why ...". No-op otherwise.
  void fail_if_capturing(const char* op, const char* why);

 private:
  int index_;
  cudaStream_t stream_ = nullptr;
  std::once_flag cublas_once_, lt_once_;
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* lt_workspace_ = nullptr;
  CachingAllocator allocator_;
  std::mutex checks_mu_;
  CheckSlot* slots_ = nullptr;  // device array of kMaxChecks
  std::vector<PendingCheck> pending_;
  CudaGraph* capturing_ = nullptr;
  std::vector<CudaGraph*> replayed_;  // graphs with checks run since the last report
};

/// Ends the stream capture of g (if under way) and discards what it recorded; records why
/// in g->abandoned. Never throws.
void abandon_capture(DeviceContext& ctx, CudaGraph* g, const std::string& why) noexcept;

/// The context of GPU `index`, created on first use; throws focus::Error when no such GPU
/// exists. Makes the device current on the calling thread.
DeviceContext& context(int index);
/// Makes GPU `index` current on this thread (a no-op when it already is).
void make_current(int index);
/// The GPU current on this thread.
int current_device_index();
/// Number of visible GPUs (0 when the driver or the devices are missing).
int visible_device_count();

}  // namespace focus::cuda_detail
