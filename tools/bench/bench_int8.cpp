// bench_int8: dynamic int8 quantization (nn::quantize_dynamic) against float32, on the zoo's
// trained models and on the products alone, with PyTorch's quantized Linear beside it.
//
//   ./build/cpu/tools/bench/bench_int8 --g2p runs/g2p/checkpoint.safetensors \
//       --char-gpt runs/char-gpt/checkpoint.safetensors [--threads 2] [--words 2000] \
//       [--parts products,g2p,char-gpt,sizes] [--precision both|float32|int8]
//
// 1. products: y = x W^T + b for the zoo's layer shapes (M rows): focus float32 (OpenBLAS),
//    focus int8 (backends/cpu/int8.cpp), and PyTorch's float32 and dynamically quantized
//    Linear (torch.ao.nn.quantized.dynamic.Linear, per-channel qint8 weights; fbgemm), run by
//    bench_int8_torch.py in its own process at the same thread count.
// 2. g2p: beam-search decoding (beam 5) of the first --words test words of CMUdict, float32
//    and int8, words per second (best of --repeats, the two run in turn).
// 3. char-gpt: sampling --length characters (KV cache, temperature 0.8), float32 and int8,
//    characters per second (best of --repeats, in turn).
// 4. sizes: each model's state_dict as safetensors, float32 and int8, and the quantized
//    layers' weights alone.
// The quality of the int8 models is `focus eval g2p|char-gpt --int8` (docs/PERFORMANCE.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <focus/focus.h>

#include "backends/cpu/int8.h"
#include "models/char_gpt/program.h"
#include "models/g2p/program.h"
#include "tools/bench/bench_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace focus;
using bench::best_time;
using bench::now_s;

namespace {

// Best wall times of f and g over repeats rounds, run in turn (f, g, f, g, ...) so that a
// slow stretch of a shared VM falls on both; a side left out (run false) reads as NaN.
template <typename F, typename G>
std::pair<double, double> best_times(int repeats, bool run_f, const F& f, bool run_g, const G& g) {
  if (run_f) f();
  if (run_g) g();
  double bf = std::numeric_limits<double>::infinity(), bg = bf;
  for (int i = 0; i < repeats; ++i) {
    for (int side = 0; side < 2; ++side) {
      if (!(side == 0 ? run_f : run_g)) continue;
      const double t0 = now_s();
      side == 0 ? f() : g();
      (side == 0 ? bf : bg) = std::min(side == 0 ? bf : bg, now_s() - t0);
    }
  }
  return {run_f ? bf : std::nan(""), run_g ? bg : std::nan("")};
}

struct Shape3 {
  int64_t m, k, n;
};

// Bytes of module's state_dict written as safetensors.
uintmax_t saved_size(const nn::Module& m, const std::string& name) {
  const fs::path p = fs::temp_directory_path() / fmt::format("focus_bench_int8_{}_{}.safetensors", name, ::getpid());
  save_safetensors(m.state_dict(), p.string());
  const uintmax_t size = fs::file_size(p);
  fs::remove(p);
  return size;
}

// Bytes of the weights of the layers quantize_dynamic changes (int8 values and scales, or
// the float32 weights), from a state dict.
uintmax_t quantizable_bytes(const TensorDict& sd) {
  uintmax_t bytes = 0;
  for (const auto& [key, t] : sd) {
    const bool weight = key.size() >= 6 && (key.compare(key.size() - 6, 6, "weight") == 0 ||
                                            key.find("weight_scale") != std::string::npos);
    const bool embedding_or_norm = key.find("wte") != std::string::npos || key.find("wpe") != std::string::npos ||
                                   key.find("embed") != std::string::npos || key.find("ln") != std::string::npos ||
                                   key.find("norm") != std::string::npos;
    if (weight && !embedding_or_norm) bytes += static_cast<uintmax_t>(t.numel()) * dtype_size(t.dtype());
  }
  return bytes;
}

void print_sizes(const char* model, uintmax_t f32, uintmax_t i8, uintmax_t wf32, uintmax_t wi8) {
  fmt::print("  {:<9} file {:>9} -> {:>9} bytes ({:.2f}x smaller); quantized layers' weights {:>9} -> {:>9} bytes "
             "({:.2f}x)\n",
             model, f32, i8, static_cast<double>(f32) / static_cast<double>(i8), wf32, wi8,
             static_cast<double>(wf32) / static_cast<double>(wi8));
}

}  // namespace

int main(int argc, char** argv) {
  std::string g2p_ckpt = "runs/g2p/checkpoint.safetensors", gpt_ckpt = "runs/char-gpt/checkpoint.safetensors";
  int threads = 2, repeats = 3, words_n = 2000, length = 2000;
  bool no_torch = false;
  std::string python = "/usr/bin/python3";
  std::vector<std::string> parts{"products", "g2p", "char-gpt", "sizes"};
  std::string precision = "both", kernel = "auto";
  CLI::App app("bench_int8: int8 dynamic quantization against float32 (focus and PyTorch)");
  app.add_option("--g2p", g2p_ckpt, "g2p checkpoint (a `focus train g2p` run's)")->capture_default_str();
  app.add_option("--char-gpt", gpt_ckpt, "char-gpt checkpoint")->capture_default_str();
  bench::add_number(app, "--threads", threads, "threads (focus and PyTorch)", 1);
  bench::add_number(app, "--repeats", repeats, "timed runs of each measurement (the best is kept)", 1);
  bench::add_number(app, "--words", words_n, "g2p test words decoded", 1);
  bench::add_number(app, "--length", length, "characters char-gpt samples", 1);
  bench::add_torch_flags(app, no_torch, python);
  app.add_option("--parts", parts, "what to measure: products, g2p, char-gpt, sizes (all by default)")
      ->check(CLI::IsMember({"products", "g2p", "char-gpt", "sizes"}))
      ->delimiter(',');
  app.add_option("--precision", precision, "which models sections 2 and 3 run (for profiling one of them)")
      ->check(CLI::IsMember({"both", "float32", "int8"}))
      ->capture_default_str();
  app.add_option("--kernel", kernel, "int8 kernel: auto, amx, avx512-vnni or generic (cpu::set_int8_kernel)")
      ->capture_default_str();
  if (auto rc = bench::parse_command_line(app, argc, argv)) return *rc;
  try {
    set_num_threads(threads);
    cpu::set_int8_kernel(kernel);
    fmt::print("bench_int8: {} thread(s); CPU {}; int8 kernel {}\n\n", threads, bench::cpu_model(), cpu::int8_kernel());
    NoGradGuard no_grad;
    auto part = [&](const char* name) { return std::find(parts.begin(), parts.end(), name) != parts.end(); };
    const bool run_f32 = precision != "int8", run_i8 = precision != "float32";

    if (part("products")) {
      // ---- 1. products ----
      const std::vector<Shape3> shapes{{1, 128, 384},   {1, 128, 512},   {1, 512, 128},  {5, 128, 768},
                                       {640, 128, 512}, {640, 512, 128}, {1024, 256, 1024}};
      json torch_rows = json::array();
      if (!no_torch) {
        std::string list;
        for (const auto& s : shapes) list += fmt::format("{}{}x{}x{}", list.empty() ? "" : ",", s.m, s.k, s.n);
        const std::string out = bench::run_command(
            fmt::format("{} {} --shapes {} --threads {} --repeats {}", bench::shell_quote(python),
                        bench::shell_quote(bench::script_beside("bench_int8_torch.py")), list, threads, repeats),
            "bench_int8");
        torch_rows = json::parse(out.substr(out.find('[')));
      }
      fmt::print("1. y = x W^T + b, microseconds per product (best of {}); speed-up of int8 over float32\n", repeats);
      fmt::print("  {:>16} {:>10} {:>10} {:>7} {:>12} {:>12} {:>7}\n", "M x K x N", "focus f32", "focus i8", "x",
                 "torch f32", "torch i8", "x");
      Generator gen(1);
      for (size_t i = 0; i < shapes.size(); ++i) {
        const auto& s = shapes[i];
        const Tensor x = randn({s.m, s.k}, TensorOptions(kFloat32), &gen);
        const Tensor w = randn({s.n, s.k}, TensorOptions(kFloat32), &gen), b = randn({s.n}, TensorOptions(kFloat32), &gen);
        auto [q, scale] = quantize_per_channel_int8(w);
        const Int8PackedWeight packed = pack_int8(q, scale);
        const int reps = s.m * s.k * s.n < 1000000 ? 200 : 20;
        const double tf = best_time(repeats, [&] {
                            for (int r = 0; r < reps; ++r) (void)linear(x, w, b);
                          }) / reps;
        const double ti = best_time(repeats, [&] {
                            for (int r = 0; r < reps; ++r) (void)linear_int8(x, packed, b);
                          }) / reps;
        std::string torch_part;
        if (i < torch_rows.size())
          torch_part = fmt::format("{:>12.1f} {:>12.1f} {:>6.2f}x", torch_rows[i]["f32_us"].get<double>(),
                                   torch_rows[i]["i8_us"].get<double>(),
                                   torch_rows[i]["f32_us"].get<double>() / torch_rows[i]["i8_us"].get<double>());
        fmt::print("  {:>16} {:>10.1f} {:>10.1f} {:>6.2f}x {}\n", fmt::format("{}x{}x{}", s.m, s.k, s.n), tf * 1e6,
                   ti * 1e6, tf / ti, torch_part);
      }
    }

    // ---- 2. g2p beam search ----
    const bool need_g2p = part("g2p") || part("sizes"), need_gpt = part("char-gpt") || part("sizes");
    std::optional<models::g2p::LoadedModel> g2p_float, g2p_int8;
    int64_t g2p_layers = 0;
    if (need_g2p) {
      g2p_float = models::g2p::load_model(g2p_ckpt);
      g2p_int8 = models::g2p::load_model(g2p_ckpt);
      g2p_float->model->eval();
      g2p_int8->model->eval();
      g2p_layers = nn::quantize_dynamic(*g2p_int8->model);
    }
    if (part("g2p")) {
      std::vector<std::string> words;
      for (const auto& w : models::g2p::load_split(g2p_float->config, "test")) {
        bool known = true;
        for (char c : w.word) known = known && g2p_float->vocabs.letters.contains(std::string(1, c));
        if (known) words.push_back(w.word);
        if (static_cast<int>(words.size()) == words_n) break;
      }
      const double lp = g2p_float->config.real("length_penalty");
      auto decode = [&](const models::g2p::LoadedModel& m) {
        return [&] { models::g2p::predict_words(*m.model, m.vocabs, words, 5, lp); };
      };
      const auto [tf, ti] = best_times(repeats, run_f32, decode(*g2p_float), run_i8, decode(*g2p_int8));
      fmt::print("\n2. g2p beam search (beam 5), {} test words, {} layers quantized\n", words.size(), g2p_layers);
      fmt::print("  float32 {:8.0f} words/s   int8 {:8.0f} words/s   {:.2f}x\n", words.size() / tf, words.size() / ti,
                 tf / ti);
    }

    // ---- 3. char-gpt sampling ----
    std::optional<models::char_gpt::detail::Loaded> gpt_float, gpt_int8;
    int64_t gpt_layers = 0;
    if (need_gpt) {
      gpt_float = models::char_gpt::detail::load(gpt_ckpt, kCPU);
      gpt_int8 = models::char_gpt::detail::load(gpt_ckpt, kCPU);
      gpt_layers = nn::quantize_dynamic(*gpt_int8->model);
    }
    if (part("char-gpt")) {
      const auto opts = models::SampleOptions().temperature(0.8);
      const std::vector<int64_t> prompt{gpt_float->vocab.id("\n")};
      auto sample = [&](const models::GPT& m) {
        return [&] {
          Generator g(1337);
          int64_t count = 0;
          m.generate_stream(prompt, length, opts, &g, [&](int64_t) { ++count; });
        };
      };
      const auto [tf, ti] = best_times(repeats, run_f32, sample(*gpt_float->model), run_i8, sample(*gpt_int8->model));
      fmt::print("\n3. char-gpt sampling, {} characters, {} layers quantized\n", length, gpt_layers);
      fmt::print("  float32 {:8.0f} chars/s   int8 {:8.0f} chars/s   {:.2f}x\n", length / tf, length / ti, tf / ti);
    }

    // ---- 4. sizes ----
    if (part("sizes")) {
      fmt::print("\n4. state_dict as safetensors, float32 -> int8\n");
      print_sizes("g2p", saved_size(*g2p_float->model, "g2p_f32"), saved_size(*g2p_int8->model, "g2p_i8"),
                  quantizable_bytes(g2p_float->model->state_dict()), quantizable_bytes(g2p_int8->model->state_dict()));
      print_sizes("char-gpt", saved_size(*gpt_float->model, "gpt_f32"), saved_size(*gpt_int8->model, "gpt_i8"),
                  quantizable_bytes(gpt_float->model->state_dict()), quantizable_bytes(gpt_int8->model->state_dict()));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_int8: %s\n", e.what());
    return 1;
  }
  return 0;
}
