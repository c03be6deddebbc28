// Engine benchmark: focus and PyTorch side by side, with ratios and the issue's targets.
//
//   (a) matmul GFLOP/s at n = 256..2048, against the raw cblas_sgemm call and torch.mm;
//   (b) per-op overhead of a 1-element add, with and without requires_grad;
//   (c) add, mul and gelu on 16M floats in GB/s, against memcpy;
//   (d) softmax, layer_norm and cross_entropy forward+backward on [4096, 1024].
//
// Every section runs at each thread count of --threads (default 1,2), focus through
// focus::set_num_threads (kernels and OpenBLAS), PyTorch through torch.set_num_threads
// plus openblas_set_num_threads (bench_engine_torch.py, run with /usr/bin/python3 after
// the focus measurements). A figure is the median over repetitions, after a warm-up call,
// of the time per call; each repetition runs enough calls to last min-sample seconds.
// See tools/bench/README.md and docs/PERFORMANCE.md.
#include <cblas.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <focus/focus.h>

#include "backends/cpu/parallel.h"
#include "tools/bench/bench_util.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Options {
  std::vector<int> threads{1, 2};
  std::string sections = "abcde";
  bool quick = false;
  bool torch = true;
  std::string python = "/usr/bin/python3";
  std::string torch_script;
  int reps = 7;
  double min_sample = 0.05;  // seconds per repetition
  int64_t overhead_ops = 100000;
  std::string command_line;
};

// Median over o.reps repetitions of the time of one call of fn, after a warm-up call.
double median_time(const Options& o, const std::function<void()>& fn) {
  fn();
  auto t0 = Clock::now();
  fn();
  const double one = std::max(seconds_since(t0), 1e-9);
  const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.min_sample / one)));
  std::vector<double> samples;
  for (int r = 0; r < o.reps; ++r) {
    t0 = Clock::now();
    for (int64_t i = 0; i < k; ++i) fn();
    samples.push_back(seconds_since(t0) / static_cast<double>(k));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Results: key "<name>@<threads>" -> seconds per call. "Missing" means not available
// (an op not implemented yet, or PyTorch not installed).
using Results = std::map<std::string, double>;
std::string key(const std::string& name, int threads) { return name + "@" + std::to_string(threads); }
std::optional<double> get(const Results& r, const std::string& name, int threads) {
  auto it = r.find(key(name, threads));
  if (it == r.end()) return std::nullopt;
  return it->second;
}

// Runs fn; an op that is not implemented yet (or fails) is reported, not fatal.
void try_measure(Results& r, const std::string& name, int threads, const std::function<double()>& fn) {
  try {
    r[key(name, threads)] = fn();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.size() > 90) msg = msg.substr(0, 90) + "...";
    std::fprintf(stderr, "  focus %s (%d threads): unavailable: %s\n", name.c_str(), threads, msg.c_str());
  }
}

// ---- (a) matmul ----------------------------------------------------------------------------

const std::vector<int64_t> kMatmulSizes{256, 512, 1024, 2048};

double gflops(int64_t n, double s) { return 2.0 * static_cast<double>(n) * n * n / s * 1e-9; }

void bench_matmul(const Options& o, int threads, Results& r) {
  for (int64_t n : kMatmulSizes) {
    focus::Tensor a = focus::randn({n, n}), b = focus::randn({n, n});
    focus::Tensor c = focus::empty({n, n});  // 64-byte aligned, like every focus and torch buffer
    float* pc = c.data_ptr<float>();
    const float* pa = a.data_ptr<float>();
    const float* pb = b.data_ptr<float>();
    r[key("blas.mm." + std::to_string(n), threads)] = median_time(o, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(n),
                  static_cast<int>(n), 1.0f, pa, static_cast<int>(n), pb, static_cast<int>(n), 0.0f, pc,
                  static_cast<int>(n));
    });
    try_measure(r, "mm." + std::to_string(n), threads, [&] {
      return median_time(o, [&] { focus::Tensor y = focus::matmul(a, b); });
    });
  }
}

// ---- (b) per-op overhead -------------------------------------------------------------------

// Time per op of a loop of o.overhead_ops 1-element adds (median of loops).
double per_op(const Options& o, const std::function<void(int64_t)>& loop) {
  loop(o.overhead_ops / 10);  // warm-up
  std::vector<double> samples;
  const int loops = o.quick ? 3 : 5;
  for (int r = 0; r < loops; ++r) {
    auto t0 = Clock::now();
    loop(o.overhead_ops);
    samples.push_back(seconds_since(t0) / static_cast<double>(o.overhead_ops));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

void bench_overhead(const Options& o, int threads, Results& r) {
  const focus::Tensor x = focus::ones({1}), y = focus::ones({1});
  const focus::Tensor leaf = focus::ones({1}).requires_grad_();
  // No autograd: z = x + y, dropped.
  r[key("add1.nograd", threads)] = per_op(o, [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) focus::Tensor z = focus::add(x, y);
  });
  // Autograd recording on a leaf: each add records a node, which is freed with z.
  r[key("add1.leaf", threads)] = per_op(o, [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) focus::Tensor z = focus::add(leaf, y);
  });
  // Autograd recording along a chain: z = z + y, the chain dropped every 100 ops.
  r[key("add1.chain", threads)] = per_op(o, [&](int64_t n) {
    focus::Tensor z = leaf;
    for (int64_t i = 0; i < n; ++i) {
      z = focus::add(z, y);
      if (i % 100 == 99) z = leaf;
    }
  });
}

// ---- (c) elementwise bandwidth -------------------------------------------------------------

constexpr int64_t kBandwidthN = int64_t{1} << 24;  // 16M floats, 64 MiB per tensor

// memcpy of n floats into an existing buffer, split over threads like a kernel would.
void parallel_memcpy(float* dst, const float* src, int64_t n, int threads) {
  if (threads <= 1) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (n + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    const int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back([=] { std::memcpy(dst + b, src + b, static_cast<size_t>(e - b) * sizeof(float)); });
  }
  for (auto& th : pool) th.join();
}

void bench_bandwidth(const Options& o, int threads, Results& r) {
  const int64_t n = kBandwidthN;
  focus::Tensor a = focus::randn({n}), b = focus::randn({n});
  std::vector<float> dst(static_cast<size_t>(n), 0.0f);
  const float* src = a.data_ptr<float>();
  r[key("memcpy", threads)] = median_time(o, [&] { parallel_memcpy(dst.data(), src, n, threads); });
  r[key("add", threads)] = median_time(o, [&] { focus::Tensor y = focus::add(a, b); });
  r[key("mul", threads)] = median_time(o, [&] { focus::Tensor y = focus::mul(a, b); });
  r[key("gelu", threads)] = median_time(o, [&] { focus::Tensor y = focus::gelu(a); });
}

// ---- (d) fused ops, forward + backward -----------------------------------------------------

constexpr int64_t kRows = 4096, kCols = 1024;

void bench_fused(const Options& o, int threads, Results& r) {
  focus::Tensor x = focus::randn({kRows, kCols}).requires_grad_();
  focus::Tensor g = focus::randn({kRows, kCols});
  focus::Tensor w = focus::ones({kCols}).requires_grad_(), bias = focus::zeros({kCols}).requires_grad_();
  focus::Tensor target = focus::randint(0, kCols, {kRows});
  auto clear = [&] {
    x.set_grad(focus::Tensor());
    w.set_grad(focus::Tensor());
    bias.set_grad(focus::Tensor());
  };
  try_measure(r, "softmax.fwd", threads, [&] { return median_time(o, [&] { focus::Tensor y = focus::softmax(x, -1); }); });
  try_measure(r, "softmax.fb", threads, [&] {
    return median_time(o, [&] {
      clear();
      focus::softmax(x, -1).backward(g);
    });
  });
  try_measure(r, "layer_norm.fwd", threads, [&] {
    return median_time(o, [&] { focus::Tensor y = focus::layer_norm(x, {kCols}, w, bias); });
  });
  try_measure(r, "layer_norm.fb", threads, [&] {
    return median_time(o, [&] {
      clear();
      focus::layer_norm(x, {kCols}, w, bias).backward(g);
    });
  });
  try_measure(r, "cross_entropy.fwd", threads, [&] {
    return median_time(o, [&] { focus::Tensor y = focus::cross_entropy(x, target); });
  });
  try_measure(r, "cross_entropy.fb", threads, [&] {
    return median_time(o, [&] {
      clear();
      focus::cross_entropy(x, target).backward();
    });
  });
}

// ---- (e) the thread pool: fork/join latency and the sizes that gain from more threads ------

const std::vector<int64_t> kScaleSizes{4096, 16384, 65536, 262144, 1048576};

void bench_threads(const Options& o, int threads, Results& r) {
  // A parallel_for of one empty chunk per thread: the fork/join cost with the workers awake
  // (calls back to back), and after the workers went to sleep (2 ms idle before each call).
  std::atomic<int64_t> sink{0};
  auto empty_job = [&] {
    focus::cpu::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) { sink.fetch_add(e - b, std::memory_order_relaxed); });
  };
  r[key("forkjoin.awake", threads)] = median_time(o, empty_job);
  std::vector<double> cold;
  for (int i = 0; i < 21; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const auto t0 = Clock::now();
    empty_job();
    cold.push_back(seconds_since(t0));
  }
  std::sort(cold.begin(), cold.end());
  r[key("forkjoin.asleep", threads)] = cold[cold.size() / 2];
  for (int64_t n : kScaleSizes) {
    focus::Tensor a = focus::randn({n}), b = focus::randn({n}), m = focus::randn({n / 256, 256});
    r[key("add." + std::to_string(n), threads)] = median_time(o, [&] { focus::Tensor y = focus::add(a, b); });
    r[key("gelu." + std::to_string(n), threads)] = median_time(o, [&] { focus::Tensor y = focus::gelu(a); });
    r[key("softmax." + std::to_string(n), threads)] = median_time(o, [&] { focus::Tensor y = focus::softmax(m, -1); });
  }
}

// ---- PyTorch side --------------------------------------------------------------------------

struct TorchRun {
  Results results;
  std::string version;
  std::string error;
};

std::string join_threads(const std::vector<int>& t) {
  std::string s;
  for (size_t i = 0; i < t.size(); ++i) s += (i ? "," : "") + std::to_string(t[i]);
  return s;
}

// Runs bench_engine_torch.py; it prints "R <name> <threads> <seconds>" lines (and
// "I <key> <value>" for information).
TorchRun run_torch(const Options& o) {
  TorchRun run;
  if (!o.torch) {
    run.error = "skipped (--no-torch)";
    return run;
  }
  if (!std::filesystem::exists(o.torch_script)) {
    run.error = "script not found: " + o.torch_script;
    return run;
  }
  std::string cmd = o.python + " '" + o.torch_script + "' --threads " + join_threads(o.threads) + " --sections " +
                    o.sections + " --reps " + std::to_string(o.reps) + " --min-sample " +
                    std::to_string(o.min_sample) + " --overhead-ops " + std::to_string(o.overhead_ops) +
                    (o.quick ? " --quick" : "");
  std::fprintf(stderr, "running: %s\n", cmd.c_str());
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    run.error = "popen failed";
    return run;
  }
  char line[4096];
  while (std::fgets(line, sizeof line, p)) {
    std::istringstream in(line);
    std::string tag;
    in >> tag;
    if (tag == "R") {
      std::string name;
      int threads = 0;
      double v = 0;
      if (in >> name >> threads >> v) run.results[key(name, threads)] = v;
    } else if (tag == "I") {
      std::string k, v;
      in >> k;
      std::getline(in >> std::ws, v);
      if (k == "torch") run.version = v;
    } else {
      std::fputs(line, stderr);
    }
  }
  const int rc = pclose(p);
  if (rc != 0) run.error = "python exited with status " + std::to_string(rc);
  return run;
}

// ---- report --------------------------------------------------------------------------------

std::string fmt_num(std::optional<double> v, int prec = 1) {
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, *v);
  return buf;
}

std::optional<double> ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}

// Largest value of metric(name@t) over thread counts: PyTorch at its best setting.
template <typename F>
std::pair<std::optional<double>, int> best_of(const Options& o, const std::vector<std::string>& names, F metric,
                                              bool higher_is_better) {
  std::optional<double> best;
  int best_t = 0;
  for (int t : o.threads)
    for (const auto& nm : names) {
      auto v = metric(nm, t);
      if (v && (!best || (higher_is_better ? *v > *best : *v < *best))) {
        best = v;
        best_t = t;
      }
    }
  return {best, best_t};
}

std::string verdict(std::optional<bool> ok) { return !ok ? "n/a" : *ok ? "met" : "NOT met"; }

void report_matmul(const Options& o, const Results& f, const Results& t) {
  std::printf("\n(a) matmul [n,n] @ [n,n], GFLOP/s = 2n^3 / time (higher is better)\n");
  std::printf("    target: focus >= 95%% of the raw cblas_sgemm call at the same threads\n");
  std::printf("%6s %4s %9s %9s %9s %13s %10s %9s %12s  %s\n", "n", "thr", "focus", "OpenBLAS", "torch",
              "focus/OpenBLAS", "focus/torch", "torch best", "focus/best", "target");
  for (int64_t n : kMatmulSizes) {
    const std::string nm = "mm." + std::to_string(n);
    auto metric = [&](const Results& r, const std::string& name, int th) -> std::optional<double> {
      auto s = get(r, name, th);
      if (!s) return std::nullopt;
      return gflops(n, *s);
    };
    auto [tb, tbt] = best_of(o, {nm}, [&](const std::string& name, int th) { return metric(t, name, th); }, true);
    for (int th : o.threads) {
      auto fv = metric(f, nm, th), bv = metric(f, "blas." + nm, th), tv = metric(t, nm, th);
      auto rb = ratio(fv, bv);
      std::printf("%6lld %4d %9s %9s %9s %13s %10s %6s(%dt) %12s  %s\n", static_cast<long long>(n), th,
                  fmt_num(fv).c_str(), fmt_num(bv).c_str(), fmt_num(tv).c_str(), fmt_num(rb, 3).c_str(),
                  fmt_num(ratio(fv, tv), 2).c_str(), fmt_num(tb).c_str(), tbt, fmt_num(ratio(fv, tb), 2).c_str(),
                  verdict(rb ? std::optional<bool>(*rb >= 0.95) : std::nullopt).c_str());
    }
  }
}

void report_overhead(const Options& o, const Results& f, const Results& t) {
  std::printf("\n(b) per-op overhead: 1-element add, us per op (lower is better), loops of %lld ops\n",
              static_cast<long long>(o.overhead_ops));
  std::printf("    nograd: z = x + y; leaf: z = leaf + y with leaf.requires_grad (graph freed with z);\n");
  std::printf("    chain: z = z + y, chain dropped every 100 ops. target: focus <= 1 us with autograd recording\n");
  std::printf("%8s %4s %9s %9s %12s %9s  %s\n", "variant", "thr", "focus", "torch", "torch/focus", "torch best",
              "target");
  for (const char* v : {"nograd", "leaf", "chain"}) {
    const std::string nm = std::string("add1.") + v;
    auto us = [&](const Results& r, const std::string& name, int th) -> std::optional<double> {
      auto s = get(r, name, th);
      if (!s) return std::nullopt;
      return *s * 1e6;
    };
    auto [tb, tbt] = best_of(o, {nm}, [&](const std::string& name, int th) { return us(t, name, th); }, false);
    for (int th : o.threads) {
      auto fv = us(f, nm, th), tv = us(t, nm, th);
      std::optional<bool> ok;
      if (std::string(v) != "nograd" && fv) ok = *fv <= 1.0;
      std::printf("%8s %4d %9s %9s %12s %6s(%dt)  %s\n", v, th, fmt_num(fv, 3).c_str(), fmt_num(tv, 3).c_str(),
                  fmt_num(ratio(tv, fv), 2).c_str(), fmt_num(tb, 3).c_str(), tbt,
                  std::string(v) == "nograd" ? "-" : verdict(ok).c_str());
    }
  }
}

void report_bandwidth(const Options& o, const Results& f, const Results& t) {
  const double n = static_cast<double>(kBandwidthN);
  std::printf("\n(c) elementwise on 16M float32 (64 MiB per tensor), GB/s = bytes read + written / time\n");
  std::printf("    add, mul: 3 x 4 x N bytes; gelu and memcpy: 2 x 4 x N bytes; 1 GB = 1e9 bytes.\n");
  std::printf("    memcpy: into an existing buffer, split over the threads. focus and torch allocate\n");
  std::printf("    their output (torch 'out' = torch.op(..., out=preallocated), counted in torch best).\n");
  std::printf("    target: focus >= 70%% of memcpy GB/s at the same threads\n");
  std::printf("%6s %4s %9s %9s %9s %9s %12s %11s %9s %12s  %s\n", "op", "thr", "focus", "memcpy", "torch", "torch out",
              "focus/memcpy", "focus/torch", "torch best", "focus/best", "target");
  for (const char* op : {"add", "mul", "gelu"}) {
    const double bytes = (std::string(op) == "gelu" ? 2.0 : 3.0) * 4.0 * n;
    auto gbs = [&](const Results& r, const std::string& name, int th) -> std::optional<double> {
      auto s = get(r, name, th);
      if (!s) return std::nullopt;
      return bytes / *s * 1e-9;
    };
    auto [tb, tbt] = best_of(o, {op, std::string(op) + ".out"},
                             [&](const std::string& name, int th) { return gbs(t, name, th); }, true);
    for (int th : o.threads) {
      auto fv = gbs(f, op, th), tv = gbs(t, op, th), tov = gbs(t, std::string(op) + ".out", th);
      auto mc = get(f, "memcpy", th);
      std::optional<double> mv;
      if (mc) mv = 2.0 * 4.0 * n / *mc * 1e-9;
      auto rm = ratio(fv, mv);
      std::printf("%6s %4d %9s %9s %9s %9s %12s %11s %6s(%dt) %12s  %s\n", op, th, fmt_num(fv).c_str(),
                  fmt_num(mv).c_str(), fmt_num(tv).c_str(), fmt_num(tov).c_str(), fmt_num(rm, 2).c_str(),
                  fmt_num(ratio(fv, tv), 2).c_str(), fmt_num(tb).c_str(), tbt, fmt_num(ratio(fv, tb), 2).c_str(),
                  verdict(rm ? std::optional<bool>(*rm >= 0.70) : std::nullopt).c_str());
    }
  }
}

void report_fused(const Options& o, const Results& f, const Results& t) {
  std::printf("\n(d) fused ops on [4096, 1024] float32, ms per call (lower is better)\n");
  std::printf("    fwd: forward with x.requires_grad (graph recorded, then freed); fb: forward + backward\n");
  std::printf("    (softmax, layer_norm: y.backward(g) with a random g; layer_norm with weight and bias;\n");
  std::printf("    cross_entropy: mean loss over 4096 random targets, loss.backward()). grads reset each call.\n");
  std::printf("    target: focus fb no slower than torch at the same threads\n");
  std::printf("%14s %4s %9s %9s %9s %9s %11s %9s %12s  %s\n", "op", "thr", "focus fwd", "torch fwd", "focus fb",
              "torch fb", "torch/focus", "torch best", "best/focus", "target");
  for (const char* op : {"softmax", "layer_norm", "cross_entropy"}) {
    auto ms = [&](const Results& r, const std::string& name, int th) -> std::optional<double> {
      auto s = get(r, name, th);
      if (!s) return std::nullopt;
      return *s * 1e3;
    };
    const std::string fb = std::string(op) + ".fb", fw = std::string(op) + ".fwd";
    auto [tb, tbt] = best_of(o, {fb}, [&](const std::string& name, int th) { return ms(t, name, th); }, false);
    for (int th : o.threads) {
      auto ff = ms(f, fw, th), tf = ms(t, fw, th), fv = ms(f, fb, th), tv = ms(t, fb, th);
      auto r = ratio(tv, fv);
      std::printf("%14s %4d %9s %9s %9s %9s %11s %6s(%dt) %12s  %s\n", op, th, fmt_num(ff, 2).c_str(),
                  fmt_num(tf, 2).c_str(), fmt_num(fv, 2).c_str(), fmt_num(tv, 2).c_str(), fmt_num(r, 2).c_str(),
                  fmt_num(tb, 2).c_str(), tbt, fmt_num(ratio(tb, fv), 2).c_str(),
                  verdict(r ? std::optional<bool>(*r >= 1.0) : std::nullopt).c_str());
    }
  }
}

void report_threads(const Options& o, const Results& f) {
  std::printf("\n(e) focus's thread pool (focus only): fork/join of an empty parallel_for, microseconds;\n");
  std::printf("    then add, gelu (n float32) and softmax ([n/256, 256] rows), microseconds per call\n");
  std::printf("    and the speed-up over 1 thread (kGrain = %lld elements)\n", static_cast<long long>(focus::cpu::kGrain));
  std::printf("%18s", "");
  for (int th : o.threads) std::printf(" %8dt", th);
  std::printf("\n");
  for (const char* name : {"forkjoin.awake", "forkjoin.asleep"}) {
    std::printf("%18s", name);
    for (int th : o.threads) std::printf(" %9s", fmt_num(get(f, name, th) ? std::optional<double>(*get(f, name, th) * 1e6) : std::nullopt, 2).c_str());
    std::printf("\n");
  }
  for (const char* op : {"add", "gelu", "softmax"})
    for (int64_t n : kScaleSizes) {
      const std::string name = std::string(op) + "." + std::to_string(n);
      std::printf("%18s", name.c_str());
      const auto one = get(f, name, 1);
      for (int th : o.threads) {
        const auto v = get(f, name, th);
        std::string cell = fmt_num(v ? std::optional<double>(*v * 1e6) : std::nullopt, 1);
        if (v && one && th > 1) cell += fmt::format(" ({:.2f}x)", *one / *v);
        std::printf(" %9s", cell.c_str());
      }
      std::printf("\n");
    }
}

}  // namespace

int main(int argc, char** argv) try {
  Options o;
  o.torch_script = focus::bench::script_beside("bench_engine_torch.py");
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
  CLI::App app{"bench_engine: focus and PyTorch side by side on matmul, per-op overhead, bandwidth, fused ops",
               "bench_engine"};
  focus::bench::add_thread_list(app, "--threads", o.threads, "Thread counts; every section runs at each", false);
  app.add_option("--sections", o.sections, "Any of the letters abcde")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) {
            return !s.empty() && s.find_first_not_of("abcde") == std::string::npos
                       ? std::string()
                       : "letters of abcde, got '" + s + "'";
          },
          "", "sections"));
  app.add_flag("--quick", o.quick, "A smoke run: 3 repetitions, 0.02 s samples, 20000 overhead ops");
  bool no_torch = false;
  focus::bench::add_torch_flags(app, no_torch, o.python);
  app.add_option("--torch-script", o.torch_script, "The PyTorch half")->capture_default_str()->type_name("PATH");
  focus::bench::add_number(app, "--reps", o.reps, "Repetitions; a figure is their median", 1);
  focus::bench::add_number(app, "--min-sample", o.min_sample, "Seconds of calls per repetition, at least", 0, true);
  focus::bench::add_number(app, "--overhead-ops", o.overhead_ops, "Adds per loop in section b", 100);
  app.footer(
      "sections: a matmul, b per-op overhead, c elementwise bandwidth, d fused fwd+bwd,\n"
      "          e thread pool (fork/join latency, speed-up by size; focus only)");
  if (auto rc = focus::bench::parse_command_line(app, argc, argv)) return *rc;
  o.torch = !no_torch;
  if (o.quick) {
    o.reps = 3;
    o.min_sample = 0.02;
    o.overhead_ops = 20000;
  }
  auto has = [&](char c) { return o.sections.find(c) != std::string::npos; };

  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&now));
  utsname u{};
  uname(&u);
  std::printf("focus engine benchmark  %s\n", date);
  std::printf("command: %s\n", o.command_line.c_str());
  std::printf("machine: %s, %u hardware threads, %s %s\n", focus::bench::cpu_model().c_str(), std::thread::hardware_concurrency(),
              u.sysname, u.release);
  std::printf("OpenBLAS: %s\n", openblas_get_config());
  std::printf("method: median of %d repetitions after a warm-up, each >= %.3f s of calls\n", o.reps, o.min_sample);
  std::fflush(stdout);

  Results f;
  for (int th : o.threads) {
    focus::set_num_threads(th);
    std::fprintf(stderr, "focus, %d thread(s)...\n", th);
    if (has('a')) bench_matmul(o, th, f);
    if (has('b')) bench_overhead(o, th, f);
    if (has('c')) bench_bandwidth(o, th, f);
    if (has('d')) bench_fused(o, th, f);
    if (has('e')) bench_threads(o, th, f);
  }
  TorchRun t = run_torch(o);
  std::printf("PyTorch: %s%s\n", t.version.empty() ? "-" : t.version.c_str(),
              t.error.empty() ? "" : ("  (" + t.error + ")").c_str());
  std::printf("threads: focus::set_num_threads(t) / torch.set_num_threads(t) + openblas_set_num_threads(t);\n");
  std::printf("         'torch best' = PyTorch at its best setting over the thread counts (and out= in (c))\n");
  if (has('a')) report_matmul(o, f, t.results);
  if (has('b')) report_overhead(o, f, t.results);
  if (has('c')) report_bandwidth(o, f, t.results);
  if (has('d')) report_fused(o, f, t.results);
  if (has('e')) report_threads(o, f);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_engine: %s\n", e.what());
  return 1;
}
