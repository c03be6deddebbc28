#pragma once
/// Per-GPU state: its one stream (every kernel, copy and cuBLAS call of the device runs on
/// it, so work is ordered without events), cuBLAS/cuBLASLt handles and workspace, the
/// caching allocator, and the checks that kernels recorded on the device and that the next
/// synchronisation reports (check_indices).
#include <cstdint>
#include <memory>
#include <mutex>
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
};

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
