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
int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
// what: how the count was asked for ("FOCUS_NUM_THREADS=100000", "100000 threads").
void check_bound(long long n, const std::string& what) {
  FOCUS_CHECK(n <= max_num_threads(),
              "[set_num_threads] {} is more than focus allows: at most {} threads (4 per core, at least 64; this "
              "process may run on {} core{})",
              what, max_num_threads(), usable_cores(), usable_cores() == 1 ? "" : "s");
}
int initial_threads() {
  if (const char* env = std::getenv("FOCUS_NUM_THREADS")) {
    long long n = 0;
    try {
      size_t used = 0;
      n = std::stoll(env, &used);
      if (env[used] != '\0') n = 0;
    } catch (...) {
    }
    FOCUS_CHECK(n >= 1, "[set_num_threads] FOCUS_NUM_THREADS must be a positive integer, got '{}'", env);
    check_bound(n, std::string("FOCUS_NUM_THREADS=") + env);
    return static_cast<int>(n);
  }
  return usable_cores();
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

int max_num_threads() {
  static const int n = std::max(64, 4 * usable_cores());
  return n;
}

void set_num_threads(int n) {
  FOCUS_CHECK(n >= 1, "[set_num_threads] expected n >= 1, got {}", n);
  check_bound(n, std::to_string(n) + " threads");
  threads() = n;
}

int get_num_threads() { return threads().load(std::memory_order_relaxed); }

}  // namespace focus
