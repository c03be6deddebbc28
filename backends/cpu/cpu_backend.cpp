#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "backends/common/half.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/philox.h"
#include "core/error.h"

namespace focus::cpu {

namespace {

// Large blocks go through a small caching allocator: a fresh multi-megabyte block from
// aligned_alloc is fresh mmap'd memory, so every large op would pay page faults and kernel
// zeroing (about as much time as the op itself for a 64 MB add). Freed large blocks are
// kept in free lists keyed by their exact (rounded) size and handed out again; small
// blocks stay on malloc, which already recycles them. The cache is bounded
// (FOCUS_CPU_CACHE_MB, default 1024; 0 turns it off, as do AddressSanitizer builds) and
// returned to the system at exit.
constexpr size_t kCacheMinBytes = size_t{1} << 20;
constexpr size_t kPage = 4096;

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

class BlockCache {
 public:
  BlockCache() : limit_(cache_limit_from_env()) {}
  ~BlockCache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
    cache_destroyed.store(true);
  }

  // A cached block of exactly this size, or null.
  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= size;
    return p;
  }

  // Keeps the block for reuse; frees it when the cache would exceed its bound.
  void give(void* p, size_t size) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + size <= limit_) {
        free_[size].push_back(p);
        cached_ += size;
        return;
      }
    }
    std::free(p);
  }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
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

}  // namespace

// 64-byte alignment suits AVX-512 loads and keeps rows of float matrices cache aligned.
void* CpuBackend::allocate(size_t nbytes) {
  const size_t size = block_size(nbytes);
  if (size >= kCacheMinBytes && !cache_destroyed.load(std::memory_order_relaxed)) {
    if (void* p = block_cache().take(size)) return p;
  }
  void* p = std::aligned_alloc(64, size);
  FOCUS_CHECK(p != nullptr, "[alloc] out of memory: tried to allocate {} bytes on the CPU", nbytes);
  return p;
}

void CpuBackend::deallocate(void* ptr, size_t nbytes) {
  if (!ptr) return;
  const size_t size = block_size(nbytes);
  if (size >= kCacheMinBytes && !cache_destroyed.load(std::memory_order_relaxed)) {
    block_cache().give(ptr, size);
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
// common::BFloat16): the CPU stores and converts them (copy, to(dtype), fill) but computes
// nothing in them.
template <typename F> decltype(auto) dispatch_storage(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kFloat16: return f(common::Half{});
    case kBFloat16: return f(common::BFloat16{});
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    case kUInt8: return f(uint8_t{});
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
