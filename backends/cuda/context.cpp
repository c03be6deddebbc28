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

// How many captures this thread has under way (FOCUS_CUDA_SYNC must not synchronise then).
thread_local int t_captures = 0;

bool thread_is_capturing() { return t_captures > 0; }
int* thread_capture_counter() noexcept { return &t_captures; }

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
  if (CudaGraph* g = capturing_) {
    // The graph's own slots, reset outside the graph (see CudaGraph): nothing to queue.
    if (g->checks.size() < kGraphChecks) {
      CheckSlot* slot = g->slots + g->checks.size();
      g->checks.push_back(c);
      return slot;
    }
    lock.unlock();
    const std::string why = fmt::format(
        "[{}] a captured CUDA graph may record at most {} index/range checks; the capture on cuda:{} has been "
        "abandoned (capture a smaller part of the step)",
        c.op, kGraphChecks, index_);
    abandon_capture(*this, g, why);
    FOCUS_FAIL("{}", why);
  }
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
  fail_if_capturing("synchronize", "it waits for the device on the host");
  make_current(index_);
  FOCUS_CUDA_CHECK(cudaStreamSynchronize(stream_));
  report_checks();
}

namespace {

// The message of a failed check, or "" when it passed.
std::string describe(const PendingCheck& c, const CheckSlot& s, int device) {
  if (s.first_bad == ULLONG_MAX) return {};
  if (c.kind == CheckKind::Range) {
    double value = 0;
    static_assert(sizeof(value) == sizeof(s.value));
    std::memcpy(&value, &s.value, sizeof(value));
    return fmt::format("[{}] {}, got {} (at position {}; reported at the next cuda:{} synchronisation)", c.op, c.what,
                       value, s.first_bad, device);
  }
  return fmt::format("[{}] {} {} is out of bounds for [{}, {}) (at position {}; reported at the next cuda:{} "
                     "synchronisation)",
                     c.op, c.what, s.value, c.lo, c.hi, s.first_bad, device);
}

}  // namespace

void DeviceContext::report_checks() {
  std::lock_guard<std::mutex> lock(checks_mu_);
  if (pending_.empty() && replayed_.empty()) return;
  std::string failure;
  if (!pending_.empty()) {
    std::vector<CheckSlot> host(pending_.size());
    std::vector<PendingCheck> checks;
    checks.swap(pending_);
    FOCUS_CUDA_CHECK(cudaMemcpy(host.data(), slots_, host.size() * sizeof(CheckSlot), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < host.size() && failure.empty(); ++i) failure = describe(checks[i], host[i], index_);
  }
  // Graphs replayed since the last report: their slots accumulate over replays (atomicMin of
  // the first bad position), so a failure in any of them shows; reset them for the next ones.
  std::vector<CudaGraph*> graphs;
  graphs.swap(replayed_);
  for (CudaGraph* g : graphs) {
    std::vector<CheckSlot> host(g->checks.size());
    FOCUS_CUDA_CHECK(cudaMemcpy(host.data(), g->slots, host.size() * sizeof(CheckSlot), cudaMemcpyDeviceToHost));
    bool any = false;
    for (size_t i = 0; i < host.size(); ++i) {
      if (host[i].first_bad == ULLONG_MAX) continue;
      any = true;
      if (failure.empty()) failure = describe(g->checks[i], host[i], index_) + " (in a replay of a CUDA graph)";
    }
    if (any) FOCUS_CUDA_CHECK(cudaMemset(g->slots, 0xFF, host.size() * sizeof(CheckSlot)));
  }
  if (!failure.empty()) FOCUS_FAIL("{}", failure);
}

void DeviceContext::begin_capture(CudaGraph* g) {
  std::lock_guard<std::mutex> lock(checks_mu_);
  capturing_ = g;
}

void DeviceContext::end_capture() noexcept {
  std::lock_guard<std::mutex> lock(checks_mu_);
  capturing_ = nullptr;
}

void DeviceContext::note_replay(CudaGraph* g) {
  if (g->checks.empty()) return;
  std::lock_guard<std::mutex> lock(checks_mu_);
  for (CudaGraph* r : replayed_)
    if (r == g) return;
  replayed_.push_back(g);
}

void DeviceContext::forget_graph(CudaGraph* g) noexcept {
  std::lock_guard<std::mutex> lock(checks_mu_);
  for (size_t i = 0; i < replayed_.size(); ++i) {
    if (replayed_[i] == g) {
      replayed_.erase(replayed_.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
  }
  if (capturing_ == g) capturing_ = nullptr;
}

void DeviceContext::fail_if_capturing(const char* op, const char* why) {
  CudaGraph* g = capturing_;
  if (g == nullptr) return;
  const std::string msg = fmt::format(
      "[{}] cannot run during CUDA graph capture ({}); the capture on cuda:{} has been abandoned and the graph "
      "left empty: move this call out of the captured region",
      op, why, index_);
  abandon_capture(*this, g, msg);
  FOCUS_FAIL("{}", msg);
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
