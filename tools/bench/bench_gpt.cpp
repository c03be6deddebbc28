// bench_gpt: trains models/gpt (focus) and the identical PyTorch model side by side, from
// the same initial weights (through safetensors) on the same batches, with AdamW, and
// prints tokens/s, effective GFLOP/s, peak RSS and the first losses of both.
//
//   ./build/tools/bench/bench_gpt                       # small and medium, threads 1, 2, default
//   ./build/tools/bench/bench_gpt --configs small --threads 1
//   ./build/tools/bench/bench_gpt --models modules      # the GPT built from nn:: modules
//
// Two models (--models): "gpt", the hand-built GPT of models/gpt against nanoGPT's layout,
// and "modules", the same GPT assembled from nn::Embedding, nn::TransformerEncoder (pre-norm
// GELU layers, batch_first, the float causal mask of generate_square_subsequent_mask),
// nn::LayerNorm and nn::Linear against its twin built from torch.nn's modules.
//
// Each training run is its own process (peak RSS is per process): the PyTorch side is
// tools/bench/bench_gpt_torch.py under /usr/bin/python3, the focus side is this program
// re-run with --worker. Method and accounting: tools/bench/README.md.
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <focus/focus.h>

#include "core/safetensors.h"
#include "tools/bench/bench_util.h"
#include "models/gpt/gpt.h"
#include "optim/adam.h"

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_config();

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace focus;
using bench::now_s;
using bench::shell_quote;

namespace {

struct Args {
  std::vector<std::string> configs{"small", "medium"};
  std::vector<std::string> models{"gpt", "modules"};
  std::vector<int> threads{1, 2, 0};     // focus; 0 = its default (no set_num_threads call)
  std::vector<int> torch_threads{1, 2};  // PyTorch
  int steps_small = 50, steps_medium = 16;  // batches (= optimizer steps) per run
  int warmup = 3;                        // steps excluded from tokens/s
  int loss_steps = 10;                   // losses compared side by side
  double sgemm_peak = 0;                 // GFLOP/s at 1 thread; 0 = measure
  bool no_torch = false;
  std::string python = "/usr/bin/python3";
  std::string torch_script;
  std::string workdir;
  // --worker
  bool worker = false;
  std::string data;
  int worker_threads = 1;
  int worker_steps = 0;
};

std::string run(const std::string& cmd) { return bench::run_command(cmd, "bench_gpt"); }

json result_line(const std::string& out) {
  std::stringstream ss(out);
  std::string line;
  while (std::getline(ss, line))
    if (line.rfind("J ", 0) == 0) return json::parse(line.substr(2));
  FOCUS_CHECK(false, "[bench_gpt] no result line in:\n{}", out);
  return {};
}

// ---- the focus training run (--worker) ------------------------------------------------------
// The GPT assembled from nn:: modules (bench_gpt_torch.py's ModuleGPT), as a user would.
struct ModuleGPT : nn::Module {
  std::shared_ptr<nn::Embedding> tok, pos;
  std::shared_ptr<nn::TransformerEncoder> encoder;
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Linear> head;

  ModuleGPT(int64_t vocab, int64_t width, int64_t heads, int64_t layers, int64_t context) : nn::Module("ModuleGPT") {
    tok = register_module("tok", std::make_shared<nn::Embedding>(vocab, width));
    pos = register_module("pos", std::make_shared<nn::Embedding>(context, width));
    auto layer = std::make_shared<nn::TransformerEncoderLayer>(nn::TransformerLayerOptions(width, heads)
                                                                   .dim_feedforward(4 * width)
                                                                   .dropout(0.0)
                                                                   .activation("gelu")
                                                                   .batch_first(true)
                                                                   .norm_first(true));
    encoder = register_module("encoder", std::make_shared<nn::TransformerEncoder>(layer, layers));
    ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({width})));
    head = register_module("head", std::make_shared<nn::Linear>(nn::LinearOptions(width, vocab).bias(false)));
  }
  Tensor forward(const Tensor& idx) {
    const int64_t T = idx.size(1);
    Tensor x = tok->forward(idx) + pos->forward(arange(T, TensorOptions(kInt64)));
    x = encoder->forward(x, nn::generate_square_subsequent_mask(T));
    return head->forward(ln_f->forward(x));
  }
};

int worker(const Args& a) {
  if (a.worker_threads > 0) set_num_threads(a.worker_threads);
  SafetensorsMetadata meta;
  TensorDict file = load_safetensors(a.data, &meta);
  auto num = [&](const char* k) { return std::stoll(meta.at(k)); };
  auto real = [&](const char* k) { return std::stod(meta.at(k)); };
  models::GPTConfig cfg;
  cfg.n_layer(num("n_layer")).n_head(num("n_head")).n_embd(num("n_embd")).block_size(num("block_size"))
      .vocab_size(num("vocab_size")).bias(meta.at("bias") == "1").dropout(0.0);
  const bool modules = meta.count("model") && meta.at("model") == "modules";
  std::shared_ptr<models::GPT> gpt;
  std::shared_ptr<ModuleGPT> mgpt;
  nn::Module* model = nullptr;
  if (modules) {
    mgpt = std::make_shared<ModuleGPT>(num("vocab_size"), num("n_embd"), num("n_head"), num("n_layer"),
                                       num("block_size"));
    model = mgpt.get();
  } else {
    gpt = std::make_shared<models::GPT>(cfg);
    model = gpt.get();
  }
  TensorDict weights;
  for (const auto& key : file.keys())
    if (key.rfind("batch.", 0) != 0) weights.insert(key, file.at(key));
  model->load_state_dict(weights);
  weights = TensorDict();
  const Tensor xs = file.at("batch.x"), ys = file.at("batch.y");
  file = TensorDict();

  std::vector<Tensor> decay, no_decay;  // as models::GPT::decay_groups: matrices decay
  for (const auto& [name, p] : model->named_parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                   optim::AdamWOptions()
                       .lr(real("lr"))
                       .betas({real("beta1"), real("beta2")})
                       .eps(real("eps"))
                       .weight_decay(real("weight_decay")));
  const int64_t total = xs.size(0);
  const int64_t steps = a.worker_steps > 0 ? std::min<int64_t>(a.worker_steps, total) : total;
  std::vector<double> losses, times;
  for (int64_t s = 0; s < steps; ++s) {
    const double t0 = now_s();
    // The logits are not held past the loss (as the zoo's training program): the backward
    // then writes their gradient over them instead of into a second [B*T, V] buffer.
    Tensor loss = models::GPT::loss(modules ? mgpt->forward(xs.select(0, s)) : gpt->forward(xs.select(0, s)),
                                    ys.select(0, s));
    opt.zero_grad(true);
    loss.backward();
    opt.step();
    losses.push_back(loss.item<double>());
    times.push_back(now_s() - t0);
  }
  double timed = 0;
  for (size_t i = static_cast<size_t>(a.warmup); i < times.size(); ++i) timed += times[i];
  const int64_t tokens = xs.size(1) * xs.size(2);
  const double counted = static_cast<double>(times.size() > static_cast<size_t>(a.warmup) ? times.size() - a.warmup : 0);
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  json out{{"framework", "focus"},
           {"threads", get_num_threads()},
           {"default", a.worker_threads <= 0},
           {"steps", steps},
           {"losses", losses},
           {"step_s", times},
           {"tokens_per_s", timed > 0 ? static_cast<double>(tokens) * counted / timed : 0.0},
           {"max_rss_kb", ru.ru_maxrss},
           {"params", model->num_parameters()},
           {"tokens_per_step", tokens},
           // 6 N + 12 n_layer n_embd T, N without the position table (models::GPT::flops_per_token)
           {"flops_per_token", 6.0 * static_cast<double>(model->num_parameters() - num("block_size") * num("n_embd")) +
                                   12.0 * static_cast<double>(num("n_layer") * num("n_embd") * xs.size(2))}};
  std::printf("J %s\n", out.dump().c_str());
  return 0;
}

// ---- the driver ---------------------------------------------------------------------------
// Single-thread sgemm GFLOP/s at n = 1024 (the CPU ceiling the model figures are quoted
// against; docs/DESIGN.md), best of a few calls.
double measure_sgemm_peak(int threads) {
  set_num_threads(threads);
  const int64_t n = 1024;
  const Tensor a = randn({n, n}), b = randn({n, n});
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const double t0 = now_s();
    const Tensor c = matmul(a, b);
    best = std::min(best, now_s() - t0);
  }
  return 2.0 * n * n * n / best / 1e9;
}

std::string fmt_rss(double kb) { return fmt::format("{:.0f} MB", kb / 1024.0); }

int driver(const Args& a) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string script =
      a.torch_script.empty() ? bench::script_beside("bench_gpt_torch.py") : a.torch_script;
  const std::string dir = a.workdir.empty() ? (fs::temp_directory_path() / fmt::format("focus_bench_gpt_{}", getpid())).string()
                                            : a.workdir;
  fs::create_directories(dir);
  std::time_t tt = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&tt));
  struct utsname un {};
  uname(&un);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("focus GPT training benchmark  %s\n", date);
  std::printf("machine: %ld hardware threads, %s %s; load average at start %.2f %.2f %.2f\n",
              sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.release, load[0], load[1], load[2]);
  std::printf("OpenBLAS: %s\n", openblas_get_config());
  std::map<int, double> peak;
  std::vector<int> counts;  // the thread counts of the runs ("default" is get_num_threads())
  for (int t : a.threads) {
    const int c = t > 0 ? t : get_num_threads();
    if (std::find(counts.begin(), counts.end(), c) == counts.end()) counts.push_back(c);
  }
  for (int t : counts) peak[t] = a.sgemm_peak > 0 ? a.sgemm_peak * t : measure_sgemm_peak(t);
  for (int t : counts) std::printf("sgemm peak (focus::matmul 1024^3, best of 5) at %d thread(s): %.1f GFLOP/s\n", t, peak[t]);
  std::printf("method: AdamW (lr 3e-4 constant, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices), dropout 0,\n"
              "        the same initial weights and batches; tokens/s over the steps after %d warm-up steps;\n"
              "        GFLOP/s = tokens/s x (6 N + 12 n_layer n_embd T) / 1e9 (N = parameters without wpe);\n"
              "        peak RSS = ru_maxrss of the training process (each run is its own process)\n",
              a.warmup);
  fflush(stdout);

  for (const std::string& model : a.models)
    for (const std::string& cfg : a.configs) {
      const int steps = cfg == "medium" ? a.steps_medium : a.steps_small;
      const std::string data = (fs::path(dir) / fmt::format("{}_{}.safetensors", model, cfg)).string();
      run(fmt::format("{} {} prepare --model {} --config {} --out {} --steps {}", a.python, shell_quote(script), model,
                      cfg, shell_quote(data), steps));
      std::vector<json> runs;
      if (!a.no_torch)
        for (int t : a.torch_threads) {
          std::fprintf(stderr, "[%s %s] torch, %d thread(s)...\n", model.c_str(), cfg.c_str(), t);
          runs.push_back(result_line(run(fmt::format("{} {} train --data {} --threads {} --warmup {}", a.python,
                                                     shell_quote(script), shell_quote(data), t, a.warmup))));
        }
      for (int t : a.threads) {
        std::fprintf(stderr, "[%s %s] focus, %s thread(s)...\n", model.c_str(), cfg.c_str(),
                     t > 0 ? std::to_string(t).c_str() : "default");
        runs.push_back(result_line(run(fmt::format("{} --worker --data {} --threads {} --warmup {}", shell_quote(self),
                                                   shell_quote(data), t > 0 ? std::to_string(t) : "default", a.warmup))));
      }
      auto tps = [](const json* r) { return (*r)["tokens_per_s"].get<double>(); };
      auto rss = [](const json* r) { return (*r)["max_rss_kb"].get<double>(); };
      const json *best_focus = nullptr, *best_torch = nullptr, *focus_default = nullptr, *focus_one = nullptr,
                 *torch_one = nullptr;
      for (const json& r : runs) {
        const bool f = r["framework"] == "focus";
        const json*& best = f ? best_focus : best_torch;
        if (!best || tps(&r) > tps(best)) best = &r;
        if (f && r.value("default", false)) focus_default = &r;
        if (!r.value("default", false) && r["threads"].get<int>() == 1) (f ? focus_one : torch_one) = &r;
      }
      const json& f0 = *best_focus;
      const double fpt = f0["flops_per_token"].get<double>();
      std::printf("\n== %s %s: params %lld, %s, %d steps of %lld tokens\n", model.c_str(), cfg.c_str(),
                  f0["params"].get<long long>(),
                  cfg == "medium" ? "6 layers, 6 heads, width 384, context 256, batch 8, vocab 65"
                                  : "4 layers, 4 heads, width 128, context 64, batch 12, vocab 65",
                  steps, f0["tokens_per_step"].get<long long>());
      std::printf("   model: %s\n", model == "modules" ? "nn::TransformerEncoder of nn::TransformerEncoderLayer "
                                                        "(vs torch.nn.TransformerEncoderLayer)"
                                                      : "models/gpt (vs nanoGPT's layout)");
      std::printf("   FLOPs per token (6N + 12 L C T): %.3g\n", fpt);
      std::printf(" framework threads   tokens/s   GFLOP/s  %%sgemm(1t x thr)  peak RSS\n");
      for (const json& r : runs) {
        const int t = r["threads"].get<int>();
        const double gf = tps(&r) * fpt / 1e9;
        const double pk = peak.count(t) ? peak[t] : peak.begin()->second * t;
        const std::string th = r.value("default", false) ? fmt::format("{} (default)", t) : std::to_string(t);
        std::printf(" %9s %7s %10.0f %9.2f %16.1f%% %9s\n", r["framework"].get<std::string>().c_str(), th.c_str(),
                    tps(&r), gf, 100.0 * gf / pk, fmt_rss(rss(&r)).c_str());
      }
      if (best_torch) {
        const double target = cfg == "medium" ? 1.8 : cfg == "small" ? 2.0 : 0.0;
        auto verdict = [](double v, double t, bool at_most = false) {
          return t <= 0 ? "no target" : (at_most ? v <= t : v >= t) ? "met" : "NOT met";
        };
        if (focus_default) {
          const double sp = tps(focus_default) / tps(best_torch);
          std::printf(" default: focus %.0f tokens/s (%dt) vs torch best %.0f (%dt): %.2fx  [target >= %.1f: %s]\n",
                      tps(focus_default), (*focus_default)["threads"].get<int>(), tps(best_torch),
                      (*best_torch)["threads"].get<int>(), sp, target, verdict(sp, target));
        }
        if (focus_one && torch_one) {
          const double sp = tps(focus_one) / tps(torch_one);
          std::printf(" 1 thread: focus %.0f tokens/s vs torch %.0f on 1 thread: %.2fx  [target >= 1.0: %s]\n",
                      tps(focus_one), tps(torch_one), sp, verdict(sp, 1.0));
        }
        const json* fr = focus_default ? focus_default : best_focus;
        const double rr = rss(fr) / rss(best_torch);
        std::printf(" peak RSS: focus %s vs torch %s: %.2f of torch's  [target <= 0.3: %s]\n",
                    fmt_rss(rss(fr)).c_str(), fmt_rss(rss(best_torch)).c_str(), rr, verdict(rr, 0.3, true));
        const auto& fl = f0["losses"];
        const auto& tl = (*best_torch)["losses"];
        std::printf(" step   focus loss   torch loss   rel. diff\n");
        double worst = 0;
        for (size_t i = 0; i < static_cast<size_t>(a.loss_steps) && i < fl.size() && i < tl.size(); ++i) {
          const double f = fl[i].get<double>(), t = tl[i].get<double>();
          const double rel = std::abs(f - t) / std::abs(t);
          worst = std::max(worst, rel);
          std::printf(" %4zu %12.7f %12.7f %11.2e\n", i, f, t, rel);
        }
        std::printf(" worst relative loss difference over %d steps: %.2e  [target <= 1e-4: %s]\n", a.loss_steps,
                    worst, worst <= 1e-4 ? "met" : "NOT met");
      }
      fflush(stdout);
    }
  if (a.workdir.empty()) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_gpt: a GPT trained in focus and the identical PyTorch model side by side", "bench_gpt"};
  bench::add_list(app, "--models", a.models, "gpt (models/gpt), modules (built from nn:: modules)");
  bench::add_list(app, "--configs", a.configs, "GPT configs (small, medium)");
  bench::add_thread_list(app, "--threads", a.threads, "focus's thread counts (default: no set_num_threads call)", true);
  bench::add_thread_list(app, "--torch-threads", a.torch_threads, "PyTorch's thread counts", false);
  bench::add_number(app, "--steps-small", a.steps_small, "Steps per run of the small config", 1);
  bench::add_number(app, "--steps-medium", a.steps_medium, "Steps per run of the medium config", 1);
  bench::add_number(app, "--warmup", a.warmup, "Steps left out of tokens/s", 0);
  bench::add_number(app, "--sgemm-peak", a.sgemm_peak, "GFLOP/s of sgemm on 1 thread (0: measure it)", 0);
  bench::add_torch_flags(app, a.no_torch, a.python);
  app.add_option("--torch-script", a.torch_script, "The PyTorch half (default: the script beside the source)")
      ->type_name("PATH");
  app.add_option("--workdir", a.workdir, "Keep the data files here (default: a temporary folder, removed)")
      ->type_name("DIR");
  const std::string worker_group =
      "Worker (one focus run; tools/bench/profile_gpt runs it): bench_gpt --worker --data FILE "
      "[--threads 1|default] [--steps N] [--warmup 3]";
  CLI::Option* worker_flag =
      app.add_flag("--worker", a.worker, "Train on --data's model and batches, print one result line")
          ->group(worker_group);
  worker_flag->needs(app.add_option("--data", a.data, "The safetensors file of bench_gpt_torch.py prepare")
                         ->type_name("FILE")
                         ->group(worker_group));
  app.add_option("--steps", a.worker_steps, "Steps (default: every batch in --data)")
      ->check(bench::at_least(0))
      ->group(worker_group);
  if (auto rc = bench::parse_command_line(app, argc, argv)) return *rc;
  if (app.count("--threads") > 0) a.worker_threads = a.threads[0];
  try {
    return a.worker ? worker(a) : driver(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpt: %s\n", e.what());
    return 1;
  }
}
