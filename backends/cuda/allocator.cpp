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

void* CachingAllocator::take_locked(std::multimap<size_t, void*>& list, size_t size, size_t* got) {
  // A cached block of exactly this class (small) or up to 1/8 larger (large: avoids keeping
  // a huge block busy with a small tensor).
  auto it = list.lower_bound(size);
  if (it == list.end() || it->first > size + size / 8) return nullptr;
  void* p = it->second;
  *got = it->first;
  list.erase(it);
  return p;
}

void CachingAllocator::give_to_pool_locked(void* p, size_t size, uint64_t pool) {
  Pool& pl = pools_.at(pool);
  pool_of_[p] = pool;
  ++pl.blocks;
  pl.bytes += size;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  FOCUS_CHECK(nbytes <= (size_t{1} << 62), "[cuda] cannot allocate {} bytes on cuda:{}", nbytes, device_);
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  size_t got = 0;
  void* p = nullptr;
  if (capturing_ != 0) {
    // The capture's own free blocks first, then a cached one (from now on the pool's: the
    // kernels that used it before are earlier on the stream than every replay).
    p = take_locked(pools_.at(capturing_).free, size, &got);
    if (p == nullptr) {
      p = take_locked(free_, size, &got);
      if (p != nullptr) give_to_pool_locked(p, got, capturing_);
    }
  } else {
    p = take_locked(free_, size, &got);
  }
  if (p != nullptr) {
    in_use_[p] = got;
    stats_.allocated += got;
  } else if (capturing_ != 0) {
    // cudaMalloc is not recorded by the capture (the block simply belongs to the graph's
    // pool), but it is a "potentially unsafe" call that the capture's ThreadLocal mode
    // forbids on this thread: relax the mode for this one call, as PyTorch's allocator does.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    FOCUS_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    const cudaError_t e = cudaMalloc(&p, size);
    (void)cudaThreadExchangeStreamCaptureMode(&mode);  // back to the capture's mode
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      ++stats_.num_ooms;
      // Freeing the cache would synchronise the device, which a capture forbids.
      FOCUS_FAIL("[cuda] out of memory during CUDA graph capture: tried to allocate {:.2f} MiB on cuda:{} ({:.2f} "
                 "MiB allocated by tensors, {:.2f} MiB reserved by focus); the cache cannot be emptied while "
                 "capturing: call focus::cuda::empty_cache() before capture_begin()",
                 nbytes / 1048576.0, device_, stats_.allocated / 1048576.0, stats_.reserved / 1048576.0);
    }
    FOCUS_CUDA_CHECK(e);
    ++stats_.num_allocs;
    stats_.reserved += size;
    in_use_[p] = size;
    stats_.allocated += size;
    give_to_pool_locked(p, size, capturing_);
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
  const size_t size = it->second;
  stats_.allocated -= size;
  in_use_.erase(it);
  auto po = pool_of_.find(ptr);
  // A block freed during a capture may have been used by the kernels recorded before its
  // free, which every replay runs again: it joins the capture's pool, so nothing outside
  // the graph gets it while the graph lives. (A block of another graph's pool stays there.)
  if (po == pool_of_.end() && capturing_ != 0) {
    give_to_pool_locked(ptr, size, capturing_);
    po = pool_of_.find(ptr);
  }
  if (po != pool_of_.end()) {
    const uint64_t id = po->second;
    Pool& pool = pools_.at(id);
    if (!pool.released) {
      pool.free.emplace(size, ptr);
      return;
    }
    pool_of_.erase(po);
    --pool.blocks;
    pool.bytes -= size;
    if (pool.blocks == 0) pools_.erase(id);
  }
  free_.emplace(size, ptr);
}

uint64_t CachingAllocator::begin_capture() {
  std::lock_guard<std::mutex> lock(mu_);
  FOCUS_CHECK(capturing_ == 0, "[cuda.Graph.capture_begin] a capture is already under way on cuda:{}", device_);
  const uint64_t id = next_pool_++;
  pools_.emplace(id, Pool{});
  capturing_ = id;
  return id;
}

void CachingAllocator::end_capture() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  capturing_ = 0;
}

void CachingAllocator::release_pool(uint64_t id) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (capturing_ == id) capturing_ = 0;
  auto it = pools_.find(id);
  if (it == pools_.end()) return;
  Pool& pool = it->second;
  pool.released = true;
  // Replays still queued on the stream come before any kernel that gets these blocks next.
  for (auto& [size, p] : pool.free) {
    pool_of_.erase(p);
    --pool.blocks;
    pool.bytes -= size;
    free_.emplace(size, p);
  }
  pool.free.clear();
  if (pool.blocks == 0) pools_.erase(it);
}

size_t CachingAllocator::pool_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [id, pool] : pools_) n += pool.bytes;
  return n;
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
  // Freeing synchronises the device, which a capture forbids (the callers check first).
  FOCUS_CHECK(capturing_ == 0, "[cuda.empty_cache] cannot run during CUDA graph capture on cuda:{}", device_);
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
