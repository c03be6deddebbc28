// nn::DistributedDataParallel: N ranks on B/N rows each must match one process on all B rows.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/indexing.h"
#include "autograd/functions/loss.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "distributed/ddp.h"
#include "nn/linear.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "test_util.h"

namespace dist = focus::distributed;
using namespace focus;
using focus::testing::allclose;

namespace {

int rank() { return dist::get_rank(); }
int world() { return dist::get_world_size(); }

// A small MLP with parameters of several sizes, and a buffer.
struct Mlp : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2, head_a, head_b;
  Tensor scale;
  bool use_b = true;
  explicit Mlp(uint64_t seed) : nn::Module("Mlp") {
    manual_seed(seed);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(6, 32));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(32, 16));
    head_a = register_module("head_a", std::make_shared<nn::Linear>(16, 3));
    head_b = register_module("head_b", std::make_shared<nn::Linear>(16, 3));
    scale = register_buffer("scale", full({1}, 1.0 + 0.01 * static_cast<double>(seed)));
  }
  Tensor forward(const Tensor& x) {
    Tensor h = gelu(fc2->forward(tanh(fc1->forward(x))));
    Tensor y = head_a->forward(h);
    if (use_b) y = y + head_b->forward(h);
    return y * scale;
  }
};

// The global batch of step s: B rows, the same on every rank.
std::pair<Tensor, Tensor> global_batch(int step, int64_t rows) {
  Generator g;
  g.manual_seed(1000 + static_cast<uint64_t>(step));
  return {randn({rows, 6}, {}, &g), randn({rows, 3}, {}, &g)};
}

Tensor my_rows(const Tensor& t) {
  const int64_t per = t.size(0) / world();
  return t.narrow(0, rank() * per, per);
}

void check_same_params(nn::Module& a, nn::Module& b, double rtol) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i].first);
    CHECK(allclose(pa[i].second, pb[i].second, rtol, 1e-7));
  }
}

enum class Opt { kSGD, kAdamW };

std::unique_ptr<optim::Optimizer> make_opt(Opt which, std::vector<Tensor> params) {
  if (which == Opt::kSGD) return std::make_unique<optim::SGD>(params, optim::SGDOptions(0.1).momentum(0.9));
  return std::make_unique<optim::AdamW>(params, optim::AdamWOptions(0.01).weight_decay(0.1));
}

// Trains 5 steps with DDP (saving after step 2 on rank 0 and reloading on every rank into a
// fresh model, DDP and optimizer) and checks against one process on the whole batch.
void ddp_matches_single_process(Opt which, nn::DistributedDataParallelOptions opts) {
  const int64_t B = 8;
  auto ref = std::make_shared<Mlp>(7);
  auto ref_opt = make_opt(which, ref->parameters());
  auto model = std::make_shared<Mlp>(7 + static_cast<uint64_t>(rank()));  // differently seeded
  auto ddp = std::make_shared<nn::DistributedDataParallel<Mlp>>(model, opts);
  check_same_params(*model, *ref, 0);  // the broadcast made them equal
  CHECK(allclose(model->scale, ref->scale, 0, 0));
  auto opt = make_opt(which, ddp->parameters());
  // Rank 0's scratch folder, its path shared with every rank.
  std::unique_ptr<focus::testing::TempDir> dir;
  if (rank() == 0) dir = std::make_unique<focus::testing::TempDir>("ddp");
  const std::string path = dist::broadcast_bytes(dir ? dir->path.string() : std::string(), 0) + "/ddp.safetensors";
  for (int step = 0; step < 5; ++step) {
    CAPTURE(step);
    auto [x, y] = global_batch(step, B);
    ref_opt->zero_grad();
    mse_loss(ref->forward(x), y).backward();
    ref_opt->step();

    opt->zero_grad(!opts.gradient_as_bucket_view_);
    mse_loss(ddp->forward(my_rows(x)), my_rows(y)).backward();
    opt->step();
    check_same_params(*model, *ref, 1e-5);

    if (step == 2) {
      // Rank 0 writes, after every rank finished the step; every rank resumes from it.
      dist::barrier();
      if (rank() == 0) {
        TensorDict all = ddp->module()->state_dict();
        all.update(opt->state_dict(), "optim.");
        save_safetensors(all, path);
      }
      dist::barrier();
      TensorDict loaded = load_safetensors(path);
      model = std::make_shared<Mlp>(99);
      TensorDict weights;
      for (const auto& [k, v] : loaded)
        if (k.rfind("optim.", 0) != 0) weights.insert(k, v);
      model->load_state_dict(weights);
      ddp = std::make_shared<nn::DistributedDataParallel<Mlp>>(model, opts);
      opt = make_opt(which, ddp->parameters());
      opt->load_state_dict(loaded.with_prefix_removed("optim."));
      check_same_params(*model, *ref, 1e-5);
    }
  }
  dist::barrier();
}

}  // namespace

TEST_SUITE("distributed") {
  TEST_CASE("DDP: N ranks on B/N rows equal one process on B rows (SGD, AdamW, save and reload)") {
    for (Opt which : {Opt::kSGD, Opt::kAdamW}) {
      CAPTURE(static_cast<int>(which));
      ddp_matches_single_process(which, {});
      // Every parameter its own bucket, and gradients as views of the buckets.
      ddp_matches_single_process(which, nn::DistributedDataParallelOptions().bucket_cap_mb(1e-6));
      ddp_matches_single_process(which, nn::DistributedDataParallelOptions().gradient_as_bucket_view(true));
    }
  }

  TEST_CASE("DDP: buckets in reverse parameter order, one all-reduce per bucket") {
    auto model = std::make_shared<Mlp>(1);
    nn::DistributedDataParallel<Mlp> one(model);
    auto b = one.bucket_indices();
    REQUIRE(b.size() == 1);  // 2.7 KB: under the first bucket's 1 MB
    CHECK(b[0].front() == model->parameters().size() - 1);
    CHECK(b[0].back() == 0);
    nn::DistributedDataParallel<Mlp> each(model, nn::DistributedDataParallelOptions().bucket_cap_mb(1e-6));
    CHECK(each.bucket_indices().size() == model->parameters().size());
    auto [x, y] = global_batch(0, 4);
    mse_loss(each.forward(x), y).backward();
    CHECK(each.last_comm_stats().buckets == static_cast<int64_t>(model->parameters().size()));
    int64_t bytes = 0;
    for (const Tensor& p : model->parameters()) bytes += p.numel() * 4;
    CHECK(each.last_comm_stats().bytes == bytes);
  }

  TEST_CASE("DDP: no_sync accumulation equals one large batch") {
    const int64_t B = 8;
    auto ref = std::make_shared<Mlp>(3);
    auto model = std::make_shared<Mlp>(3);
    nn::DistributedDataParallel<Mlp> ddp(model);
    for (int micro = 0; micro < 3; ++micro) {
      auto [x, y] = global_batch(10 + micro, B);
      mse_loss(ref->forward(x), y).backward();
      if (micro < 2) {
        auto guard = ddp.no_sync();
        mse_loss(ddp.forward(my_rows(x)), my_rows(y)).backward();
        CHECK(ddp.last_comm_stats().buckets == 0);
      } else {
        mse_loss(ddp.forward(my_rows(x)), my_rows(y)).backward();
      }
    }
    auto pr = ref->parameters(), pm = model->parameters();
    for (size_t i = 0; i < pr.size(); ++i) CHECK(allclose(pm[i].grad(), pr[i].grad(), 1e-5, 1e-7));
  }

  TEST_CASE("DDP: unused parameters") {
    auto [x, y] = global_batch(20, 4);
    {
      auto model = std::make_shared<Mlp>(5);
      model->use_b = false;
      nn::DistributedDataParallel<Mlp> ddp(model);
      CHECK_THROWS_WITH_AS(mse_loss(ddp.forward(x), y).backward(), doctest::Contains("head_b.weight"), Error);
    }
    // Rank 0 alone uses head_b: its gradient is averaged with zeros from the others. No rank
    // uses head_b when world is 1 and use_b is off, so it keeps no .grad.
    auto model = std::make_shared<Mlp>(5);
    auto ref = std::make_shared<Mlp>(5);
    model->use_b = rank() == 0;
    nn::DistributedDataParallel<Mlp> ddp(model, nn::DistributedDataParallelOptions().find_unused_parameters(true));
    mse_loss(ddp.forward(x), y).backward();
    mse_loss(ref->forward(x), y).backward();  // uses head_b, on the same rows as rank 0
    CHECK(allclose(model->head_b->weight().grad(), ref->head_b->weight().grad() / world(), 1e-5, 1e-7));
    auto lonely = std::make_shared<Mlp>(5);
    lonely->use_b = false;
    nn::DistributedDataParallel<Mlp> ddp2(lonely, nn::DistributedDataParallelOptions().find_unused_parameters(true));
    mse_loss(ddp2.forward(x), y).backward();
    CHECK_FALSE(lonely->head_b->weight().grad().defined());
    CHECK(lonely->head_a->weight().grad().defined());
  }

  TEST_CASE("DDP: buffers broadcast before forward, state_dict names, errors") {
    auto model = std::make_shared<Mlp>(4);
    nn::DistributedDataParallel<Mlp> ddp(model);
    model->scale.fill_(10.0 + rank());
    { auto [x, y] = global_batch(0, 4); NoGradGuard ng; ddp.forward(x); }
    CHECK(model->scale.item<float>() == doctest::Approx(10.0));
    TensorDict sd = ddp.state_dict();
    CHECK(sd.contains("module.fc1.weight"));
    nn::consume_prefix_in_state_dict_if_present(sd, "module.");
    CHECK(sd.contains("fc1.weight"));
    CHECK(model->state_dict().keys() == sd.keys());
    if (world() > 1) {
      // Ranks that hold different models are told so.
      struct Odd : nn::Module {
        Odd(int64_t n) : nn::Module("Odd") { register_parameter("w", zeros({n})); }
        Tensor forward(const Tensor& x) { return x; }
      };
      auto odd = std::make_shared<Odd>(rank() == 1 ? 3 : 2);
      CHECK_THROWS_WITH_AS(nn::DistributedDataParallel<Odd>{odd}, doctest::Contains("rank 1 holds different"), Error);
    }
    CHECK_THROWS_WITH_AS(nn::DistributedDataParallel<Mlp>(nullptr), doctest::Contains("null"), Error);
  }
}
