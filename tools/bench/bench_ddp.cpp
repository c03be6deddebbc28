// bench_ddp: data-parallel scaling of the medium GPT (6 layers, 6 heads, width 384, context
// 256, vocab 65, global batch 8) on one machine, focus against PyTorch's DDP (gloo) in one run:
//
//   1. one process, one thread, no DDP (the baseline);
//   2. one rank under mpirun with DDP (the overhead of DDP itself at world size 1);
//   3. two ranks x one thread with DDP, batch 4 each (the same global batch): the scaling;
//   and the same three with PyTorch (tools/bench/bench_ddp_torch.py, torch.distributed on gloo).
//
// For the DDP runs it also reports the gradient all-reduce calls per step (buckets), the bytes,
// the time the communication thread spent on them and the share of it hidden behind backward
// (1 - time the end of backward waited / communication time).
//
//   ./build/release/tools/bench/bench_ddp [--steps 8] [--warmup 2] [--no-torch]
//
// Each configuration is its own process (or mpirun job): this program re-run with --worker.
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <focus/focus.h>

#include "distributed/ddp.h"
#include "distributed/distributed.h"
#include "models/gpt/gpt.h"
#include "tools/bench/bench_util.h"

using json = nlohmann::json;
using namespace focus;
using bench::now_s;
using bench::shell_quote;

namespace {

struct Args {
  int steps = 8, warmup = 2;
  bool no_torch = false;
  bool worker = false;
  bool ddp = false;
  std::string python = "/usr/bin/python3";
};

constexpr int64_t kBatch = 8, kT = 256, kVocab = 65;

// --worker: trains the medium GPT for warmup + steps steps; with --ddp under the process
// group (mpirun), each rank on its rows of the same global batch. Rank 0 prints one JSON line.
int worker(const Args& a) {
  set_num_threads(1);
  int rank = 0, world = 1;
  if (a.ddp) {
    distributed::init_process_group();
    rank = distributed::get_rank();
    world = distributed::get_world_size();
    set_num_threads(1);
  }
  FOCUS_CHECK(kBatch % world == 0, "[bench_ddp] the global batch {} does not split over {} ranks", kBatch, world);
  const int64_t B = kBatch / world;
  models::GPTConfig cfg;
  cfg.n_layer(6).n_head(6).n_embd(384).block_size(kT).vocab_size(kVocab).bias(true).dropout(0.0);
  Generator init(1234);
  auto model = std::make_shared<models::GPT>(cfg, &init);
  std::shared_ptr<nn::DistributedDataParallel<models::GPT>> ddp;
  if (a.ddp) ddp = std::make_shared<nn::DistributedDataParallel<models::GPT>>(model);
  auto [decay, no_decay] = model->decay_groups();
  optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                   optim::AdamWOptions().lr(3e-4).weight_decay(0.1));
  Generator data(99);
  std::vector<double> times;
  double buckets = 0, bytes = 0, comm = 0, exposed = 0;
  for (int s = 0; s < a.warmup + a.steps; ++s) {
    Tensor x = randint(0, kVocab, {kBatch, kT}, kInt64, &data), y = randint(0, kVocab, {kBatch, kT}, kInt64, &data);
    x = x.narrow(0, rank * B, B);
    y = y.narrow(0, rank * B, B);
    if (a.ddp) distributed::barrier();  // every rank starts the step together
    const double t0 = now_s();
    Tensor loss = models::GPT::loss(ddp ? ddp->forward(x) : model->forward(x), y);
    opt.zero_grad(true);
    loss.backward();
    opt.step();
    const double dt = now_s() - t0;
    if (s < a.warmup) continue;
    times.push_back(dt);
    if (ddp) {
      const auto& st = ddp->last_comm_stats();
      buckets += static_cast<double>(st.buckets);
      bytes += static_cast<double>(st.bytes);
      comm += st.comm_seconds;
      exposed += st.exposed_seconds;
    }
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  // Rank 0 reports; the step time of a data-parallel step is the slowest rank's, which the
  // barrier before each step makes rank 0's too.
  if (rank == 0) {
    const double n = static_cast<double>(a.steps);
    json out{{"framework", "focus"},
             {"world", world},
             {"ddp", a.ddp},
             {"step_s", median},
             {"tokens_per_s", static_cast<double>(kBatch * kT) / median},
             {"buckets_per_step", buckets / n},
             {"grad_bytes", bytes / n},
             {"comm_s", comm / n},
             {"exposed_s", exposed / n},
             {"params", model->num_parameters()}};
    std::printf("%s\n", out.dump().c_str());
  }
  if (a.ddp) distributed::destroy_process_group();
  return 0;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  FOCUS_CHECK(n > 0, "[bench_ddp] cannot find its own executable");
  return std::string(buf, static_cast<size_t>(n));
}

// The last line of out that is a JSON object with a "framework" key.
json last_json_line(const std::string& out) {
  size_t end = out.size();
  while (end > 0) {
    const size_t start = out.rfind('\n', end - 1);
    const size_t from = start == std::string::npos ? 0 : start + 1;
    const std::string line = out.substr(from, end - from);
    if (!line.empty() && line.front() == '{') {
      json j = json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.contains("framework")) return j;
    }
    if (start == std::string::npos) break;
    end = start;
  }
  FOCUS_FAIL("[bench_ddp] a worker printed no result:\n{}", out);
}

std::string mpirun_prefix(int np) {
  return fmt::format(
      "OMPI_MCA_btl_vader_single_copy_mechanism=none FOCUS_NUM_THREADS=1 mpirun -np {} --bind-to none --oversubscribe{} ",
      np, ::geteuid() == 0 ? " --allow-run-as-root" : "");
}

int launcher(const Args& a) {
  struct utsname u {};
  ::uname(&u);
  std::printf("bench_ddp: medium GPT (6 layers, 6 heads, width 384, context %lld, vocab %lld), global batch %lld, "
              "AdamW; %d timed steps (median) after %d warm-up\nmachine: %s, %u cores, %s\n\n",
              static_cast<long long>(kT), static_cast<long long>(kVocab), static_cast<long long>(kBatch), a.steps,
              a.warmup, bench::cpu_model().c_str(), std::thread::hardware_concurrency(), u.release);
  std::fflush(stdout);
  const std::string exe = shell_quote(self_exe());
  const std::string common = fmt::format(" --worker --steps {} --warmup {}", a.steps, a.warmup);
  const json plain = last_json_line(bench::run_command("FOCUS_NUM_THREADS=1 " + exe + common + " 2>&1", "bench_ddp"));
  const json one = last_json_line(bench::run_command(mpirun_prefix(1) + exe + common + " --ddp 2>&1", "bench_ddp"));
  const json two = last_json_line(bench::run_command(mpirun_prefix(2) + exe + common + " --ddp 2>&1", "bench_ddp"));
  json torch;
  if (!a.no_torch) {
    const std::string script = bench::script_beside("bench_ddp_torch.py");
    torch = last_json_line(bench::run_command(
        fmt::format("{} {} --steps {} --warmup {} 2>&1", a.python, shell_quote(script), a.steps, a.warmup),
        "bench_ddp"));
  }
  auto row = [](const char* what, const json& j) {
    std::printf("%-34s %8.3f s/step  %8.0f tok/s\n", what, j["step_s"].get<double>(), j["tokens_per_s"].get<double>());
  };
  row("focus  1 process, no DDP", plain);
  row("focus  DDP 1 rank", one);
  row("focus  DDP 2 ranks x 1 thread", two);
  const double scaling = plain["step_s"].get<double>() / two["step_s"].get<double>();
  const double overhead = one["step_s"].get<double>() / plain["step_s"].get<double>() - 1.0;
  const double grad_mb = two["grad_bytes"].get<double>() / (1024.0 * 1024.0);
  const double hidden = two["comm_s"].get<double>() > 0
                            ? 1.0 - two["exposed_s"].get<double>() / two["comm_s"].get<double>()
                            : 0.0;
  if (!torch.is_null()) {
    row("torch  1 process, no DDP", torch["plain"]);
    row("torch  DDP 1 rank (gloo)", torch["ddp1"]);
    row("torch  DDP 2 ranks x 1 thread (gloo)", torch["ddp2"]);
  }
  std::printf("\n");
  std::printf("focus scaling, 2 ranks vs 1 process:  %.2fx (efficiency %.0f%%; target >= 1.8x)%s\n", scaling,
              scaling / 2 * 100, scaling >= 1.8 ? "" : "  MISSED");
  std::printf("focus DDP overhead at world size 1:   %+.1f%% of a step (target <= 5%%)%s\n", overhead * 100,
              overhead <= 0.05 ? "" : "  MISSED");
  std::printf("gradient all-reduces per step:        %.1f for %.1f MB of gradients (25 MB buckets, the first 1 MB: "
              "expected %d)\n",
              two["buckets_per_step"].get<double>(), grad_mb,
              static_cast<int>(std::ceil(std::max(0.0, grad_mb - 1.0) / 25.0)) + 1);
  std::printf("all-reduce time per step:             %.1f ms, of which %.0f%% hidden behind backward\n",
              two["comm_s"].get<double>() * 1e3, hidden * 100);
  if (!torch.is_null()) {
    const double ts = torch["plain"]["step_s"].get<double>() / torch["ddp2"]["step_s"].get<double>();
    const double to = torch["ddp1"]["step_s"].get<double>() / torch["plain"]["step_s"].get<double>() - 1.0;
    std::printf("torch scaling, 2 ranks vs 1 process:  %.2fx; DDP overhead at world size 1 %+.1f%%\n", ts, to * 100);
    std::printf("focus vs torch, 2 ranks:              %.2fx the tokens/s\n",
                two["tokens_per_s"].get<double>() / torch["ddp2"]["tokens_per_s"].get<double>());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_ddp: data-parallel scaling of the medium GPT, focus against PyTorch's DDP (gloo)", "bench_ddp"};
  bench::add_number(app, "--steps", a.steps, "Timed steps per run", 1);
  bench::add_number(app, "--warmup", a.warmup, "Steps before the timed ones", 0);
  bench::add_torch_flags(app, a.no_torch, a.python);
  // The launcher runs itself with these, under mpirun for --ddp.
  app.add_flag("--worker", a.worker)->group("");
  app.add_flag("--ddp", a.ddp)->group("");
  if (auto rc = bench::parse_command_line(app, argc, argv)) return *rc;
  try {
    return a.worker ? worker(a) : launcher(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ddp: error: %s\n", e.what());
    return 1;
  }
}
