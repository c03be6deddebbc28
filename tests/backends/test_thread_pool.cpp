// focus's CPU thread pool (backends/cpu/thread_pool.h) and the products split over it
// (backends/cpu/gemm.h): every task runs once, nesting and concurrent callers run inline,
// sleeping workers wake up, and a split matrix product equals the unsplit one (to rounding:
// OpenBLAS picks its kernels by size) and is the same on every call at a given thread count.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#include "backends/cpu/parallel.h"
#include "backends/cpu/thread_pool.h"
#include "test_util.h"

extern "C" int openblas_get_num_threads();

using namespace focus;
using namespace focus::testing;
using focus::cpu::in_parallel;
using focus::cpu::parallel_for;
using focus::cpu::run_parallel;
using focus::cpu::thread_index;

namespace {

// Restores the thread setting at the end of a test.
struct ThreadsGuard {
  int saved = get_num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

struct Counts {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> bad_index{0};
  int nthreads;
  explicit Counts(int64_t n, int nt) : hits(static_cast<size_t>(n)), nthreads(nt) {}
};

void count_task(void* ctx, int64_t i) {
  auto& c = *static_cast<Counts*>(ctx);
  c.hits[static_cast<size_t>(i)].fetch_add(1);
  if (!in_parallel() || thread_index() < 0 || thread_index() >= c.nthreads) c.bad_index.fetch_add(1);
}

}  // namespace

TEST_CASE("thread pool: every task runs exactly once, on a thread index below the job's count") {
  ThreadsGuard guard;
  for (int nt : {1, 2, 3, 5}) {
    set_num_threads(nt);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000}) {
      Counts c(n, nt);
      run_parallel(n, nt, count_task, &c);
      INFO("threads " << nt << ", tasks " << n);
      int wrong = 0;
      for (auto& h : c.hits) wrong += h.load() != 1;
      CHECK(wrong == 0);
      CHECK(c.bad_index.load() == 0);
    }
  }
  CHECK_FALSE(in_parallel());
  CHECK(thread_index() == 0);
}

TEST_CASE("thread pool: parallel_for covers the range once with chunks of at least the grain") {
  ThreadsGuard guard;
  set_num_threads(4);
  for (int64_t n : {1, 99, 100, 1000, 12345}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<int64_t> small_chunks{0}, chunks{0};
    parallel_for(0, n, 100, [&](int64_t b, int64_t e) {
      chunks.fetch_add(1);
      if (e - b < 100 && e != n) small_chunks.fetch_add(1);
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
    int wrong = 0;
    for (auto& h : hits) wrong += h.load() != 1;
    INFO("n = " << n);
    CHECK(wrong == 0);
    CHECK(small_chunks.load() == 0);
    CHECK(chunks.load() <= 4);
    if (n < 200) CHECK(chunks.load() == 1);  // below 2 * grain: one call on this thread
  }
}

TEST_CASE("thread pool: a parallel_for inside a task runs inline") {
  ThreadsGuard guard;
  set_num_threads(2);
  std::atomic<int64_t> sum{0};
  std::atomic<int> nested_parallel{0};
  parallel_for(0, 4, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallel_for(0, 1000, 1, [&](int64_t b2, int64_t e2) {
        if (b2 != 0 || e2 != 1000) nested_parallel.fetch_add(1);  // inline: the whole range at once
        for (int64_t j = b2; j < e2; ++j) sum.fetch_add(j);
      });
  });
  CHECK(nested_parallel.load() == 0);
  CHECK(sum.load() == 4 * 999 * 1000 / 2);
}

TEST_CASE("thread pool: callers on several threads at once all finish with the right answer") {
  ThreadsGuard guard;
  set_num_threads(2);
  constexpr int kCallers = 4, kCalls = 200;
  std::vector<int64_t> results(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&results, c] {
      for (int k = 0; k < kCalls; ++k) {
        std::atomic<int64_t> s{0};
        parallel_for(0, 4096, 64, [&](int64_t b, int64_t e) {
          int64_t local = 0;
          for (int64_t i = b; i < e; ++i) local += i;
          s.fetch_add(local);
        });
        results[static_cast<size_t>(c)] += s.load();
      }
    });
  for (auto& t : callers) t.join();
  for (int64_t r : results) CHECK(r == int64_t{kCalls} * 4095 * 4096 / 2);
}

TEST_CASE("thread pool: workers that went to sleep wake up for the next job") {
  ThreadsGuard guard;
  set_num_threads(3);
  for (int round = 0; round < 3; ++round) {
    // Longer than a worker spins (kSpinMicros) before it sleeps.
    std::this_thread::sleep_for(std::chrono::microseconds(20 * cpu::kSpinMicros));
    Counts c(16, 3);
    run_parallel(16, 3, count_task, &c);
    int wrong = 0;
    for (auto& h : c.hits) wrong += h.load() != 1;
    CHECK(wrong == 0);
  }
}

TEST_CASE("thread pool: OpenBLAS is held to one thread; matrix products split over the pool are right and repeatable") {
  ThreadsGuard guard;
  set_num_threads(1);
  manual_seed(5);
  (void)matmul(randn({4, 4}), randn({4, 4}));
  CHECK(openblas_get_num_threads() == 1);
  struct Case {
    int64_t m, k, n;
    bool ta, tb;
  };
  // Wide and tall (split over columns and rows), ragged sizes, transposed operands, and a
  // batch that does not divide over the threads (each product split).
  for (const Case& c : {Case{513, 96, 77, false, false}, Case{70, 128, 700, false, true}, Case{301, 64, 300, true, false},
                        Case{96, 200, 96, true, true}}) {
    for (DType dt : {kFloat32, kFloat64}) {
      const Tensor a = c.ta ? randn({c.k, c.m}, dt).t() : randn({c.m, c.k}, dt);
      const Tensor b = c.tb ? randn({c.n, c.k}, dt).t() : randn({c.k, c.n}, dt);
      const Tensor a3 = randn({3, c.m, c.k}, dt);
      set_num_threads(1);
      const Tensor one = matmul(a, b), one3 = matmul(a3, b);
      for (int nt : {2, 3, 4}) {
        set_num_threads(nt);
        INFO("m " << c.m << " k " << c.k << " n " << c.n << " threads " << nt << " dtype " << dt);
        const Tensor split = matmul(a, b), split3 = matmul(a3, b);
        CHECK(allclose(split, one, 1e-5, 1e-5));
        CHECK(allclose(split3, one3, 1e-5, 1e-5));
        CHECK(allclose(matmul(a, b), split, 0, 0));  // bit for bit again at this thread count
        CHECK(allclose(matmul(a3, b), split3, 0, 0));
      }
      set_num_threads(1);
    }
  }
  CHECK(openblas_get_num_threads() == 1);
}

TEST_CASE("thread pool: a forked child runs parallel loops on a pool of its own") {
  ThreadsGuard guard;
  set_num_threads(2);
  std::atomic<int64_t> warm{0};
  parallel_for(0, 4096, 64, [&](int64_t b, int64_t e) { warm.fetch_add(e - b); });  // the parent's workers exist
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::atomic<int64_t> sum{0};
    parallel_for(0, 100000, 64, [&](int64_t b, int64_t e) {
      int64_t local = 0;
      for (int64_t i = b; i < e; ++i) local += i;
      sum.fetch_add(local);
    });
    _exit(sum.load() == int64_t{99999} * 100000 / 2 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(warm.load() == 4096);
}

TEST_CASE("FOCUS_NUM_THREADS: the default thread count (ctest runs this with 3, and with 'abc')") {
  // Read once, at the first call; these ctest runs start a process of their own for it.
  const char* env = std::getenv("FOCUS_NUM_THREADS");
  if (env && std::string(env) == "3") CHECK(get_num_threads() == 3);
  else CHECK(get_num_threads() >= 1);  // an invalid value throws here, naming the variable
}

TEST_CASE("set_num_threads rejects a count below one, and above a sane bound") {
  CHECK_THROWS_WITH_AS(set_num_threads(0), "[set_num_threads] expected n >= 1, got 0", Error);
  CHECK(get_num_threads() >= 1);
  // 100000 threads were accepted (and died in libgomp under a memory limit).
  const int before = get_num_threads();
  CHECK(max_num_threads() >= 64);
  CHECK_THROWS_WITH_AS(set_num_threads(100000), doctest::Contains("[set_num_threads] 100000 threads is more than focus "
                                                                  "allows: at most"),
                       Error);
  CHECK_THROWS_AS(set_num_threads(max_num_threads() + 1), Error);
  CHECK(get_num_threads() == before);  // a refused count changes nothing
  {
    ThreadsGuard guard;
    set_num_threads(max_num_threads());  // the bound itself is fine
    CHECK(get_num_threads() == max_num_threads());
  }
}
