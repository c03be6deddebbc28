#pragma once
/// The caching device allocator of one GPU, in the manner of PyTorch's and MLX's: freed
/// blocks are kept in size classes and handed out again without a cudaMalloc/cudaFree (both
/// synchronise the device). All kernels of a device run on its one stream, so a block freed
/// by the host can be reused by the next kernel at once: the stream orders them.
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

namespace focus::cuda_detail {

struct AllocatorStats {
  size_t allocated = 0;      // bytes in blocks held by tensors
  size_t max_allocated = 0;  // peak of allocated since start or reset
  size_t reserved = 0;       // bytes obtained from cudaMalloc (held + cached)
  size_t num_allocs = 0;     // cudaMalloc calls
  size_t num_ooms = 0;       // cudaMalloc failures (before or after freeing the cache)
};

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator();
  /// A block of at least nbytes (nullptr for 0). On out-of-memory frees the cache and
  /// retries, then throws focus::Error with the request and the allocator's figures.
  void* allocate(size_t nbytes);
  void deallocate(void* ptr);
  /// Frees every cached (unused) block.
  void empty_cache();
  AllocatorStats stats() const;
  void reset_peak();
  /// The size class a request is rounded up to: multiples of 512 bytes up to 1 MiB, then
  /// of 2 MiB (so a freed block serves every request of its class).
  static size_t round_size(size_t nbytes);

 private:
  void free_cached_locked();
  int device_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;          // size class -> cached blocks
  std::unordered_map<void*, size_t> in_use_;  // block -> its size class
  AllocatorStats stats_;
};

/// Page-locked host memory (cudaHostAlloc, portable to every GPU), cached by size class like
/// the device allocator, since pinning pages is slow. A block's storage is kept alive by the
/// backend until every asynchronous copy that reads it has finished, so a freed block is
/// free to reuse at once.
class PinnedHostAllocator {
 public:
  void* allocate(size_t nbytes);
  void deallocate(void* ptr);
  /// The process-wide instance.
  static PinnedHostAllocator& instance();

 private:
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> in_use_;
};

}  // namespace focus::cuda_detail
