#include "backends/cuda/allocator.h"

#include <cuda_runtime.h>

#include "backends/cuda/check.h"
#include "core/error.h"

namespace focus::cuda_detail {

CachingAllocator::~CachingAllocator() {
  // The process is ending (the allocators live as long as the program): the driver
  // reclaims device memory, and calling CUDA here can fail after its own teardown.
}

size_t CachingAllocator::round_size(size_t nbytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  if (nbytes <= kSmallLimit) return (nbytes + kSmall - 1) / kSmall * kSmall;
  return (nbytes + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  FOCUS_CHECK(nbytes <= (size_t{1} << 62), "[cuda] cannot allocate {} bytes on cuda:{}", nbytes, device_);
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  // A cached block of exactly this class (small) or up to 1/8 larger (large: avoids keeping
  // a huge block busy with a small tensor).
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= size + size / 8) {
    p = it->second;
    in_use_[p] = it->first;
    stats_.allocated += it->first;
    free_.erase(it);
  } else {
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the error so later calls do not see it
      ++stats_.num_ooms;
      free_cached_locked();
      e = cudaMalloc(&p, size);
    }
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      ++stats_.num_ooms;
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      FOCUS_FAIL("[cuda] out of memory: tried to allocate {:.2f} MiB on cuda:{} ({:.2f} MiB allocated by tensors, "
                 "{:.2f} MiB reserved by focus, {:.2f} MiB free of {:.2f} MiB on the device)",
                 nbytes / 1048576.0, device_, stats_.allocated / 1048576.0, stats_.reserved / 1048576.0,
                 free_b / 1048576.0, total_b / 1048576.0);
    }
    FOCUS_CUDA_CHECK(e);
    ++stats_.num_allocs;
    stats_.reserved += size;
    in_use_[p] = size;
    stats_.allocated += size;
  }
  if (stats_.allocated > stats_.max_allocated) stats_.max_allocated = stats_.allocated;
  return p;
}

void CachingAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_use_.find(ptr);
  if (it == in_use_.end()) return;  // not ours: nothing to do (never happens through Storage)
  stats_.allocated -= it->second;
  free_.emplace(it->second, ptr);
  in_use_.erase(it);
}

void CachingAllocator::free_cached_locked() {
  if (free_.empty()) return;
  // Blocks may still be read by queued kernels: wait for them before giving memory back.
  FOCUS_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto& [size, p] : free_) {
    FOCUS_CUDA_CHECK(cudaFree(p));
    stats_.reserved -= size;
  }
  free_.clear();
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  free_cached_locked();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.max_allocated = stats_.allocated;
}

void* PinnedHostAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const size_t size = CachingAllocator::round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= size + size / 8) {
    void* p = it->second;
    in_use_[p] = it->first;
    free_.erase(it);
    return p;
  }
  void* p = nullptr;
  const cudaError_t e = cudaHostAlloc(&p, size, cudaHostAllocPortable);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    FOCUS_FAIL("[pin_memory] out of page-locked host memory: tried to allocate {:.2f} MiB", nbytes / 1048576.0);
  }
  FOCUS_CUDA_CHECK(e);
  in_use_[p] = size;
  return p;
}

void PinnedHostAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = in_use_.find(ptr);
  if (it == in_use_.end()) return;
  free_.emplace(it->second, ptr);
  in_use_.erase(it);
}

PinnedHostAllocator& PinnedHostAllocator::instance() {
  // Never destroyed: storages may be freed during static destruction.
  static PinnedHostAllocator* a = new PinnedHostAllocator();
  return *a;
}

}  // namespace focus::cuda_detail
