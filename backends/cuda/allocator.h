#pragma once
/// The caching device allocator of one GPU, in the manner of PyTorch's and MLX's: freed
/// blocks are kept in size classes and handed out again without a cudaMalloc/cudaFree (both
/// synchronise the device). All kernels of a device run on its one stream, so a block freed
/// by the host can be reused by the next kernel at once: the stream orders them.
///
/// CUDA graphs (PyTorch's private graph pools): while a graph is being captured, every
/// allocation comes from a pool owned by that graph, and so does every block freed during
/// the capture (a freed block may be reused later in the same capture, which the stream
/// order of the recorded kernels makes safe). A pool's blocks are never handed to an
/// allocation outside its capture while the graph lives, since every replay writes them;
/// releasing the pool (the graph destroyed or reset) returns its free blocks to the cache,
/// and the blocks tensors still hold (a captured loss) go there when those are freed.
#include <cstddef>
#include <cstdint>
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

  /// Creates a graph pool and routes allocations and frees to it until end_capture();
  /// returns its id (never 0). One capture at a time.
  uint64_t begin_capture();
  /// Stops routing to the capture's pool (the pool keeps its blocks).
  void end_capture() noexcept;
  /// Gives a pool's blocks back to the cache (see above). Never throws.
  void release_pool(uint64_t pool) noexcept;
  /// Bytes of blocks owned by graph pools, held or free (for tests and diagnostics).
  size_t pool_bytes() const;

 private:
  struct Pool {
    std::multimap<size_t, void*> free;  // size class -> the pool's free blocks
    size_t blocks = 0;                  // blocks the pool owns, held or free
    size_t bytes = 0;
    bool released = false;              // its graph is gone: blocks go to the cache when freed
  };
  void free_cached_locked();
  /// A block of exactly `size` taken from a free list (the cache's or a pool's), or null.
  static void* take_locked(std::multimap<size_t, void*>& list, size_t size, size_t* got);
  void give_to_pool_locked(void* p, size_t size, uint64_t pool);
  int device_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;          // size class -> cached blocks
  std::unordered_map<void*, size_t> in_use_;  // block -> its size class
  std::unordered_map<void*, uint64_t> pool_of_;  // block -> the graph pool that owns it
  std::unordered_map<uint64_t, Pool> pools_;
  uint64_t capturing_ = 0;  // the pool of the capture under way, 0 when none
  uint64_t next_pool_ = 1;
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
