// optim::ZeroRedundancyOptimizer (run with 1, 2 and 4 ranks): the same training as the plain
// optimizer, the sharded state, consolidation, loading, schedulers and the errors. Every rank
// calls the same collectives in the same order in every test case.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "test_util.h"
#include "core/creation.h"
#include "core/safetensors.h"
#include "distributed/ddp.h"
#include "distributed/distributed.h"
#include "distributed/zero.h"

namespace dist = focus::distributed;
using namespace focus;
using focus::optim::ZeroRedundancyOptimizer;
using focus::testing::allclose;

namespace {
int rank() { return dist::get_rank(); }
int world() { return dist::get_world_size(); }

// Three layers of different sizes: parameters of 72, 12, 144, 12, 36 and 3 elements.
struct ZeroNet : nn::Module {
  ZeroNet() : Module("ZeroNet") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(6, 12));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(12, 12));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(12, 3));
  }
  Tensor forward(const Tensor& x) const { return fc3->forward(tanh(fc2->forward(tanh(fc1->forward(x))))); }
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
};

// Two nets with the same (seeded) parameters.
std::shared_ptr<ZeroNet> make_net(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<ZeroNet>();
}

// This rank's batch for a step (different on every rank, so DDP's averaging matters).
Tensor batch(int step, bool per_rank = true) {
  Generator gen(1000 + static_cast<uint64_t>(step) * 17 + (per_rank ? static_cast<uint64_t>(rank()) : 0));
  return randn({5, 6}, {}, &gen);
}

Tensor loss_of(const Tensor& out) { return (out * out).mean(); }

bool same_params(const std::vector<Tensor>& a, const std::vector<Tensor>& b, double rtol = 1e-6) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!allclose(a[i], b[i], rtol, rtol == 0 ? 0 : 1e-7)) return false;
  return true;
}

// The full dict of rank src on every rank (through safetensors bytes).
TensorDict broadcast_dict(const TensorDict& d, int src) {
  std::string bytes;
  if (rank() == src) {
    const auto v = safetensors_serialize(d);
    bytes.assign(v.begin(), v.end());
  }
  const std::string got = dist::broadcast_bytes(bytes, src);
  return safetensors_deserialize(reinterpret_cast<const uint8_t*>(got.data()), got.size());
}

bool same_dict(const TensorDict& a, const TensorDict& b, double rtol = 1e-6) {
  if (a.keys() != b.keys()) {
    MESSAGE("keys differ: " << fmt::format("{} vs {}", fmt::join(a.keys(), ","), fmt::join(b.keys(), ",")));
    return false;
  }
  for (const auto& [k, v] : a) {
    const Tensor& w = b.at(k);
    if (v.dtype() != w.dtype() || !allclose(v.to(kFloat64), w.to(kFloat64), rtol, 1e-9)) {
      MESSAGE("values differ under " << k);
      return false;
    }
  }
  return true;
}

// PyTorch's greedy partition, written out again: owner of each parameter.
std::vector<int> expected_owners(const std::vector<Tensor>& params, int n) {
  std::vector<size_t> order(params.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
  std::vector<int64_t> sizes(static_cast<size_t>(n), 0);
  std::vector<int> owner(params.size());
  for (size_t i : order) {
    int best = 0;
    for (int r = 1; r < n; ++r)
      if (sizes[static_cast<size_t>(r)] < sizes[static_cast<size_t>(best)]) best = r;
    owner[i] = best;
    sizes[static_cast<size_t>(best)] += params[i].numel();
  }
  return owner;
}

int64_t state_numel(const optim::Optimizer& opt, const std::vector<Tensor>& params, int64_t* with_state) {
  int64_t n = 0;
  *with_state = 0;
  for (const auto& p : params) {
    auto st = opt.state(p);
    if (!st) continue;
    ++*with_state;
    for (const auto& [k, v] : *st)
      if (k != "step") n += v.numel();
  }
  return n;
}
}  // namespace

TEST_SUITE("distributed") {
  TEST_CASE("ZeRO(AdamW) under DDP trains as DDP + AdamW, each rank holding its shard's state") {
    auto net_a = make_net(7);
    auto net_b = make_net(7);
    auto ddp_a = std::make_shared<nn::DistributedDataParallel<ZeroNet>>(net_a);
    auto ddp_b = std::make_shared<nn::DistributedDataParallel<ZeroNet>>(net_b);
    const auto opts = optim::AdamWOptions().lr(1e-2).weight_decay(0.1);
    auto zero = ZeroRedundancyOptimizer::make<optim::AdamW>(ddp_a->parameters(), opts);
    optim::AdamW plain(ddp_b->parameters(), opts);
    CHECK(zero.name() == "ZeroRedundancyOptimizer");
    CHECK(zero.world_size() == world());
    CHECK(zero.rank() == rank());

    // The partition: PyTorch's greedy rule (sizes 72, 12, 144, 12, 36, 3).
    const auto params = net_a->parameters();
    REQUIRE(params.size() == 6);
    CHECK(zero.owners() == expected_owners(params, world()));
    if (world() == 1) CHECK(zero.owners() == std::vector<int>{0, 0, 0, 0, 0, 0});
    if (world() == 2) CHECK(zero.owners() == std::vector<int>{1, 1, 0, 1, 1, 1});
    if (world() == 4) CHECK(zero.owners() == std::vector<int>{1, 3, 0, 3, 2, 3});
    const auto mine = zero.params_of_rank(rank());
    CHECK(zero.local_optimizer().num_params() == mine.size());

    for (int step = 0; step < 5; ++step) {
      zero.zero_grad();
      plain.zero_grad();
      loss_of(ddp_a->forward(batch(step))).backward();
      loss_of(ddp_b->forward(batch(step))).backward();
      zero.step();
      plain.step();
    }
    CHECK(same_params(net_a->parameters(), net_b->parameters(), 0));
    // Every rank ends with the same parameters.
    for (const auto& p : net_a->parameters()) {
      Tensor mx = p.detach().clone();
      Tensor mn = p.detach().clone();
      dist::all_reduce(mx, dist::ReduceOp::MAX);
      dist::all_reduce(mn, dist::ReduceOp::MIN);
      CHECK(allclose(mx, mn, 0, 0));
    }

    // The local state: exactly this rank's shard (exp_avg and exp_avg_sq of each parameter).
    int64_t owned_numel = 0;
    for (const auto& p : mine) owned_numel += p.numel();
    int64_t with_state = 0;
    const int64_t local = state_numel(zero.local_optimizer(), params, &with_state);
    CHECK(with_state == static_cast<int64_t>(mine.size()));
    CHECK(local == 2 * owned_numel);
    for (size_t i = 0; i < params.size(); ++i) {
      CHECK(zero.state(params[i]).has_value() == (zero.owners()[i] == rank()));
      CHECK(zero.local_optimizer().state(params[i]).has_value() == (zero.owners()[i] == rank()));
    }
    int64_t plain_with_state = 0;
    const int64_t full = state_numel(plain, net_b->parameters(), &plain_with_state);
    CHECK(full == 2 * (72 + 12 + 144 + 12 + 36 + 3));
    auto total = tensor<int64_t>({local});
    dist::all_reduce(total);
    CHECK(total.item<int64_t>() == full);
    // About 1/N each: with 4 ranks the largest shard is 144 of 279 elements.
    if (world() == 4) CHECK(local <= 2 * 144);
  }

  TEST_CASE("ZeRO consolidate_state_dict gives the plain AdamW's state_dict on the target rank") {
    auto net_a = make_net(11);
    auto net_b = make_net(11);
    const auto opts = optim::AdamWOptions().lr(3e-3).betas({0.8, 0.99}).weight_decay(0.05);
    auto zero = ZeroRedundancyOptimizer::make<optim::AdamW>(net_a->parameters(), opts);
    optim::AdamW plain(net_b->parameters(), opts);
    // Before consolidation: an error on every rank.
    CHECK_THROWS_WITH_AS(zero.state_dict(), doctest::Contains("[ZeroRedundancyOptimizer] state_dict() on rank"),
                         Error);
    for (int step = 0; step < 3; ++step) {
      zero.zero_grad();
      plain.zero_grad();
      loss_of(net_a->forward(batch(step, false))).backward();
      loss_of(net_b->forward(batch(step, false))).backward();
      zero.step();
      plain.step();
    }
    CHECK(same_params(net_a->parameters(), net_b->parameters(), 0));
    const TensorDict ref = plain.state_dict();
    for (int to : {0, world() - 1}) {
      CAPTURE(to);
      zero.consolidate_state_dict(to);
      if (rank() == to) {
        const TensorDict sd = zero.state_dict();
        CHECK(same_dict(sd, ref));
      } else {
        CHECK_THROWS_WITH_AS(zero.state_dict(), doctest::Contains("consolidated on rank"), Error);
      }
    }
    // A step makes the consolidated state stale: consolidate again.
    zero.zero_grad();
    loss_of(net_a->forward(batch(3, false))).backward();
    zero.step();
    CHECK_THROWS_WITH_AS(zero.state_dict(), doctest::Contains("not been consolidated"), Error);
    zero.consolidate_state_dict(0);
    if (rank() == 0) CHECK(zero.state_dict().contains("state.0.exp_avg"));
    CHECK_THROWS_WITH_AS(zero.consolidate_state_dict(world()), doctest::Contains("out of range"), Error);
  }

  TEST_CASE("ZeRO load_state_dict round trip continues training identically") {
    auto net_a = make_net(21);
    const auto opts = optim::AdamWOptions().lr(5e-3);
    auto zero_a = ZeroRedundancyOptimizer::make<optim::AdamW>(net_a->parameters(), opts);
    auto train = [](ZeroNet& net, optim::Optimizer& opt, int from, int to) {
      for (int step = from; step < to; ++step) {
        opt.zero_grad();
        loss_of(net.forward(batch(step, false))).backward();
        opt.step();
      }
    };
    train(*net_a, zero_a, 0, 3);
    zero_a.consolidate_state_dict(0);
    TensorDict saved;
    if (rank() == 0) saved = zero_a.state_dict();
    saved = broadcast_dict(saved, 0);

    // A fresh model with A's parameters and a fresh ZeRO loading the full state.
    auto net_c = make_net(99);
    {
      NoGradGuard no_grad;
      const auto pa = net_a->parameters();
      const auto pc = net_c->parameters();
      for (size_t i = 0; i < pa.size(); ++i) pc[i].copy_(pa[i]);
    }
    auto zero_c = ZeroRedundancyOptimizer::make<optim::AdamW>(net_c->parameters(), optim::AdamWOptions().lr(1.0));
    zero_c.load_state_dict(saved);
    CHECK(zero_c.lr() == doctest::Approx(5e-3));
    CHECK(zero_c.local_optimizer().lr() == doctest::Approx(5e-3));
    const auto pc = net_c->parameters();
    for (size_t i = 0; i < pc.size(); ++i) {
      CHECK(zero_c.state(pc[i]).has_value() == (zero_c.owners()[i] == rank()));
      if (zero_c.owners()[i] == rank()) CHECK(zero_c.step_count(pc[i]) == doctest::Approx(3.0));
    }
    // The plain optimizer's state_dict loads as well (the same layout).
    auto net_d = make_net(99);
    {
      NoGradGuard no_grad;
      const auto pa = net_a->parameters();
      const auto pd = net_d->parameters();
      for (size_t i = 0; i < pa.size(); ++i) pd[i].copy_(pa[i]);
    }
    optim::AdamW plain_d(net_d->parameters(), opts);
    plain_d.load_state_dict(saved);

    train(*net_a, zero_a, 3, 5);
    train(*net_c, zero_c, 3, 5);
    train(*net_d, plain_d, 3, 5);
    CHECK(same_params(net_a->parameters(), net_c->parameters(), 0));
    CHECK(same_params(net_a->parameters(), net_d->parameters(), 0));
    // And the consolidated state of C equals A's.
    zero_a.consolidate_state_dict(0);
    zero_c.consolidate_state_dict(0);
    if (rank() == 0) CHECK(same_dict(zero_a.state_dict(), zero_c.state_dict(), 0));
  }

  TEST_CASE("ZeRO(SGD) over param groups follows a scheduler as the plain SGD") {
    auto net_a = make_net(5);
    auto net_b = make_net(5);
    auto groups = [](ZeroNet& n) {
      std::vector<Tensor> weights{n.fc1->weight(), n.fc2->weight(), n.fc3->weight()};
      std::vector<Tensor> biases{n.fc1->bias(), n.fc2->bias(), n.fc3->bias()};
      return std::vector<optim::ParamGroup>{optim::ParamGroup(weights),
                                            optim::ParamGroup(biases).lr(0.05).weight_decay(0)};
    };
    const auto opts = optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(1e-3);
    ZeroRedundancyOptimizer zero(groups(*net_a), ZeroRedundancyOptimizer::factory<optim::SGD>(opts));
    optim::SGD plain(groups(*net_b), opts);
    optim::StepLR sched_a(zero, 2, 0.5);
    optim::StepLR sched_b(plain, 2, 0.5);
    CHECK(zero.param_groups().size() == 2);
    CHECK(zero.local_optimizer().param_groups().size() == 2);
    for (int step = 0; step < 5; ++step) {
      zero.zero_grad(false);
      plain.zero_grad(false);
      loss_of(net_a->forward(batch(step, false))).backward();
      loss_of(net_b->forward(batch(step, false))).backward();
      zero.step();
      plain.step();
      sched_a.step();
      sched_b.step();
    }
    CHECK(sched_a.get_last_lr() == sched_b.get_last_lr());
    CHECK(zero.lr(1) == doctest::Approx(plain.lr(1)));
    CHECK(same_params(net_a->parameters(), net_b->parameters(), 0));
    // zero_grad(false) leaves zero gradients on every parameter, owned or not.
    zero.zero_grad(false);
    for (const auto& p : net_a->parameters()) CHECK(p.grad().abs().sum().item<double>() == 0.0);
    zero.zero_grad();
    for (const auto& p : net_a->parameters()) CHECK_FALSE(p.grad().defined());
    // The consolidated state (momentum buffers and both groups, initial_lr included).
    zero.consolidate_state_dict(0);
    if (rank() == 0) CHECK(same_dict(zero.state_dict(), plain.state_dict()));
  }

  TEST_CASE("ZeRO with more ranks than parameters") {
    manual_seed(3);
    Tensor w = randn({4, 3}).requires_grad_();
    Tensor w_ref = w.detach().clone().requires_grad_();
    auto zero = ZeroRedundancyOptimizer::make<optim::AdamW>(std::vector<Tensor>{w});
    optim::AdamW plain(std::vector<Tensor>{w_ref});
    CHECK(zero.owners() == std::vector<int>{0});
    CHECK(zero.local_optimizer().num_params() == 1);  // the parameter, or a placeholder
    for (int step = 0; step < 3; ++step) {
      zero.zero_grad();
      plain.zero_grad();
      (w * w).sum().backward();
      (w_ref * w_ref).sum().backward();
      zero.step();
      plain.step();
    }
    CHECK(allclose(w, w_ref, 0, 0));
    CHECK(zero.state(w).has_value() == (rank() == 0));
    zero.consolidate_state_dict(world() - 1);
    if (rank() == world() - 1) CHECK(same_dict(zero.state_dict(), plain.state_dict()));
    zero.load_state_dict(plain.state_dict());
    CHECK(zero.state(w).has_value() == (rank() == 0));
  }

  TEST_CASE("ZeRO errors") {
    using ZRO = ZeroRedundancyOptimizer;
    CHECK_THROWS_WITH_AS(ZRO::make<optim::AdamW>(std::vector<Tensor>{}),
                         doctest::Contains("[ZeroRedundancyOptimizer] optimizer got an empty parameter list"), Error);
    // Parameters that differ across ranks: every rank gets the same error.
    Tensor p = zeros({rank() == world() - 1 && world() > 1 ? 3 : 2}).requires_grad_();
    if (world() > 1) {
      CHECK_THROWS_WITH_AS(ZRO::make<optim::AdamW>(std::vector<Tensor>{p}),
                           doctest::Contains("every rank must be given the same parameters"), Error);
    } else {
      CHECK_NOTHROW(ZRO::make<optim::AdamW>(std::vector<Tensor>{p}));
    }
    Tensor q = zeros({2}).requires_grad_();
    std::vector<Tensor> two{q, zeros({rank() == 0 ? 1 : 2}).requires_grad_()};
    if (world() > 1) {
      CHECK_THROWS_WITH_AS(ZRO::make<optim::AdamW>(two), doctest::Contains("parameter 1 of group 0 is float32[1]"),
                           Error);
    } else {
      CHECK_NOTHROW(ZRO::make<optim::AdamW>(two));
    }
    // A state dict that does not fit: the same error on every rank, nothing changed.
    Tensor a = ones({3}).requires_grad_();
    Tensor b = ones({5}).requires_grad_();
    auto zero = ZRO::make<optim::SGD>(std::vector<Tensor>{a, b}, optim::SGDOptions(0.1).momentum(0.5));
    optim::SGD other(std::vector<Tensor>{a}, optim::SGDOptions(0.1));
    CHECK_THROWS_WITH_AS(zero.load_state_dict(other.state_dict()), doctest::Contains("has 1 parameters"), Error);
    TensorDict bad = optim::SGD(std::vector<Tensor>{a, b}, optim::SGDOptions(0.1).momentum(0.5)).state_dict();
    bad.insert("state.1.momentum_buffer", zeros({4}));
    bad.insert("state.0.momentum_buffer", zeros({3}));
    // Only the owner of b checks its state's shape (loading needs no communication).
    if (zero.owners()[1] == rank())
      CHECK_THROWS_WITH_AS(zero.load_state_dict(bad), doctest::Contains("has shape [4]"), Error);
    else
      CHECK_NOTHROW(zero.load_state_dict(bad));
    bad.insert("state.7.momentum_buffer", zeros({3}));
    CHECK_THROWS_WITH_AS(zero.load_state_dict(bad), doctest::Contains("parameter id 7"), Error);
    // add_param_group after construction is refused at the next step.
    zero.add_param_group(optim::ParamGroup(std::vector<Tensor>{zeros({2}).requires_grad_()}));
    CHECK_THROWS_WITH_AS(zero.step(), doctest::Contains("add_param_group() after construction is not supported"),
                         Error);
    // No process group.
    dist::destroy_process_group();
    CHECK_THROWS_WITH_AS(ZRO::make<optim::AdamW>(std::vector<Tensor>{q}),
                         doctest::Contains("[ZeroRedundancyOptimizer] needs the default process group"), Error);
    dist::init_process_group(dist::Backend::kMPI);
    dist::barrier();
  }
}
