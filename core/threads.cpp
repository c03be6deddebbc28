#include "core/threads.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/error.h"

extern "C" void openblas_set_num_threads(int);

namespace focus {
namespace {
int initial_threads() {
  if (const char* env = std::getenv("FOCUS_NUM_THREADS")) {
    try {
      size_t used = 0;
      const int n = std::stoi(env, &used);
      if (n >= 1 && env[used] == '\0') return n;
    } catch (...) {
    }
    FOCUS_FAIL("[set_num_threads] FOCUS_NUM_THREADS must be a positive integer, got '{}'", env);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
std::atomic<int>& threads() {
  static std::atomic<int> n = [] {
    // focus splits its matrix products over its own pool; OpenBLAS's threads (pthreads or
    // OpenMP, whichever build is installed) would be a second pool spinning on the same cores.
    openblas_set_num_threads(1);
    return initial_threads();
  }();
  return n;
}
}  // namespace

void set_num_threads(int n) {
  FOCUS_CHECK(n >= 1, "[set_num_threads] expected n >= 1, got {}", n);
  threads() = n;
}

int get_num_threads() { return threads().load(std::memory_order_relaxed); }

}  // namespace focus
