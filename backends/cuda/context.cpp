#include "backends/cuda/context.h"

#include <array>
#include <climits>
#include <cstring>

#include "backends/cuda/check.h"
#include "core/error.h"

namespace focus::cuda_detail {
namespace {
constexpr size_t kMaxChecks = 1024;
constexpr size_t kLtWorkspace = size_t{32} << 20;
constexpr int kMaxDevices = 64;

// The device current on this thread, as focus last set it (-1: unknown), so that switching
// to the device already current costs nothing.
thread_local int t_current = -1;

}  // namespace

void make_current(int index) {
  if (t_current != index) {
    FOCUS_CUDA_CHECK(cudaSetDevice(index));
    t_current = index;
  }
}

int current_device_index() {
  if (t_current < 0) {
    int d = 0;
    FOCUS_CUDA_CHECK(cudaGetDevice(&d));
    t_current = d;
  }
  return t_current;
}

int visible_device_count() {
  static const int n = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      (void)cudaGetLastError();  // no driver or no device: not an error, just no GPU
      return 0;
    }
    return count;
  }();
  return n;
}

DeviceContext::DeviceContext(int index) : index_(index), allocator_(index) {
  make_current(index);
  FOCUS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  FOCUS_CUDA_CHECK(cudaMalloc(&slots_, kMaxChecks * sizeof(CheckSlot)));
}

cublasHandle_t DeviceContext::cublas() {
  std::call_once(cublas_once_, [&] {
    FOCUS_CUBLAS_CHECK(cublasCreate(&cublas_));
    FOCUS_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  });
  return cublas_;
}

cublasLtHandle_t DeviceContext::cublas_lt() {
  std::call_once(lt_once_, [&] {
    FOCUS_CUBLAS_CHECK(cublasLtCreate(&lt_));
    FOCUS_CUDA_CHECK(cudaMalloc(&lt_workspace_, kLtWorkspace));
  });
  return lt_;
}

void* DeviceContext::lt_workspace(size_t* size) {
  cublas_lt();
  *size = kLtWorkspace;
  return lt_workspace_;
}

CheckSlot* DeviceContext::reserve_check(const PendingCheck& c) {
  std::unique_lock<std::mutex> lock(checks_mu_);
  if (pending_.size() == kMaxChecks) {
    lock.unlock();
    synchronize();
    lock.lock();
  }
  CheckSlot* slot = slots_ + pending_.size();
  pending_.push_back(c);
  const CheckSlot clear{ULLONG_MAX, 0};
  FOCUS_CUDA_CHECK(cudaMemcpyAsync(slot, &clear, sizeof(clear), cudaMemcpyHostToDevice, stream_));
  return slot;
}

void DeviceContext::synchronize() {
  make_current(index_);
  FOCUS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  report_checks();
}

void DeviceContext::report_checks() {
  std::lock_guard<std::mutex> lock(checks_mu_);
  if (pending_.empty()) return;
  std::vector<CheckSlot> host(pending_.size());
  FOCUS_CUDA_CHECK(cudaMemcpy(host.data(), slots_, host.size() * sizeof(CheckSlot), cudaMemcpyDeviceToHost));
  std::vector<PendingCheck> checks;
  checks.swap(pending_);
  for (size_t i = 0; i < host.size(); ++i) {
    if (host[i].first_bad == ULLONG_MAX) continue;
    const PendingCheck& c = checks[i];
    if (c.kind == CheckKind::Range) {
      double value = 0;
      static_assert(sizeof(value) == sizeof(host[i].value));
      std::memcpy(&value, &host[i].value, sizeof(value));
      FOCUS_FAIL("[{}] {}, got {} (at position {}; reported at the next cuda:{} synchronisation)", c.op, c.what,
                 value, host[i].first_bad, index_);
    }
    FOCUS_FAIL("[{}] {} {} is out of bounds for [{}, {}) (at position {}; reported at the next cuda:{} "
               "synchronisation)",
               c.op, c.what, host[i].value, c.lo, c.hi, host[i].first_bad, index_);
  }
}

DeviceContext& context(int index) {
  // Never destroyed: tensors in static storage free their blocks during static destruction.
  static auto& contexts = *new std::array<std::unique_ptr<DeviceContext>, kMaxDevices>();
  static std::mutex mu;
  const int n = visible_device_count();
  if (index < 0 || index >= n) {
    if (n == 0)
      FOCUS_FAIL("[cuda] no CUDA device is available (focus was built with CUDA, but the driver reports no GPU)");
    FOCUS_FAIL("[cuda] device cuda:{} does not exist ({} device{} visible)", index, n, n == 1 ? "" : "s");
  }
  FOCUS_CHECK(index < kMaxDevices, "[cuda] device cuda:{} is beyond the {} devices focus supports", index,
              kMaxDevices);
  make_current(index);
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = contexts[static_cast<size_t>(index)];
  if (!slot) slot = std::make_unique<DeviceContext>(index);
  return *slot;
}

}  // namespace focus::cuda_detail
