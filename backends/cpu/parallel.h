#pragma once
/// CPU threading: parallel_for splits a range over OpenMP threads only when it is large
/// enough (grain), so small ops never pay thread start-up.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "core/threads.h"

namespace focus::cpu {

/// Elements below which an elementwise loop runs on one thread.
inline constexpr int64_t kGrain = 32768;

/// Calls f(begin, end) on disjoint chunks of [begin, end), in parallel when the range is
/// at least 2 * grain. f must not throw.
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  int nt = get_num_threads();
  if (nt <= 1 || n < 2 * grain || omp_in_parallel()) {
    f(begin, end);
    return;
  }
  nt = static_cast<int>(std::min<int64_t>(nt, n / grain));
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t chunk = (n + T - 1) / T;
    const int64_t b = begin + t * chunk, e = std::min(end, b + chunk);
    if (b < e) f(b, e);
  }
}

}  // namespace focus::cpu
