// The CUDA backend's registration, memory and host copies, and the public focus::cuda API.
#include "backends/cuda/cuda_backend.h"

#include <array>
#include <memory>
#include <mutex>

#include "backends/cuda/check.h"
#include "backends/cuda/context.h"
#include "core/cuda.h"
#include "core/error.h"

namespace focus {

namespace cuda_detail {

void CudaBackend::synchronize() {
  context(index_).synchronize();
  release_finished_copies(true);
}

void* CudaBackend::allocate(size_t nbytes) { return context(index_).allocator().allocate(nbytes); }

void CudaBackend::deallocate(void* ptr, size_t) {
  // Storage is freed from destructors: never throw from here.
  try {
    context(index_).allocator().deallocate(ptr);
  } catch (...) {
  }
}

namespace {
constexpr const char* kToHostWhy = "the host waits for the bytes, which a recorded graph never produces";
constexpr const char* kFromHostWhy =
    "a recorded copy would read this host memory again on every replay; copy into a static input tensor "
    "before replay() instead";
}  // namespace

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t nbytes) {
  DeviceContext& ctx = context(index_);
  ctx.fail_if_capturing("copy to the host", kToHostWhy);
  if (nbytes > 0)
    FOCUS_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, nbytes, cudaMemcpyDeviceToHost, ctx.stream()));
  // The host reads the bytes next, so this is a synchronisation point: report the checks
  // that kernels recorded on the device.
  synchronize();
}

void* CudaBackend::allocate_pinned(size_t nbytes) {
  context(index_);  // a clear error when there is no GPU
  return PinnedHostAllocator::instance().allocate(nbytes);
}

void CudaBackend::deallocate_pinned(void* ptr, size_t) { PinnedHostAllocator::instance().deallocate(ptr); }

void CudaBackend::copy_from_host_async(void* dst, const void* pinned_src, size_t nbytes,
                                       std::shared_ptr<const void> keep_alive) {
  if (nbytes == 0) return;
  DeviceContext& ctx = context(index_);
  ctx.fail_if_capturing("copy from the host", kFromHostWhy);
  release_finished_copies(false);
  FOCUS_CUDA_CHECK(cudaMemcpyAsync(dst, pinned_src, nbytes, cudaMemcpyHostToDevice, ctx.stream()));
  track_copy(ctx, std::move(keep_alive));
}

void CudaBackend::copy_to_host_async(void* pinned_dst, const void* src, size_t nbytes,
                                     std::shared_ptr<const void> keep_alive) {
  if (nbytes == 0) return;
  DeviceContext& ctx = context(index_);
  ctx.fail_if_capturing("copy to the host", kToHostWhy);
  release_finished_copies(false);
  FOCUS_CUDA_CHECK(cudaMemcpyAsync(pinned_dst, src, nbytes, cudaMemcpyDeviceToHost, ctx.stream()));
  track_copy(ctx, std::move(keep_alive));
}

void CudaBackend::track_copy(DeviceContext& ctx, std::shared_ptr<const void> keep_alive) {
  cudaEvent_t done = nullptr;
  FOCUS_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  FOCUS_CUDA_CHECK(cudaEventRecord(done, ctx.stream()));
  std::lock_guard<std::mutex> lock(copies_mu_);
  copies_in_flight_.emplace_back(done, std::move(keep_alive));
}

void CudaBackend::release_finished_copies(bool all) {
  std::lock_guard<std::mutex> lock(copies_mu_);
  while (!copies_in_flight_.empty()) {
    cudaEvent_t e = copies_in_flight_.front().first;
    if (!all) {
      const cudaError_t q = cudaEventQuery(e);
      if (q == cudaErrorNotReady) break;
      if (q != cudaSuccess) FOCUS_CUDA_CHECK(q);
    }
    FOCUS_CUDA_CHECK(cudaEventDestroy(e));
    copies_in_flight_.pop_front();
  }
}

void CudaBackend::copy_from_host(void* dst, const void* host_src, size_t nbytes) {
  DeviceContext& ctx = context(index_);
  ctx.fail_if_capturing("copy from the host", kFromHostWhy);
  if (nbytes == 0) return;
  FOCUS_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, nbytes, cudaMemcpyHostToDevice, ctx.stream()));
  // From pageable memory the copy has finished reading host_src when the call returns, but
  // from page-locked memory it has not: wait, since the caller may free it at once.
  FOCUS_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
}

}  // namespace cuda_detail

// The registration point (declared in backends/backend.cpp).
Backend& cuda_backend(int index) {
  // Never destroyed, like the device contexts (storages may be freed during static destruction).
  static auto& backends = *new std::array<std::unique_ptr<cuda_detail::CudaBackend>, 64>();
  static std::mutex mu;
  cuda_detail::context(index);  // validates the index (clear error without a GPU)
  std::lock_guard<std::mutex> lock(mu);
  auto& b = backends[static_cast<size_t>(index)];
  if (!b) b = std::make_unique<cuda_detail::CudaBackend>(index);
  return *b;
}

namespace cuda {
namespace {
int resolve(int device) { return device < 0 ? current_device() : device; }
}  // namespace

bool is_available() { return cuda_detail::visible_device_count() > 0; }
int device_count() { return cuda_detail::visible_device_count(); }

int current_device() {
  FOCUS_CHECK(is_available(), "[cuda.current_device] no CUDA device is available");
  return cuda_detail::current_device_index();
}

void set_device(int device) { cuda_detail::context(device); }

std::string get_device_name(int device) {
  const int d = resolve(device);
  cuda_detail::context(d);
  cudaDeviceProp prop{};
  FOCUS_CUDA_CHECK(cudaGetDeviceProperties(&prop, d));
  return prop.name;
}

void synchronize(int device) {
  Backend& b = cuda_backend(resolve(device));
  b.fail_if_capturing("cuda.synchronize", "it waits for the device on the host");
  b.synchronize();
}

size_t memory_allocated(int device) { return cuda_detail::context(resolve(device)).allocator().stats().allocated; }
size_t max_memory_allocated(int device) {
  return cuda_detail::context(resolve(device)).allocator().stats().max_allocated;
}
size_t memory_reserved(int device) { return cuda_detail::context(resolve(device)).allocator().stats().reserved; }
void reset_peak_memory_stats(int device) { cuda_detail::context(resolve(device)).allocator().reset_peak(); }
void empty_cache() {
  for (int d = 0; d < device_count(); ++d) {
    cuda_detail::DeviceContext& ctx = cuda_detail::context(d);
    ctx.fail_if_capturing("cuda.empty_cache", "freeing device memory synchronises the device");
    ctx.allocator().empty_cache();
  }
}

bool is_current_stream_capturing(int device) {
  if (!is_available()) return false;
  return cuda_detail::context(resolve(device)).capturing() != nullptr;
}

DeviceGuard::DeviceGuard(int device) : previous_(current_device()) { set_device(device); }
DeviceGuard::~DeviceGuard() {
  try {
    set_device(previous_);
  } catch (...) {
  }
}

}  // namespace cuda
}  // namespace focus
