#include "core/threads.h"

#include <omp.h>

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
      int n = std::stoi(env);
      if (n >= 1) return n;
    } catch (...) {
    }
    FOCUS_FAIL("[set_num_threads] FOCUS_NUM_THREADS must be a positive integer, got '{}'", env);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}
std::atomic<int>& threads() {
  static std::atomic<int> n = [] {
    int v = initial_threads();
    openblas_set_num_threads(v);
    return v;
  }();
  return n;
}
}  // namespace

void set_num_threads(int n) {
  FOCUS_CHECK(n >= 1, "[set_num_threads] expected n >= 1, got {}", n);
  threads() = n;
  openblas_set_num_threads(n);
}

int get_num_threads() { return threads().load(std::memory_order_relaxed); }

}  // namespace focus
