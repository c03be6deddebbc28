#include "backends/cpu/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace focus::cpu {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

thread_local int tl_index = 0;
thread_local bool tl_inside = false;

struct Job {
  void (*task)(void*, int64_t) = nullptr;
  void* ctx = nullptr;
  int64_t ntasks = 0;
  std::atomic<int64_t> next{0};
};

// Runs the tasks of job that nobody has claimed yet.
void drain(Job& job) {
  tl_inside = true;
  for (int64_t i; (i = job.next.fetch_add(1, std::memory_order_relaxed)) < job.ntasks;) job.task(job.ctx, i);
  tl_inside = false;
}

// One worker's mailbox: the caller writes job, then posted (the job's generation); the worker
// runs it and stores the generation into done. A cache line each, so polling does not bounce.
struct alignas(64) Slot {
  std::atomic<uint32_t> posted{0};
  std::atomic<uint32_t> done{0};
  std::atomic<uint32_t> sleeping{0};
  Job* job = nullptr;
};

void worker_loop(Slot* s, int index) {
  tl_index = index;
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = s->posted.load(std::memory_order_acquire);
    if (g == seen) {
      const auto start = std::chrono::steady_clock::now();
      const auto spin = std::chrono::microseconds(kSpinMicros);
      for (uint32_t n = 1;; ++n) {
        cpu_relax();
        if ((g = s->posted.load(std::memory_order_acquire)) != seen) break;
        if (n % 64 == 0 && std::chrono::steady_clock::now() - start > spin) {
          // Sleep. The caller stores posted, then reads sleeping; this thread stores sleeping,
          // then reads posted (both sequentially consistent): one of them sees the other.
          s->sleeping.store(1, std::memory_order_seq_cst);
          while ((g = s->posted.load(std::memory_order_seq_cst)) == seen) s->posted.wait(seen);
          s->sleeping.store(0, std::memory_order_relaxed);
          break;
        }
      }
    }
    seen = g;
    drain(*s->job);
    s->done.store(g, std::memory_order_release);
  }
}

class Pool {
 public:
  void run(int64_t ntasks, int nthreads, void (*task)(void*, int64_t), void* ctx) {
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    if (!lock.owns_lock()) {  // another thread's job is running: do this one here
      run_inline(ntasks, task, ctx);
      return;
    }
    const int workers = nthreads - 1;
    while (static_cast<int>(slots_.size()) < workers) {
      auto slot = std::make_unique<Slot>();
      Slot* s = slot.get();
      const int index = static_cast<int>(slots_.size()) + 1;
      // Workers live as long as the process (the pool is never destroyed): detached.
      std::thread(worker_loop, s, index).detach();
      slots_.push_back(std::move(slot));
    }
    Job job;
    job.task = task;
    job.ctx = ctx;
    job.ntasks = ntasks;
    const uint32_t g = ++generation_;
    for (int w = 0; w < workers; ++w) {
      Slot& s = *slots_[static_cast<size_t>(w)];
      s.job = &job;
      s.posted.store(g, std::memory_order_seq_cst);
      if (s.sleeping.load(std::memory_order_seq_cst)) s.posted.notify_one();
    }
    drain(job);
    // The job lives on this stack: wait until every worker it was posted to is done with it.
    for (int w = 0; w < workers; ++w) {
      const Slot& s = *slots_[static_cast<size_t>(w)];
      while (s.done.load(std::memory_order_acquire) != g) cpu_relax();
    }
  }

  static void run_inline(int64_t ntasks, void (*task)(void*, int64_t), void* ctx) {
    const bool was = tl_inside;
    tl_inside = true;
    for (int64_t i = 0; i < ntasks; ++i) task(ctx, i);
    tl_inside = was;
  }

 private:
  std::mutex busy_;
  std::vector<std::unique_ptr<Slot>> slots_;
  uint32_t generation_ = 0;
};

std::atomic<Pool*> g_pool{nullptr};
std::atomic<bool> g_forked{false};

Pool& pool() {
  static const bool once = [] {
    // A forked child has none of the parent's workers (and the busy mutex may be held by a
    // thread that does not exist there): its next job starts a pool of its own. The handler
    // only sets a flag (nothing that is unsafe between fork and exec).
    pthread_atfork(nullptr, nullptr, [] { g_forked.store(true, std::memory_order_relaxed); });
    g_pool.store(new Pool, std::memory_order_release);
    return true;
  }();
  (void)once;
  if (g_forked.exchange(false, std::memory_order_relaxed)) g_pool.store(new Pool, std::memory_order_release);
  return *g_pool.load(std::memory_order_acquire);
}

}  // namespace

void run_parallel(int64_t ntasks, int nthreads, void (*task)(void* ctx, int64_t i), void* ctx) {
  if (ntasks <= 0) return;
  nthreads = static_cast<int>(std::min<int64_t>(nthreads, ntasks));
  if (nthreads <= 1 || tl_inside) {
    Pool::run_inline(ntasks, task, ctx);
    return;
  }
  pool().run(ntasks, nthreads, task, ctx);
}

int thread_index() { return tl_inside ? tl_index : 0; }

bool in_parallel() { return tl_inside; }

}  // namespace focus::cpu
