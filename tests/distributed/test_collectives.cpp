// Collectives against their expected results on every rank (run with 1, 2 and 4 ranks).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "test_util.h"
#include "autograd/functions/indexing.h"
#include "autograd/functions/reduce.h"
#include "autograd/functions/elementwise.h"
#include "core/creation.h"
#include "distributed/distributed.h"

namespace dist = focus::distributed;
using namespace focus;
using focus::testing::allclose;

namespace {
int rank() { return dist::get_rank(); }
int world() { return dist::get_world_size(); }

// Rank r's tensor: values r * 10 + i (i the flat index), in dtype.
Tensor rank_values(int r, const Shape& shape, DType dtype) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return (arange(0.0, static_cast<double>(n)) + r * 10.0).reshape(shape).to(dtype);
}
bool same(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && allclose(a.to(kFloat64), b.to(kFloat64), 0, 0); }
}  // namespace

TEST_SUITE("distributed") {
  TEST_CASE("group basics") {
    CHECK(dist::is_initialized());
    CHECK(rank() >= 0);
    CHECK(rank() < world());
    CHECK(dist::get_backend() == dist::Backend::kMPI);
    CHECK(dist::get_local_rank() < dist::get_local_world_size());
    CHECK_THROWS_WITH_AS(dist::init_process_group(), doctest::Contains("already initialized"), Error);
    dist::barrier();
  }

  TEST_CASE("all_reduce sum, avg, max, min over dtypes, sync and async") {
    const int w = world();
    for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt32, kInt64}) {
      CAPTURE(dtype_name(dt));
      const Shape shape{3, 5};
      // sum: sum_r (r*10 + i) = 10 * w(w-1)/2 + w*i
      Tensor s = rank_values(rank(), shape, dt);
      dist::all_reduce(s, dist::ReduceOp::SUM);
      Tensor expect = (arange(0.0, 15.0).reshape(shape) * w + 10.0 * w * (w - 1) / 2).to(kFloat64);
      CHECK(allclose(s.to(kFloat64), expect, 1e-2, 0));
      Tensor mx = rank_values(rank(), shape, dt);
      dist::Work w1 = dist::all_reduce(mx, dist::ReduceOp::MAX, true);
      Tensor mn = rank_values(rank(), shape, dt);
      dist::Work w2 = dist::all_reduce(mn, dist::ReduceOp::MIN, true);
      w1.wait();
      w2.wait();
      CHECK(w1.is_completed());
      CHECK(same(mx.to(kFloat64), rank_values(w - 1, shape, kFloat64)));
      CHECK(same(mn.to(kFloat64), rank_values(0, shape, kFloat64)));
      if (is_floating(dt)) {
        Tensor a = rank_values(rank(), shape, dt);
        dist::all_reduce(a, dist::ReduceOp::AVG);
        CHECK(allclose(a.to(kFloat64), expect / w, 2e-2, 0));
      } else {
        Tensor a = rank_values(rank(), shape, dt);
        CHECK_THROWS_WITH_AS(dist::all_reduce(a, dist::ReduceOp::AVG), doctest::Contains("AVG needs a floating"),
                             Error);
      }
    }
    // bool: max is or, min is and
    Tensor b = tensor<bool>({rank() == 0, true, false});
    Tensor b2 = b.clone();
    dist::all_reduce(b, dist::ReduceOp::MAX);
    dist::all_reduce(b2, dist::ReduceOp::MIN);
    CHECK(b.to_vector<bool>() == std::vector<bool>{true, true, false});
    CHECK(b2.to_vector<bool>() == std::vector<bool>{world() == 1, true, false});
    CHECK_THROWS_WITH_AS(dist::all_reduce(b, dist::ReduceOp::SUM), doctest::Contains("bool"), Error);
  }

  TEST_CASE("all_reduce of a 0-d, an empty and a large tensor") {
    Tensor s = scalar_tensor(2.5);
    dist::all_reduce(s);
    CHECK(s.item<double>() == doctest::Approx(2.5 * world()));
    Tensor e = zeros({0, 3});
    dist::all_reduce(e);
    CHECK(e.numel() == 0);
    Tensor big = full({1 << 20}, static_cast<double>(rank() + 1));
    dist::all_reduce(big, dist::ReduceOp::AVG, true).wait();
    CHECK(focus::min(big).item<float>() == doctest::Approx((world() + 1) / 2.0));
    CHECK(focus::max(big).item<float>() == doctest::Approx((world() + 1) / 2.0));
  }

  TEST_CASE("broadcast from every rank") {
    for (int src = 0; src < world(); ++src) {
      for (DType dt : {kFloat32, kBFloat16, kInt64, kBool, kUInt8}) {
        Tensor t = rank_values(rank(), {2, 3}, kFloat64).to(dt);
        Tensor want = rank_values(src, {2, 3}, kFloat64).to(dt);
        dist::broadcast(t, src, dt == kInt64).wait();
        CHECK(same(t, want));
      }
    }
    Tensor t = zeros({2});
    CHECK_THROWS_WITH_AS(dist::broadcast(t, world()), doctest::Contains("is not a rank"), Error);
  }

  TEST_CASE("all_gather and all_gather_into_tensor") {
    for (DType dt : {kFloat32, kFloat16, kInt32}) {
      Tensor in = rank_values(rank(), {2, 2}, dt);
      std::vector<Tensor> outs;
      for (int r = 0; r < world(); ++r) outs.push_back(zeros({2, 2}, dt));
      dist::Work wk = dist::all_gather(outs, in, true);
      wk.wait();
      for (int r = 0; r < world(); ++r) CHECK(same(outs[r], rank_values(r, {2, 2}, dt)));
      Tensor flat = empty({2 * world(), 2}, dt);
      dist::all_gather_into_tensor(flat, in);
      for (int r = 0; r < world(); ++r) CHECK(same(flat.narrow(0, 2 * r, 2), rank_values(r, {2, 2}, dt)));
    }
    Tensor in = zeros({3});
    std::vector<Tensor> few(static_cast<size_t>(world()) + 1, zeros({3}));
    CHECK_THROWS_WITH_AS(dist::all_gather(few, in), doctest::Contains("one output tensor per rank"), Error);
    Tensor bad = zeros({3 * world() + 1});
    CHECK_THROWS_WITH_AS(dist::all_gather_into_tensor(bad, in), doctest::Contains("world_size"), Error);
  }

  TEST_CASE("reduce_scatter and reduce_scatter_tensor") {
    const int w = world();
    for (dist::ReduceOp op : {dist::ReduceOp::SUM, dist::ReduceOp::AVG, dist::ReduceOp::MAX}) {
      // Rank q's chunk r holds q * 100 + r * 10 + i.
      std::vector<Tensor> ins;
      for (int r = 0; r < w; ++r) ins.push_back(arange(0.0, 3.0) + (rank() * 100 + r * 10));
      Tensor out = zeros({3});
      dist::reduce_scatter(out, ins, op);
      Tensor base = arange(0.0, 3.0) + rank() * 10;
      const double sum_q = 100.0 * w * (w - 1) / 2;
      Tensor want = op == dist::ReduceOp::SUM   ? base * w + sum_q
                    : op == dist::ReduceOp::AVG ? base + sum_q / w
                                                : base + 100.0 * (w - 1);
      CHECK(allclose(out, want, 1e-6, 1e-6));
      Tensor flat = cat(ins, 0);
      Tensor out2 = zeros({3});
      dist::reduce_scatter_tensor(out2, flat, op, true).wait();
      CHECK(allclose(out2, want, 1e-6, 1e-6));
    }
  }

  TEST_CASE("collectives run in issue order") {
    // Many async all_reduces on one tensor: each doubles it (sum over w ranks of equal values).
    Tensor t = ones({8});
    std::vector<dist::Work> works;
    for (int i = 0; i < 10; ++i) works.push_back(dist::all_reduce(t, dist::ReduceOp::SUM, true));
    for (auto& wk : works) wk.wait();
    CHECK(focus::max(t).item<double>() == doctest::Approx(std::pow(world(), 10)));
  }

  TEST_CASE("object collectives") {
    const std::string mine = "rank " + std::to_string(rank()) + std::string(static_cast<size_t>(rank()) * 3, 'x');
    const auto all = dist::all_gather_bytes(mine);
    REQUIRE(all.size() == static_cast<size_t>(world()));
    for (int r = 0; r < world(); ++r)
      CHECK(all[r] == "rank " + std::to_string(r) + std::string(static_cast<size_t>(r) * 3, 'x'));
    CHECK(dist::broadcast_bytes(mine, world() - 1) == all[world() - 1]);
    CHECK(dist::broadcast_bytes(rank() == 0 ? std::string() : mine, 0).empty());
  }

  TEST_CASE("ranks that disagree get the same clear error, and the group goes on") {
    if (world() == 1) return;
    Tensor t = zeros({rank() == 1 ? 5 : 4});
    CHECK_THROWS_WITH_AS(dist::all_reduce(t), doctest::Contains("rank 1: all_reduce(float32 [5], sum)"), Error);
    Tensor d = zeros({4}, rank() == 1 ? kFloat64 : kFloat32);
    CHECK_THROWS_WITH_AS(dist::broadcast(d, 0), doctest::Contains("different dtypes or shapes"), Error);
    Tensor ok = ones({4});
    dist::all_reduce(ok);
    CHECK(focus::max(ok).item<float>() == doctest::Approx(world()));
  }

  TEST_CASE("bad tensors are refused before anything is exchanged") {
    Tensor nc = zeros({4, 4}).t();
    CHECK_THROWS_WITH_AS(dist::all_reduce(nc), doctest::Contains("must be contiguous"), Error);
    CHECK_THROWS_WITH_AS(dist::all_reduce(Tensor()), doctest::Contains("undefined"), Error);
    Tensor cpu = zeros({2});
    CHECK_THROWS_WITH_AS(dist::broadcast(cpu, -1), doctest::Contains("is not a rank"), Error);
  }
}
