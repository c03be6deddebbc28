// Flash attention on CUDA (backends/cuda/flash_attention.cu) against the composed path
// (backends/cuda/attention.cu) through focus::scaled_dot_product_attention with autograd:
// the output and the gradients of q, k, v (and of an additive mask) of sum(out * w), for
// float16, bfloat16 and float32 (TF32, under set_float32_matmul_precision("high")), head dims
// 32, 64 and 128, every mask kind, broadcast k/v batch dims, strided inputs, dropout, and
// sequence lengths from 1 to 4096 (partial tiles, L != S, causal with L > S and L < S).
// Where the problem is small enough, both GPU paths are also compared with a float64 CPU
// reference computed from the same (rounded) inputs, and the flash error may be at most
// twice the composed path's (or the dtype's tolerance); elsewhere flash and composed are
// compared with each other. The fallbacks (need_weights, head dim 48, float32 at "highest")
// and the flash-only guard's errors are checked too. Every case is skipped, with the
// printed reason, where there is no GPU.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/ops/attention.h"
#include "test_util.h"

using namespace focus;
using focus::testing::have_cuda;

namespace {

const Device kGpu = Device::cuda(0);

enum class MaskKind { None, Causal, Bool, KeyPad, Additive };
// How q, k and v reach the kernels: contiguous, heads strided ([B, L, H, E] viewed as
// [B, H, L, E]: 16-byte loads with batch strides), or a last-dim stride != 1 (scalar loads;
// grad_out then comes transposed too).
enum class Layout { Contiguous, HeadsStrided, ColumnStrided };

const char* mask_name(MaskKind m) {
  switch (m) {
    case MaskKind::None: return "no mask";
    case MaskKind::Causal: return "causal";
    case MaskKind::Bool: return "bool [L, S]";
    case MaskKind::KeyPad: return "bool key padding [B, 1, 1, S]";
    case MaskKind::Additive: return "additive [L, S] (requires grad)";
  }
  return "?";
}

struct Problem {
  int64_t B = 2, H = 2, L = 0, S = 0, E = 64;
  MaskKind mask = MaskKind::None;
  bool kv_broadcast = false;  // k, v [B, 1, S, E] shared by the H heads of q
  Layout layout = Layout::Contiguous;
  double dropout = 0;
};

std::string describe(const Problem& p, DType dt) {
  return "B " + std::to_string(p.B) + " H " + std::to_string(p.H) + " L " + std::to_string(p.L) + " S " +
         std::to_string(p.S) + " E " + std::to_string(p.E) + ", " + mask_name(p.mask) +
         (p.kv_broadcast ? ", k/v broadcast over heads" : "") +
         (p.layout == Layout::HeadsStrided    ? ", heads strided"
          : p.layout == Layout::ColumnStrided ? ", last dim strided"
                                              : "") +
         (p.dropout > 0 ? ", dropout " + std::to_string(p.dropout) : "") + ", " + std::string(dtype_name(dt));
}

// set_float32_matmul_precision for a scope, restored after.
class PrecisionGuard {
 public:
  explicit PrecisionGuard(const std::string& p) : saved_(get_float32_matmul_precision()) {
    set_float32_matmul_precision(p);
  }
  ~PrecisionGuard() { set_float32_matmul_precision(saved_); }
  PrecisionGuard(const PrecisionGuard&) = delete;
  PrecisionGuard& operator=(const PrecisionGuard&) = delete;

 private:
  std::string saved_;
};

// One problem's float32 values on the CPU: q, k, v, the mask (undefined for none and causal)
// and the weights w of the loss sum(out * w).
struct Inputs {
  Tensor q, k, v, mask, w;
};

Inputs make_inputs(const Problem& p, uint64_t seed) {
  Generator gen(seed);
  Inputs in;
  const int64_t hk = p.kv_broadcast ? 1 : p.H;
  in.q = randn({p.B, p.H, p.L, p.E}, {}, &gen);
  in.k = randn({p.B, hk, p.S, p.E}, {}, &gen);
  in.v = randn({p.B, hk, p.S, p.E}, {}, &gen);
  switch (p.mask) {
    case MaskKind::None:
    case MaskKind::Causal: break;
    case MaskKind::Bool:
      in.mask = lt(rand({p.L, p.S}, {}, &gen), 0.8);
      if (p.L > 1) in.mask.select(0, p.L / 2).fill_(false);  // a query that sees no key
      break;
    case MaskKind::KeyPad:
      in.mask = ones({p.B, 1, 1, p.S}, TensorOptions(kBool));
      if (p.B > 1 && p.S / 4 > 0) in.mask.select(0, 1).narrow(-1, p.S - p.S / 4, p.S / 4).fill_(false);
      break;
    case MaskKind::Additive: in.mask = randn({p.L, p.S}, {}, &gen) * 0.5; break;
  }
  in.w = rand({p.B, p.H, p.L, p.E}, {}, &gen);
  return in;
}

// Runs the problem on `dev` in dtype `dt` from the inputs rounded to `values` first (so a
// float64 reference sees exactly the 16-bit inputs), under a guard allowing only `backend`.
// Returns out, grad q, grad k, grad v (and grad mask for an additive mask) as float64 on the
// CPU.
std::vector<Tensor> run(const Problem& p, const Inputs& in, DType dt, DType values, Device dev, SDPBackend backend) {
  std::optional<PrecisionGuard> tf32;
  if (dt == kFloat32) tf32.emplace("high");
  SdpaKernelGuard guard({backend});
  auto leaf = [&](const Tensor& t) {
    Tensor x = t.to(values).to(dt).to(dev).detach();
    x.requires_grad_();
    return x;
  };
  // The leaves hold the layout's memory; the views the call takes are made from them.
  auto stored = [&](const Tensor& t) {
    switch (p.layout) {
      case Layout::Contiguous: return t;
      case Layout::HeadsStrided: return t.transpose(1, 2).contiguous();  // [B, L, H, E]
      case Layout::ColumnStrided: return t.transpose(-1, -2).contiguous();  // [B, H, E, L]
    }
    return t;
  };
  auto view = [&](const Tensor& t) {
    switch (p.layout) {
      case Layout::Contiguous: return t;
      case Layout::HeadsStrided: return t.transpose(1, 2);
      case Layout::ColumnStrided: return t.transpose(-1, -2);
    }
    return t;
  };
  const Tensor q = leaf(stored(in.q)), k = leaf(stored(in.k)), v = leaf(stored(in.v));
  Tensor mask;
  if (p.mask == MaskKind::Additive) mask = leaf(in.mask);
  else if (in.mask.defined()) mask = in.mask.to(dev);
  if (p.dropout > 0) manual_seed(4321);  // the same Philox stream for every path
  const Tensor out = scaled_dot_product_attention(view(q), view(k), view(v), mask, p.dropout, p.mask == MaskKind::Causal);
  const Tensor w = in.w.to(values).to(dt).to(dev);
  Tensor loss = p.layout == Layout::ColumnStrided ? sum(out.transpose(-1, -2) * w.transpose(-1, -2)) : sum(out * w);
  loss.backward();
  auto host = [](const Tensor& t) { return t.detach().cpu().to(kFloat64); };
  std::vector<Tensor> r{host(out), host(q.grad()), host(k.grad()), host(v.grad())};
  if (p.mask == MaskKind::Additive) r.push_back(host(mask.grad()));
  return r;
}

// ||got - want|| / ||want|| (0 when both are zero; +inf when got has a NaN or inf).
double rel_err(const Tensor& got, const Tensor& want) {
  const std::vector<double> a = got.to_vector<double>(), b = want.to_vector<double>();
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return num == 0 ? 0 : std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

// Relative error a 16-bit (or TF32) attention may have against float64.
double tolerance(DType dt) { return dt == kBFloat16 ? 2e-2 : 4e-3; }

const char* const kResultNames[] = {"out", "grad q", "grad k", "grad v", "grad mask"};

// Flash against composed on the GPU and, when the problem is small, both against a float64
// reference on the CPU.
void check_problem(const Problem& p, DType dt, uint64_t seed) {
  INFO(describe(p, dt));
  const Inputs in = make_inputs(p, seed);
  const std::vector<Tensor> flash = run(p, in, dt, dt, kGpu, SDPBackend::FlashAttention);
  const std::vector<Tensor> math = run(p, in, dt, dt, kGpu, SDPBackend::Math);
  REQUIRE(flash.size() == math.size());
  const bool reference = p.L * p.S <= (int64_t{1} << 20) && p.B * p.H * p.L * p.S <= (int64_t{4} << 20);
  if (reference) {
    const std::vector<Tensor> ref = run(p, in, kFloat64, dt, kCPU, SDPBackend::Math);
    REQUIRE(ref.size() == flash.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      const double ef = rel_err(flash[i], ref[i]), em = rel_err(math[i], ref[i]);
      INFO(kResultNames[i] << ": flash error " << ef << ", composed error " << em << " against float64");
      CHECK(ef <= std::max(2 * em, tolerance(dt)));
    }
  } else {
    for (size_t i = 0; i < flash.size(); ++i) {
      const double e = rel_err(flash[i], math[i]);
      INFO(kResultNames[i] << ": flash vs composed " << e);
      CHECK(e <= 2 * tolerance(dt));
    }
  }
  if (p.mask == MaskKind::Bool && p.L > 1) {
    // The query that sees no key: out = 0 exactly, as the composed path.
    CHECK(testing::allclose(flash[0].select(2, p.L / 2), zeros({p.B, p.H, p.E}, kFloat64), 0, 0));
  }
}

const DType kDtypes[] = {kBFloat16, kFloat16, kFloat32};

}  // namespace

TEST_SUITE("cuda_flash_attention") {
  TEST_CASE("flash attention on CUDA: every mask kind x dtype x head dim, partial tiles") {
    if (!have_cuda()) return;
    uint64_t seed = 100;
    for (const auto& [L, S] : {std::pair<int64_t, int64_t>{17, 128}, {130, 65}})
      for (MaskKind m : {MaskKind::None, MaskKind::Causal, MaskKind::Bool, MaskKind::KeyPad, MaskKind::Additive})
        for (DType dt : kDtypes)
          for (int64_t E : {64, 128}) {
            Problem p;
            p.L = L;
            p.S = S;
            p.E = E;
            p.mask = m;
            check_problem(p, dt, seed++);
          }
  }

  TEST_CASE("flash attention on CUDA: sequence lengths 1 to 4096, L != S, head dims 32, 64, 128") {
    if (!have_cuda()) return;
    struct Row {
      int64_t B, H, L, S, E;
      MaskKind mask;
      DType dt;
    };
    const Row rows[] = {
        {2, 2, 1, 1, 64, MaskKind::None, kBFloat16},
        {2, 2, 17, 17, 128, MaskKind::Causal, kFloat16},
        {2, 2, 1, 128, 64, MaskKind::Bool, kFloat32},
        {2, 2, 17, 1024, 128, MaskKind::KeyPad, kBFloat16},
        {2, 2, 128, 17, 64, MaskKind::Additive, kFloat16},
        {2, 2, 128, 128, 128, MaskKind::Causal, kFloat32},
        {2, 2, 1024, 128, 64, MaskKind::Bool, kBFloat16},
        {1, 2, 128, 4096, 128, MaskKind::Additive, kFloat16},
        {1, 2, 1024, 1024, 64, MaskKind::Causal, kBFloat16},
        {2, 1, 4096, 1024, 128, MaskKind::KeyPad, kFloat32},
        {1, 1, 4096, 4096, 64, MaskKind::Causal, kFloat16},
        {1, 1, 4096, 4096, 128, MaskKind::None, kBFloat16},
        {2, 2, 17, 4096, 32, MaskKind::Bool, kBFloat16},
        {2, 2, 4096, 17, 64, MaskKind::None, kFloat32},
        {2, 2, 1024, 1024, 32, MaskKind::Additive, kFloat16},
    };
    uint64_t seed = 200;
    for (const Row& r : rows) {
      Problem p;
      p.B = r.B;
      p.H = r.H;
      p.L = r.L;
      p.S = r.S;
      p.E = r.E;
      p.mask = r.mask;
      check_problem(p, r.dt, seed++);
    }
  }

  TEST_CASE("flash attention on CUDA: k/v broadcast over heads, strided and transposed inputs") {
    if (!have_cuda()) return;
    uint64_t seed = 300;
    for (DType dt : kDtypes) {
      Problem p;
      p.B = 2;
      p.H = 3;
      p.L = 77;
      p.S = 100;
      p.E = 64;
      p.mask = MaskKind::KeyPad;
      p.kv_broadcast = true;
      check_problem(p, dt, seed++);
      p.kv_broadcast = false;
      p.mask = MaskKind::Causal;
      p.E = 128;
      p.layout = Layout::HeadsStrided;
      check_problem(p, dt, seed++);
      p.mask = MaskKind::Additive;
      p.E = 32;
      p.layout = Layout::ColumnStrided;
      check_problem(p, dt, seed++);
    }
  }

  TEST_CASE("flash attention on CUDA: dropout keeps the composed path's elements (same seed, same output)") {
    if (!have_cuda()) return;
    uint64_t seed = 400;
    for (DType dt : kDtypes)
      for (MaskKind m : {MaskKind::None, MaskKind::Causal, MaskKind::Additive}) {
        Problem p;
        p.L = 70;
        p.S = 131;  // odd: element pairs straddle Philox counters and rows
        p.E = dt == kFloat16 ? 128 : 64;
        p.mask = m;
        p.dropout = 0.3;
        // Against float64 on the CPU too: the CPU draws the same Philox keep flags.
        check_problem(p, dt, seed);
        // And the dropout did something: the output differs from the undropped one.
        const Inputs in = make_inputs(p, seed);
        const Tensor dropped = run(p, in, dt, dt, kGpu, SDPBackend::FlashAttention)[0];
        Problem q = p;
        q.dropout = 0;
        const Tensor plain = run(q, in, dt, dt, kGpu, SDPBackend::FlashAttention)[0];
        CHECK(rel_err(dropped, plain) > 0.1);
        ++seed;
      }
    // p = 1 drops everything: out and every gradient are 0.
    Problem p;
    p.L = 33;
    p.S = 40;
    p.dropout = 1.0;
    const std::vector<Tensor> r = run(p, make_inputs(p, 450), kBFloat16, kBFloat16, kGpu, SDPBackend::FlashAttention);
    for (const Tensor& t : r) CHECK(testing::allclose(t, zeros(t.shape(), kFloat64), 0, 0));
  }

  TEST_CASE("flash attention on CUDA: L == 0 and S == 0") {
    if (!have_cuda()) return;
    SdpaKernelGuard guard({SDPBackend::FlashAttention});
    for (const auto& [L, S] : {std::pair<int64_t, int64_t>{0, 5}, {5, 0}}) {
      INFO("L " << L << " S " << S);
      const Tensor q = randn({2, L, 64}).to(kBFloat16).to(kGpu).requires_grad_();
      const Tensor k = randn({2, S, 64}).to(kBFloat16).to(kGpu).requires_grad_();
      const Tensor v = randn({2, S, 64}).to(kBFloat16).to(kGpu).requires_grad_();
      const Tensor out = scaled_dot_product_attention(q, k, v);
      CHECK(out.shape() == Shape{2, L, 64});
      CHECK(testing::allclose(out.cpu().to(kFloat64), zeros({2, L, 64}, kFloat64), 0, 0));
      sum(out).backward();
      for (const Tensor* t : {&q, &k, &v}) {
        const Tensor g = t->grad();
        if (g.defined()) CHECK(testing::allclose(g.cpu().to(kFloat64), zeros(g.shape(), kFloat64), 0, 0));
      }
    }
  }

  TEST_CASE("flash attention on CUDA: need_weights, head dim 48 and float32 at \"highest\" take the composed path") {
    if (!have_cuda()) return;
    manual_seed(500);
    const Tensor q = randn({2, 3, 40, 64}).to(kGpu), k = randn({2, 3, 50, 64}).to(kGpu),
                 v = randn({2, 3, 50, 64}).to(kGpu);
    const Tensor q48 = randn({2, 3, 40, 48}).to(kGpu), k48 = randn({2, 3, 50, 48}).to(kGpu),
                 v48 = randn({2, 3, 50, 48}).to(kGpu);
    auto flash_taken = [](const Tensor& a, const Tensor& b, const Tensor& c, bool need_weights) {
      return raw::scaled_dot_product_attention(a, b, c, Tensor(), 0.0, false, std::nullopt, need_weights).flash;
    };
    const Tensor qh = q.to(kBFloat16), kh = k.to(kBFloat16), vh = v.to(kBFloat16);
    // The default guard: flash wherever it can, the composed path elsewhere.
    CHECK(flash_taken(qh, kh, vh, false));
    CHECK_FALSE(flash_taken(qh, kh, vh, true));
    CHECK_FALSE(flash_taken(q48.to(kBFloat16), k48.to(kBFloat16), v48.to(kBFloat16), false));
    {
      PrecisionGuard highest("highest");
      CHECK_FALSE(flash_taken(q, k, v, false));
    }
    {
      PrecisionGuard high("high");
      CHECK(flash_taken(q, k, v, false));
    }
    // need_weights still returns the weights, head dim 48 still computes, through Math.
    auto [o, w] = scaled_dot_product_attention(qh, kh, vh, AttentionOptions().need_weights(true));
    CHECK(w.defined());
    CHECK(w.shape() == Shape{2, 3, 40, 50});
    const Tensor o48 = scaled_dot_product_attention(q48.to(kBFloat16), k48.to(kBFloat16), v48.to(kBFloat16));
    Tensor o48_math;
    {
      SdpaKernelGuard math({SDPBackend::Math});
      o48_math = scaled_dot_product_attention(q48.to(kBFloat16), k48.to(kBFloat16), v48.to(kBFloat16));
    }
    CHECK(testing::allclose(o48.cpu().to(kFloat64), o48_math.cpu().to(kFloat64), 0, 0));

    // Flash only: whatever it cannot take is an error naming why.
    SdpaKernelGuard flash_only({SDPBackend::FlashAttention});
    CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q48.to(kBFloat16), k48.to(kBFloat16), v48.to(kBFloat16)),
                         doctest::Contains("does not take these dtypes or head dims"), focus::Error);
    CHECK_THROWS_WITH_AS(scaled_dot_product_attention(qh, kh, vh, AttentionOptions().need_weights(true)),
                         doctest::Contains("need_weights"), focus::Error);
    PrecisionGuard highest("highest");
    CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v), doctest::Contains("does not take these dtypes"),
                         focus::Error);
  }
}
