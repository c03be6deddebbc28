// bench_gpu: focus on a CUDA GPU against PyTorch on the same GPU, side by side in one run.
//
//   (a) matmul [n,n] @ [n,n] in float32, TF32 (set_float32_matmul_precision("high")) and
//       bfloat16, n = 4096 and 8192, TFLOP/s, against raw cuBLAS (cublasGemmEx) and torch;
//   (b) per-op host overhead: a one-element add with and without autograd recording, us/op;
//   (c) add, mul, gelu and a copy on 256M float32, GB/s, against a raw device-to-device
//       cudaMemcpy;
//   (d) softmax, layer_norm and cross_entropy on [16384, 4096], forward and forward+backward;
//   (e) training steps of models/gpt (AdamW) at the medium shape of bench_gpt and at GPT-2
//       small's (12 layers, 12 heads, width 768, context 1024, vocabulary 50304, float32):
//       tokens/s and peak device memory, from the same initial weights and batches as torch.
//
// The PyTorch side is bench_gpu_torch.py (run with --python, default python3): it writes the
// GPT weights and batches first, then, after focus has measured everything and emptied its
// cache, measures the same things in its own process. Timing: warm-up calls, then the
// median over repetitions of the time per call, each repetition a loop of calls between two
// device synchronizations (cuda::synchronize / torch.cuda.synchronize). Without a GPU the
// program says so and exits 0; `--device cpu --quick` runs every code path on the CPU (a
// smoke run for machines without a GPU). Method and flags: tools/bench/README.md.
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <focus/focus.h>

#include "core/cuda.h"
#include "core/precision.h"
#include "models/gpt/gpt.h"
#include "optim/adam.h"
#include "tools/bench/bench_util.h"

#ifdef FOCUS_BENCH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace focus;
using bench::now_s;
using bench::shell_quote;

namespace {

// ---- options -------------------------------------------------------------------------------

struct GptConfig {
  std::string name;
  int steps = 0;  // batches in the file = optimizer steps at most
  int batch = 0;  // 0: the config's own
};

struct Options {
  std::string device = "cuda";
  std::string sections = "abcde";
  std::vector<int64_t> sizes{4096, 8192};
  int64_t elems = int64_t{1} << 28;  // 256M float32, 1 GiB per tensor
  int64_t rows = 16384, cols = 4096;
  int64_t overhead_ops = 20000;
  std::vector<GptConfig> gpt{{"medium", 40, 0}, {"gpt2", 12, 8}};
  int gpt_warmup = 3;
  double gpt_budget = 15;  // seconds of timed steps per config and framework, at most
  int warmup = 3;
  int reps = 10;
  double min_sample = 0.02;   // seconds per repetition, at least
  double max_measure = 4.0;   // seconds per measurement, about (fewer repetitions past it)
  bool quick = false;
  bool torch = true;
  std::string python = "python3";
  std::string torch_script;
  std::string attention = "sdpa";  // torch's attention in the GPT: sdpa (its best) or math
  std::string workdir;
  double worker_timeout = 75;  // seconds per focus worker process, at most
  double budget = 220;         // seconds for the whole run: focus gets about half, torch the rest
  std::string command_line;
  // a worker process (one section, or one GPT config): --worker a|b|c|d|e
  std::string worker;
  std::string gpt_name, gpt_file;
};

Device g_dev(DeviceType::CUDA, 0);

void sync() {
  if (g_dev.is_cuda()) cuda::synchronize();
}

// ---- results -------------------------------------------------------------------------------

struct Results {
  std::map<std::string, double> sec;           // name -> seconds per call (or per op)
  std::map<std::string, std::string> missing;  // name -> why it has no figure
  std::map<std::string, double> value;         // other figures (relative errors)
  std::map<std::string, json> gpt;             // config -> training run
  std::string version, device_name, error;
};

std::optional<double> get(const std::map<std::string, double>& m, const std::string& k) {
  auto it = m.find(k);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

std::string short_error(const std::string& what) {
  std::string s = what.substr(0, what.find('\n'));
  return s.size() > 110 ? s.substr(0, 110) + "..." : s;
}

// Runs fn (returns seconds); an op that fails (not implemented yet on this device, out of
// memory, ...) is reported and recorded, never fatal.
void try_measure(Results& r, const std::string& name, const std::function<double()>& fn) {
  try {
    r.sec[name] = fn();
  } catch (const std::exception& e) {
    r.missing[name] = short_error(e.what());
    std::fprintf(stderr, "  focus %s: unavailable: %s\n", name.c_str(), r.missing[name].c_str());
  }
}

// Median over repetitions of the time of one call of fn; each repetition runs k calls
// between two synchronizations (k makes it last >= min_sample), after warm-up calls.
double median_time(const Options& o, const std::function<void()>& fn, const std::function<void()>& wait = sync) {
  double t0 = now_s();
  fn();
  wait();
  const double first = now_s() - t0;
  for (int i = 1; i < (first > 1.0 ? 1 : o.warmup); ++i) fn();
  wait();
  t0 = now_s();
  fn();
  wait();
  const double one = std::max(now_s() - t0, 1e-9);
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(o.min_sample / one)), 1, 1000000);
  int reps = o.reps;
  if (one * static_cast<double>(k) * reps > o.max_measure)
    reps = std::max(3, static_cast<int>(o.max_measure / (one * static_cast<double>(k))));
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    t0 = now_s();
    for (int64_t i = 0; i < k; ++i) fn();
    wait();
    samples.push_back((now_s() - t0) / static_cast<double>(k));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Random normal values on the device (made on the CPU and moved when the device cannot yet).
Tensor randn_dev(const Shape& shape) {
  try {
    return randn(shape, TensorOptions().device(g_dev));
  } catch (const std::exception&) {
    return randn(shape).to(g_dev);
  }
}

// ---- raw CUDA baselines --------------------------------------------------------------------
#ifdef FOCUS_BENCH_CUDA
#define BENCH_CUDA(call)                                                                         \
  do {                                                                                           \
    const cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) throw std::runtime_error(fmt::format("{}: {}", #call, cudaGetErrorString(e_))); \
  } while (0)
#define BENCH_CUBLAS(call)                                                                       \
  do {                                                                                           \
    const cublasStatus_t s_ = (call);                                                            \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                             \
      throw std::runtime_error(fmt::format("{}: cuBLAS status {}", #call, static_cast<int>(s_))); \
  } while (0)

void device_wait() { BENCH_CUDA(cudaDeviceSynchronize()); }

// A device buffer of its own (cudaMalloc, outside focus's allocator).
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) { BENCH_CUDA(cudaMalloc(&p, bytes)); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);  // NaN in got gives NaN
}

// cublasGemmEx on row-major [n,n] buffers: C = A @ B is C^T = B^T A^T in cuBLAS's columns.
void raw_gemm(cublasHandle_t h, const void* a, const void* b, void* c, int n, cudaDataType_t t,
              cublasComputeType_t compute) {
  const float one = 1.0f, zero = 0.0f;
  BENCH_CUBLAS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, b, t, n, a, t, n, &zero, c, t, n, compute,
                            CUBLAS_GEMM_DEFAULT));
}

// Raw cuBLAS at the three precisions, and the relative errors of focus's products (at the
// first size) against cuBLAS's float32 one.
void raw_matmul(const Options& o, Results& r, const Tensor& a, const Tensor& b, int64_t n, bool check) {
  sync();  // focus's stream is done with a and b
  cublasHandle_t h = nullptr;
  BENCH_CUBLAS(cublasCreate(&h));
  struct Guard {
    cublasHandle_t h;
    ~Guard() { cublasDestroy(h); }
  } guard{h};
  const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);
  const int ni = static_cast<int>(n);
  DeviceBuffer c(nn * 4);
  const std::string sz = std::to_string(n);
  try_measure(r, "cublas.mm.f32." + sz, [&] {
    return median_time(o, [&] { raw_gemm(h, a.data_ptr(), b.data_ptr(), c.p, ni, CUDA_R_32F, CUBLAS_COMPUTE_32F); },
                       device_wait);
  });
  std::vector<float> ref;
  if (check) {
    raw_gemm(h, a.data_ptr(), b.data_ptr(), c.p, ni, CUDA_R_32F, CUBLAS_COMPUTE_32F);
    ref.resize(nn);
    BENCH_CUDA(cudaMemcpy(ref.data(), c.p, nn * 4, cudaMemcpyDeviceToHost));
  }
  try_measure(r, "cublas.mm.tf32." + sz, [&] {
    return median_time(
        o, [&] { raw_gemm(h, a.data_ptr(), b.data_ptr(), c.p, ni, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32); },
        device_wait);
  });
  try_measure(r, "cublas.mm.bf16." + sz, [&] {
    const Tensor ah = a.cpu(), bh = b.cpu();
    std::vector<uint16_t> a16(nn), b16(nn);
    const float* pa = ah.data_ptr<float>();
    const float* pb = bh.data_ptr<float>();
    for (size_t i = 0; i < nn; ++i) {
      a16[i] = to_bf16(pa[i]);
      b16[i] = to_bf16(pb[i]);
    }
    DeviceBuffer da(nn * 2), db(nn * 2), dc(nn * 2);
    BENCH_CUDA(cudaMemcpy(da.p, a16.data(), nn * 2, cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMemcpy(db.p, b16.data(), nn * 2, cudaMemcpyHostToDevice));
    return median_time(o, [&] { raw_gemm(h, da.p, db.p, dc.p, ni, CUDA_R_16BF, CUBLAS_COMPUTE_32F); }, device_wait);
  });
  if (!check) return;
  // focus's products against cuBLAS float32 (METHOD: float32 far under 1e-3, TF32 near 3e-4,
  // bf16 operands 1e-3 to 1e-2; NaN never passes).
  const std::string saved = get_float32_matmul_precision();
  auto err = [&](const std::string& name, const std::function<Tensor()>& product) {
    try {
      const Tensor got = product().to(kFloat32).cpu().contiguous();
      const float* p = got.data_ptr<float>();
      r.value["err." + name] = rel_error(std::vector<float>(p, p + nn), ref);
    } catch (const std::exception& e) {
      r.missing["err." + name] = short_error(e.what());
    }
  };
  set_float32_matmul_precision("highest");
  err("mm.f32", [&] { return matmul(a, b); });
  set_float32_matmul_precision("high");
  err("mm.tf32", [&] { return matmul(a, b); });
  set_float32_matmul_precision("highest");
  err("mm.bf16", [&] { return matmul(a.to(kBFloat16), b.to(kBFloat16)); });
  set_float32_matmul_precision(saved);
}
#endif

// ---- (a) matmul ----------------------------------------------------------------------------

void bench_matmul(const Options& o, Results& r) {
  for (size_t i = 0; i < o.sizes.size(); ++i) {
    const int64_t n = o.sizes[i];
    const std::string sz = std::to_string(n);
    std::fprintf(stderr, "focus matmul %lld...\n", static_cast<long long>(n));
    Tensor a, b;
    try {
      a = randn_dev({n, n});
      b = randn_dev({n, n});
    } catch (const std::exception& e) {
      for (const char* p : {"f32", "tf32", "bf16"}) r.missing[fmt::format("mm.{}.{}", p, sz)] = short_error(e.what());
      continue;
    }
    set_float32_matmul_precision("highest");
    try_measure(r, "mm.f32." + sz, [&] { return median_time(o, [&] { Tensor c = matmul(a, b); }); });
    set_float32_matmul_precision("high");
    try_measure(r, "mm.tf32." + sz, [&] { return median_time(o, [&] { Tensor c = matmul(a, b); }); });
    set_float32_matmul_precision("highest");
    try_measure(r, "mm.bf16." + sz, [&] {
      const Tensor a16 = a.to(kBFloat16), b16 = b.to(kBFloat16);
      return median_time(o, [&] { Tensor c = matmul(a16, b16); });
    });
#ifdef FOCUS_BENCH_CUDA
    if (g_dev.is_cuda()) {
      try {
        raw_matmul(o, r, a, b, n, i == 0);
      } catch (const std::exception& e) {
        r.missing["cublas.mm.f32." + sz] = short_error(e.what());
      }
    }
#endif
  }
}

// ---- (b) per-op overhead -------------------------------------------------------------------

double per_op(const Options& o, const std::function<void(int64_t)>& loop) {
  loop(std::max<int64_t>(1, o.overhead_ops / 10));  // warm-up
  sync();
  std::vector<double> samples;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_s();
    loop(o.overhead_ops);
    sync();
    samples.push_back((now_s() - t0) / static_cast<double>(o.overhead_ops));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

void bench_overhead(const Options& o, Results& r) {
  std::fprintf(stderr, "focus per-op overhead...\n");
  const TensorOptions opt = TensorOptions().device(g_dev);
  Tensor x, y, leaf;
  try {
    x = ones({1}, opt);
    y = ones({1}, opt);
    leaf = ones({1}, opt).requires_grad_();
  } catch (const std::exception& e) {
    for (const char* v : {"add1.nograd", "add1.leaf", "add1.chain"}) r.missing[v] = short_error(e.what());
    return;
  }
  try_measure(r, "add1.nograd", [&] {
    return per_op(o, [&](int64_t n) {
      for (int64_t i = 0; i < n; ++i) Tensor z = add(x, y);
    });
  });
  try_measure(r, "add1.leaf", [&] {
    return per_op(o, [&](int64_t n) {
      for (int64_t i = 0; i < n; ++i) Tensor z = add(leaf, y);
    });
  });
  try_measure(r, "add1.chain", [&] {
    return per_op(o, [&](int64_t n) {
      Tensor z = leaf;
      for (int64_t i = 0; i < n; ++i) {
        z = add(z, y);
        if (i % 100 == 99) z = leaf;
      }
    });
  });
}

// ---- (c) elementwise bandwidth -------------------------------------------------------------

void bench_elementwise(const Options& o, Results& r) {
  std::fprintf(stderr, "focus elementwise on %lld floats...\n", static_cast<long long>(o.elems));
  Tensor a, b;
  try {
    a = randn_dev({o.elems});
    b = randn_dev({o.elems});
  } catch (const std::exception& e) {
    for (const char* v : {"ew.add", "ew.mul", "ew.gelu", "ew.copy"}) r.missing[v] = short_error(e.what());
    return;
  }
  try_measure(r, "ew.add", [&] { return median_time(o, [&] { Tensor c = add(a, b); }); });
  try_measure(r, "ew.mul", [&] { return median_time(o, [&] { Tensor c = mul(a, b); }); });
  try_measure(r, "ew.gelu", [&] { return median_time(o, [&] { Tensor c = gelu(a); }); });
  try_measure(r, "ew.copy", [&] { return median_time(o, [&] { Tensor c = a.clone(); }); });
#ifdef FOCUS_BENCH_CUDA
  if (g_dev.is_cuda()) {
    sync();
    try_measure(r, "raw.copy", [&] {
      const size_t bytes = static_cast<size_t>(o.elems) * 4;
      DeviceBuffer dst(bytes);
      return median_time(o, [&] { BENCH_CUDA(cudaMemcpyAsync(dst.p, a.data_ptr(), bytes, cudaMemcpyDeviceToDevice, 0)); },
                         device_wait);
    });
  }
#endif
}

// ---- (d) fused ops -------------------------------------------------------------------------

void bench_fused(const Options& o, Results& r) {
  std::fprintf(stderr, "focus fused ops on [%lld, %lld]...\n", static_cast<long long>(o.rows),
               static_cast<long long>(o.cols));
  const TensorOptions opt = TensorOptions().device(g_dev);
  Tensor x, g, w, bias, target;
  try {
    x = randn_dev({o.rows, o.cols}).requires_grad_();
    g = randn_dev({o.rows, o.cols});
    w = ones({o.cols}, opt).requires_grad_();
    bias = zeros({o.cols}, opt).requires_grad_();
    target = randint(0, o.cols, {o.rows}).to(g_dev);
  } catch (const std::exception& e) {
    for (const char* op : {"softmax", "layer_norm", "cross_entropy"})
      for (const char* k : {".fwd", ".fb"}) r.missing[std::string(op) + k] = short_error(e.what());
    return;
  }
  auto clear = [&] {
    x.set_grad(Tensor());
    w.set_grad(Tensor());
    bias.set_grad(Tensor());
  };
  const Shape ns{o.cols};
  try_measure(r, "softmax.fwd", [&] { return median_time(o, [&] { Tensor y = softmax(x, -1); }); });
  try_measure(r, "softmax.fb", [&] {
    return median_time(o, [&] {
      clear();
      softmax(x, -1).backward(g);
    });
  });
  try_measure(r, "layer_norm.fwd", [&] { return median_time(o, [&] { Tensor y = layer_norm(x, ns, w, bias); }); });
  try_measure(r, "layer_norm.fb", [&] {
    return median_time(o, [&] {
      clear();
      layer_norm(x, ns, w, bias).backward(g);
    });
  });
  try_measure(r, "cross_entropy.fwd", [&] { return median_time(o, [&] { Tensor y = cross_entropy(x, target); }); });
  try_measure(r, "cross_entropy.fb", [&] {
    return median_time(o, [&] {
      clear();
      cross_entropy(x, target).backward();
    });
  });
}

// ---- (e) GPT training ----------------------------------------------------------------------

// Trains models/gpt on the file's weights and batches; the same loop as bench_gpt's worker,
// but the losses are read after the timed steps (no synchronization inside the loop).
json gpt_focus(const Options& o, const std::string& file) {
  SafetensorsMetadata meta;
  TensorDict data = load_safetensors(file, &meta);
  auto num = [&](const char* k) { return std::stoll(meta.at(k)); };
  auto real = [&](const char* k) { return std::stod(meta.at(k)); };
  models::GPTConfig cfg;
  cfg.n_layer(num("n_layer")).n_head(num("n_head")).n_embd(num("n_embd")).block_size(num("block_size"))
      .vocab_size(num("vocab_size")).bias(meta.at("bias") == "1").dropout(0.0);
  auto model = std::make_shared<models::GPT>(cfg);
  {
    TensorDict weights;
    for (const auto& key : data.keys())
      if (key.rfind("batch.", 0) != 0) weights.insert(key, data.at(key));
    model->load_state_dict(weights);
  }
  model->to(g_dev);
  const Tensor xs = data.at("batch.x").to(g_dev), ys = data.at("batch.y").to(g_dev);
  data = TensorDict();
  auto [decay, no_decay] = model->decay_groups();
  optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                   optim::AdamWOptions()
                       .lr(real("lr"))
                       .betas({real("beta1"), real("beta2")})
                       .eps(real("eps"))
                       .weight_decay(real("weight_decay")));
  const int64_t steps = xs.size(0), B = xs.size(1), T = xs.size(2);
  const int warmup = static_cast<int>(std::min<int64_t>(o.gpt_warmup, steps - 1));
  sync();
  if (g_dev.is_cuda()) cuda::reset_peak_memory_stats();
  std::vector<Tensor> losses;
  double t0 = now_s();
  int64_t s = 0;
  for (; s < steps; ++s) {
    if (s == warmup) {
      sync();
      t0 = now_s();
    }
    // The time budget: stop early once at least 2 timed steps are done.
    if (s >= warmup + 2 && now_s() - t0 > o.gpt_budget) break;
    const Tensor logits = model->forward(xs.select(0, s));
    Tensor loss = models::GPT::loss(logits, ys.select(0, s));
    opt.zero_grad(true);
    loss.backward();
    opt.step();
    losses.push_back(loss.detach());
  }
  sync();
  const double timed = now_s() - t0;
  const int64_t timed_steps = s - warmup;
  std::vector<double> lv;
  for (const Tensor& l : losses) lv.push_back(l.item<double>());
  json out{{"framework", "focus"},
           {"steps", s},
           {"timed_steps", timed_steps},
           {"seconds", timed},
           {"tokens_per_s", timed > 0 ? static_cast<double>(B * T * timed_steps) / timed : 0.0},
           {"losses", lv},
           {"params", model->num_parameters()},
           {"tokens_per_step", B * T},
           {"flops_per_token", model->flops_per_token(T)},
           {"batch", B},
           {"context", T}};
  if (g_dev.is_cuda()) out["peak_bytes"] = static_cast<double>(cuda::max_memory_allocated());
  return out;
}

// Runs a command, returns its stdout; throws when it fails.
std::string run_command(const std::string& cmd) {
  std::fprintf(stderr, "running: %s\n", cmd.c_str());
  return bench::run_command(cmd, "bench_gpu");
}

// The GPT data files, written by the torch script (prepare): config -> path.
std::map<std::string, std::string> prepare_gpt(const Options& o, const std::string& dir, Results& r) {
  std::map<std::string, std::string> files;
  for (const GptConfig& c : o.gpt) {
    const std::string path = (fs::path(dir) / fmt::format("gpt_{}.safetensors", c.name)).string();
    try {
      run_command(fmt::format("{} {} prepare --config {} --steps {} {} --out {}", o.python, shell_quote(o.torch_script),
                              c.name, c.steps, c.batch > 0 ? fmt::format("--batch {}", c.batch) : std::string(),
                              shell_quote(path)));
      files[c.name] = path;
    } catch (const std::exception& e) {
      r.missing["gpt." + c.name] = "prepare failed: " + short_error(e.what());
      std::fprintf(stderr, "gpt %s: %s\n", c.name.c_str(), e.what());
    }
  }
  return files;
}

// ---- focus worker processes -----------------------------------------------------------------
// Each section (and each GPT config) runs in a process of its own, so that a crash, a hang or
// a sticky CUDA error in one leaves the others' figures standing.

json results_to_json(const Results& r) {
  return json{{"sec", r.sec}, {"missing", r.missing}, {"value", r.value}, {"gpt", r.gpt}};
}

void merge(Results& into, const json& j) {
  for (auto& [k, v] : j.at("sec").items()) into.sec[k] = v.get<double>();
  for (auto& [k, v] : j.at("missing").items()) into.missing[k] = v.get<std::string>();
  for (auto& [k, v] : j.at("value").items()) into.value[k] = v.get<double>();
  for (auto& [k, v] : j.at("gpt").items()) into.gpt[k] = v;
}

// In the worker: runs one section, prints "W {results}" on stdout.
int worker_main(const Options& o) {
  Results r;
  const std::string& w = o.worker;
  if (w == "a") bench_matmul(o, r);
  else if (w == "b") bench_overhead(o, r);
  else if (w == "c") bench_elementwise(o, r);
  else if (w == "d") bench_fused(o, r);
  else if (w == "e") {
    try {
      r.gpt[o.gpt_name] = gpt_focus(o, o.gpt_file);
    } catch (const std::exception& e) {
      r.missing["gpt." + o.gpt_name] = short_error(e.what());
      std::fprintf(stderr, "  focus gpt %s: unavailable: %s\n", o.gpt_name.c_str(), r.missing["gpt." + o.gpt_name].c_str());
    }
  } else {
    FOCUS_CHECK(false, "[bench_gpu] unknown --worker {}", w);
  }
  if (g_dev.is_cuda()) sync();
  std::printf("W %s\n", results_to_json(r).dump().c_str());
  std::fflush(stdout);
  return 0;
}

std::string join(const std::vector<int64_t>& v);

// In the driver: runs `bench_gpu --worker what` under timeout(1) and merges its results; a
// worker that fails leaves `failure_key` with the reason.
void run_worker(const Options& o, const std::string& what, const std::string& extra, const std::string& failure_key,
                double time_left, Results& f) {
  const double limit = std::min(o.worker_timeout, time_left);
  if (limit < 5) {
    f.missing[failure_key] = fmt::format("skipped: focus's share of the {:.0f} s budget is spent", o.budget);
    std::fprintf(stderr, "bench_gpu: %s: %s\n", what.c_str(), f.missing[failure_key].c_str());
    return;
  }
  std::error_code ec;
  const std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  const std::string cmd = fmt::format(
      "timeout -k 5 {:.0f} {} --worker {} --device {} --sizes {} --elems {} --rows {} --cols {} --overhead-ops {} "
      "--warmup {} --reps {} --min-sample {} --max-measure {} --gpt-warmup {} --gpt-budget {}{}",
      limit, shell_quote(self), what, o.device, join(o.sizes), o.elems, o.rows, o.cols, o.overhead_ops,
      o.warmup, o.reps, o.min_sample, o.max_measure, o.gpt_warmup, o.gpt_budget, extra);
  const double t0 = now_s();
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    f.missing[failure_key] = "popen failed";
    return;
  }
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  bool got = false;
  std::stringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("W ", 0) == 0) {
      try {
        merge(f, json::parse(line.substr(2)));
        got = true;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu: bad worker output: %s\n", e.what());
      }
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }
  const int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  std::string why;
  if (status == 124 || status == 137) why = fmt::format("focus worker timed out after {:.0f} s", limit);
  else if (status != 0) why = fmt::format("focus worker failed (exit status {}; a crash shows as 128 + signal)", status);
  else if (!got) why = "focus worker printed no results";
  if (!why.empty()) {
    f.missing[failure_key] = why;
    std::fprintf(stderr, "bench_gpu: %s: %s\n", what.c_str(), why.c_str());
  }
  std::fprintf(stderr, "focus %s%s: %.1f s\n", what.c_str(), what == "e" ? (" " + failure_key).c_str() : "",
               now_s() - t0);
}

// ---- PyTorch side --------------------------------------------------------------------------

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

Results run_torch(const Options& o, const std::map<std::string, std::string>& files, double time_left) {
  Results t;
  if (!o.torch) {
    t.error = "skipped (--no-torch)";
    return t;
  }
  std::string gpt;
  for (const GptConfig& c : o.gpt)
    if (files.count(c.name)) gpt += (gpt.empty() ? "" : ",") + c.name + "=" + files.at(c.name);
  // Under timeout(1), so that the report comes out even if torch hangs.
  std::string cmd = fmt::format(
      "timeout -k 5 {:.0f} {} {} run --device {} --sections {} --sizes {} --elems {} --rows {} --cols {} --overhead-ops {} "
      "--warmup {} --reps {} --min-sample {} --max-measure {} --gpt-warmup {} --gpt-budget {} --attention {}",
      std::max(30.0, time_left), o.python, shell_quote(o.torch_script), g_dev.is_cuda() ? "cuda" : "cpu", o.sections, join(o.sizes), o.elems,
      o.rows, o.cols, o.overhead_ops, o.warmup, o.reps, o.min_sample, o.max_measure, o.gpt_warmup, o.gpt_budget,
      o.attention);
  if (!gpt.empty()) cmd += " --gpt " + shell_quote(gpt);
  std::fprintf(stderr, "running: %s\n", cmd.c_str());
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    t.error = "popen failed";
    return t;
  }
  char line[1 << 16];
  while (std::fgets(line, sizeof line, p)) {
    std::string s(line);
    if (s.rfind("R ", 0) == 0) {
      std::istringstream in(s.substr(2));
      std::string name;
      double v = 0;
      if (in >> name >> v) t.sec[name] = v;
    } else if (s.rfind("V ", 0) == 0) {
      std::istringstream in(s.substr(2));
      std::string name;
      double v = 0;
      if (in >> name >> v) t.value[name] = v;
    } else if (s.rfind("X ", 0) == 0) {  // X name why: no figure
      std::istringstream in(s.substr(2));
      std::string name, why;
      in >> name;
      std::getline(in >> std::ws, why);
      t.missing[name] = why;
    } else if (s.rfind("J ", 0) == 0) {
      try {
        json j = json::parse(s.substr(2));
        t.gpt[j.at("config").get<std::string>()] = j;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu: bad J line from torch: %s\n", e.what());
      }
    } else if (s.rfind("I ", 0) == 0) {
      std::istringstream in(s.substr(2));
      std::string k, v;
      in >> k;
      std::getline(in >> std::ws, v);
      if (!v.empty() && v.back() == '\n') v.pop_back();
      if (k == "torch") t.version = v;
      if (k == "device") t.device_name = v;
    } else {
      std::fputs(line, stderr);
    }
  }
  const int rc = pclose(p);
  if (rc != 0) {
    const int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    t.error = status == 124 || status == 137 ? fmt::format("timed out after {:.0f} s", std::max(30.0, time_left))
                                             : fmt::format("python exited with status {}", status);
  }
  return t;
}

// ---- report --------------------------------------------------------------------------------

std::string num(std::optional<double> v, int prec) {
  if (!v || !std::isfinite(*v)) return v ? "nan" : "-";
  return fmt::format("{:.{}f}", *v, prec);
}

std::optional<double> ratio(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}

struct Row {
  Row(std::string i, std::string u) : item(std::move(i)), unit(std::move(u)) {}
  std::string item, unit;
  std::optional<double> focus, torch, speed;  // speed: focus speed / torch speed (> 1: focus faster)
  std::string other;
  int prec = 1;
};

void print_rows(const std::vector<Row>& rows) {
  std::printf("%-26s %-9s %10s %10s %8s  %s\n", "item", "unit", "focus", "torch", "speed", "notes");
  for (const Row& w : rows)
    std::printf("%-26s %-9s %10s %10s %8s  %s\n", w.item.c_str(), w.unit.c_str(), num(w.focus, w.prec).c_str(),
                num(w.torch, w.prec).c_str(), num(w.speed, 2).c_str(), w.other.c_str());
}

std::string why_missing(const Results& f, const Results& t, const std::string& name, char section = 0) {
  std::string s;
  if (auto it = f.missing.find(name); it != f.missing.end()) s += "focus: " + it->second;
  else if (auto it2 = f.missing.find(std::string("section.") + section); section && it2 != f.missing.end())
    s += "focus: " + it2->second;
  if (auto it = t.missing.find(name); it != t.missing.end()) s += (s.empty() ? "" : "; ") + ("torch: " + it->second);
  return s;
}

void append_note(std::string& notes, const std::string& more) {
  if (!more.empty()) notes += (notes.empty() ? "" : "; ") + more;
}

std::vector<Row> report(const Options& o, const Results& f, const Results& t) {
  std::vector<Row> rows;
  auto has = [&](char c) { return o.sections.find(c) != std::string::npos; };
  // Rates from seconds: amount / seconds / scale.
  auto rate = [](std::optional<double> s, double amount) -> std::optional<double> {
    if (!s || *s <= 0) return std::nullopt;
    return amount / *s;
  };
  if (has('a')) {
    for (int64_t n : o.sizes) {
      const double flop = 2.0 * static_cast<double>(n) * n * n;
      for (const char* p : {"f32", "tf32", "bf16"}) {
        const std::string k = fmt::format("mm.{}.{}", p, n);
        Row w{fmt::format("matmul {} {}", p, n), "TFLOP/s"};
        w.focus = rate(get(f.sec, k), flop * 1e-12);
        w.torch = rate(get(t.sec, k), flop * 1e-12);
        w.speed = ratio(w.focus, w.torch);
        const auto cb = rate(get(f.sec, "cublas." + k), flop * 1e-12);
        if (cb) w.other = fmt::format("cuBLAS {:.1f} (focus {:.0f}%)", *cb, w.focus ? 100 * *w.focus / *cb : 0.0);
        if (auto e = get(f.value, fmt::format("err.mm.{}", p)); e && n == o.sizes.front())
          w.other += fmt::format("{}err {:.1e}", w.other.empty() ? "" : "; ", *e);
        if (!w.focus || !w.torch) append_note(w.other, why_missing(f, t, k, 'a'));
        rows.push_back(w);
      }
    }
  }
  if (has('b')) {
    for (const char* v : {"nograd", "leaf", "chain"}) {
      const std::string k = std::string("add1.") + v;
      Row w{std::string("1-element add, ") + v, "us/op"};
      w.prec = 2;
      if (auto s = get(f.sec, k)) w.focus = *s * 1e6;
      if (auto s = get(t.sec, k)) w.torch = *s * 1e6;
      w.speed = ratio(w.torch, w.focus);
      w.other = std::string(v) == "nograd" ? "no autograd" : std::string(v) == "leaf" ? "records a node per add" : "z = z + y, chain of 100";
      if (!w.focus || !w.torch) {
        const std::string why = why_missing(f, t, k, 'b');
        if (!why.empty()) w.other += "; " + why;
      }
      rows.push_back(w);
    }
  }
  if (has('c')) {
    const double n = static_cast<double>(o.elems);
    const auto raw = rate(get(f.sec, "raw.copy"), 8.0 * n * 1e-9);
    for (const char* op : {"add", "mul", "gelu", "copy"}) {
      const std::string k = std::string("ew.") + op;
      const double bytes = (std::string(op) == "add" || std::string(op) == "mul" ? 12.0 : 8.0) * n;
      Row w{fmt::format("{} {}M f32", op, o.elems >> 20), "GB/s"};
      w.focus = rate(get(f.sec, k), bytes * 1e-9);
      // torch at its best: allocating or out= / copy_
      std::optional<double> ts = get(t.sec, k), to = get(t.sec, k + ".out");
      if (to && (!ts || *to < *ts)) ts = to;
      w.torch = rate(ts, bytes * 1e-9);
      w.speed = ratio(w.focus, w.torch);
      if (raw && w.focus) w.other = fmt::format("{:.0f}% of cudaMemcpy D2D {:.0f}", 100 * *w.focus / *raw, *raw);
      if (!w.focus || !w.torch) append_note(w.other, why_missing(f, t, k, 'c'));
      rows.push_back(w);
    }
  }
  if (has('d')) {
    const double elems = static_cast<double>(o.rows) * static_cast<double>(o.cols);
    // The fewest bytes forward + backward must move, in tensors of [rows, cols] float32:
    // softmax y, then y, g -> dx: 5; layer_norm x -> y, then x, g -> dx: 5; cross_entropy
    // x -> loss, then x -> dx: 3.
    const std::map<std::string, double> fb_tensors{{"softmax", 5}, {"layer_norm", 5}, {"cross_entropy", 3}};
    for (const char* op : {"softmax", "layer_norm", "cross_entropy"})
      for (const char* pass : {"fwd", "fb"}) {
        const std::string k = fmt::format("{}.{}", op, pass);
        Row w{fmt::format("{} {}", op, pass), "ms"};
        w.prec = 3;
        if (auto s = get(f.sec, k)) w.focus = *s * 1e3;
        if (auto s = get(t.sec, k)) w.torch = *s * 1e3;
        w.speed = ratio(w.torch, w.focus);
        if (std::string(pass) == "fb" && w.focus)
          w.other = fmt::format("{:.0f} GB/s of the fewest bytes", fb_tensors.at(op) * 4 * elems / (*w.focus * 1e-3) * 1e-9);
        if (!w.focus || !w.torch) append_note(w.other, why_missing(f, t, k, 'd'));
        rows.push_back(w);
      }
  }
  if (has('e')) {
    for (const GptConfig& c : o.gpt) {
      const json* fj = f.gpt.count(c.name) ? &f.gpt.at(c.name) : nullptr;
      const json* tj = t.gpt.count(c.name) ? &t.gpt.at(c.name) : nullptr;
      auto fig = [](const json* j, const char* k) -> std::optional<double> {
        if (!j || !j->contains(k)) return std::nullopt;
        return (*j)[k].get<double>();
      };
      Row w{fmt::format("GPT {} train step", c.name), "tokens/s"};
      w.prec = 0;
      w.focus = fig(fj, "tokens_per_s");
      w.torch = fig(tj, "tokens_per_s");
      w.speed = ratio(w.focus, w.torch);
      if (const json* any = fj ? fj : tj) {
        const double fpt = any->value("flops_per_token", 0.0);
        if (fpt > 0 && w.focus) w.other = fmt::format("focus {:.1f} TFLOP/s", *w.focus * fpt * 1e-12);
        if (fpt > 0 && w.torch) w.other += fmt::format("{}torch {:.1f}", w.other.empty() ? "" : ", ", *w.torch * fpt * 1e-12);
      }
      if (!w.focus || !w.torch) append_note(w.other, why_missing(f, t, "gpt." + c.name));
      rows.push_back(w);
      Row m{fmt::format("GPT {} peak memory", c.name), "MiB"};
      m.prec = 0;
      if (auto v = fig(fj, "peak_bytes")) m.focus = *v / 1048576.0;
      if (auto v = fig(tj, "peak_bytes")) m.torch = *v / 1048576.0;
      if (m.focus && m.torch) m.other = fmt::format("focus/torch memory {:.2f}", *m.focus / *m.torch);
      rows.push_back(m);
      if (fj && tj) {
        const auto& fl = (*fj)["losses"];
        const auto& tl = (*tj)["losses"];
        double worst = 0;
        size_t k = 0;
        for (; k < 10 && k < fl.size() && k < tl.size(); ++k) {
          const double a = fl[k].get<double>(), b = tl[k].get<double>();
          const double d = std::abs(a - b) / std::abs(b);
          worst = std::isnan(d) ? d : std::max(worst, d);
        }
        Row l{fmt::format("GPT {} loss", c.name), "first"};
        l.prec = 4;
        if (!fl.empty()) l.focus = fl[0].get<double>();
        if (!tl.empty()) l.torch = tl[0].get<double>();
        l.other = fmt::format("worst relative difference over {} steps {:.1e}", k, worst);
        rows.push_back(l);
      }
    }
  }
  return rows;
}

void print_gpt_details(const Options& o, const Results& f, const Results& t) {
  for (const GptConfig& c : o.gpt) {
    for (const Results* r : {&f, &t}) {
      auto it = r->gpt.find(c.name);
      if (it == r->gpt.end()) continue;
      const json& j = it->second;
      std::printf("gpt %-7s %-6s params %lld, batch %lld x %lld, %lld steps (%lld timed, %.2f s): %.0f tokens/s",
                  c.name.c_str(), j.value("framework", "?").c_str(), j.value("params", 0LL), j.value("batch", 0LL),
                  j.value("context", 0LL), j.value("steps", 0LL), j.value("timed_steps", 0LL), j.value("seconds", 0.0),
                  j.value("tokens_per_s", 0.0));
      if (j.contains("peak_bytes")) std::printf(", peak %.0f MiB", j["peak_bytes"].get<double>() / 1048576.0);
      if (j.contains("note")) std::printf(" (%s)", j["note"].get<std::string>().c_str());
      std::printf("\n   losses:");
      const auto& l = j["losses"];
      for (size_t i = 0; i < l.size() && i < 10; ++i) std::printf(" %.5f", l[i].get<double>());
      std::printf("\n");
    }
  }
}

// ---- driver --------------------------------------------------------------------------------

std::vector<int64_t> parse_int64s(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) out.push_back(std::stoll(tok));
  return out;
}

// "medium:40,gpt2:12:8" -> name:steps[:batch]
std::vector<GptConfig> parse_gpt(const std::string& s) {
  std::vector<GptConfig> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty()) continue;
    GptConfig c;
    std::stringstream ts(tok);
    std::string part;
    std::getline(ts, c.name, ':');
    c.steps = std::getline(ts, part, ':') ? std::stoi(part) : 12;
    c.batch = std::getline(ts, part, ':') ? std::stoi(part) : 0;
    FOCUS_CHECK(c.steps >= 2, "[bench_gpu] --gpt {}: at least 2 steps", tok);
    out.push_back(c);
  }
  return out;
}

void usage() {
  std::puts(
      "usage: bench_gpu [--device cuda|cpu] [--sections abcde] [--quick] [--no-torch]\n"
      "                 [--sizes 4096,8192] [--elems 268435456] [--rows 16384] [--cols 4096]\n"
      "                 [--overhead-ops 20000] [--gpt medium:40,gpt2:12:8] [--gpt-warmup 3]\n"
      "                 [--gpt-budget 15] [--warmup 3] [--reps 10] [--min-sample 0.02]\n"
      "                 [--max-measure 4] [--python python3] [--torch-script PATH]\n"
      "                 [--attention sdpa|math] [--workdir DIR] [--worker-timeout 75] [--budget 220]\n"
      "  sections: a matmul (f32, tf32, bf16), b per-op overhead, c elementwise bandwidth,\n"
      "            d softmax/layer_norm/cross_entropy, e GPT training steps\n"
      "  --gpt: configs name:steps[:batch] (tiny, small, medium of bench_gpt_torch.py, gpt2)\n"
      "  --device cpu: the same code paths on the CPU (a smoke run where there is no GPU)\n"
      "  --budget: seconds for the whole run; focus's sections stop at 55% of it, torch gets the rest\n"
      "  --quick: small sizes and few repetitions");
}

}  // namespace

int main(int argc, char** argv) try {
  Options o;
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
  bool sizes_set = false, elems_set = false, rows_set = false, cols_set = false, ops_set = false, gpt_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      FOCUS_CHECK(i + 1 < argc, "[bench_gpu] {} needs a value", a);
      return argv[++i];
    };
    if (a == "--device") o.device = next();
    else if (a == "--sections") o.sections = next();
    else if (a == "--quick") o.quick = true;
    else if (a == "--no-torch") o.torch = false;
    else if (a == "--sizes") o.sizes = parse_int64s(next()), sizes_set = true;
    else if (a == "--elems") o.elems = std::stoll(next()), elems_set = true;
    else if (a == "--rows") o.rows = std::stoll(next()), rows_set = true;
    else if (a == "--cols") o.cols = std::stoll(next()), cols_set = true;
    else if (a == "--overhead-ops") o.overhead_ops = std::stoll(next()), ops_set = true;
    else if (a == "--gpt") o.gpt = parse_gpt(next()), gpt_set = true;
    else if (a == "--gpt-warmup") o.gpt_warmup = std::stoi(next());
    else if (a == "--gpt-budget") o.gpt_budget = std::stod(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--reps") o.reps = std::stoi(next());
    else if (a == "--min-sample") o.min_sample = std::stod(next());
    else if (a == "--max-measure") o.max_measure = std::stod(next());
    else if (a == "--python") o.python = next();
    else if (a == "--torch-script") o.torch_script = next();
    else if (a == "--attention") o.attention = next();
    else if (a == "--workdir") o.workdir = next();
    else if (a == "--worker-timeout") o.worker_timeout = std::stod(next());
    else if (a == "--budget") o.budget = std::stod(next());
    else if (a == "--worker") o.worker = next();
    else if (a == "--gpt-name") o.gpt_name = next();
    else if (a == "--gpt-file") o.gpt_file = next();
    else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "bench_gpu: unknown argument %s\n", a.c_str());
      usage();
      return 2;
    }
  }
  FOCUS_CHECK(o.device == "cuda" || o.device == "cpu", "[bench_gpu] --device must be cuda or cpu, got {}", o.device);
  const bool cpu = o.device == "cpu";
  if (o.quick) {
    if (!sizes_set) o.sizes = cpu ? std::vector<int64_t>{256} : std::vector<int64_t>{2048};
    if (!elems_set) o.elems = cpu ? int64_t{1} << 20 : int64_t{1} << 24;
    if (!rows_set) o.rows = cpu ? 512 : 4096;
    if (!cols_set) o.cols = cpu ? 512 : 1024;
    if (!ops_set) o.overhead_ops = cpu ? 2000 : 5000;
    if (!gpt_set) o.gpt = cpu ? std::vector<GptConfig>{{"tiny", 8, 0}, {"small", 6, 0}} : std::vector<GptConfig>{{"medium", 12, 0}};
    o.reps = std::min(o.reps, 3);
    o.warmup = std::min(o.warmup, 2);
    o.min_sample = std::min(o.min_sample, 0.01);
    o.gpt_warmup = std::min(o.gpt_warmup, 2);
  } else if (cpu && !gpt_set) {
    o.gpt = {{"small", 10, 0}};
  }
  FOCUS_CHECK(o.reps >= 1 && o.warmup >= 1 && o.overhead_ops >= 10 && o.elems >= 1 && o.rows >= 1 && o.cols >= 2,
              "[bench_gpu] --reps, --warmup >= 1, --overhead-ops >= 10, sizes positive");
  FOCUS_CHECK(o.attention == "sdpa" || o.attention == "math", "[bench_gpu] --attention must be sdpa or math");
  if (o.torch_script.empty()) o.torch_script = bench::script_beside("bench_gpu_torch.py");
  if (!o.worker.empty()) {
    g_dev = cpu ? kCPU : Device(DeviceType::CUDA, 0);
    return worker_main(o);
  }

  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::printf("focus GPU benchmark  %s\n", date);
  std::printf("command: %s\n", o.command_line.c_str());
  utsname u{};
  uname(&u);
  std::printf("host: %s, %u hardware threads, %s %s\n", bench::cpu_model().c_str(), std::thread::hardware_concurrency(),
              u.sysname, u.release);
  if (!cpu) {
    if (!cuda::is_available()) {
#ifdef FOCUS_BENCH_CUDA
      std::printf("bench_gpu: no CUDA device: this build has the CUDA backend but no GPU is visible; nothing to "
                  "measure (--device cpu --quick runs the code paths on the CPU)\n");
#else
      std::printf("bench_gpu: no CUDA device: focus was built without the CUDA backend (FOCUS_CUDA=OFF or no "
                  "toolkit); nothing to measure (--device cpu --quick runs the code paths on the CPU)\n");
#endif
      return 0;
    }
    g_dev = Device(DeviceType::CUDA, 0);
    std::printf("device: %s (focus %d device(s) visible)\n", cuda::get_device_name(0).c_str(), cuda::device_count());
  } else {
    g_dev = kCPU;
    std::printf("device: cpu (smoke run: the GPU code paths on the CPU, %d threads)\n", get_num_threads());
  }
  std::printf("method: %d warm-up calls, median of %d repetitions of >= %.3f s (fewer past %.0f s per figure),\n"
              "        synchronizing the device around each repetition; GPT: %d warm-up steps, then at most\n"
              "        %.0f s of steps; the losses are read after the timed steps\n",
              o.warmup, o.reps, o.min_sample, o.max_measure, o.gpt_warmup, o.gpt_budget);
  std::fflush(stdout);
  auto has = [&](char c) { return o.sections.find(c) != std::string::npos; };
  const double t_start = now_s();

  Results f;
  const std::string dir =
      o.workdir.empty() ? (fs::temp_directory_path() / fmt::format("focus_bench_gpu_{}", getpid())).string() : o.workdir;
  std::map<std::string, std::string> files;
  if (has('e')) {
    fs::create_directories(dir);
    files = prepare_gpt(o, dir, f);
  }
  // focus gets 55% of the budget (writing the GPT files included), torch what is left.
  const double focus_end = t_start + 0.55 * o.budget;
  for (char c : std::string("abcd"))
    if (has(c)) run_worker(o, std::string(1, c), "", std::string("section.") + c, focus_end - now_s(), f);
  if (has('e'))
    for (const GptConfig& c : o.gpt)
      if (files.count(c.name))
        run_worker(o, "e", fmt::format(" --gpt-name {} --gpt-file {}", c.name, shell_quote(files.at(c.name))),
                   "gpt." + c.name, focus_end - now_s(), f);
  const double t_focus = now_s() - t_start;
  std::fflush(stdout);

  const double t1 = now_s();
  Results t = run_torch(o, files, t_start + o.budget - now_s());
  const double t_torch = now_s() - t1;
  if (o.workdir.empty() && has('e')) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  std::printf("torch: %s%s%s\n", t.version.empty() ? "-" : t.version.c_str(),
              t.device_name.empty() ? "" : (" on " + t.device_name).c_str(),
              t.error.empty() ? "" : ("  (" + t.error + ")").c_str());
  std::printf("time: focus %.0f s, torch %.0f s\n", t_focus, t_torch);
  if (has('e')) print_gpt_details(o, f, t);
  std::printf("\n=== summary: focus vs PyTorch %s on %s; speed = focus speed / torch speed (> 1: focus faster)\n",
              t.version.empty() ? "-" : t.version.c_str(),
              g_dev.is_cuda() ? cuda::get_device_name(0).c_str() : "the cpu (smoke run)");
  print_rows(report(o, f, t));
  if (!f.missing.empty() || !t.missing.empty() || !t.error.empty())
    std::printf("(%zu focus and %zu torch figures missing%s)\n", f.missing.size(), t.missing.size(),
                t.error.empty() ? "" : (": torch " + t.error).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_gpu: %s\n", e.what());
  return 1;
}
