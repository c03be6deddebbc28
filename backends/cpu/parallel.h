#pragma once
/// CPU threading: parallel_for splits a range over focus's thread pool (thread_pool.h) only
/// when it is large enough (grain), so small ops never pay for a fork/join.
#include <algorithm>
#include <cstdint>

#include "backends/cpu/thread_pool.h"
#include "core/threads.h"

namespace focus::cpu {

/// Elements per thread below which a loop is not split, from bench_engine section e (see
/// docs/PERFORMANCE.md). An empty fork/join with the workers awake costs ~0.4 us, but a real
/// op also pays for moving its operands to the other core's cache: on the 2-core VM, add
/// (~0.1 ns per element on one core) gains nothing from a second thread at 16k elements and
/// 1.2-1.5x at 64k; GELU (~0.75 ns per element) gains 1.1x at 4k and 1.5x at 16k.
inline constexpr int64_t kGrain = 16384;
inline constexpr int64_t kHeavyGrain = 2048;

/// Calls f(begin, end) on disjoint chunks of [begin, end), in parallel when the range is
/// at least 2 * grain: at most one chunk per thread, each at least grain long. The chunks
/// depend only on the range, the grain and the thread count. f must not throw.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  int nt = get_num_threads();
  grain = std::max<int64_t>(grain, 1);
  if (nt <= 1 || n < 2 * grain || in_parallel()) {
    f(begin, end);
    return;
  }
  nt = static_cast<int>(std::min<int64_t>(nt, n / grain));
  struct Ctx {
    const F* f;
    int64_t begin, end, chunk;
  } ctx{&f, begin, end, (n + nt - 1) / nt};
  run_parallel(nt, nt, [](void* c, int64_t i) {
    const Ctx& x = *static_cast<const Ctx*>(c);
    const int64_t b = x.begin + i * x.chunk, e = std::min(x.end, b + x.chunk);
    if (b < e) (*x.f)(b, e);
  }, &ctx);
}

}  // namespace focus::cpu
