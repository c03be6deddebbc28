// bench_anomaly: what anomaly detection (autograd/anomaly.h) costs, off and on, beside
// PyTorch's torch.autograd.set_detect_anomaly.
//
//   ./build/cpu/tools/bench/bench_anomaly                               # this build, off and on; PyTorch off and on
//   ./build/cpu/tools/bench/bench_anomaly --baseline OTHER/bench_anomaly   # plus "off" of another build
//
// Off must cost nothing: --baseline names the same program built from the commit before
// anomaly detection (this source and bench_util.h compile there too: without
// autograd/anomaly.h it only runs "off"), and its figures are printed beside this build's "off".
//
// Three figures per run, each the median of its repetitions:
// - gpt_step_ms: one training step of models/gpt's small config (4 layers, 4 heads, width
//   128, context 64, batch 12, vocab 65; forward, cross entropy, zero_grad, backward, AdamW),
//   random weights and batches (seed 1), median over the timed steps after the warm-up;
// - add_us: recording one node: z = leaf + y on 1-element tensors (leaf requires grad), in
//   loops of --ops adds, median of 5 loops;
// - chain_us: forward and backward of a chain z = z * 1.0001 of 100 nodes from a
//   1-element leaf, per node, median of 5 loops of --ops / 100 chains.
// Each (build, mode) is its own process, run in interleaved rounds (--rounds, the order
// rotated every round) so that a noisy neighbour shows up in every column alike; the table
// gives the median over the rounds of each figure.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <focus/focus.h>

#include "models/gpt/gpt.h"
#include "optim/adam.h"
#include "tools/bench/bench_util.h"

#if __has_include("autograd/anomaly.h")
#include "autograd/anomaly.h"
#define BENCH_HAVE_ANOMALY 1
#else
#define BENCH_HAVE_ANOMALY 0
#endif

using namespace focus;
using bench::now_s;
using bench::shell_quote;

namespace {

struct Args {
  bool worker = false;
  std::string mode = "off";  // worker: off | on | on-nocheck (check_nan = false: recording only)
  int threads = 1;
  int rounds = 5;
  int steps = 20, warmup = 3;
  int ops = 100000;
  std::string baseline;
  bool no_torch = false;
  std::string python = "/usr/bin/python3";
};

// CPU seconds of this process: on a shared machine, far steadier than the wall clock (other
// processes' work does not count), as long as the work runs on one thread.
double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int worker(const Args& a) {
  set_num_threads(a.threads);
#if BENCH_HAVE_ANOMALY
  std::optional<autograd::DetectAnomalyGuard> anomaly;
  FOCUS_CHECK(a.mode == "off" || a.mode == "on" || a.mode == "on-nocheck",
              "[bench_anomaly] --mode off, on or on-nocheck, got '{}'", a.mode);
  if (a.mode != "off") anomaly.emplace(/*check_nan=*/a.mode == "on");
#else
  FOCUS_CHECK(a.mode == "off", "[bench_anomaly] this build has no anomaly detection: only --mode off");
#endif
  manual_seed(1);
  // ---- gpt step ----
  models::GPTConfig cfg;
  cfg.n_layer(4).n_head(4).n_embd(128).block_size(64).vocab_size(65).dropout(0.0);
  auto gpt = std::make_shared<models::GPT>(cfg);
  optim::AdamW opt(gpt->parameters(), optim::AdamWOptions().lr(3e-4).weight_decay(0.1));
  Generator gen(1);
  std::vector<double> step_s, step_cpu;
  for (int s = 0; s < a.warmup + a.steps; ++s) {
    Tensor x = randint(0, 65, {12, 64}, TensorOptions(kInt64), &gen);
    Tensor y = randint(0, 65, {12, 64}, TensorOptions(kInt64), &gen);
    const double t0 = now_s(), c0 = cpu_s();
    Tensor loss = models::GPT::loss(gpt->forward(x), y);
    opt.zero_grad(true);
    loss.backward();
    opt.step();
    (void)loss.item<double>();
    if (s >= a.warmup) {
      step_s.push_back(now_s() - t0);
      step_cpu.push_back(cpu_s() - c0);
    }
  }
  std::printf("R gpt_step_ms %.6f\nR gpt_step_cpu_ms %.6f\n", 1e3 * median(step_s), 1e3 * median(step_cpu));
  // ---- recording one node ----
  Tensor leaf = ones({1}).requires_grad_();
  Tensor one = ones({1});
  std::vector<double> add_us, add_cpu;
  for (int r = 0; r < 6; ++r) {
    const double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < a.ops; ++i) {
      Tensor z = leaf + one;
    }
    if (r > 0) {  // the first loop warms up
      add_us.push_back(1e6 * (now_s() - t0) / a.ops);
      add_cpu.push_back(1e6 * (cpu_s() - c0) / a.ops);
    }
  }
  std::printf("R add_us %.6f\nR add_cpu_us %.6f\n", median(add_us), median(add_cpu));
  // ---- forward + backward per node ----
  std::vector<double> chain_us, chain_cpu;
  const int chains = std::max(1, a.ops / 100);
  for (int r = 0; r < 6; ++r) {
    const double t0 = now_s(), c0 = cpu_s();
    for (int c = 0; c < chains; ++c) {
      Tensor z = leaf;
      for (int i = 0; i < 100; ++i) z = z * 1.0001;
      z.backward();
    }
    if (r > 0) {
      chain_us.push_back(1e6 * (now_s() - t0) / (100.0 * chains));
      chain_cpu.push_back(1e6 * (cpu_s() - c0) / (100.0 * chains));
    }
  }
  std::printf("R chain_us %.6f\nR chain_cpu_us %.6f\n", median(chain_us), median(chain_cpu));
  std::fflush(stdout);
  return 0;
}

std::map<std::string, double> parse(const std::string& out) {
  std::map<std::string, double> r;
  std::stringstream ss(out);
  std::string line;
  while (std::getline(ss, line))
    if (line.rfind("R ", 0) == 0) {
      std::stringstream ls(line.substr(2));
      std::string name;
      double v;
      ls >> name >> v;
      r[name] = v;
    }
  return r;
}

int driver(const Args& a) {
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  struct Column {
    std::string label, cmd;
  };
  const std::string common = fmt::format(" --threads {} --steps {} --warmup {} --ops {}", a.threads, a.steps,
                                         a.warmup, a.ops);
  std::vector<Column> cols;
  cols.push_back({"focus off", shell_quote(self) + " --worker --mode off" + common});
  if (!a.baseline.empty()) cols.push_back({"baseline off", shell_quote(a.baseline) + " --worker --mode off" + common});
  if (BENCH_HAVE_ANOMALY) {
    cols.push_back({"focus on", shell_quote(self) + " --worker --mode on" + common});
    cols.push_back({"focus nocheck", shell_quote(self) + " --worker --mode on-nocheck" + common});
  }
  if (!a.no_torch) {
    const std::string script = shell_quote(bench::script_beside("bench_anomaly_torch.py"));
    // Python is slower per op: a tenth of the adds keeps a round short.
    const std::string tcommon = fmt::format(" --threads {} --steps {} --warmup {} --ops {}", a.threads, a.steps,
                                            a.warmup, std::max(100, a.ops / 10));
    cols.push_back({"torch off", shell_quote(a.python) + " " + script + " --mode off" + tcommon});
    cols.push_back({"torch on", shell_quote(a.python) + " " + script + " --mode on" + tcommon});
  }
  std::printf("bench_anomaly: %s, %d thread(s), %d rounds\n", bench::cpu_model().c_str(), a.threads, a.rounds);
  std::map<std::string, std::map<std::string, std::vector<double>>> got;  // column -> figure -> rounds
  for (int r = 0; r < a.rounds; ++r) {
    for (size_t k = 0; k < cols.size(); ++k) {
      const Column& c = cols[(k + r) % cols.size()];
      auto res = parse(bench::run_command(c.cmd + " 2>&1", "bench_anomaly"));
      std::printf("round %d %-13s", r + 1, c.label.c_str());
      for (const auto& [name, v] : res) {
        got[c.label][name].push_back(v);
        std::printf("  %s %.4f", name.c_str(), v);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  const std::vector<const char*> figures{"gpt_step_ms", "add_us", "chain_us", "gpt_step_cpu_ms", "add_cpu_us",
                                         "chain_cpu_us"};
  std::printf("\n=== medians over %d rounds (wall clock; cpu = CPU time of the process)\n%-13s", a.rounds, "");
  for (const char* f : figures) std::printf(" %15s", f);
  std::printf("\n");
  for (const auto& c : cols) {
    std::printf("%-13s", c.label.c_str());
    for (const char* f : figures) std::printf(" %15.4f", median(got[c.label][f]));
    std::printf("\n");
  }
  auto ratio = [&](const char* num, const char* den, const char* what) {
    if (!got.count(num) || !got.count(den)) return;
    std::printf("%-27s", what);
    for (const char* f : figures) std::printf(" %15s", fmt::format("{:+.1f}%", 100.0 * (median(got[num][f]) / median(got[den][f]) - 1.0)).c_str());
    std::printf("\n");
  };
  std::printf("\n=== ratios of the medians (time, + = slower)\n");
  ratio("focus off", "baseline off", "focus off vs baseline off");
  ratio("focus on", "focus off", "focus on vs off");
  ratio("focus nocheck", "focus off", "on, check_nan off, vs off");
  ratio("torch on", "torch off", "torch on vs off");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_anomaly: what anomaly detection costs, off and on, beside PyTorch's", "bench_anomaly"};
  bench::add_number(app, "--rounds", a.rounds, "Interleaved rounds (each column once per round)", 1);
  bench::add_number(app, "--threads", a.threads, "Threads of every run", 1);
  bench::add_number(app, "--steps", a.steps, "Timed GPT steps per run", 1);
  bench::add_number(app, "--warmup", a.warmup, "GPT steps before the timed ones", 0);
  bench::add_number(app, "--ops", a.ops, "Adds per loop (chains: ops / 100)", 1);
  app.add_option("--baseline", a.baseline, "This program built from another commit: its \"off\" beside this build's")
      ->type_name("PATH");
  bench::add_torch_flags(app, a.no_torch, a.python);
  // The driver runs itself with these for each column.
  app.add_flag("--worker", a.worker)->group("");
  app.add_option("--mode", a.mode)->group("");
  if (auto rc = bench::parse_command_line(app, argc, argv)) return *rc;
  try {
    return a.worker ? worker(a) : driver(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_anomaly: %s\n", e.what());
    return 1;
  }
}
