#include "backends/cpu/cpu_backend.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "backends/common/half.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/philox.h"
#include "core/error.h"

namespace focus::cpu {

namespace {

// Large blocks go through a small caching allocator: a fresh multi-megabyte block is fresh
// memory from the kernel, so every large op would pay page faults and kernel zeroing (about
// as much time as the op itself for a 64 MB add). Freed large blocks are kept in free lists
// keyed by their (page-rounded) size and handed out again; small blocks stay on malloc,
// which already recycles them. A request takes the smallest free block of its size or up to
// a quarter larger (kSlack): sizes that drift (a decoder's caches as finished rows leave
// the batch, shorter sources after longer ones) reuse resident blocks instead of mapping
// and faulting fresh ones (g2p beam search: about 1,100 mmap/munmap pairs per 2,000 words
// before). A block handed out for a smaller request remembers its size until it is freed.
//
// The cached blocks come straight from mmap and go back with munmap. A request that no
// cached block fits, and that would take the memory held (in use + cached) past the most
// ever in use, first returns cached blocks of other sizes to the system: the peak RSS then
// follows the peak of live tensors rather than the sum of every size a step ever used
// (medium GPT step: 402 -> ~383 MB). (Handing blocks to free() instead made it worse:
// glibc keeps them in its heap.)
//
// The cache is bounded (FOCUS_CPU_CACHE_MB, default 1024; 0 turns it off, as do
// AddressSanitizer builds, and then large blocks use aligned_alloc/free like small ones) and
// returned to the system at exit.
constexpr size_t kCacheMinBytes = size_t{1} << 20;
constexpr size_t kPage = 4096;
constexpr size_t kSlack = 4;  // a free block serves requests down to (1 - 1/5) of its size

// Trivially destructible, so still valid while other static objects (tensors held in
// statics) are destroyed after the cache.
std::atomic<bool> cache_destroyed{false};

size_t cache_limit_from_env() {
#if defined(__SANITIZE_ADDRESS__)
  return 0;  // AddressSanitizer must see every free to catch use after free
#endif
  const char* env = std::getenv("FOCUS_CPU_CACHE_MB");
  if (!env || !*env) return size_t{1} << 30;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(env, &end, 10);
  FOCUS_CHECK(end && *end == '\0', "[alloc] FOCUS_CPU_CACHE_MB must be a non-negative integer, got '{}'", env);
  return static_cast<size_t>(mb) << 20;
}

void* map_block(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
void unmap_block(void* p, size_t size) { munmap(p, size); }

class BlockCache {
 public:
  BlockCache() : limit_(cache_limit_from_env()) {}
  ~BlockCache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) unmap_block(p, size);
    free_.clear();
    cached_ = 0;
    cache_destroyed.store(true);
  }

  // The smallest cached block of at least this size and at most a quarter more, or a new
  // mapping. A new mapping that would take the memory held (in use + cached) past the most
  // ever in use first returns cached blocks to the system: held memory grows only with the
  // live tensors, and in a training loop that happens once per step, at its peak, for a few
  // blocks.
  void* take(size_t size) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= size + size / kSlack) {
        void* p = it->second.back();
        const size_t have = it->first;
        it->second.pop_back();
        if (it->second.empty()) free_.erase(it);
        cached_ -= have;
        if (have != size) larger_[p] = have;
        note_in_use(have);
        return p;
      }
      while (!free_.empty() && in_use_ + cached_ + size > peak_in_use_) {
        auto f = std::prev(free_.end());  // the biggest first: fewest unmaps
        unmap_block(f->second.back(), f->first);
        cached_ -= f->first;
        f->second.pop_back();
        if (f->second.empty()) free_.erase(f);
      }
      note_in_use(size);
    }
    void* p = map_block(size);
    if (!p) {
      std::lock_guard<std::mutex> lock(mu_);
      in_use_ -= size;
    }
    return p;
  }

  // Keeps the block for reuse (size: the size it was requested with); unmaps it when the
  // cache would exceed its bound.
  void give(void* p, size_t size) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto l = larger_.find(p); l != larger_.end()) {
        size = l->second;
        larger_.erase(l);
      }
      in_use_ -= size;
      if (cached_ + size <= limit_) {
        free_[size].push_back(p);
        cached_ += size;
        return;
      }
    }
    unmap_block(p, size);
  }

 private:
  void note_in_use(size_t size) {
    in_use_ += size;
    peak_in_use_ = std::max(peak_in_use_, in_use_);
  }

  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;        // by size; no empty lists
  std::unordered_map<void*, size_t> larger_;         // blocks in use bigger than their request
  size_t cached_ = 0;       // bytes in free_
  size_t in_use_ = 0;       // bytes of cache-managed blocks handed out
  size_t peak_in_use_ = 0;  // the most in_use_ has been
  const size_t limit_;
};

BlockCache& block_cache() {
  static BlockCache cache;
  return cache;
}

// Large sizes round up to whole pages, so that near-equal requests share a free list.
size_t block_size(size_t nbytes) {
  const size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
  return rounded >= kCacheMinBytes ? (rounded + kPage - 1) / kPage * kPage : rounded;
}

// Whether a block of this size is a mapping of its own (and goes through the cache while it
// exists): decided the same way when it is allocated and when it is freed, from a setting
// read once (a trivially destructible static, valid during exit too).
bool cached_block(size_t size) {
  static const bool enabled = cache_limit_from_env() > 0;
  return size >= kCacheMinBytes && enabled;
}

}  // namespace

// 64-byte alignment suits AVX-512 loads and keeps rows of float matrices cache aligned
// (mappings are page aligned).
void* CpuBackend::allocate(size_t nbytes) {
  const size_t size = block_size(nbytes);
  void* p = nullptr;
  if (cached_block(size)) {
    p = cache_destroyed.load(std::memory_order_relaxed) ? map_block(size) : block_cache().take(size);
  } else {
    p = std::aligned_alloc(64, size);
  }
  FOCUS_CHECK(p != nullptr, "[alloc] out of memory: tried to allocate {} bytes on the CPU", nbytes);
  return p;
}

void CpuBackend::deallocate(void* ptr, size_t nbytes) {
  if (!ptr) return;
  const size_t size = block_size(nbytes);
  if (cached_block(size)) {
    // After the cache is gone (exit), a block it handed out for a smaller request loses only
    // its first `size` bytes here; the process is ending.
    if (cache_destroyed.load(std::memory_order_relaxed)) unmap_block(ptr, size);
    else block_cache().give(ptr, size);
    return;
  }
  std::free(ptr);
}

void CpuBackend::copy_to_host(void* host_dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(host_dst, src, nbytes);
}
void CpuBackend::copy_from_host(void* dst, const void* host_src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, host_src, nbytes);
}

namespace {
// Every dtype with its storage type, float16/bfloat16 as their bits (common::Half,
// common::BFloat16): copy, to(dtype) and fill convert to and from them directly (one
// rounding); the arithmetic kernels widen them to float32 instead (half_adapter.h).
template <typename F> decltype(auto) dispatch_storage(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kFloat16: return f(common::Half{});
    case kBFloat16: return f(common::BFloat16{});
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    case kUInt8: return f(uint8_t{});
    case kInt8: return f(int8_t{});
    case kBool: return f(bool{});
  }
  FOCUS_FAIL("[{}] unknown dtype {}", op, static_cast<int>(t));
}
}  // namespace

void CpuBackend::copy(const TensorView& dst, const TensorView& src) {
  if (dst.numel == 0) return;
  if (dst.dtype == src.dtype && dst.is_contiguous() && src.is_contiguous()) {
    const size_t nbytes = static_cast<size_t>(dst.numel) * dtype_size(dst.dtype);
    char* d = static_cast<char*>(dst.data);
    const char* s = static_cast<const char*>(src.data);
    parallel_for(0, static_cast<int64_t>(nbytes), int64_t{1} << 22, [&](int64_t b, int64_t e) {
      std::memcpy(d + b, s + b, static_cast<size_t>(e - b));
    });
    return;
  }
  // One conversion for both devices (common/half.h): rounding to float16/bfloat16, and
  // floating -> integer defined for NaN and out-of-range values.
  dispatch_storage(dst.dtype, "copy", [&](auto out_tag) {
    using O = decltype(out_tag);
    dispatch_storage(src.dtype, "copy", [&](auto in_tag) {
      using I = decltype(in_tag);
      elementwise<O, I>(dst, [](I v) { return common::cast_value<O>(v); }, src);
    });
  });
}

void CpuBackend::fill(const TensorView& dst, Scalar value) {
  dispatch_storage(dst.dtype, "fill_", [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (std::is_same_v<T, common::Half>) v = T{common::double_to_half_bits(value.to_double())};
    else if constexpr (std::is_same_v<T, common::BFloat16>) v = T{common::double_to_bfloat16_bits(value.to_double())};
    else v = value.to<T>();
    elementwise<T>(dst, [v]() { return v; });
  });
}

namespace {
// Random kernels write a contiguous output in row-major order (the raw ops allocate it).
void check_random_out(const TensorView& out, const char* op) {
  FOCUS_CHECK(out.is_contiguous(), "[{}] random fill needs a contiguous tensor", op);
}
}  // namespace

void CpuBackend::uniform(const TensorView& out, double lo, double hi, RandomState rng) {
  check_random_out(out, "uniform_");
  if (is_16bit(out.dtype)) [[unlikely]] {
    // The float32 uniforms rounded to the dtype (as CUDA's kernels), and lo where that
    // rounding reached hi: the float32 path's rule, applied in the output dtype.
    {
      Float32Scope f(*this);
      uniform(f.out(out), lo, hi, rng);
      f.commit();
    }
    dispatch_storage(out.dtype, "uniform_", [&](auto tag) {
      using S = decltype(tag);
      if constexpr (common::is_half_v<S>) {
        const S lo_s = common::cast_value<S>(lo), hi_s = common::cast_value<S>(hi);
        const float hi_f = common::cast_value<float>(hi_s);
        elementwise<S, S>(out, [=](S v) { return common::cast_value<float>(v) < hi_f ? v : lo_s; }, out);
      }
    });
    return;
  }
  dispatch_float(out.dtype, "uniform_", [&](auto tag) {
    using T = decltype(tag);
    T* o = out.ptr<T>();
    parallel_for(0, out.numel, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T u;
        if constexpr (std::is_same_v<T, float>) {
          u = u32_to_unit_float(philox4x32(rng.offset + i / 4, rng.seed)[i % 4]);
        } else {
          auto w = philox4x32(rng.offset + i / 2, rng.seed);
          u = u64_to_unit_double(w[2 * (i % 2)], w[2 * (i % 2) + 1]);
        }
        T v = static_cast<T>(lo + (hi - lo) * u);
        o[i] = v < static_cast<T>(hi) ? v : static_cast<T>(lo);  // rounding must not reach hi
      }
    });
  });
}

void CpuBackend::normal(const TensorView& out, double mean, double std, RandomState rng) {
  check_random_out(out, "normal_");
  if (is_16bit(out.dtype)) [[unlikely]] {  // the float32 normals rounded, as CUDA's kernels
    Float32Scope f(*this);
    normal(f.out(out), mean, std, rng);
    return f.commit();
  }
  dispatch_float(out.dtype, "normal_", [&](auto tag) {
    using T = decltype(tag);
    T* o = out.ptr<T>();
    parallel_for(0, out.numel, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        // Box-Muller: elements 2j and 2j+1 share one pair of uniforms (cos and sin).
        auto w = philox4x32(rng.offset + i / 2, rng.seed);
        double u1, u2;
        if constexpr (std::is_same_v<T, float>) {
          u1 = (static_cast<double>(w[0] >> 8) + 1.0) / 16777216.0;
          u2 = static_cast<double>(w[1] >> 8) / 16777216.0;
        } else {
          u1 = 1.0 - u64_to_unit_double(w[0], w[1]);
          u2 = u64_to_unit_double(w[2], w[3]);
        }
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double a = 6.283185307179586 * u2;
        o[i] = static_cast<T>(mean + std * r * (i % 2 == 0 ? std::cos(a) : std::sin(a)));
      }
    });
  });
}

void CpuBackend::randint(const TensorView& out, int64_t lo, int64_t hi, RandomState rng) {
  check_random_out(out, "randint");
  if (is_16bit(out.dtype)) [[unlikely]] {
    // The int64 values, rounded once (through float32 they could round twice), as CUDA's.
    Float32Scope f(*this);
    randint(f.out_as(out, kInt64), lo, hi, rng);
    return f.commit();
  }
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);  // up to 2^64 - 1: no int64 overflow
  dispatch_numeric(out.dtype, "randint", [&](auto tag) {
    using T = decltype(tag);
    T* o = out.ptr<T>();
    parallel_for(0, out.numel, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        auto w = philox4x32(rng.offset + i / 2, rng.seed);
        const uint64_t x = (static_cast<uint64_t>(w[2 * (i % 2)]) << 32) | w[2 * (i % 2) + 1];
        o[i] = static_cast<T>(lo + static_cast<int64_t>(x % range));
      }
    });
  });
}

}  // namespace focus::cpu
