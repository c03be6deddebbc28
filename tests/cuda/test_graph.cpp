// CUDA graphs (focus::cuda::Graph, GraphCapture) and capturable Adam/AdamW: a whole training
// step (forward, backward, optimizer) captured once and replayed with new data against the
// same steps run eagerly; the operations a capture refuses, each abandoning it cleanly; the
// graph's private memory pool; deferred index checks reported from replays. The CPU-side
// cases (no GPU: clear errors; capturable on the CPU: PyTorch's error) run everywhere; the
// GPU cases are skipped, with the printed reason, where there is no GPU.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda.h"
#include "test_util.h"

using namespace focus;
using focus::testing::have_cuda;

namespace {

std::shared_ptr<nn::Sequential> make_mlp(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(8, 32), std::make_shared<nn::ReLU>(),
                                          std::make_shared<nn::Linear>(32, 4));
}

// One training step with persistent grads (zero_grad(false): zeros filled in place), the
// form PyTorch recommends inside a graph.
Tensor train_step(nn::Sequential& model, optim::Optimizer& opt, const Tensor& x, const Tensor& y) {
  opt.zero_grad(false);
  Tensor loss = mse_loss(model.forward(x), y);
  loss.backward();
  opt.step();
  return loss;
}

struct Batches {
  std::vector<Tensor> x, y;  // on the CPU
};

Batches make_batches(int n) {
  manual_seed(1234);
  Batches b;
  for (int i = 0; i < n; ++i) {
    b.x.push_back(randn({16, 8}));
    b.y.push_back(randn({16, 4}));
  }
  return b;
}

}  // namespace

TEST_SUITE("cuda graph") {
  // ---- everywhere ------------------------------------------------------------------------------

  TEST_CASE("an empty Graph: replay and capture_end are clear errors; reset is a no-op") {
    cuda::Graph g;
    CHECK_FALSE(g.has_graph());
    CHECK_FALSE(g.is_capturing());
    CHECK_THROWS_WITH_AS(g.replay(), doctest::Contains("[cuda.Graph.replay] the graph holds nothing to replay"),
                         Error);
    CHECK_THROWS_WITH_AS(g.capture_end(), doctest::Contains("[cuda.Graph.capture_end] no capture of this graph"),
                         Error);
    g.reset();
    g.abort_capture();
    CHECK_FALSE(g.has_graph());
  }

  TEST_CASE("without a GPU, capturing is a clear error and leaves the graph empty") {
    if (cuda::is_available()) {
      MESSAGE("skipped: a GPU is present (this case checks the error without one)");
      return;
    }
    CHECK_FALSE(cuda::is_current_stream_capturing());
    cuda::Graph g;
    CHECK_THROWS_WITH_AS(g.capture_begin(),
                         doctest::Contains("[cuda.Graph.capture_begin] no CUDA device is available"), Error);
    CHECK_FALSE(g.is_capturing());
    CHECK_THROWS_WITH_AS(cuda::GraphCapture{g}, doctest::Contains("[cuda.Graph.capture_begin] no CUDA device"),
                         Error);
    CHECK_FALSE(g.has_graph());
  }

  TEST_CASE("capturable Adam/AdamW need CUDA parameters, as in PyTorch; nothing changes on the error") {
    auto model = make_mlp(3);
    const Tensor x = randn({16, 8}), y = randn({16, 4});
    for (int kind = 0; kind < 2; ++kind) {
      INFO("kind " << kind);
      std::unique_ptr<optim::Optimizer> opt;
      if (kind == 0) opt = std::make_unique<optim::AdamW>(model->parameters(), optim::AdamWOptions(1e-2).capturable(true));
      else opt = std::make_unique<optim::Adam>(model->parameters(), optim::AdamOptions(1e-2).capturable(true));
      opt->zero_grad();
      mse_loss(model->forward(x), y).backward();
      const Tensor before = model->parameters()[0].clone();
      CHECK_THROWS_WITH_AS(opt->step(),
                           doctest::Contains(kind == 0 ? "[AdamW.step] capturable=True needs every parameter on a CUDA device"
                                                       : "[Adam.step] capturable=True needs every parameter on a CUDA device"),
                           Error);
      CHECK(testing::allclose(model->parameters()[0], before, 0, 0));
      CHECK_FALSE(opt->step_count(model->parameters()[0]).has_value());
    }
  }

  TEST_CASE("the capturable flag is an option that state_dict keeps") {
    auto model = make_mlp(4);
    optim::AdamW opt(model->parameters(), optim::AdamWOptions().capturable(true));
    CHECK(static_cast<const optim::AdamOptions&>(opt.param_groups()[0].options()).capturable());
    const TensorDict sd = opt.state_dict();
    REQUIRE(sd.find("param_groups.0.capturable") != nullptr);
    CHECK(sd.at("param_groups.0.capturable").item<bool>());
    optim::AdamW other(model->parameters());
    CHECK(other.state_dict().find("param_groups.0.capturable") == nullptr);  // ordinary checkpoints keep their keys
    other.load_state_dict(sd);
    CHECK(static_cast<const optim::AdamOptions&>(other.param_groups()[0].options()).capturable());
  }

  // ---- on a GPU --------------------------------------------------------------------------------

  TEST_CASE("a captured MLP training step replays as the same steps run eagerly (capturable AdamW)") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    set_float32_matmul_precision("highest");
    const int warmup = 3, replays = 6;
    const Batches data = make_batches(warmup + replays);

    // Eager reference.
    auto ref = make_mlp(7);
    ref->to(gpu);
    optim::AdamW ref_opt(ref->parameters(), optim::AdamWOptions(1e-2).weight_decay(0.1).capturable(true));
    std::vector<float> ref_losses;
    for (int i = 0; i < warmup + replays; ++i) {
      const Tensor loss = train_step(*ref, ref_opt, data.x[i].to(gpu), data.y[i].to(gpu));
      if (i >= warmup) ref_losses.push_back(loss.item<float>());
    }

    // Captured: the same warm-up steps eagerly, then one capture, then replays.
    auto model = make_mlp(7);
    model->to(gpu);
    optim::AdamW opt(model->parameters(), optim::AdamWOptions(1e-2).weight_decay(0.1).capturable(true));
    Tensor static_x = zeros({16, 8}, gpu), static_y = zeros({16, 4}, gpu);
    for (int i = 0; i < warmup; ++i) {
      static_x.copy_(data.x[i]);
      static_y.copy_(data.y[i]);
      (void)train_step(*model, opt, static_x, static_y);
    }
    cuda::Graph graph;
    Tensor static_loss;
    {
      cuda::GraphCapture capture(graph);
      CHECK(cuda::is_current_stream_capturing());
      static_loss = train_step(*model, opt, static_x, static_y);
    }
    CHECK_FALSE(cuda::is_current_stream_capturing());
    REQUIRE(graph.has_graph());
    // The capture recorded the step without running it: the step count is still warm-up's.
    CHECK(opt.step_count(model->parameters()[0]).value() == warmup);
    std::vector<float> losses;
    for (int i = warmup; i < warmup + replays; ++i) {
      static_x.copy_(data.x[i]);
      static_y.copy_(data.y[i]);
      graph.replay();
      losses.push_back(static_loss.item<float>());
    }
    REQUIRE(losses.size() == ref_losses.size());
    for (size_t i = 0; i < losses.size(); ++i) {
      INFO("replay " << i);
      CHECK(losses[i] == doctest::Approx(ref_losses[i]).epsilon(1e-5));
    }
    CHECK(opt.step_count(model->parameters()[0]).value() == warmup + replays);
    const auto p = model->parameters(), q = ref->parameters();
    for (size_t i = 0; i < p.size(); ++i) CHECK(testing::allclose(p[i].cpu(), q[i].cpu(), 1e-5, 1e-5));
  }

  TEST_CASE("PyTorch's whole-network pattern: grads set to none before the capture come from the graph's pool") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    const int warmup = 2, replays = 4;
    const Batches data = make_batches(warmup + replays);
    auto eager_step = [](nn::Sequential& m, optim::Optimizer& o, const Tensor& x, const Tensor& y) {
      o.zero_grad();  // set_to_none: the backward writes fresh grads
      Tensor loss = mse_loss(m.forward(x), y);
      loss.backward();
      o.step();
      return loss;
    };
    auto ref = make_mlp(21);
    ref->to(gpu);
    optim::Adam ref_opt(ref->parameters(), optim::AdamOptions(1e-2).capturable(true));
    std::vector<float> ref_losses;
    for (int i = 0; i < warmup + replays; ++i) {
      const Tensor loss = eager_step(*ref, ref_opt, data.x[i].to(gpu), data.y[i].to(gpu));
      if (i >= warmup) ref_losses.push_back(loss.item<float>());
    }
    auto model = make_mlp(21);
    model->to(gpu);
    optim::Adam opt(model->parameters(), optim::AdamOptions(1e-2).capturable(true));
    Tensor static_x = zeros({16, 8}, gpu), static_y = zeros({16, 4}, gpu);
    for (int i = 0; i < warmup; ++i) {
      static_x.copy_(data.x[i]);
      static_y.copy_(data.y[i]);
      (void)eager_step(*model, opt, static_x, static_y);
    }
    opt.zero_grad();
    cuda::Graph graph;
    Tensor static_loss;
    {
      cuda::GraphCapture capture(graph);
      static_loss = mse_loss(model->forward(static_x), static_y);
      static_loss.backward();
      opt.step();
    }
    for (const Tensor& p : model->parameters()) CHECK(p.grad().defined());
    for (int i = 0; i < replays; ++i) {
      static_x.copy_(data.x[warmup + i]);
      static_y.copy_(data.y[warmup + i]);
      graph.replay();
      CHECK(static_loss.item<float>() == doctest::Approx(ref_losses[static_cast<size_t>(i)]).epsilon(1e-5));
    }
  }

  TEST_CASE("capturable AdamW gives the numbers of the ordinary one") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    const Batches data = make_batches(5);
    auto a = make_mlp(9), b = make_mlp(9);
    a->to(gpu);
    b->to(gpu);
    optim::AdamW oa(a->parameters(), optim::AdamWOptions(1e-2).capturable(true));
    optim::AdamW ob(b->parameters(), optim::AdamWOptions(1e-2));
    for (int i = 0; i < 5; ++i) {
      const Tensor x = data.x[i].to(gpu), y = data.y[i].to(gpu);
      CHECK(train_step(*a, oa, x, y).item<float>() == doctest::Approx(train_step(*b, ob, x, y).item<float>()).epsilon(1e-6));
    }
    const auto p = a->parameters(), q = b->parameters();
    for (size_t i = 0; i < p.size(); ++i) CHECK(testing::allclose(p[i].cpu(), q[i].cpu(), 1e-6, 1e-6));
    CHECK(oa.step_count(p[0]).value() == 5);
    CHECK(oa.state_dict().at("state.0.step").item<double>() == 5);
  }

  TEST_CASE("host synchronisation during capture is a clear error that abandons the capture") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    const Tensor a = ones({4}, gpu);
    auto expect_abandoned = [&](const char* op, auto&& body) {
      INFO(op);
      cuda::Graph g;
      CHECK_THROWS_WITH_AS(
          [&] {
            cuda::GraphCapture capture(g);
            body();
          }(),
          doctest::Contains((std::string("[") + op + "] cannot run during CUDA graph capture").c_str()), Error);
      CHECK_FALSE(g.has_graph());
      CHECK_FALSE(g.is_capturing());
      CHECK_FALSE(cuda::is_current_stream_capturing());
      // The stream works eagerly again.
      CHECK((a * 2).sum().item<float>() == 8);
    };
    expect_abandoned("item", [&] { (void)(a * 3).sum().item<float>(); });
    expect_abandoned("to_vector", [&] { (void)(a + 1).to_vector<float>(); });
    expect_abandoned("copy to the host", [&] { (void)(a + 1).to(kCPU); });
    expect_abandoned("copy from the host", [&] { (void)ones({4}).to(gpu); });
    expect_abandoned("cuda.synchronize", [&] { cuda::synchronize(); });
    expect_abandoned("cuda.empty_cache", [&] { cuda::empty_cache(); });
    expect_abandoned("dropout", [&] { (void)dropout(a, 0.5, true); });
    expect_abandoned("normal_", [&] { (void)randn({4}, gpu); });

    // The manual form: the error abandons the capture, and capture_end then says so.
    cuda::Graph g;
    g.capture_begin();
    CHECK_THROWS_WITH_AS((void)(a * 3).sum().item<float>(), doctest::Contains("[item] cannot run during CUDA graph capture"),
                         Error);
    CHECK_FALSE(cuda::is_current_stream_capturing());
    CHECK_THROWS_WITH_AS(g.capture_end(), doctest::Contains("[cuda.Graph.capture_end] the capture was abandoned"), Error);
    CHECK_FALSE(g.has_graph());
    // Dropout with p = 0 (or eval) draws nothing and is fine.
    {
      cuda::Graph ok;
      Tensor out;
      {
        cuda::GraphCapture capture(ok);
        out = dropout(a, 0.0, true) * 2;
      }
      ok.replay();
      CHECK(out.sum().item<float>() == 8);
    }
  }

  TEST_CASE("an exception leaving the capture scope abandons it; the graph can capture again") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    Tensor a = ones({4}, gpu);
    cuda::Graph g;
    CHECK_THROWS_AS(
        [&] {
          cuda::GraphCapture capture(g);
          (void)(a * 2);
          throw Error("user error");
        }(),
        Error);
    CHECK_FALSE(g.has_graph());
    CHECK_FALSE(cuda::is_current_stream_capturing());
    Tensor out;
    {
      cuda::GraphCapture capture(g);
      out = a * 2 + 1;
    }
    a.fill_(5);
    g.replay();
    CHECK(out.sum().item<float>() == 44);
    CHECK_THROWS_WITH_AS(g.capture_begin(), doctest::Contains("already holds a captured graph"), Error);
    g.reset();
    CHECK_FALSE(g.has_graph());
  }

  TEST_CASE("the graph's memory pool: private while the graph lives, returned when it is destroyed") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    Tensor a = full({1000}, 2.0, gpu);
    cuda::synchronize();
    const size_t before = cuda::memory_allocated();
    void* freed_in_capture = nullptr;
    {
      Tensor out;  // declared before the graph: it outlives it, as a user's static output may
      cuda::Graph g;
      {
        cuda::GraphCapture capture(g);
        Tensor tmp = a * 3;  // freed inside the capture: its block stays the graph's
        freed_in_capture = tmp.data_ptr();
        out = (tmp + 1).sum();
      }
      CHECK(cuda::memory_allocated() > before);
      // No allocation outside the graph gets a block its replays write.
      const Tensor eager = empty({1000}, gpu);
      CHECK(eager.data_ptr() != freed_in_capture);
      g.replay();
      CHECK(out.item<float>() == doctest::Approx(7000));
      a.fill_(1);
      g.replay();
      CHECK(out.item<float>() == doctest::Approx(4000));
    }
    CHECK(cuda::memory_allocated() == before);
  }

  TEST_CASE("index checks recorded in a graph report failures from its replays") {
    if (!have_cuda()) return;
    const Device gpu = Device::cuda(0);
    const Tensor logits = randn({6, 5}).to(gpu);
    Tensor target = zeros({6}, TensorOptions(kInt64).device(gpu));
    cuda::Graph g;
    Tensor loss;
    {
      cuda::GraphCapture capture(g);
      loss = cross_entropy(logits, target);
    }
    g.replay();
    cuda::synchronize();  // valid targets: nothing to report
    target.copy_(tensor<int64_t>({0, 1, 2, 9, 4, 0}));
    g.replay();
    CHECK_THROWS_WITH_AS(cuda::synchronize(), doctest::Contains("out of bounds"), Error);
    target.copy_(tensor<int64_t>({0, 1, 2, 3, 4, 0}));
    g.replay();
    cuda::synchronize();  // the slots were reset after the report
    CHECK(std::isfinite(loss.item<float>()));
  }
}
