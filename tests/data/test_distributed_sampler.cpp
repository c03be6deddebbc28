// DistributedSampler (PyTorch's padding / drop_last / subsampling, seeded shuffling) and the
// DataLoader's sampler option.
#include <algorithm>
#include <numeric>
#include <set>

#include "test_util.h"

using namespace focus;
using namespace focus::data;

namespace {

using Ids = std::vector<int64_t>;
using Loader = DataLoader<int64_t, Ids>;

std::shared_ptr<const Dataset<int64_t>> range_dataset(int64_t n) {
  Ids v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return std::make_shared<VectorDataset<int64_t>>(std::move(v));
}

Ids identity(Ids xs) { return xs; }

std::vector<Ids> collect(Loader& loader) {
  std::vector<Ids> out;
  for (Ids& b : loader) out.push_back(b);
  return out;
}

Ids flatten(const std::vector<Ids>& batches) {
  Ids out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

// The ranks' indices of one epoch, concatenated and sorted.
Ids all_ranks(int64_t n, int64_t replicas, bool shuffle, uint64_t seed, bool drop_last, int64_t epoch) {
  Ids out;
  for (int64_t r = 0; r < replicas; ++r) {
    DistributedSampler s(n, replicas, r, shuffle, seed, drop_last);
    auto idx = s.indices(epoch);
    CHECK(static_cast<int64_t>(idx.size()) == s.num_samples());
    out.insert(out.end(), idx.begin(), idx.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Ids range(int64_t n) {
  Ids v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

// A sampler that returns a fixed list, to test the DataLoader's checks on any Sampler.
struct ListSampler : Sampler {
  ListSampler(Ids ids, int64_t size) : ids_(std::move(ids)), size_(size) {}
  int64_t size() const override { return size_; }
  Ids indices(int64_t) const override { return ids_; }
  Ids ids_;
  int64_t size_;
};

}  // namespace

TEST_SUITE("data_sampler") {

TEST_CASE("DistributedSampler without shuffle matches PyTorch 1.13 (padding and drop_last)") {
  // From /usr/bin/python3 with torch 1.13:
  //   [list(DistributedSampler(range(n), num_replicas=r, rank=k, shuffle=False,
  //                            drop_last=d)) for k in range(r)]
  struct Case {
    int64_t n, replicas;
    bool drop_last;
    int64_t num_samples, total_size;
    std::vector<Ids> per_rank;
  };
  const std::vector<Case> cases = {
      {10, 4, false, 3, 12, {{0, 4, 8}, {1, 5, 9}, {2, 6, 0}, {3, 7, 1}}},
      {10, 4, true, 2, 8, {{0, 4}, {1, 5}, {2, 6}, {3, 7}}},
      {10, 3, false, 4, 12, {{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}}},
      {10, 3, true, 3, 9, {{0, 3, 6}, {1, 4, 7}, {2, 5, 8}}},
      {7, 3, false, 3, 9, {{0, 3, 6}, {1, 4, 0}, {2, 5, 1}}},
      {7, 3, true, 2, 6, {{0, 3}, {1, 4}, {2, 5}}},
      // padding longer than the dataset: (indices * ceil(5 / 3))[:5]
      {3, 8, false, 1, 8, {{0}, {1}, {2}, {0}, {1}, {2}, {0}, {1}}},
      {3, 8, true, 0, 0, {{}, {}, {}, {}, {}, {}, {}, {}}},
      {5, 5, false, 1, 5, {{0}, {1}, {2}, {3}, {4}}},
      {5, 5, true, 1, 5, {{0}, {1}, {2}, {3}, {4}}},
      {12, 5, false, 3, 15, {{0, 5, 10}, {1, 6, 11}, {2, 7, 0}, {3, 8, 1}, {4, 9, 2}}},
      {12, 5, true, 2, 10, {{0, 5}, {1, 6}, {2, 7}, {3, 8}, {4, 9}}},
      {2, 3, false, 1, 3, {{0}, {1}, {0}}},
      {2, 3, true, 0, 0, {{}, {}, {}}},
      {0, 3, false, 0, 0, {{}, {}, {}}},
      {0, 3, true, 0, 0, {{}, {}, {}}},
  };
  for (const auto& c : cases) {
    for (int64_t r = 0; r < c.replicas; ++r) {
      CAPTURE(c.n);
      CAPTURE(c.replicas);
      CAPTURE(c.drop_last);
      CAPTURE(r);
      DistributedSampler s(c.n, c.replicas, r, /*shuffle=*/false, /*seed=*/0, c.drop_last);
      CHECK(s.num_samples() == c.num_samples);
      CHECK(s.size() == c.num_samples);
      CHECK(s.total_size() == c.total_size);
      CHECK(s.indices() == c.per_rank[static_cast<size_t>(r)]);
      // Without shuffle the epoch does not matter.
      CHECK(s.indices(5) == c.per_rank[static_cast<size_t>(r)]);
    }
  }
}

TEST_CASE("DistributedSampler: every index exactly once per epoch across ranks when the size divides") {
  for (bool shuffle : {false, true}) {
    for (int64_t epoch : {0, 1, 7}) {
      CAPTURE(shuffle);
      CAPTURE(epoch);
      CHECK(all_ranks(12, 4, shuffle, 3, false, epoch) == range(12));
      CHECK(all_ranks(12, 4, shuffle, 3, true, epoch) == range(12));  // drop_last changes nothing here
      CHECK(all_ranks(100, 1, shuffle, 3, false, epoch) == range(100));
      CHECK(all_ranks(99, 3, shuffle, 3, false, epoch) == range(99));
    }
  }
}

TEST_CASE("DistributedSampler padding and drop_last with shuffle") {
  // size 10, 4 replicas: 3 each, the two padded indices repeat the first two of the epoch's order
  for (int64_t epoch : {0, 2}) {
    const Ids perm = epoch_permutation(10, 5, epoch);
    Ids padded = perm;
    padded.push_back(perm[0]);
    padded.push_back(perm[1]);
    Ids union_;
    for (int64_t r = 0; r < 4; ++r) {
      DistributedSampler s(10, 4, r, true, 5);
      s.set_epoch(epoch);
      auto idx = s.indices();
      REQUIRE(idx.size() == 3);
      for (size_t j = 0; j < 3; ++j) CHECK(idx[j] == padded[static_cast<size_t>(r) + 4 * j]);
      union_.insert(union_.end(), idx.begin(), idx.end());
    }
    std::sort(union_.begin(), union_.end());
    Ids expected = range(10);
    expected.push_back(perm[0]);
    expected.push_back(perm[1]);
    std::sort(expected.begin(), expected.end());
    CHECK(union_ == expected);
  }
  // drop_last: 2 each, 8 distinct indices: the first 8 of the order
  const Ids perm = epoch_permutation(10, 5, 1);
  Ids got = all_ranks(10, 4, true, 5, true, 1);
  CHECK(got.size() == 8);
  CHECK(std::set<int64_t>(got.begin(), got.end()).size() == 8);
  Ids first8(perm.begin(), perm.begin() + 8);
  std::sort(first8.begin(), first8.end());
  CHECK(got == first8);
}

TEST_CASE("DistributedSampler shuffle: reproducible per (seed, epoch), the same order on every rank") {
  const int64_t n = 100, replicas = 4;
  // Golden values: the permutation is fixed by its definition (it is the DataLoader's
  // shuffle: plan_batches(10, shuffle, seed 1, epoch 0) gives 3 0 5 2 7 6 9 4 8 1).
  const std::vector<Ids> golden = {{3, 7, 8}, {0, 6, 1}, {5, 9, 3}, {2, 4, 0}};
  for (int64_t r = 0; r < 4; ++r) CHECK(DistributedSampler(10, 4, r, true, 1).indices(0) == golden[static_cast<size_t>(r)]);

  std::vector<Ids> epoch0, epoch1;
  for (int64_t r = 0; r < replicas; ++r) {
    DistributedSampler a(n, replicas, r, true, 42), b(n, replicas, r, true, 42);
    CHECK(a.epoch() == 0);
    epoch0.push_back(a.indices());
    a.set_epoch(1);
    CHECK(a.epoch() == 1);
    epoch1.push_back(a.indices());
    CHECK(epoch0.back() != epoch1.back());  // reshuffled
    CHECK(b.indices(1) == epoch1.back());   // another instance, same (seed, epoch)
    CHECK(b.indices() == epoch0.back());
    CHECK(DistributedSampler(n, replicas, r, true, 43).indices(0) != epoch0.back());  // another seed
    CHECK(DistributedSampler(n, replicas, r, false, 42).indices(0) != epoch0.back());  // actually shuffled
  }
  // The ranks split one permutation: their union is range(n) in both epochs.
  CHECK(all_ranks(n, replicas, true, 42, false, 0) == range(n));
  CHECK(all_ranks(n, replicas, true, 42, false, 1) == range(n));
  // One replica: the whole permutation, the order of a shuffling DataLoader with that seed.
  DistributedSampler one(n, 1, 0, true, 42);
  CHECK(one.indices(3) == epoch_permutation(n, 42, 3));
  CHECK(flatten(plan_batches(n, DataLoaderOptions(7).shuffle(true).seed(42), 3)) == one.indices(3));
}

TEST_CASE("DistributedSampler errors") {
  CHECK_THROWS_WITH_AS(DistributedSampler(10, 0, 0),
                       doctest::Contains("[DistributedSampler] num_replicas must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(DistributedSampler(10, 4, 4),
                       doctest::Contains("[DistributedSampler] rank 4 out of range [0, 4)"), Error);
  CHECK_THROWS_WITH_AS(DistributedSampler(10, 4, -1),
                       doctest::Contains("[DistributedSampler] rank -1 out of range [0, 4)"), Error);
  CHECK_THROWS_WITH_AS(DistributedSampler(-1, 4, 0),
                       doctest::Contains("[DistributedSampler] dataset_size must be >= 0, got -1"), Error);
  DistributedSampler s(10, 4, 0);
  CHECK_THROWS_WITH_AS(s.set_epoch(-1), doctest::Contains("[DistributedSampler] set_epoch: epoch must be >= 0"),
                       Error);
  CHECK_THROWS_WITH_AS(s.indices(-2), doctest::Contains("[DistributedSampler] epoch must be >= 0, got -2"), Error);
}

TEST_CASE("DataLoader with a DistributedSampler: the rank's indices, batched") {
  // size 10, 4 replicas, rank 1: indices 1 5 9
  auto sampler = std::make_shared<DistributedSampler>(10, 4, 1, /*shuffle=*/false);
  Loader loader(range_dataset(10), identity, DataLoaderOptions(2).sampler(sampler));
  CHECK(loader.num_batches() == 2);
  CHECK(collect(loader) == std::vector<Ids>{{1, 5}, {9}});
  Loader dropping(range_dataset(10), identity, DataLoaderOptions(2).sampler(sampler).drop_last(true));
  CHECK(dropping.num_batches() == 1);
  CHECK(collect(dropping) == std::vector<Ids>{{1, 5}});
  // rank 2 wraps around to index 0 (padding)
  Loader rank2(range_dataset(10), identity,
               DataLoaderOptions(3).sampler(std::make_shared<DistributedSampler>(10, 4, 2, false)));
  CHECK(rank2.num_batches() == 1);
  CHECK(collect(rank2) == std::vector<Ids>{{2, 6, 0}});
  // Every rank has the same number of batches, even when the dataset does not divide.
  for (int64_t r = 0; r < 3; ++r) {
    auto s = std::make_shared<DistributedSampler>(100, 3, r, true, 7);  // 34 each
    for (bool drop_last : {false, true}) {
      Loader l(range_dataset(100), identity, DataLoaderOptions(8).sampler(s).drop_last(drop_last));
      CHECK(l.num_batches() == (drop_last ? 4 : 5));
      CHECK(static_cast<int64_t>(collect(l).size()) == l.num_batches());
    }
  }
  // A sampler with drop_last: 33 each -> 5 batches of 8 with the last short, or 4.
  Loader dl(range_dataset(100), identity,
            DataLoaderOptions(8).sampler(std::make_shared<DistributedSampler>(100, 3, 0, true, 7, true)));
  CHECK(dl.num_batches() == 5);
  CHECK(collect(dl).back().size() == 1);
}

TEST_CASE("DataLoader with a sampler: its epoch counter drives the sampler's epoch") {
  const int64_t n = 64, replicas = 4;
  std::vector<std::shared_ptr<DistributedSampler>> samplers;
  std::vector<Loader> loaders;
  for (int64_t r = 0; r < replicas; ++r) {
    samplers.push_back(std::make_shared<DistributedSampler>(n, replicas, r, true, 11));
    loaders.emplace_back(range_dataset(n), identity, DataLoaderOptions(5).sampler(samplers.back()).prefetch(r % 2));
  }
  std::vector<Ids> first_epoch;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {  // a plain loop, as `for epoch in ...` with set_epoch
    Ids seen;
    for (int64_t r = 0; r < replicas; ++r) {
      auto& loader = loaders[static_cast<size_t>(r)];
      CHECK(loader.epoch() == epoch);
      auto batches = collect(loader);
      CHECK(batches.size() == 4);  // 16 per rank in batches of 5
      Ids mine = flatten(batches);
      // what PyTorch gives after sampler.set_epoch(epoch)
      CHECK(mine == samplers[static_cast<size_t>(r)]->indices(epoch));
      if (epoch == 0) first_epoch.push_back(mine);
      if (epoch > 0) CHECK(mine != first_epoch[static_cast<size_t>(r)]);
      seen.insert(seen.end(), mine.begin(), mine.end());
    }
    std::sort(seen.begin(), seen.end());
    CHECK(seen == range(n));  // the ranks together cover the dataset once per epoch
  }
  // The loader only reads the sampler: its own epoch stays where it was.
  CHECK(samplers[0]->epoch() == 0);
  // set_epoch reproduces an epoch, with start_batch to resume in its middle.
  loaders[0].set_epoch(0);
  CHECK(flatten(collect(loaders[0])) == first_epoch[0]);
  loaders[0].set_epoch(0, 3);
  CHECK(flatten(collect(loaders[0])) == Ids(first_epoch[0].begin() + 15, first_epoch[0].end()));
  CHECK(loaders[0].batch_indices(2) == plan_batches(n, DataLoaderOptions(5).sampler(samplers[0]), 2));
}

TEST_CASE("DataLoader with a sampler and bucketing: windows of the sampler's order sorted by length") {
  // example i has length (i * 7) % 10
  auto length = [](const int64_t& i) { return (i * 7) % 10; };
  for (bool shuffle : {false, true}) {
    CAPTURE(shuffle);
    auto sampler = std::make_shared<DistributedSampler>(40, 2, 1, shuffle, 3);
    Loader loader(range_dataset(40), identity, DataLoaderOptions(2).sampler(sampler).bucket(3), length);
    CHECK(loader.num_batches() == 10);
    auto batches = collect(loader);
    REQUIRE(batches.size() == 10);
    // The bucketed plan: windows of 6 of the sampler's order, each sorted by length (stable),
    // cut into batches of 2.
    Ids order = sampler->indices(0);
    for (size_t w = 0; w < order.size(); w += 6) {
      auto first = order.begin() + static_cast<std::ptrdiff_t>(w);
      auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(w + 6, order.size()));
      std::stable_sort(first, last, [&](int64_t a, int64_t b) { return length(a) < length(b); });
    }
    std::vector<Ids> plan;
    for (size_t i = 0; i < order.size(); i += 2) plan.push_back(Ids(order.begin() + static_cast<std::ptrdiff_t>(i),
                                                                      order.begin() + static_cast<std::ptrdiff_t>(i + 2)));
    if (!shuffle) {
      CHECK(batches == plan);  // in window order
    } else {
      // A shuffling sampler: the same batches, their order shuffled (as shuffle(true) does
      // without a sampler), so the epoch does not run shortest first in every window.
      CHECK(batches != plan);
      auto a = batches, b = plan;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      CHECK(a == b);
    }
  }
}

TEST_CASE("DataLoader sampler errors") {
  auto ds = range_dataset(10);
  auto sampler = std::make_shared<DistributedSampler>(10, 2, 0);
  CHECK_THROWS_WITH_AS(Loader(ds, identity, DataLoaderOptions(2).sampler(sampler).shuffle(true)),
                       doctest::Contains("[DataLoader] sampler and shuffle(true) are mutually exclusive"), Error);
  CHECK_THROWS_WITH_AS(plan_batches(10, DataLoaderOptions(2).sampler(sampler).shuffle(true), 0),
                       doctest::Contains("mutually exclusive"), Error);
  CHECK_THROWS_WITH_AS(
      Loader(ds, identity, DataLoaderOptions(2).sampler(std::make_shared<DistributedSampler>(12, 2, 0))),
      doctest::Contains("[DataLoader] the DistributedSampler was built for dataset_size 12, but the dataset has 10"),
      Error);
  // Any Sampler: indices must be in range and as many as its size().
  Loader out_of_range(ds, identity, DataLoaderOptions(2).sampler(std::make_shared<ListSampler>(Ids{1, 10}, 2)));
  CHECK(out_of_range.num_batches() == 1);
  CHECK_THROWS_WITH_AS(out_of_range.begin(),
                       doctest::Contains("[DataLoader] sampler index 10 out of range for a dataset of 10 examples"),
                       Error);
  Loader wrong_size(ds, identity, DataLoaderOptions(2).sampler(std::make_shared<ListSampler>(Ids{1, 2, 3}, 2)));
  CHECK_THROWS_WITH_AS(wrong_size.begin(),
                       doctest::Contains("[DataLoader] the sampler gave 3 indices for epoch 0, but its size() is 2"),
                       Error);
  // A custom sampler may repeat and skip indices: the loader follows it.
  Loader custom(ds, identity, DataLoaderOptions(2).sampler(std::make_shared<ListSampler>(Ids{9, 9, 0}, 3)));
  CHECK(collect(custom) == std::vector<Ids>{{9, 9}, {0}});
}

}  // TEST_SUITE
