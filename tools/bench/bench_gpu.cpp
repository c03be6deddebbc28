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
//       tokens/s and peak device memory, from the same initial weights and batches as torch,
//       and the float32 parity of the first 10 losses (TF32 off on both sides);
//   (f) the GPT-2 small step under autocast bfloat16 (float32 master weights, AdamW): eager,
//       and captured as a CUDA graph (capturable AdamW), against torch eager under
//       torch.autocast; tokens/s, MFU, peak memory, launch overhead = 1 - graph / eager time;
//   (g) attention forward and forward+backward in bfloat16 (flash and the composed path)
//       against torch's SDPA with the flash backend forced, TFLOP/s, and a correctness check
//       of the flash output and gradients against torch's and a float64 reference;
//   (h) torch.compile of (f)'s step (torch only; compile time reported apart).
//
// Sections run in rounds (--sections fgae,h,bcd: commas separate rounds): each round runs
// focus's workers, then torch for the same sections, within its share of --budget, so the
// first round's figures come first and complete. A targets table (the goals, PASS /
// FAIL / NOT RUN) ends the report; --json writes everything to a file.
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
#include <charconv>
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

#include "autograd/autocast.h"
#include "core/cuda.h"
#include "core/ops/attention.h"
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

struct AttnConfig {
  int64_t L = 0, B = 0, H = 0;  // L = S
};

struct Options {
  std::string device = "cuda";
  std::string sections = "fgae,h,bcd";  // rounds, in order (see the top of the file)
  std::vector<int64_t> sizes{4096, 8192};
  int64_t elems = int64_t{1} << 28;  // 256M float32, 1 GiB per tensor
  int64_t rows = 16384, cols = 4096;
  int64_t overhead_ops = 20000;
  std::vector<GptConfig> gpt{{"medium", 40, 0}, {"gpt2", 12, 8}};
  std::vector<GptConfig> amp{{"gpt2", 12, 16}};  // (f) and (h): bf16 autocast
  std::vector<AttnConfig> attn{{1024, 4, 16}, {4096, 1, 16}};
  std::vector<int64_t> attn_hd{64, 128};
  int64_t attn_check_len = 1000;  // L = S of the correctness cases ([1, 4, L, hd])
  std::string attn_dtype;         // bf16 or f32 (default: bf16; f32 with --device cpu, whose flash path is float32)
  double peak_tflops = 0;         // bf16 dense peak for MFU; 0: from the device's name
  double compile_timeout = 150;   // seconds for torch.compile's run (h), at most
  std::string json_path;
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
  double budget = 300;         // seconds for the whole run, shared out among the rounds
  std::string command_line;
  // a worker process (one section, or one GPT config): --worker a|b|c|d|e
  std::string worker;
  std::string gpt_name, gpt_file;
  std::string amp_mode;    // (f) worker: eager or graph
  std::string attn_check;  // (g) worker: where to write the flash results for torch to check
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

// ---- (g) attention ---------------------------------------------------------------------------

std::string attn_name(const char* impl, const char* pass, int64_t L, int64_t hd, bool causal) {
  return fmt::format("attn.{}.{}.{}.{}.{}", impl, pass, L, hd, causal ? "c" : "n");
}

// Forward and forward+backward of scaled_dot_product_attention in bfloat16 on [B, H, L, hd]
// (L = S), flash and the composed path each forced with SdpaKernelGuard; then, when
// o.attn_check names a file, the flash output and gradients of small cases for the torch
// side to compare.
void bench_attention(const Options& o, Results& r) {
  const DType dt = o.attn_dtype == "f32" ? kFloat32 : kBFloat16;
  for (const AttnConfig& c : o.attn) {
    for (const int64_t hd : o.attn_hd) {
      std::fprintf(stderr, "focus attention L %lld, B %lld, H %lld, hd %lld...\n", static_cast<long long>(c.L),
                   static_cast<long long>(c.B), static_cast<long long>(c.H), static_cast<long long>(hd));
      Tensor q, k, v, g;
      try {
        q = randn_dev({c.B, c.H, c.L, hd}).to(dt).requires_grad_();
        k = randn_dev({c.B, c.H, c.L, hd}).to(dt).requires_grad_();
        v = randn_dev({c.B, c.H, c.L, hd}).to(dt).requires_grad_();
        g = randn_dev({c.B, c.H, c.L, hd}).to(dt);
      } catch (const std::exception& e) {
        for (const char* impl : {"flash", "math"})
          for (const char* pass : {"fwd", "fb"})
            for (bool causal : {false, true}) r.missing[attn_name(impl, pass, c.L, hd, causal)] = short_error(e.what());
        continue;
      }
      for (const bool causal : {false, true}) {
        for (const char* impl : {"flash", "math"}) {
          SdpaKernelGuard guard({std::string(impl) == "flash" ? SDPBackend::FlashAttention : SDPBackend::Math});
          try_measure(r, attn_name(impl, "fwd", c.L, hd, causal), [&] {
            NoGradGuard no_grad;
            return median_time(o, [&] { Tensor y = scaled_dot_product_attention(q, k, v, Tensor(), 0.0, causal); });
          });
          try_measure(r, attn_name(impl, "fb", c.L, hd, causal), [&] {
            return median_time(o, [&] {
              q.set_grad(Tensor());
              k.set_grad(Tensor());
              v.set_grad(Tensor());
              scaled_dot_product_attention(q, k, v, Tensor(), 0.0, causal).backward(g);
            });
          });
        }
      }
    }
  }
  if (o.attn_check.empty()) return;
  // The check: [1, 4, attn_check_len, hd] for each head dim, causal and not, flash forced.
  try {
    manual_seed(1234);
    TensorDict out;
    SafetensorsMetadata meta;
    std::string cases;
    int i = 0;
    for (const int64_t hd : o.attn_hd)
      for (const bool causal : {false, true}) {
        const Shape shape{1, 4, o.attn_check_len, hd};
        Tensor q = randn_dev(shape).to(dt).requires_grad_();
        Tensor k = randn_dev(shape).to(dt).requires_grad_();
        Tensor v = randn_dev(shape).to(dt).requires_grad_();
        const Tensor g = randn_dev(shape).to(dt);
        Tensor y;
        {
          SdpaKernelGuard guard({SDPBackend::FlashAttention});
          y = scaled_dot_product_attention(q, k, v, Tensor(), 0.0, causal);
          y.backward(g);
        }
        const std::string pre = fmt::format("c{}.", i++);
        auto put = [&](const char* n, const Tensor& t) { out.insert(pre + n, t.detach().to(kFloat32).cpu().contiguous()); };
        put("q", q);
        put("k", k);
        put("v", v);
        put("dout", g);
        put("out", y);
        put("dq", q.grad());
        put("dk", k.grad());
        put("dv", v.grad());
        cases += fmt::format("{},{},{};", o.attn_check_len, hd, causal ? 1 : 0);
      }
    meta["cases"] = cases;
    save_safetensors(out, o.attn_check, meta);
  } catch (const std::exception& e) {
    r.missing["attn.check"] = short_error(e.what());
    std::fprintf(stderr, "  focus attention check: unavailable: %s\n", r.missing["attn.check"].c_str());
  }
}

// ---- (e) GPT training ----------------------------------------------------------------------

// models/gpt with the file's weights, its batches on the device, and AdamW with the file's
// hyperparameters (nanoGPT's two groups).
struct GptRun {
  std::shared_ptr<models::GPT> model;
  Tensor xs, ys;  // int64 [steps, B, T]
  std::unique_ptr<optim::AdamW> opt;
};

GptRun load_gpt(const std::string& file, bool capturable) {
  SafetensorsMetadata meta;
  TensorDict data = load_safetensors(file, &meta);
  auto num = [&](const char* k) { return std::stoll(meta.at(k)); };
  auto real = [&](const char* k) { return std::stod(meta.at(k)); };
  models::GPTConfig cfg;
  cfg.n_layer(num("n_layer")).n_head(num("n_head")).n_embd(num("n_embd")).block_size(num("block_size"))
      .vocab_size(num("vocab_size")).bias(meta.at("bias") == "1").dropout(0.0);
  GptRun run;
  run.model = std::make_shared<models::GPT>(cfg);
  {
    TensorDict weights;
    for (const auto& key : data.keys())
      if (key.rfind("batch.", 0) != 0) weights.insert(key, data.at(key));
    run.model->load_state_dict(weights);
  }
  run.model->to(g_dev);
  run.xs = data.at("batch.x").to(g_dev);
  run.ys = data.at("batch.y").to(g_dev);
  data = TensorDict();
  auto [decay, no_decay] = run.model->decay_groups();
  run.opt = std::make_unique<optim::AdamW>(
      std::vector<optim::ParamGroup>{optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
      optim::AdamWOptions()
          .lr(real("lr"))
          .betas({real("beta1"), real("beta2")})
          .eps(real("eps"))
          .weight_decay(real("weight_decay"))
          .capturable(capturable));
  return run;
}

// The record of one training run (the torch side's J lines have the same keys).
json gpt_record(const GptRun& run, const std::string& mode, int64_t steps, int64_t timed_steps, double timed,
                const std::vector<Tensor>& losses) {
  const int64_t B = run.xs.size(1), T = run.xs.size(2);
  std::vector<double> lv;
  for (const Tensor& l : losses) lv.push_back(l.item<double>());
  json out{{"framework", "focus"},
           {"mode", mode},
           {"steps", steps},
           {"timed_steps", timed_steps},
           {"seconds", timed},
           {"tokens_per_s", timed > 0 && timed_steps > 0 ? static_cast<double>(B * T * timed_steps) / timed : 0.0},
           {"losses", lv},
           {"params", run.model->num_parameters()},
           {"tokens_per_step", B * T},
           {"flops_per_token", run.model->flops_per_token(T)},
           {"batch", B},
           {"context", T}};
  if (g_dev.is_cuda()) out["peak_bytes"] = static_cast<double>(cuda::max_memory_allocated());
  return out;
}

// Trains models/gpt on the file's weights and batches; the same loop as bench_gpt's worker,
// but the losses are read after the timed steps (no synchronization inside the loop).
// amp: forward and loss under AutocastGuard(device, bfloat16) (float32 master weights, the
// backward and AdamW outside it, as torch.autocast); otherwise float32 with TF32 off.
json gpt_focus(const Options& o, const std::string& file, bool amp) {
  set_float32_matmul_precision("highest");
  GptRun run = load_gpt(file, false);
  const int64_t steps = run.xs.size(0);
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
    Tensor loss;
    {
      std::optional<AutocastGuard> guard;
      if (amp) guard.emplace(g_dev, kBFloat16);
      loss = models::GPT::loss(run.model->forward(run.xs.select(0, s)), run.ys.select(0, s));
    }
    run.opt->zero_grad(true);
    loss.backward();
    run.opt->step();
    losses.push_back(loss.detach());
  }
  sync();
  const double timed = now_s() - t0;
  return gpt_record(run, amp ? "amp" : "f32", s, s - warmup, timed, losses);
}

// (f) with the step captured as a CUDA graph (PyTorch's whole-network pattern): static
// input tensors, capturable AdamW, warm-up steps run eagerly on the static tensors, grads
// set to none before the capture (the captured backward makes them from the graph's pool),
// then one replay per batch after copying it into the static tensors. The first replay is
// not timed. The losses are clones of the captured loss, read at the end.
json gpt_graph_focus(const Options& o, const std::string& file) {
  set_float32_matmul_precision("highest");
  GptRun run = load_gpt(file, g_dev.is_cuda());
  const int64_t steps = run.xs.size(0), B = run.xs.size(1), T = run.xs.size(2);
  const int warmup = static_cast<int>(std::clamp<int64_t>(o.gpt_warmup, 1, std::max<int64_t>(1, steps - 3)));
  const TensorOptions iopt = TensorOptions(kInt64).device(g_dev);
  Tensor sx = zeros({B, T}, iopt), sy = zeros({B, T}, iopt);
  auto forward_loss = [&] {
    AutocastGuard guard(g_dev, kBFloat16);
    return models::GPT::loss(run.model->forward(sx), sy);
  };
  std::vector<Tensor> losses;
  for (int s = 0; s < warmup; ++s) {
    sx.copy_(run.xs.select(0, s));
    sy.copy_(run.ys.select(0, s));
    run.opt->zero_grad(true);
    Tensor loss = forward_loss();
    loss.backward();
    run.opt->step();
    losses.push_back(loss.detach());
  }
  FOCUS_CHECK(g_dev.is_cuda(), "[bench_gpu] CUDA graphs need a CUDA device (the eager warm-up ran)");
  run.opt->zero_grad(true);
  sync();
  cuda::Graph graph;
  Tensor static_loss;
  const double tc = now_s();
  {
    cuda::GraphCapture capture(graph);
    static_loss = forward_loss();
    static_loss.backward();
    run.opt->step();
  }
  sync();
  const double capture_s = now_s() - tc;
  cuda::reset_peak_memory_stats();
  double t0 = now_s();
  int64_t s = warmup;
  for (; s < steps; ++s) {
    if (s == warmup + 1) {
      sync();
      t0 = now_s();
    }
    if (s >= warmup + 3 && now_s() - t0 > o.gpt_budget) break;
    sx.copy_(run.xs.select(0, s));
    sy.copy_(run.ys.select(0, s));
    graph.replay();
    losses.push_back(static_loss.clone());
  }
  sync();
  const double timed = now_s() - t0;
  json out = gpt_record(run, "graph", s, s - warmup - 1, timed, losses);
  out["capture_s"] = capture_s;
  return out;
}

// Runs a command, returns its stdout; throws when it fails.
std::string run_command(const std::string& cmd) {
  std::fprintf(stderr, "running: %s\n", cmd.c_str());
  return bench::run_command(cmd, "bench_gpu");
}

// The GPT data files, written by the torch script (prepare): config -> path. kind: "gpt"
// (section e) or "amp" (f, h); the results' keys are name and amp:name.
std::map<std::string, std::string> prepare_gpt(const Options& o, const std::vector<GptConfig>& configs,
                                               const std::string& kind, const std::string& dir, Results& r) {
  std::map<std::string, std::string> files;
  for (const GptConfig& c : configs) {
    const std::string path = (fs::path(dir) / fmt::format("{}_{}.safetensors", kind, c.name)).string();
    const std::string key = kind == "gpt" ? c.name : kind + ":" + c.name;
    try {
      run_command(fmt::format("{} {} prepare --config {} --steps {} {} --out {}", o.python, shell_quote(o.torch_script),
                              c.name, c.steps, c.batch > 0 ? fmt::format("--batch {}", c.batch) : std::string(),
                              shell_quote(path)));
      files[c.name] = path;
    } catch (const std::exception& e) {
      r.missing["gpt." + key] = "prepare failed: " + short_error(e.what());
      std::fprintf(stderr, "gpt %s: %s\n", key.c_str(), e.what());
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
  else if (w == "g") bench_attention(o, r);
  else if (w == "e" || w == "f") {
    // e: float32 (key: the config's name); f: bf16 autocast, eager (amp:name) or as a CUDA
    // graph (graph:name).
    const std::string key = w == "e" ? o.gpt_name : (o.amp_mode == "graph" ? "graph:" : "amp:") + o.gpt_name;
    try {
      if (w == "f" && o.amp_mode == "graph") r.gpt[key] = gpt_graph_focus(o, o.gpt_file);
      else r.gpt[key] = gpt_focus(o, o.gpt_file, w == "f");
    } catch (const std::exception& e) {
      r.missing["gpt." + key] = short_error(e.what());
      std::fprintf(stderr, "  focus gpt %s: unavailable: %s\n", key.c_str(), r.missing["gpt." + key].c_str());
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
std::string join_attn(const std::vector<AttnConfig>& v);

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
      "--warmup {} --reps {} --min-sample {} --max-measure {} --gpt-warmup {} --gpt-budget {} --attn {} --attn-hd {} "
      "--attn-check-len {} --attn-dtype {}{}",
      limit, shell_quote(self), what, o.device, join(o.sizes), o.elems, o.rows, o.cols, o.overhead_ops,
      o.warmup, o.reps, o.min_sample, o.max_measure, o.gpt_warmup, o.gpt_budget, join_attn(o.attn), join(o.attn_hd),
      o.attn_check_len, o.attn_dtype, extra);
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
  std::fprintf(stderr, "focus %s%s: %.1f s\n", what.c_str(),
               what == "e" || what == "f" ? (" " + failure_key).c_str() : "", now_s() - t0);
}

// ---- PyTorch side --------------------------------------------------------------------------

void append_error(Results& t, const std::string& e) { t.error += (t.error.empty() ? "" : "; ") + e; }

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::string join_attn(const std::vector<AttnConfig>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{}:{}:{}", i ? "," : "", v[i].L, v[i].B, v[i].H);
  return s;
}

// The torch side's run arguments for these sections and files.
struct TorchRun {
  std::string sections;
  std::map<std::string, std::string> gpt_files, amp_files;  // config -> path
  std::string attn_check;                                   // file, when focus wrote one
};

// Runs the torch script on the round's sections and merges its figures into t.
void run_torch(const Options& o, const TorchRun& run, double time_left, Results& t) {
  auto spec = [](const std::vector<GptConfig>& configs, const std::map<std::string, std::string>& files) {
    std::string out;
    for (const GptConfig& c : configs)
      if (files.count(c.name)) out += (out.empty() ? "" : ",") + c.name + "=" + files.at(c.name);
    return out;
  };
  const std::string gpt = spec(o.gpt, run.gpt_files), amp = spec(o.amp, run.amp_files);
  // Under timeout(1), so that the report comes out even if torch hangs.
  std::string cmd = fmt::format(
      "timeout -k 5 {:.0f} {} {} run --device {} --sections {} --sizes {} --elems {} --rows {} --cols {} --overhead-ops {} "
      "--warmup {} --reps {} --min-sample {} --max-measure {} --gpt-warmup {} --gpt-budget {} --attention {} "
      "--attn {} --attn-hd {} --attn-dtype {}",
      std::max(30.0, time_left), o.python, shell_quote(o.torch_script), g_dev.is_cuda() ? "cuda" : "cpu", run.sections,
      join(o.sizes), o.elems, o.rows, o.cols, o.overhead_ops, o.warmup, o.reps, o.min_sample, o.max_measure,
      o.gpt_warmup, o.gpt_budget, o.attention, join_attn(o.attn), join(o.attn_hd), o.attn_dtype);
  if (!gpt.empty()) cmd += " --gpt " + shell_quote(gpt);
  if (!amp.empty()) cmd += " --amp-gpt " + shell_quote(amp);
  if (!run.attn_check.empty()) cmd += " --attn-check " + shell_quote(run.attn_check);
  std::fprintf(stderr, "running: %s\n", cmd.c_str());
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    append_error(t, "popen failed");
    return;
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
    append_error(t, fmt::format("sections {}: {}", run.sections,
                                status == 124 || status == 137
                                    ? fmt::format("timed out after {:.0f} s", std::max(30.0, time_left))
                                    : fmt::format("python exited with status {}", status)));
  }
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

// ---- figures shared by the report, the targets and the JSON ------------------------------------

// The bf16 dense tensor-core peak for MFU, TFLOP/s (--peak-tflops overrides; 0 = unknown).
double bf16_peak_tflops(const Options& o, const std::string& name) {
  if (o.peak_tflops > 0) return o.peak_tflops;
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && has("NVL")) return 835;
  if (has("H100") && (has("PCIe") || has("PCIE"))) return 756;
  if (has("H100") || has("H200") || has("H800")) return 989;  // SXM (H200: the same tensor cores)
  if (has("A100") || has("A800")) return 312;
  return 0;
}

const json* gpt_of(const Results& r, const std::string& key) {
  auto it = r.gpt.find(key);
  return it == r.gpt.end() ? nullptr : &it->second;
}

std::optional<double> fig(const json* j, const char* k) {
  if (!j || !j->contains(k) || !(*j)[k].is_number()) return std::nullopt;
  const double v = (*j)[k].get<double>();
  if (std::string(k) == "tokens_per_s" && !(v > 0)) return std::nullopt;
  return v;
}

// The largest relative difference over the first n losses of two runs, and how many were
// compared (NaN when one is NaN).
std::pair<double, size_t> loss_diff(const json* a, const json* b, size_t n = 10, size_t skip = 0) {
  if (!a || !b) return {0.0, 0};
  const auto& la = (*a)["losses"];
  const auto& lb = (*b)["losses"];
  double worst = 0;
  size_t k = skip;
  for (; k < skip + n && k < la.size() && k < lb.size(); ++k) {
    const double x = la[k].get<double>(), y = lb[k].get<double>();
    const double d = std::abs(x - y) / std::abs(y);
    worst = std::isnan(d) || std::isnan(worst) ? std::nan("") : std::max(worst, d);
  }
  return {worst, k - skip};
}

// MFU in %: tokens/s x flops per token over the peak.
std::optional<double> mfu(std::optional<double> tokens_per_s, const json* any, double peak_tflops) {
  const auto fpt = fig(any, "flops_per_token");
  if (!tokens_per_s || !fpt || peak_tflops <= 0) return std::nullopt;
  return 100.0 * *tokens_per_s * *fpt / (peak_tflops * 1e12);
}

// Attention FLOPs (FlashAttention's convention): forward 4 B H L S hd, halved when causal;
// backward 2.5 x forward; forward + backward 3.5 x forward.
double attn_flops(const AttnConfig& c, int64_t hd, bool causal, bool fb) {
  const double fwd = 4.0 * static_cast<double>(c.B * c.H) * static_cast<double>(c.L) * static_cast<double>(c.L) *
                     static_cast<double>(hd) * (causal ? 0.5 : 1.0);
  return fb ? 3.5 * fwd : fwd;
}

// The flash check of one case and tensor: focus vs reference, torch vs reference, focus vs torch.
struct CheckFig {
  std::optional<double> fr, tr, ft;
};
CheckFig check_fig(const Results& t, int i, const char* tensor) {
  const std::string k = fmt::format("attn.check.{}.{}.", i, tensor);
  return {get(t.value, k + "fr"), get(t.value, k + "tr"), get(t.value, k + "ft")};
}
// PASS rule: focus's error against the float64 reference at most twice torch flash's plus
// 2e-3 (of the reference's largest magnitude); 1e-2 when torch has no flash kernel.
bool check_ok(const CheckFig& c) {
  if (!c.fr || std::isnan(*c.fr)) return false;
  return c.tr ? *c.fr <= 2 * *c.tr + 2e-3 : *c.fr <= 1e-2;
}
// The cases focus wrote: L, hd, causal for i = 0, 1, ...
std::vector<std::tuple<int64_t, int64_t, bool>> check_cases(const Options& o) {
  std::vector<std::tuple<int64_t, int64_t, bool>> out;
  for (int64_t hd : o.attn_hd)
    for (bool causal : {false, true}) out.emplace_back(o.attn_check_len, hd, causal);
  return out;
}

std::vector<Row> report(const Options& o, const Results& f, const Results& t, const std::string& device_name) {
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
        if (cb)
          w.other = fmt::format("cuBLAS {:.1f} (focus {:.0f}%{})", *cb, w.focus ? 100 * *w.focus / *cb : 0.0,
                                std::string(p) == "bf16" ? ", target >= 95%" : "");
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
  if (has('f') || has('h')) {
    const double peak = bf16_peak_tflops(o, device_name);
    for (const GptConfig& c : o.amp) {
      const json* fe = gpt_of(f, "amp:" + c.name);
      const json* fg = gpt_of(f, "graph:" + c.name);
      const json* te = gpt_of(t, "amp:" + c.name);
      const json* tc = gpt_of(t, "compile:" + c.name);
      const json* any = fe ? fe : fg ? fg : te ? te : tc;
      Row w{fmt::format("GPT {} bf16 step", c.name), "tokens/s"};
      w.prec = 0;
      w.focus = fig(fe, "tokens_per_s");
      w.torch = fig(te, "tokens_per_s");
      w.speed = ratio(w.focus, w.torch);
      if (auto m = mfu(w.focus, any, peak)) w.other = fmt::format("MFU focus {:.1f}%", *m);
      if (auto m = mfu(w.torch, any, peak)) append_note(w.other, fmt::format("torch {:.1f}%", *m));
      append_note(w.other, "target >= 1.10x");
      if (!w.focus || !w.torch) append_note(w.other, why_missing(f, t, "gpt.amp:" + c.name));
      rows.push_back(w);
      Row g{fmt::format("GPT {} bf16 graph/compile", c.name), "tokens/s"};
      g.prec = 0;
      g.focus = fig(fg, "tokens_per_s");
      g.torch = fig(tc, "tokens_per_s");
      g.speed = ratio(g.focus, g.torch);
      g.other = "focus CUDA graph vs torch.compile";
      if (auto fc = fig(tc, "compile_s")) append_note(g.other, fmt::format("compile {:.0f} s", *fc));
      if (!g.focus) append_note(g.other, why_missing(f, Results(), "gpt.graph:" + c.name));
      if (!g.torch) {
        auto it = t.missing.find("gpt.compile:" + c.name);
        append_note(g.other, "torch.compile: " + (it != t.missing.end() ? it->second : std::string("not run")));
      }
      rows.push_back(g);
      Row m{fmt::format("GPT {} bf16 peak memory", c.name), "MiB"};
      m.prec = 0;
      if (auto v = fig(fe, "peak_bytes")) m.focus = *v / 1048576.0;
      if (auto v = fig(te, "peak_bytes")) m.torch = *v / 1048576.0;
      if (m.focus && m.torch) m.other = fmt::format("focus/torch memory {:.2f}", *m.focus / *m.torch);
      rows.push_back(m);
    }
  }
  if (has('g')) {
    for (const AttnConfig& c : o.attn)
      for (int64_t hd : o.attn_hd)
        for (bool causal : {false, true}) {
          Row w{fmt::format("attn {} hd{} {} fb{}", c.L, hd, causal ? "causal" : "full", o.attn_dtype == "f32" ? " f32" : ""),
                "TFLOP/s"};
          const std::string fb = attn_name("flash", "fb", c.L, hd, causal);
          w.focus = rate(get(f.sec, fb), attn_flops(c, hd, causal, true) * 1e-12);
          w.torch = rate(get(t.sec, fb), attn_flops(c, hd, causal, true) * 1e-12);
          w.speed = ratio(w.focus, w.torch);
          const auto ff = rate(get(f.sec, attn_name("flash", "fwd", c.L, hd, causal)), attn_flops(c, hd, causal, false) * 1e-12);
          const auto tf = rate(get(t.sec, attn_name("flash", "fwd", c.L, hd, causal)), attn_flops(c, hd, causal, false) * 1e-12);
          const auto mf = rate(get(f.sec, attn_name("math", "fb", c.L, hd, causal)), attn_flops(c, hd, causal, true) * 1e-12);
          w.other = fmt::format("B{} H{}; fwd focus {} torch {}; focus math fb {}", c.B, c.H, num(ff, 1), num(tf, 1),
                                num(mf, 1));
          if (!w.torch) {
            if (auto tm = rate(get(t.sec, attn_name("math", "fb", c.L, hd, causal)), attn_flops(c, hd, causal, true) * 1e-12))
              append_note(w.other, fmt::format("torch math fb {:.1f}", *tm));
          }
          if (!w.focus || !w.torch) append_note(w.other, why_missing(f, t, fb, 'g'));
          rows.push_back(w);
        }
  }
  return rows;
}

// One line per training run (both sides), with the first losses.
void print_gpt_details(const Options& o, const Results& f, const Results& t) {
  std::vector<std::string> keys;
  if (o.sections.find('e') != std::string::npos)
    for (const GptConfig& c : o.gpt) keys.push_back(c.name);
  for (const GptConfig& c : o.amp)
    for (const char* mode : {"amp:", "graph:", "compile:"}) keys.push_back(mode + c.name);
  for (const std::string& key : keys) {
    for (const Results* r : {&f, &t}) {
      const json* jp = gpt_of(*r, key);
      if (!jp) continue;
      const json& j = *jp;
      std::printf("gpt %-14s %-6s params %lld, batch %lld x %lld, %lld steps (%lld timed, %.2f s): %.0f tokens/s",
                  key.c_str(), j.value("framework", "?").c_str(), j.value("params", 0LL), j.value("batch", 0LL),
                  j.value("context", 0LL), j.value("steps", 0LL), j.value("timed_steps", 0LL), j.value("seconds", 0.0),
                  j.value("tokens_per_s", 0.0));
      if (j.contains("peak_bytes")) std::printf(", peak %.0f MiB", j["peak_bytes"].get<double>() / 1048576.0);
      if (j.contains("capture_s")) std::printf(", capture %.2f s", j["capture_s"].get<double>());
      if (j.contains("compile_s")) std::printf(", compile (first step) %.1f s", j["compile_s"].get<double>());
      if (j.contains("note")) std::printf(" (%s)", j["note"].get<std::string>().c_str());
      std::printf("\n   losses:");
      const auto& l = j["losses"];
      for (size_t i = 0; i < l.size() && i < 10; ++i) std::printf(" %.5f", l[i].get<double>());
      std::printf("\n");
    }
  }
}

// (e): the first 10 float32 losses side by side, the largest relative difference, PASS/FAIL.
void print_parity(const Options& o, const Results& f, const Results& t) {
  std::printf("\n=== float32 parity: first 10 losses, same weights and batches, TF32 off on both sides "
              "(target: relative difference <= 1e-4)\n");
  for (const GptConfig& c : o.gpt) {
    const json* a = gpt_of(f, c.name);
    const json* b = gpt_of(t, c.name);
    if (!a || !b) {
      std::printf("gpt %s: NOT RUN (%s)\n", c.name.c_str(), why_missing(f, t, "gpt." + c.name, 'e').c_str());
      continue;
    }
    std::printf("gpt %-8s step %12s %12s %10s\n", c.name.c_str(), "focus", "torch", "rel diff");
    const auto& la = (*a)["losses"];
    const auto& lb = (*b)["losses"];
    for (size_t k = 0; k < 10 && k < la.size() && k < lb.size(); ++k) {
      const double x = la[k].get<double>(), y = lb[k].get<double>();
      std::printf("             %4zu %12.6f %12.6f %10.1e\n", k, x, y, std::abs(x - y) / std::abs(y));
    }
    const auto [worst, n] = loss_diff(a, b);
    std::printf("gpt %s: max relative difference %.1e over %zu steps: %s\n", c.name.c_str(), worst, n,
                n < 10 ? "FAIL (fewer than 10 steps)" : worst <= 1e-4 ? "PASS" : "FAIL");
  }
}

std::string sci(std::optional<double> v) { return v ? fmt::format("{:.2e}", *v) : std::string("-"); }

// (g): the flash check, per case and tensor.
void print_attention_check(const Options& o, const Results& f, const Results& t) {
  std::printf("\n=== flash attention check: focus flash vs torch flash and a float64 reference on the same %s\n"
              "    inputs [1, 4, L, hd]; error = max |a - b| / max |reference|; PASS: focus-ref <= 2 x torch-ref + 2e-3\n"
              "    (<= 1e-2 where torch has no flash kernel)\n",
              o.attn_dtype == "f32" ? "float32" : "bf16");
  if (auto it = f.missing.find("attn.check"); it != f.missing.end()) {
    std::printf("NOT RUN: focus: %s\n", it->second.c_str());
    return;
  }
  std::printf("%-22s %-5s %12s %12s %12s  %s\n", "case", "grad", "focus-torch", "focus-ref", "torch-ref", "");
  int i = 0;
  for (const auto& [L, hd, causal] : check_cases(o)) {
    for (const char* n : {"out", "dq", "dk", "dv"}) {
      const CheckFig c = check_fig(t, i, n);
      std::printf("%-22s %-5s %12s %12s %12s  %s\n", fmt::format("L{} hd{} {}", L, hd, causal ? "causal" : "full").c_str(),
                  n, sci(c.ft).c_str(), sci(c.fr).c_str(), sci(c.tr).c_str(),
                  !c.fr ? "NOT RUN" : check_ok(c) ? "PASS" : "FAIL");
    }
    ++i;
  }
}

// ---- targets -----------------------------------------------------------------------------------

struct Target {
  std::string name, goal, measured, status;  // status: PASS, FAIL, NOT RUN
};

std::vector<Target> targets_of(const Options& o, const Results& f, const Results& t, const std::string& device_name) {
  std::vector<Target> out;
  auto has = [&](char c) { return o.sections.find(c) != std::string::npos; };
  const double peak = bf16_peak_tflops(o, device_name);
  if (has('f')) {
    for (const GptConfig& c : o.amp) {
      const json* fe = gpt_of(f, "amp:" + c.name);
      const json* fg = gpt_of(f, "graph:" + c.name);
      const json* te = gpt_of(t, "amp:" + c.name);
      const json* tc = gpt_of(t, "compile:" + c.name);
      const auto a = fig(fe, "tokens_per_s"), b = fig(te, "tokens_per_s"), g = fig(fg, "tokens_per_s");
      Target x{fmt::format("GPT {} bf16 step: focus / torch eager", c.name), ">= 1.10x", "", "NOT RUN"};
      if (a && b) {
        x.measured = fmt::format("{:.2f}x", *a / *b);
        const auto ma = mfu(a, fe, peak), mb = mfu(b, te, peak);
        if (ma && mb) x.measured += fmt::format(" (MFU {:.1f}% vs {:.1f}%)", *ma, *mb);
        if (auto tcs = fig(tc, "tokens_per_s")) x.measured += fmt::format("; compile {:.2f}x", *a / *tcs);
        x.status = *a / *b >= 1.1 ? "PASS" : "FAIL";
      } else {
        x.measured = why_missing(f, t, "gpt.amp:" + c.name);
      }
      out.push_back(x);
      Target y{fmt::format("GPT {} bf16 step: CUDA graph, or launches", c.name), "graph, or < 5%", "", "NOT RUN"};
      if (a && g) {
        const double overhead = 1.0 - *a / *g;  // 1 - graph step time / eager step time
        const auto [d, n] = loss_diff(fg, fe, 10, static_cast<size_t>(0));
        y.measured = fmt::format("graph {:.2f}x eager; launches {:.1f}% of a step; losses {:.1e}", *g / *a,
                                 100 * overhead, d);
        // The graph must give the eager run's losses (bf16: 1e-2 relative).
        y.status = n > 0 && d <= 1e-2 ? "PASS" : "FAIL";
      } else if (a) {
        y.measured = "graph: " + why_missing(f, Results(), "gpt.graph:" + c.name);
      } else {
        y.measured = why_missing(f, t, "gpt.amp:" + c.name);
      }
      out.push_back(y);
    }
  }
  if (has('e')) {
    for (const GptConfig& c : o.gpt) {
      Target x{fmt::format("float32 losses, GPT {}: focus vs torch", c.name), "<= 1e-4 rel", "", "NOT RUN"};
      const json* a = gpt_of(f, c.name);
      const json* b = gpt_of(t, c.name);
      if (a && b) {
        const auto [d, n] = loss_diff(a, b);
        x.measured = fmt::format("{:.1e} over {} steps", d, n);
        x.status = n >= 10 && d <= 1e-4 ? "PASS" : "FAIL";
      } else {
        x.measured = why_missing(f, t, "gpt." + c.name, 'e');
      }
      out.push_back(x);
    }
  }
  if (has('g')) {
    Target x{fmt::format("attention fwd+bwd {}: focus flash / torch flash", o.attn_dtype), ">= 0.80x each", "",
             "NOT RUN"};
    double worst = 1e300, best = 0;
    std::string worst_case, missing;
    int n = 0, cases = 0;
    for (const AttnConfig& c : o.attn)
      for (int64_t hd : o.attn_hd)
        for (bool causal : {false, true}) {
          ++cases;
          const std::string k = attn_name("flash", "fb", c.L, hd, causal);
          const auto a = get(f.sec, k), b = get(t.sec, k);
          if (!a || !b) {
            if (missing.empty()) missing = why_missing(f, t, k, 'g');
            continue;
          }
          const double r = *b / *a;  // speed: torch time / focus time
          ++n;
          best = std::max(best, r);
          if (r < worst) worst = r, worst_case = fmt::format("L{} hd{} {}", c.L, hd, causal ? "causal" : "full");
        }
    if (n > 0) {
      x.measured = fmt::format("worst {:.2f}x ({}), best {:.2f}x, {}/{} cases", worst, worst_case, best, n, cases);
      x.status = n == cases && worst >= 0.8 ? "PASS" : "FAIL";
      if (n < cases) x.measured += "; " + missing;
    } else {
      x.measured = missing;
    }
    out.push_back(x);
    Target y{"flash attention output and grads vs torch", "<= 2x torch's error", "", "NOT RUN"};
    if (auto it = f.missing.find("attn.check"); it != f.missing.end()) {
      y.measured = "focus: " + it->second;
    } else {
      int checked = 0, bad = 0;
      double worst_ft = 0;
      bool torch_flash = false;
      for (int i = 0; i < static_cast<int>(check_cases(o).size()); ++i)
        for (const char* nm : {"out", "dq", "dk", "dv"}) {
          const CheckFig c = check_fig(t, i, nm);
          if (!c.fr) continue;
          ++checked;
          bad += check_ok(c) ? 0 : 1;
          if (c.ft) torch_flash = true, worst_ft = std::max(worst_ft, *c.ft);
        }
      if (checked > 0) {
        y.measured = torch_flash ? fmt::format("{} of {} tensors within; max |focus - torch| {:.1e}", checked - bad, checked, worst_ft)
                                 : fmt::format("{} of {} tensors within 1e-2 of float64 (torch has no flash)", checked - bad, checked);
        y.status = bad == 0 ? "PASS" : "FAIL";
      } else {
        auto it2 = t.missing.find("attn.check");
        y.measured = it2 != t.missing.end() ? "torch: " + it2->second : why_missing(f, t, "section.g", 'g');
      }
    }
    out.push_back(y);
  }
  if (has('a') && !o.sizes.empty()) {
    const int64_t n = std::find(o.sizes.begin(), o.sizes.end(), 8192) != o.sizes.end()
                          ? 8192
                          : *std::max_element(o.sizes.begin(), o.sizes.end());
    Target x{fmt::format("bf16 matmul {}: focus / raw cuBLAS", n), ">= 95%", "", "NOT RUN"};
    const auto a = get(f.sec, fmt::format("mm.bf16.{}", n)), b = get(f.sec, fmt::format("cublas.mm.bf16.{}", n));
    if (a && b) {
      x.measured = fmt::format("{:.1f}% ({:.0f} vs {:.0f} TFLOP/s)", 100 * *b / *a, 2.0 * n * n * n / *a * 1e-12,
                               2.0 * n * n * n / *b * 1e-12);
      x.status = *b / *a >= 0.95 ? "PASS" : "FAIL";
    } else {
      x.measured = g_dev.is_cuda() ? why_missing(f, Results(), fmt::format("cublas.mm.bf16.{}", n), 'a')
                                   : "no cuBLAS baseline on the CPU";
      if (x.measured.empty()) x.measured = why_missing(f, Results(), fmt::format("mm.bf16.{}", n), 'a');
      if (x.measured.empty()) x.measured = "no figure";
    }
    out.push_back(x);
  }
  for (Target& x : out)
    if (x.measured.empty()) x.measured = t.error.empty() ? "no figure" : "torch: " + t.error;
  return out;
}

void print_targets(const std::vector<Target>& targets) {
  if (targets.empty()) return;
  std::printf("\n=== targets\n%-50s %-20s %-8s %s\n", "target", "goal", "status", "measured");
  for (const Target& x : targets)
    std::printf("%-50s %-20s %-8s %s\n", x.name.c_str(), x.goal.c_str(), x.status.c_str(), x.measured.c_str());
}

void write_json(const Options& o, const Results& f, const Results& t, const std::vector<Row>& rows,
                const std::vector<Target>& targets, const std::string& device_name, const std::string& date) {
  auto opt = [](std::optional<double> v) { return v && std::isfinite(*v) ? json(*v) : json(nullptr); };
  json j{{"date", date},
         {"command", o.command_line},
         {"device", device_name},
         {"bf16_peak_tflops", bf16_peak_tflops(o, device_name)},
         {"torch_version", t.version},
         {"torch_device", t.device_name},
         {"torch_error", t.error},
         {"focus", results_to_json(f)},
         {"torch", results_to_json(t)}};
  json jr = json::array();
  for (const Row& w : rows)
    jr.push_back({{"item", w.item}, {"unit", w.unit}, {"focus", opt(w.focus)}, {"torch", opt(w.torch)},
                  {"speed", opt(w.speed)}, {"notes", w.other}});
  j["rows"] = jr;
  json jt = json::array();
  for (const Target& x : targets)
    jt.push_back({{"target", x.name}, {"goal", x.goal}, {"measured", x.measured}, {"status", x.status}});
  j["targets"] = jt;
  std::ofstream out(o.json_path);
  out << j.dump(1) << "\n";
  if (!out) std::fprintf(stderr, "bench_gpu: cannot write %s\n", o.json_path.c_str());
  else std::printf("json: %s\n", o.json_path.c_str());
}

// ---- driver --------------------------------------------------------------------------------

// "medium:40,gpt2:12:8" -> name:steps[:batch] (flag: --gpt or --amp-gpt)
std::vector<GptConfig> parse_gpt(const std::string& s, const char* flag) {
  std::vector<GptConfig> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty()) continue;
    GptConfig c;
    std::stringstream ts(tok);
    std::getline(ts, c.name, ':');
    auto number = [&](int fallback) {
      std::string part;
      if (!std::getline(ts, part, ':')) return fallback;
      int v = 0;
      const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
      FOCUS_CHECK(ec == std::errc() && end == part.data() + part.size(),
                  "[bench_gpu] {} {}: '{}' is not an integer (expected name:steps[:batch])", flag, tok, part);
      return v;
    };
    c.steps = number(12);
    c.batch = number(0);
    FOCUS_CHECK(!c.name.empty() && ts.peek() == std::char_traits<char>::eof(),
                "[bench_gpu] {} {}: expected name:steps[:batch]", flag, tok);
    FOCUS_CHECK(c.steps >= 2, "[bench_gpu] {} {}: at least 2 steps", flag, tok);
    FOCUS_CHECK(c.batch >= 0, "[bench_gpu] {} {}: the batch must be positive (or 0: the config's own)", flag, tok);
    out.push_back(c);
  }
  return out;
}

// "1024:4:16,4096:1:16" -> L:B:H
std::vector<AttnConfig> parse_attn(const std::string& s) {
  std::vector<AttnConfig> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty()) continue;
    AttnConfig c;
    char c1 = 0, c2 = 0;
    std::istringstream in(tok);
    FOCUS_CHECK((in >> c.L >> c1 >> c.B >> c2 >> c.H) && c1 == ':' && c2 == ':' && c.L > 0 && c.B > 0 && c.H > 0,
                "[bench_gpu] --attn {}: expected L:B:H, positive", tok);
    out.push_back(c);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  Options o;
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
  CLI::App app{"bench_gpu: focus on a CUDA GPU against PyTorch on the same GPU, side by side", "bench_gpu"};
  app.add_option("--device", o.device, "cpu runs the same code paths on the CPU (a smoke run where there is no GPU)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cuda", "cpu"}));
  app.add_option("--sections", o.sections, "Letters a-h; commas separate rounds, run in order")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) {
            return s.find_first_not_of("abcdefgh,") == std::string::npos ? std::string()
                                                                         : "letters a-h and commas, got '" + s + "'";
          },
          "", "sections"));
  app.add_flag("--quick", o.quick, "Small sizes and few repetitions");
  bool no_torch = false;
  bench::add_torch_flags(app, no_torch, o.python);
  // Options whose --quick and --device cpu defaults give way to a value on the command line.
  CLI::Option* sizes_opt = bench::add_list(app, "--sizes", o.sizes, "(a) matmul sizes n")->check(bench::at_least(1));
  CLI::Option* elems_opt = bench::add_number(app, "--elems", o.elems, "(c) float32 elements per tensor", 1);
  CLI::Option* rows_opt = bench::add_number(app, "--rows", o.rows, "(d) rows", 1);
  CLI::Option* cols_opt = bench::add_number(app, "--cols", o.cols, "(d) columns", 2);
  CLI::Option* ops_opt = bench::add_number(app, "--overhead-ops", o.overhead_ops, "(b) adds per loop", 10);
  std::string gpt_arg = "medium:40,gpt2:12:8", amp_arg = "gpt2:12:16", attn_arg = "1024:4:16,4096:1:16";
  CLI::Option* gpt_opt = app.add_option("--gpt", gpt_arg,
                                        "(e) GPT configs name:steps[:batch] (tiny, small, medium of "
                                        "bench_gpt_torch.py, gpt2)")
                             ->capture_default_str()
                             ->type_name("LIST");
  CLI::Option* amp_opt =
      app.add_option("--amp-gpt", amp_arg, "(f), (h) GPT configs under bf16 autocast, name:steps[:batch]")
          ->capture_default_str()
          ->type_name("LIST");
  CLI::Option* attn_opt = app.add_option("--attn", attn_arg,
                                         "(g) attention shapes L:B:H (L = S), each at every --attn-hd, "
                                         "causal and not")
                              ->capture_default_str()
                              ->type_name("LIST");
  CLI::Option* hd_opt = bench::add_list(app, "--attn-hd", o.attn_hd, "(g) head sizes")->check(bench::at_least(1));
  CLI::Option* check_len_opt =
      bench::add_number(app, "--attn-check-len", o.attn_check_len, "(g) L = S of the correctness cases", 1);
  app.add_option("--attn-dtype", o.attn_dtype, "(g) dtype (default: bf16; f32 with --device cpu)")
      ->check(CLI::IsMember({"bf16", "f32"}));
  bench::add_number(app, "--gpt-warmup", o.gpt_warmup, "GPT steps before the timed ones", 0);
  bench::add_number(app, "--gpt-budget", o.gpt_budget, "Seconds of timed GPT steps per config and framework, at most",
                    0, true);
  bench::add_number(app, "--warmup", o.warmup, "Warm-up calls", 1);
  bench::add_number(app, "--reps", o.reps, "Repetitions; a figure is their median", 1);
  bench::add_number(app, "--min-sample", o.min_sample, "Seconds per repetition, at least", 0, true);
  bench::add_number(app, "--max-measure", o.max_measure, "Seconds per measurement, about (fewer repetitions past it)",
                    0, true);
  app.add_option("--torch-script", o.torch_script, "The PyTorch half (default: the script beside the source)")
      ->type_name("PATH");
  app.add_option("--attention", o.attention, "torch's attention in the GPT: sdpa (its best) or math")
      ->capture_default_str()
      ->check(CLI::IsMember({"sdpa", "math"}));
  app.add_option("--workdir", o.workdir, "Keep the GPT data files here (default: a temporary folder)")
      ->type_name("DIR");
  bench::add_number(app, "--worker-timeout", o.worker_timeout, "Seconds per focus worker process, at most", 0, true);
  bench::add_number(app, "--budget", o.budget, "Seconds for the whole run, shared out among the rounds", 0, true);
  app.add_option("--peak-tflops", o.peak_tflops,
                 "bf16 dense peak for MFU (default: from the GPU's name, H100/H200 SXM 989)")
      ->check(bench::at_least(0, true));
  bench::add_number(app, "--compile-timeout", o.compile_timeout, "(h) seconds for torch.compile's run, at most", 0,
                    true);
  app.add_option("--json", o.json_path, "Also write everything to this file")->type_name("FILE");
  // The driver runs itself with these, one worker process per section or GPT config.
  app.add_option("--worker", o.worker)->group("");
  app.add_option("--gpt-name", o.gpt_name)->group("");
  app.add_option("--gpt-file", o.gpt_file)->group("");
  app.add_option("--amp-mode", o.amp_mode)->group("");
  app.add_option("--attn-check", o.attn_check)->group("");
  app.footer(
      "sections: a matmul (f32, tf32, bf16), b per-op overhead, c elementwise bandwidth,\n"
      "          d softmax/layer_norm/cross_entropy, e GPT training steps (float32, loss parity),\n"
      "          f GPT step under bf16 autocast (eager and CUDA graph), g attention (flash, math,\n"
      "          correctness), h torch.compile of f's step (torch only); commas separate rounds,\n"
      "          run in order, each focus then torch within its share of --budget");
  if (auto rc = bench::parse_command_line(app, argc, argv)) return *rc;
  o.torch = !no_torch;
  o.gpt = parse_gpt(gpt_arg, "--gpt");
  o.amp = parse_gpt(amp_arg, "--amp-gpt");
  o.attn = parse_attn(attn_arg);
  const bool sizes_set = sizes_opt->count() > 0, elems_set = elems_opt->count() > 0, rows_set = rows_opt->count() > 0;
  const bool cols_set = cols_opt->count() > 0, ops_set = ops_opt->count() > 0, gpt_set = gpt_opt->count() > 0;
  const bool amp_set = amp_opt->count() > 0, attn_set = attn_opt->count() > 0, hd_set = hd_opt->count() > 0;
  const bool check_set = check_len_opt->count() > 0;
  const bool cpu = o.device == "cpu";
  if (o.quick) {
    if (!sizes_set) o.sizes = cpu ? std::vector<int64_t>{256} : std::vector<int64_t>{2048};
    if (!elems_set) o.elems = cpu ? int64_t{1} << 20 : int64_t{1} << 24;
    if (!rows_set) o.rows = cpu ? 512 : 4096;
    if (!cols_set) o.cols = cpu ? 512 : 1024;
    if (!ops_set) o.overhead_ops = cpu ? 2000 : 5000;
    if (!gpt_set) o.gpt = cpu ? std::vector<GptConfig>{{"tiny", 12, 0}, {"small", 10, 0}} : std::vector<GptConfig>{{"medium", 12, 0}};
    if (!amp_set) o.amp = cpu ? std::vector<GptConfig>{{"tiny", 8, 0}} : std::vector<GptConfig>{{"medium", 10, 0}};
    if (!attn_set) o.attn = cpu ? std::vector<AttnConfig>{{128, 1, 2}} : std::vector<AttnConfig>{{1024, 2, 8}};
    if (!hd_set && cpu) o.attn_hd = {32, 64};
    if (!check_set && cpu) o.attn_check_len = 77;
    o.reps = std::min(o.reps, 3);
    o.warmup = std::min(o.warmup, 2);
    o.min_sample = std::min(o.min_sample, 0.01);
    o.gpt_warmup = std::min(o.gpt_warmup, 2);
  } else if (cpu) {
    if (!gpt_set) o.gpt = {{"small", 10, 0}};
    if (!amp_set) o.amp = {{"small", 8, 0}};
    if (!attn_set) o.attn = {{256, 1, 4}};
  }
  if (o.attn_dtype.empty()) o.attn_dtype = cpu ? "f32" : "bf16";
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
  const double deadline = t_start + o.budget;

  Results f, t;
  const std::string dir =
      o.workdir.empty() ? (fs::temp_directory_path() / fmt::format("focus_bench_gpu_{}", getpid())).string() : o.workdir;
  fs::create_directories(dir);
  std::map<std::string, std::string> gpt_files, amp_files;
  bool gpt_prepared = false, amp_prepared = false;
  // Rounds: the share of the time left that a round gets is its sections' expected cost (s
  // on an H100, focus and torch together) over that of the rounds still to run; within a
  // round focus's workers stop at 60% of the share, torch gets the rest (at least 30 s).
  const std::map<char, double> cost{{'a', 20}, {'b', 10}, {'c', 15}, {'d', 15}, {'e', 40},
                                    {'f', 45}, {'g', 35}, {'h', 120}};
  std::vector<std::string> rounds;
  {
    std::stringstream ss(o.sections);
    std::string r;
    while (std::getline(ss, r, ','))
      if (!r.empty()) rounds.push_back(r);
  }
  auto round_cost = [&](const std::string& r) {
    double c = 0;
    for (char ch : r) c += cost.count(ch) ? cost.at(ch) : 10;
    return c;
  };
  double t_focus = 0, t_torch = 0;
  for (size_t ri = 0; ri < rounds.size(); ++ri) {
    const std::string& round = rounds[ri];
    double rest = 0;
    for (size_t j = ri; j < rounds.size(); ++j) rest += round_cost(rounds[j]);
    const double r0 = now_s();
    const double share = std::max(0.0, deadline - r0) * round_cost(round) / rest;
    const double round_end = r0 + share, focus_end = r0 + 0.6 * share;
    std::fprintf(stderr, "bench_gpu: round %zu (sections %s): %.0f s of the %.0f s left\n", ri + 1, round.c_str(),
                 share, deadline - r0);
    TorchRun tr;
    tr.sections = round;
    for (char c : round) {
      if (c == 'e' && !gpt_prepared) gpt_files = prepare_gpt(o, o.gpt, "gpt", dir, f), gpt_prepared = true;
      if ((c == 'f' || c == 'h') && !amp_prepared) amp_files = prepare_gpt(o, o.amp, "amp", dir, f), amp_prepared = true;
      if (c == 'e') {
        for (const GptConfig& g : o.gpt)
          if (gpt_files.count(g.name))
            run_worker(o, "e", fmt::format(" --gpt-name {} --gpt-file {}", g.name, shell_quote(gpt_files.at(g.name))),
                       "gpt." + g.name, focus_end - now_s(), f);
        tr.gpt_files = gpt_files;
      } else if (c == 'f') {
        for (const GptConfig& g : o.amp)
          if (amp_files.count(g.name))
            for (const char* mode : {"eager", "graph"})
              run_worker(o, "f",
                         fmt::format(" --gpt-name {} --gpt-file {} --amp-mode {}", g.name,
                                     shell_quote(amp_files.at(g.name)), mode),
                         fmt::format("gpt.{}:{}", std::string(mode) == "eager" ? "amp" : "graph", g.name),
                         focus_end - now_s(), f);
        tr.amp_files = amp_files;
      } else if (c == 'h') {
        tr.amp_files = amp_files;  // torch only
      } else if (c == 'g') {
        const std::string check = (fs::path(dir) / "attn_check.safetensors").string();
        std::error_code ec;
        fs::remove(check, ec);
        run_worker(o, "g", " --attn-check " + shell_quote(check), "section.g", focus_end - now_s(), f);
        if (fs::exists(check, ec)) tr.attn_check = check;
      } else if (std::string("abcd").find(c) != std::string::npos) {
        run_worker(o, std::string(1, c), "", std::string("section.") + c, focus_end - now_s(), f);
      } else {
        std::fprintf(stderr, "bench_gpu: no section %c (sections are a-h)\n", c);
      }
    }
    const double r1 = now_s();
    t_focus += r1 - r0;
    std::fflush(stdout);
    if (!o.torch) {
      t.error = "skipped (--no-torch)";
    } else if (deadline - now_s() < 20) {
      append_error(t, fmt::format("sections {}: skipped, the {:.0f} s budget is spent", round, o.budget));
      for (char c : round) t.missing[std::string("section.") + c] = "skipped: the budget is spent";
    } else {
      double limit = std::max(30.0, round_end - now_s());
      // torch.compile alone in a round: at most --compile-timeout, whatever the share.
      if (round == "h") limit = std::min(limit, o.compile_timeout);
      run_torch(o, tr, std::min(limit, deadline - now_s()), t);
    }
    t_torch += now_s() - r1;
  }
  if (o.workdir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  const std::string device_name = g_dev.is_cuda() ? cuda::get_device_name(0) : std::string("cpu");
  std::printf("torch: %s%s%s\n", t.version.empty() ? "-" : t.version.c_str(),
              t.device_name.empty() ? "" : (" on " + t.device_name).c_str(),
              t.error.empty() ? "" : ("  (" + t.error + ")").c_str());
  std::printf("time: focus %.0f s, torch %.0f s, %.0f s in all (budget %.0f s)\n", t_focus, t_torch,
              now_s() - t_start, o.budget);
  if (has('e') || has('f') || has('h')) print_gpt_details(o, f, t);
  if (has('e')) print_parity(o, f, t);
  if (has('g')) print_attention_check(o, f, t);
  std::printf("\n=== summary: focus vs PyTorch %s on %s; speed = focus speed / torch speed (> 1: focus faster)\n",
              t.version.empty() ? "-" : t.version.c_str(),
              g_dev.is_cuda() ? device_name.c_str() : "the cpu (smoke run)");
  const std::vector<Row> rows = report(o, f, t, device_name);
  print_rows(rows);
  const std::vector<Target> targets = targets_of(o, f, t, device_name);
  print_targets(targets);
  if (!f.missing.empty() || !t.missing.empty() || !t.error.empty())
    std::printf("(%zu focus and %zu torch figures missing%s)\n", f.missing.size(), t.missing.size(),
                t.error.empty() ? "" : (": torch " + t.error).c_str());
  if (!o.json_path.empty()) write_json(o, f, t, rows, targets, device_name, date);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_gpu: %s\n", e.what());
  return 1;
}
