// The CUDA device: what every build must say about it (no GPU: clear errors, never an
// abort), and, where a GPU is there, the conformance suite in the manner of ggml's
// test-backend-ops: every op on random strided, broadcast, empty and size-1 inputs runs on
// the CPU and on CUDA from the same values, forward and backward, and must agree within a
// tolerance stated per dtype.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <functional>
#include <string>
#include <vector>

#include "models/gpt/gpt.h"
#include "optim/checkpoint.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::check_results_close;
using focus::testing::have_cuda;
using focus::testing::run_with_grads;

namespace {

const Device kGpu = Device::cuda(0);

// Tolerances by dtype (relative, absolute), as the issue states them: float32 1e-5 for
// non-matmul ops, products (TF32 off) a little looser because cuBLAS sums in another order.
struct Tol {
  double rtol, atol;
};
constexpr Tol kExact{0, 0};
constexpr Tol kF32{1e-5, 1e-6};
constexpr Tol kF32Sum{1e-4, 1e-5};
constexpr Tol kF64{1e-10, 1e-12};
constexpr Tol kHalf{1e-2, 1e-2};

// One op of the conformance suite: inputs made on the CPU (float inputs get gradients),
// the op applied to them on a device, and the tolerance of the comparison.
struct OpCase {
  std::string name;
  std::function<std::vector<Tensor>()> inputs;
  focus::testing::DeviceOp op;
  Tol tol = kF32;
};

void check_case(const OpCase& c) {
  INFO("op " << c.name);
  manual_seed(7);
  const std::vector<Tensor> inputs = c.inputs();
  constexpr uint64_t kWeightSeed = 1234;  // the backward pass's output weights
  const std::vector<Tensor> want = run_with_grads(inputs, c.op, kCPU, kWeightSeed);
  const std::vector<Tensor> got = run_with_grads(inputs, c.op, kGpu, kWeightSeed);
  check_results_close(want, got, c.tol.rtol, c.tol.atol);
}

Tensor rnd(const Shape& s, DType t = kFloat32) { return randn(s, TensorOptions(t)); }
Tensor pos(const Shape& s) { return rand(s) + 0.1; }
// A non-contiguous view of the given shape: the transpose of a contiguous [.., b, a].
Tensor rnd_t(const Shape& s) {
  Shape r = s;
  std::swap(r[r.size() - 1], r[r.size() - 2]);
  return randn(r).transpose(-1, -2);
}

std::vector<OpCase> elementwise_cases() {
  std::vector<OpCase> v;
  using U = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<std::string, U>> unary{
      {"neg", [](const Tensor& x) { return -x; }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"gelu", [](const Tensor& x) { return gelu(x); }},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, "tanh"); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 3.0); }},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }},
      {"pow", [](const Tensor& x) { return pow(x, 3.0); }},
      {"sin", [](const Tensor& x) { return sin(x); }},
      {"abs", [](const Tensor& x) { return abs(x); }},
  };
  for (const auto& [name, f] : unary) {
    v.push_back({name, [] { return std::vector<Tensor>{rnd({3, 17})}; }, [f](auto& in) { return std::vector{f(in[0])}; }});
    v.push_back({name + " strided", [] { return std::vector<Tensor>{rnd_t({5, 9})}; },
                 [f](auto& in) { return std::vector{f(in[0])}; }});
  }
  v.push_back({"log sqrt rsqrt (positive)", [] { return std::vector<Tensor>{pos({4, 33})}; },
               [](auto& in) { return std::vector{log(in[0]), sqrt(in[0]), rsqrt(in[0]), log1p(in[0])}; }});
  v.push_back({"binary broadcast", [] { return std::vector<Tensor>{rnd({4, 1, 5}), rnd({3, 1})}; },
               [](auto& in) {
                 return std::vector{in[0] + in[1], in[0] - in[1], in[0] * in[1], in[0] / (in[1].abs() + 1),
                                    maximum(in[0], in[1]), minimum(in[0], in[1])};
               }});
  v.push_back({"binary strided", [] { return std::vector<Tensor>{rnd_t({6, 7}), rnd({6, 7})}; },
               [](auto& in) { return std::vector{in[0] * in[1] + in[0]}; }});
  v.push_back({"comparisons and where", [] { return std::vector<Tensor>{rnd({5, 6}), rnd({6})}; },
               [](auto& in) {
                 return std::vector{lt(in[0], in[1]), ge(in[0], in[1]), eq(in[0], in[0]),
                                    where(gt(in[0], in[1]), in[0], in[1]), masked_fill(in[0], lt(in[1], 0), 2.5)};
               }});
  v.push_back({"float64", [] { return std::vector<Tensor>{rnd({8, 3}, kFloat64), rnd({3}, kFloat64)}; },
               [](auto& in) { return std::vector{exp(in[0]) * in[1], tanh(in[0] - in[1])}; }, kF64});
  v.push_back({"int64 arithmetic", [] { return std::vector<Tensor>{randint(-20, 20, {4, 5}), randint(1, 9, {5})}; },
               [](auto& in) { return std::vector{in[0] + in[1], in[0] * in[1], in[0] / in[1]}; }, kExact});
  v.push_back({"empty and size-1", [] { return std::vector<Tensor>{rnd({0, 3}), rnd({1, 3}), rnd({1})}; },
               [](auto& in) { return std::vector{in[0] * 2, in[1] * in[2], exp(in[2])}; }});
  v.push_back({"to bfloat16 and float16", [] { return std::vector<Tensor>{rnd({7, 9})}; },
               [](auto& in) {
                 return std::vector{in[0].to(kBFloat16).to(kFloat32), in[0].to(kFloat16).to(kFloat32)};
               },
               kExact});
  return v;
}

std::vector<OpCase> reduction_cases() {
  std::vector<OpCase> v;
  v.push_back({"sum mean dims", [] { return std::vector<Tensor>{rnd({4, 5, 6})}; },
               [](auto& in) {
                 return std::vector{sum(in[0]), sum(in[0], {1}), mean(in[0], {0, 2}, true), sum(in[0], {-1})};
               },
               kF32Sum});
  v.push_back({"sum strided", [] { return std::vector<Tensor>{rnd_t({33, 65})}; },
               [](auto& in) { return std::vector{sum(in[0], {0}), sum(in[0], {1})}; }, kF32Sum});
  v.push_back({"var std norm", [] { return std::vector<Tensor>{rnd({6, 40})}; },
               [](auto& in) {
                 return std::vector{var(in[0], {1}), focus::std(in[0], {0}, 0), norm(in[0]), norm(in[0], 1.0, {1})};
               },
               kF32Sum});
  v.push_back({"max min argmax", [] { return std::vector<Tensor>{rnd({5, 7})}; },
               [](auto& in) {
                 auto [mx, ix] = max(in[0], 1);
                 return std::vector{mx, ix, amin(in[0], {0}), argmax(in[0]), max(in[0])};
               }});
  v.push_back({"logsumexp", [] { return std::vector<Tensor>{rnd({3, 50})}; },
               [](auto& in) { return std::vector{logsumexp(in[0], {1})}; }, kF32Sum});
  v.push_back({"large sum", [] { return std::vector<Tensor>{rnd({1 << 20})}; },
               [](auto& in) { return std::vector{sum(in[0])}; }, Tol{1e-4, 1e-3}});
  return v;
}

std::vector<OpCase> matmul_cases() {
  std::vector<OpCase> v;
  const Tol mm{1e-4, 1e-4};
  v.push_back({"mm", [] { return std::vector<Tensor>{rnd({17, 33}), rnd({33, 9})}; },
               [](auto& in) { return std::vector{matmul(in[0], in[1])}; }, mm});
  v.push_back({"mm transposed views", [] { return std::vector<Tensor>{rnd_t({17, 33}), rnd_t({33, 9})}; },
               [](auto& in) { return std::vector{matmul(in[0], in[1])}; }, mm});
  v.push_back({"bmm broadcast", [] { return std::vector<Tensor>{rnd({2, 3, 5, 4}), rnd({3, 4, 6})}; },
               [](auto& in) { return std::vector{matmul(in[0], in[1])}; }, mm});
  v.push_back({"matrix-vector", [] { return std::vector<Tensor>{rnd({5, 8}), rnd({8})}; },
               [](auto& in) { return std::vector{matmul(in[0], in[1]), matmul(in[1], in[0].t())}; }, mm});
  v.push_back({"linear", [] { return std::vector<Tensor>{rnd({2, 7, 16}), rnd({12, 16}), rnd({12})}; },
               [](auto& in) { return std::vector{linear(in[0], in[1], in[2])}; }, mm});
  v.push_back({"mm float64", [] { return std::vector<Tensor>{rnd({9, 8}, kFloat64), rnd({8, 3}, kFloat64)}; },
               [](auto& in) { return std::vector{matmul(in[0], in[1])}; }, kF64});
  v.push_back({"mm empty inner", [] { return std::vector<Tensor>{rnd({3, 0}), rnd({0, 4})}; },
               [](auto& in) { return std::vector{matmul(in[0], in[1])}; }, kExact});
  return v;
}

std::vector<OpCase> nn_cases() {
  std::vector<OpCase> v;
  v.push_back({"softmax log_softmax", [] { return std::vector<Tensor>{rnd({4, 6, 37})}; },
               [](auto& in) {
                 return std::vector{softmax(in[0], -1), log_softmax(in[0], -1), softmax(in[0], 1)};
               }});
  v.push_back({"layer_norm", [] { return std::vector<Tensor>{rnd({3, 5, 48}), rnd({48}), rnd({48})}; },
               [](auto& in) { return std::vector{layer_norm(in[0], {48}, in[1], in[2])}; }, kF32Sum});
  // Both outputs used: the backward adds the gradient that reached sum to the norm's.
  v.push_back({"add_layer_norm",
               [] { return std::vector<Tensor>{rnd({3, 5, 48}), rnd({3, 5, 48}), rnd({48}), rnd({48})}; },
               [](auto& in) {
                 auto [s, y] = add_layer_norm(in[0], in[1], {48}, in[2], in[3]);
                 return std::vector{s, y};
               },
               kF32Sum});
  v.push_back({"add_layer_norm block per row",
               [] { return std::vector<Tensor>{rnd({3, 1100}), rnd({3, 1100}), rnd({1100})}; },
               [](auto& in) {
                 auto [s, y] = add_layer_norm(in[0], in[1], {1100}, in[2]);
                 return std::vector{s, y};
               },
               kF32Sum});
  v.push_back({"cross_entropy", [] { return std::vector<Tensor>{rnd({12, 10}), randint(0, 10, {12})}; },
               [](auto& in) {
                 return std::vector{cross_entropy(in[0], in[1]),
                                    cross_entropy(in[0], in[1], CrossEntropyOptions().label_smoothing(0.1)),
                                    cross_entropy(in[0], in[1], CrossEntropyOptions().reduction("none"))};
               },
               kF32Sum});
  v.push_back({"cross_entropy weights ignore_index [N, C, D]",
               [] {
                 Tensor t = randint(0, 5, {3, 4});
                 t.select(0, 1).fill_(-100);
                 return std::vector<Tensor>{rnd({3, 5, 4}), t, rand({5}) + 0.5};
               },
               [](auto& in) {
                 return std::vector{cross_entropy(in[0], in[1], CrossEntropyOptions().weight(in[2].detach()))};
               },
               kF32Sum});
  v.push_back({"nll mse", [] { return std::vector<Tensor>{rnd({6, 4}), randint(0, 4, {6}), rnd({6, 4})}; },
               [](auto& in) {
                 return std::vector{nll_loss(log_softmax(in[0], 1), in[1]), mse_loss(in[0], in[2])};
               },
               kF32Sum});
  v.push_back({"embedding", [] { return std::vector<Tensor>{rnd({10, 6}), randint(0, 10, {3, 7})}; },
               [](auto& in) { return std::vector{embedding(in[0], in[1])}; }, kF32Sum});
  v.push_back({"indexing", [] { return std::vector<Tensor>{rnd({5, 6}), randint(0, 5, {4}), randint(0, 6, {5, 3})}; },
               [](auto& in) {
                 return std::vector{index_select(in[0], 0, in[1]), gather(in[0], 1, in[2]),
                                    scatter_add(zeros({5, 6}, in[0].device()), 1, in[2], gather(in[0], 1, in[2])),
                                    cat({in[0], in[0] * 2}, 1), stack({in[0], in[0]}, 0), tril(in[0], 1),
                                    triu(in[0], -1)};
               },
               kF32Sum});
  v.push_back({"one_hot", [] { return std::vector<Tensor>{randint(0, 6, {9})}; },
               [](auto& in) { return std::vector{one_hot(in[0], 6)}; }, kExact});
  v.push_back({"attention (causal, bool mask, float mask, cross)",
               [] {
                 return std::vector<Tensor>{rnd({2, 3, 7, 8}), rnd({2, 3, 5, 8}), rnd({2, 3, 5, 4}), rnd({7, 7}),
                                            rnd({7, 5})};
               },
               [](auto& in) {
                 const Tensor& q = in[0];
                 Tensor k7 = q * 0.5, v7 = q.narrow(-1, 0, 4);
                 return std::vector{scaled_dot_product_attention(q, k7, v7, {}, 0.0, true),
                                    scaled_dot_product_attention(q, in[1], in[2], gt(in[4].detach(), 0)),
                                    scaled_dot_product_attention(q, in[1], in[2], in[4])};
               },
               Tol{1e-4, 1e-5}});
  v.push_back({"dropout (same Philox stream)", [] { return std::vector<Tensor>{rnd({9, 31})}; },
               [](auto& in) {
                 Generator g(99);
                 return std::vector{dropout(in[0], 0.3, true, &g)};
               }});
  return v;
}

void check_all(const std::vector<OpCase>& cases) {
  for (const OpCase& c : cases) check_case(c);
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("the CUDA runtime API answers in every build") {
    CHECK(cuda::device_count() >= 0);
    CHECK(cuda::is_available() == (cuda::device_count() > 0));
    CHECK(Device("cuda:1") == Device::cuda(1));
    CHECK(Device("cuda").str() == "cuda:0");
    if (!have_cuda()) {
      // No GPU: asking for CUDA tensors is a clear focus::Error, never an abort.
      CHECK_THROWS_WITH_AS(randn({2}, Device::cuda()), doctest::Contains("[randn] cannot use device cuda:0"), Error);
      CHECK_THROWS_WITH_AS(ones({2}).to(Device::cuda()), doctest::Contains("[to] cannot use device cuda:0"), Error);
      CHECK_THROWS_WITH_AS(ones({2}).cuda(), doctest::Contains("[to] cannot use device cuda:0"), Error);
      CHECK_THROWS_AS(cuda::synchronize(), Error);
      CHECK_THROWS_AS(cuda::memory_allocated(), Error);
      cuda::empty_cache();  // nothing cached: a no-op, as in PyTorch
      CHECK_THROWS_AS(ones({2}).pin_memory(), Error);
      CHECK_FALSE(ones({2}).is_pinned());
    }
  }

  TEST_CASE("pinned memory and non-blocking copies") {
    if (!have_cuda()) return;
    Tensor x = arange(100000, kFloat32).reshape({100, 1000});
    Tensor p = x.pin_memory();
    CHECK(p.is_pinned());
    CHECK(p.pin_memory().is_same(p));
    CHECK_THROWS_WITH_AS(ones({2}, kGpu).pin_memory(), doctest::Contains("[pin_memory]"), Error);
    // Many queued copies from pinned buffers that are dropped at once: each must arrive.
    std::vector<Tensor> on_gpu;
    for (int i = 0; i < 20; ++i) on_gpu.push_back((x + i).pin_memory().to(kGpu, true));
    for (int i = 0; i < 20; ++i) CHECK(allclose(on_gpu[static_cast<size_t>(i)].cpu(), x + i, 0, 0));
    // Back to the CPU without blocking: into pinned memory, valid after a synchronisation.
    std::vector<Tensor> back;
    for (int i = 0; i < 20; ++i) back.push_back(on_gpu[static_cast<size_t>(i)].to(kCPU, true));
    cuda::synchronize();
    for (int i = 0; i < 20; ++i) {
      CHECK(back[static_cast<size_t>(i)].is_pinned());
      CHECK(allclose(back[static_cast<size_t>(i)], x + i, 0, 0));
    }
    // A DataLoader that pins its batches.
    auto ds = std::make_shared<data::VectorDataset<int64_t>>(std::vector<int64_t>{1, 2, 3, 4, 5});
    data::DataLoader<int64_t, Tensor> loader(
        ds, [](std::vector<int64_t> v) { return tensor<int64_t>(v); }, data::DataLoaderOptions(2).pin_memory());
    int64_t total = 0;
    for (Tensor& b : loader) {
      CHECK(b.is_pinned());
      total += b.to(kGpu, true).sum().item<int64_t>();
    }
    CHECK(total == 15);
  }

  TEST_CASE("set_float32_matmul_precision takes PyTorch's names") {
    CHECK(get_float32_matmul_precision() == "highest");
    set_float32_matmul_precision("high");
    CHECK(get_float32_matmul_precision() == "high");
    CHECK(allow_tf32());
    set_float32_matmul_precision("highest");
    CHECK_FALSE(allow_tf32());
    CHECK_THROWS_WITH_AS(set_float32_matmul_precision("fast"), doctest::Contains("[set_float32_matmul_precision]"),
                         Error);
  }

  TEST_CASE("conformance: elementwise ops agree with the CPU") {
    if (!have_cuda()) return;
    check_all(elementwise_cases());
  }
  TEST_CASE("conformance: reductions agree with the CPU") {
    if (!have_cuda()) return;
    check_all(reduction_cases());
  }
  TEST_CASE("conformance: matrix products agree with the CPU") {
    if (!have_cuda()) return;
    check_all(matmul_cases());
  }
  TEST_CASE("conformance: nn ops, losses, indexing and attention agree with the CPU") {
    if (!have_cuda()) return;
    check_all(nn_cases());
  }

  TEST_CASE("a seed gives the same random numbers on both devices") {
    if (!have_cuda()) return;
    for (DType t : {kFloat32, kFloat64}) {
      Generator a(5), b(5);
      CHECK(allclose(rand({1000}, TensorOptions(t), &a), rand({1000}, TensorOptions(t).device(kGpu), &b), 0, 0));
      // normal goes through log, sqrt, sin and cos in double, whose last bit may differ between
      // glibc and the device's math library: equal to a few ulp, not bit for bit.
      CHECK(allclose(randn({999}, TensorOptions(t), &a), randn({999}, TensorOptions(t).device(kGpu), &b),
                     t == kFloat32 ? 2.5e-7 : 1e-14, t == kFloat32 ? 1e-7 : 1e-15));
    }
    Generator a(6), b(6);
    CHECK(allclose(randint(0, 1000, {777}, {}, &a), randint(0, 1000, {777}, TensorOptions(kGpu), &b), 0, 0));
  }

  TEST_CASE("error paths on CUDA") {
    if (!have_cuda()) return;
    Tensor c = ones({2}), g = ones({2}, kGpu);
    CHECK_THROWS_WITH_AS(c + g, doctest::Contains("[add] expected all tensors on one device, got cpu and cuda:0"),
                         Error);
    // A bad target is found on the device and reported at the next synchronisation.
    Tensor logits = randn({4, 3}, kGpu);
    Tensor target = tensor<int64_t>({0, 1, 7, 2}).to(kGpu);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, target).item<float>(), doctest::Contains("[cross_entropy]"), Error);
    // Out of memory is a focus::Error with the request and the allocator's figures.
    CHECK_THROWS_WITH_AS(empty({int64_t{1} << 46}, kGpu), doctest::Contains("out of memory"), Error);
    Tensor after = ones({3}, kGpu);  // the device still works after both errors
    CHECK(after.sum().item<float>() == 3);
  }

  TEST_CASE("index_select_out gathers into a strided view on CUDA as on the CPU") {
    if (!have_cuda()) return;
    NoGradGuard no_grad;
    const Tensor x = randn({5, 3, 4, 6}), idx = tensor<int64_t>({4, 0, 0, 2});
    // rows 0 .. 3 and positions 0 .. 3 of a [6, 3, 8, 6] buffer (a decoder cache's layout)
    const Tensor on_cpu = full({6, 3, 8, 6}, -7.0, TensorOptions(kFloat32));
    const Tensor on_gpu = full({6, 3, 8, 6}, -7.0, TensorOptions(kFloat32).device(kGpu));
    index_select_out(on_cpu.narrow(0, 0, 4).narrow(2, 0, 4), x, 0, idx);
    index_select_out(on_gpu.narrow(0, 0, 4).narrow(2, 0, 4), x.to(kGpu), 0, idx.to(kGpu));
    CHECK(allclose(on_gpu.to(kCPU), on_cpu, 0, 0));
  }

  TEST_CASE("the caching allocator's figures") {
    if (!have_cuda()) return;
    cuda::synchronize();
    const size_t base = cuda::memory_allocated();
    cuda::reset_peak_memory_stats();
    {
      Tensor t = empty({1 << 20}, kGpu);
      CHECK(cuda::memory_allocated() >= base + (size_t{4} << 20));
      CHECK(cuda::max_memory_allocated() >= cuda::memory_allocated());
    }
    CHECK(cuda::memory_allocated() == base);
    CHECK(cuda::memory_reserved() >= (size_t{4} << 20));
    cuda::empty_cache();
    CHECK(cuda::memory_allocated() == base);
  }

  TEST_CASE("modules, optimizers and checkpoints move between devices") {
    if (!have_cuda()) return;
    // The same model and batches on both devices: the losses agree step by step.
    auto make = [] {
      manual_seed(3);
      auto m = std::make_shared<nn::Sequential>();
      m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(8, 32)));
      m->push_back(std::make_shared<nn::GELU>());
      m->push_back(std::make_shared<nn::LayerNorm>(nn::LayerNormOptions({32})));
      m->push_back(std::make_shared<nn::Linear>(nn::LinearOptions(32, 4)));
      return m;
    };
    auto cpu_model = make();
    auto gpu_model = make();
    gpu_model->to(kGpu);
    optim::AdamW cpu_opt(cpu_model->parameters(), optim::AdamWOptions().lr(1e-2));
    optim::AdamW gpu_opt(gpu_model->parameters(), optim::AdamWOptions().lr(1e-2));
    Generator data(11);
    for (int step = 0; step < 20; ++step) {
      Tensor x = randn({16, 8}, {}, &data), y = randint(0, 4, {16}, {}, &data);
      cpu_opt.zero_grad();
      gpu_opt.zero_grad();
      Tensor lc = cross_entropy(cpu_model->forward(x), y);
      Tensor lg = cross_entropy(gpu_model->forward(x.to(kGpu)), y.to(kGpu));
      lc.backward();
      lg.backward();
      optim::clip_grad_norm_(cpu_model->parameters(), 1.0);
      optim::clip_grad_norm_(gpu_model->parameters(), 1.0);
      cpu_opt.step();
      gpu_opt.step();
      INFO("step " << step);
      CHECK(lg.item<double>() == doctest::Approx(lc.item<double>()).epsilon(1e-4));
    }
    // A state_dict taken on the GPU loads on the CPU and gives the same outputs.
    focus::testing::TempDir dir("cuda_ckpt");
    save_safetensors(gpu_model->state_dict(), dir / "m.safetensors");
    auto back = make();
    back->load_state_dict(load_safetensors(dir / "m.safetensors"));
    Tensor x = randn({5, 8});
    CHECK(allclose(back->forward(x), gpu_model->forward(x.to(kGpu)).cpu(), 1e-4, 1e-5));
  }

  TEST_CASE("the GPT trains 20 steps alike on CUDA and the CPU; checkpoints cross devices both ways") {
    if (!have_cuda()) return;
    using models::GPT;
    using models::GPTConfig;
    const GPTConfig cfg = GPTConfig().n_layer(2).n_head(2).n_embd(32).block_size(16).vocab_size(23).dropout(0.1);
    Generator init(21);
    GPT cpu(cfg, &init);
    GPT gpu(cfg);
    gpu.load_state_dict(cpu.state_dict());
    gpu.to(kGpu);
    optim::AdamW cpu_opt(cpu.parameters(), optim::AdamWOptions().lr(3e-3).weight_decay(0.1));
    optim::AdamW gpu_opt(gpu.parameters(), optim::AdamWOptions().lr(3e-3).weight_decay(0.1));
    Generator data(5);
    auto step = [&](GPT& m, optim::AdamW& opt, const Tensor& x, const Tensor& y, Device d) {
      opt.zero_grad();
      Tensor logits = m.forward(x.to(d));
      Tensor loss = cross_entropy(logits.flatten(0, 1), y.to(d).flatten());
      loss.backward();
      optim::clip_grad_norm_(m.parameters(), 1.0);
      opt.step();
      return loss.item<double>();
    };
    for (int i = 0; i < 20; ++i) {
      Tensor x = randint(0, 23, {4, 16}, {}, &data), y = randint(0, 23, {4, 16}, {}, &data);
      // Dropout draws from the default generator: the same seed on both sides gives the same
      // masks (one Philox stream for both devices).
      manual_seed(100 + i);
      const double lc = step(cpu, cpu_opt, x, y, kCPU);
      manual_seed(100 + i);
      const double lg = step(gpu, gpu_opt, x, y, kGpu);
      INFO("step " << i);
      CHECK(lg == doctest::Approx(lc).epsilon(2e-4));
    }
    // GPU -> CPU and CPU -> GPU through checkpoints: the next step agrees.
    focus::testing::TempDir dir("cuda_gpt");
    optim::save_checkpoint(dir / "gpu.safetensors", gpu, &gpu_opt, nullptr, 20);
    optim::save_checkpoint(dir / "cpu.safetensors", cpu, &cpu_opt, nullptr, 20);
    GPT cpu2(cfg), gpu2(cfg);
    gpu2.to(kGpu);
    optim::AdamW cpu2_opt(cpu2.parameters(), optim::AdamWOptions().lr(3e-3).weight_decay(0.1));
    optim::AdamW gpu2_opt(gpu2.parameters(), optim::AdamWOptions().lr(3e-3).weight_decay(0.1));
    CHECK(optim::load_checkpoint(dir / "gpu.safetensors", cpu2, &cpu2_opt) == 20);
    CHECK(optim::load_checkpoint(dir / "cpu.safetensors", gpu2, &gpu2_opt) == 20);
    CHECK(gpu2.parameters()[0].device() == kGpu);
    Tensor x = randint(0, 23, {4, 16}, {}, &data), y = randint(0, 23, {4, 16}, {}, &data);
    manual_seed(1);
    const double a = step(cpu2, cpu2_opt, x, y, kCPU);
    manual_seed(1);
    const double b = step(gpu2, gpu2_opt, x, y, kGpu);
    CHECK(b == doctest::Approx(a).epsilon(2e-4));
  }
}
