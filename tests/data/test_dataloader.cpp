// DataLoader: shuffling, batching, drop_last, bucketing, prefetching, errors.
#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>

#include "test_util.h"

using namespace focus;
using namespace focus::data;

namespace {

using Ids = std::vector<int64_t>;
using Loader = DataLoader<int64_t, Ids>;

std::shared_ptr<const Dataset<int64_t>> range_dataset(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return std::make_shared<VectorDataset<int64_t>>(std::move(v));
}

Ids identity(std::vector<int64_t> xs) { return xs; }

std::vector<Ids> collect(DataLoader<int64_t, Ids>& loader) {
  std::vector<Ids> out;
  for (Ids& b : loader) out.push_back(b);
  return out;
}

void check_covers_once(const std::vector<Ids>& batches, int64_t n) {
  std::vector<int> seen(static_cast<size_t>(n), 0);
  for (const auto& b : batches)
    for (int64_t i : b) {
      REQUIRE(i >= 0);
      REQUIRE(i < n);
      ++seen[static_cast<size_t>(i)];
    }
  for (int64_t i = 0; i < n; ++i) CHECK_MESSAGE(seen[static_cast<size_t>(i)] == 1, "index " << i);
}

// A dataset of token sequences whose lengths vary from 1 to 40.
struct SeqDataset : Dataset<Ids> {
  int64_t size() const override { return 1000; }
  Ids get(int64_t i) const override { return Ids(static_cast<size_t>(1 + (i * 7919) % 40), i); }
};

// Throws on one index, to test that errors reach the consumer.
struct FailingDataset : Dataset<int64_t> {
  explicit FailingDataset(int64_t bad) : bad_(bad) {}
  int64_t size() const override { return 100; }
  int64_t get(int64_t i) const override {
    if (i == bad_) throw Error(fmt::format("[FailingDataset] cannot read example {}", i));
    return i;
  }
  int64_t bad_;
};

}  // namespace

TEST_SUITE("data") {

TEST_CASE("DataLoader without shuffle: batches in order, last batch short") {
  DataLoader<int64_t, Ids> loader(range_dataset(10), identity, DataLoaderOptions(4));
  CHECK(loader.num_batches() == 3);
  auto batches = collect(loader);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0] == Ids{0, 1, 2, 3});
  CHECK(batches[1] == Ids{4, 5, 6, 7});
  CHECK(batches[2] == Ids{8, 9});
}

TEST_CASE("DataLoader drop_last drops only a short last batch") {
  DataLoader<int64_t, Ids> loader(range_dataset(10), identity, DataLoaderOptions(4).drop_last(true).shuffle(true));
  CHECK(loader.num_batches() == 2);
  auto batches = collect(loader);
  REQUIRE(batches.size() == 2);
  for (const auto& b : batches) CHECK(b.size() == 4);
  DataLoader<int64_t, Ids> exact(range_dataset(8), identity, DataLoaderOptions(4).drop_last(true));
  CHECK(collect(exact).size() == 2);
  DataLoader<int64_t, Ids> too_small(range_dataset(3), identity, DataLoaderOptions(4).drop_last(true));
  CHECK(too_small.num_batches() == 0);
  CHECK(collect(too_small).empty());
  DataLoader<int64_t, Ids> empty(range_dataset(0), identity, DataLoaderOptions(4));
  CHECK(empty.num_batches() == 0);
  CHECK(collect(empty).empty());
}

TEST_CASE("DataLoader shuffling: every index once per epoch, reproducible per (seed, epoch)") {
  const int64_t n = 1001;
  auto opts = DataLoaderOptions(16).shuffle(true).seed(42);
  DataLoader<int64_t, Ids> a(range_dataset(n), identity, opts);
  DataLoader<int64_t, Ids> b(range_dataset(n), identity, opts);
  auto e0 = collect(a);
  auto e1 = collect(a);  // the next pass moves on to epoch 1
  CHECK(a.epoch() == 2);
  check_covers_once(e0, n);
  check_covers_once(e1, n);
  CHECK(e0.size() == 63);
  CHECK(e0 != e1);
  Ids order0;
  for (const auto& batch : e0) order0.insert(order0.end(), batch.begin(), batch.end());
  Ids sorted = order0;
  std::sort(sorted.begin(), sorted.end());
  CHECK(order0 != sorted);  // actually shuffled
  // Another loader with the same seed gives the same epochs; set_epoch reproduces one.
  CHECK(collect(b) == e0);
  b.set_epoch(1);
  CHECK(collect(b) == e1);
  a.set_epoch(0);
  CHECK(collect(a) == e0);
  CHECK(a.batch_indices(1) == e1);
  // Another seed, another order.
  DataLoader<int64_t, Ids> c(range_dataset(n), identity, DataLoaderOptions(16).shuffle(true).seed(43));
  CHECK(collect(c) != e0);
}

TEST_CASE("plan_batches: the shuffled order is fixed by its definition (golden values)") {
  // A change here changes every run's data order and breaks resuming older checkpoints.
  auto plan = plan_batches(10, DataLoaderOptions(4).shuffle(true).seed(1), 0);
  auto plan3 = plan_batches(10, DataLoaderOptions(4).shuffle(true).seed(1), 3);
  MESSAGE(fmt::format("epoch 0: {}  epoch 3: {}", plan, plan3));
  const std::vector<Ids> golden0 = {{3, 0, 5, 2}, {7, 6, 9, 4}, {8, 1}};
  const std::vector<Ids> golden3 = {{9, 2, 5, 0}, {7, 4, 1, 6}, {3, 8}};
  CHECK(plan == golden0);
  CHECK(plan3 == golden3);
}

TEST_CASE("DataLoader set_epoch with start_batch resumes in the middle of an epoch") {
  DataLoader<int64_t, Ids> loader(range_dataset(50), identity, DataLoaderOptions(8).shuffle(true).seed(3));
  auto full = loader.batch_indices(5);
  loader.set_epoch(5, 4);
  auto rest = collect(loader);
  REQUIRE(rest.size() == full.size() - 4);
  CHECK(std::equal(rest.begin(), rest.end(), full.begin() + 4));
  CHECK(loader.epoch() == 6);
  loader.set_epoch(5, loader.num_batches());
  CHECK(collect(loader).empty());
  CHECK_THROWS_WITH_AS(loader.set_epoch(0, 8), doctest::Contains("start_batch 8 out of range [0, 7]"), Error);
  CHECK_THROWS_WITH_AS(loader.set_epoch(-1), doctest::Contains("epoch must be >= 0"), Error);
}

TEST_CASE("DataLoader prefetch on and off give the same batches") {
  auto ds = std::make_shared<SeqDataset>();
  auto collate = [](std::vector<Ids> seqs) { return pad_sequences(seqs, -1); };
  auto length = [](const Ids& s) { return static_cast<int64_t>(s.size()); };
  for (int64_t bucket : {0, 4}) {
    for (bool drop_last : {false, true}) {
      std::vector<std::vector<std::vector<int64_t>>> results;
      for (int prefetch : {0, 1, 3}) {
        DataLoader<Ids, PaddedBatch> loader(
            ds, collate,
            DataLoaderOptions(32).shuffle(true).seed(9).drop_last(drop_last).bucket(bucket).prefetch(prefetch),
            length);
        loader.set_epoch(2);
        std::vector<std::vector<int64_t>> batches;
        for (PaddedBatch& b : loader) batches.push_back(b.tokens.to_vector<int64_t>());
        CHECK(static_cast<int64_t>(batches.size()) == loader.num_batches());
        results.push_back(std::move(batches));
      }
      CHECK(results[0] == results[1]);
      CHECK(results[0] == results[2]);
    }
  }
}

TEST_CASE("DataLoader bucketing: batches of similar lengths, every index once, batch order shuffled") {
  auto ds = std::make_shared<SeqDataset>();
  auto length = [](const Ids& s) { return static_cast<int64_t>(s.size()); };
  auto collate = [](std::vector<Ids> seqs) { return seqs; };
  DataLoader<Ids, std::vector<Ids>> plain(ds, collate, DataLoaderOptions(20).shuffle(true).seed(1));
  DataLoader<Ids, std::vector<Ids>> bucketed(ds, collate, DataLoaderOptions(20).shuffle(true).seed(1).bucket(10),
                                             length);
  auto spread = [](const std::vector<Ids>& batch) {
    size_t lo = SIZE_MAX, hi = 0;
    for (const auto& s : batch) lo = std::min(lo, s.size()), hi = std::max(hi, s.size());
    return static_cast<double>(hi - lo);
  };
  double plain_spread = 0, bucket_spread = 0, worst_bucket = 0;
  std::vector<Ids> indices;
  std::vector<size_t> first_lengths;
  for (auto& batch : plain) plain_spread += spread(batch);
  for (auto& batch : bucketed) {
    bucket_spread += spread(batch);
    worst_bucket = std::max(worst_bucket, spread(batch));
    Ids idx;
    for (const auto& s : batch) idx.push_back(s[0]);  // SeqDataset fills a sequence with its index
    indices.push_back(idx);
    first_lengths.push_back(batch[0].size());
  }
  check_covers_once(indices, 1000);
  // 200 examples per window, lengths 1..40: a batch of 20 spans about 4 length values.
  MESSAGE("mean length spread: plain " << plain_spread / 50 << ", bucketed " << bucket_spread / 50);
  CHECK(bucket_spread / 50 < 6);
  CHECK(worst_bucket <= 10);
  CHECK(plain_spread / 50 > 30);
  // The batch order is shuffled: the shortest lengths do not come in window order.
  CHECK(!std::is_sorted(first_lengths.begin(), first_lengths.end()));
  bool ascending_within_windows = true;
  for (size_t w = 0; w < 5; ++w)
    ascending_within_windows &= std::is_sorted(first_lengths.begin() + w * 10, first_lengths.begin() + w * 10 + 10);
  CHECK(!ascending_within_windows);
  // Without shuffle, bucketing keeps the window order: sorted within each window.
  DataLoader<Ids, std::vector<Ids>> ordered(ds, collate, DataLoaderOptions(20).bucket(10), length);
  auto plan = ordered.batch_indices(0);
  REQUIRE(plan.size() == 50);
  for (size_t w = 0; w < 5; ++w) {
    std::vector<int64_t> lens;
    for (size_t b = w * 10; b < w * 10 + 10; ++b)
      for (int64_t i : plan[b]) lens.push_back(static_cast<int64_t>(ds->get(i).size()));
    CHECK(std::is_sorted(lens.begin(), lens.end()));
  }
  check_covers_once(plan, 1000);
}

TEST_CASE("plan_batches with bucketing and drop_last") {
  std::vector<int64_t> lengths = {5, 1, 4, 2, 3, 9, 7};
  auto plan = plan_batches(7, DataLoaderOptions(2).bucket(2).drop_last(true), 0, &lengths);
  // windows of 4: {0,1,2,3} sorted by length -> 1,3,2,0; {4,5,6} -> 4,6,5; last short batch dropped
  REQUIRE(plan.size() == 3);
  CHECK(plan[0] == Ids{1, 3});
  CHECK(plan[1] == Ids{2, 0});
  CHECK(plan[2] == Ids{4, 6});
  CHECK_THROWS_WITH_AS(plan_batches(7, DataLoaderOptions(2).bucket(2), 0, nullptr),
                       doctest::Contains("needs a length function"), Error);
  std::vector<int64_t> short_lengths = {1, 2};
  CHECK_THROWS_WITH_AS(plan_batches(7, DataLoaderOptions(2).bucket(2), 0, &short_lengths),
                       doctest::Contains("got 2 lengths for 7 examples"), Error);
}

TEST_CASE("DataLoader rethrows errors from get and collate in the consumer") {
  for (int prefetch : {0, 2}) {
    CAPTURE(prefetch);
    DataLoader<int64_t, Ids> loader(std::make_shared<FailingDataset>(37), identity,
                                    DataLoaderOptions(10).prefetch(prefetch));
    int64_t seen = 0;
    auto consume = [&] {
      for (Ids& b : loader) seen += static_cast<int64_t>(b.size());
    };
    CHECK_THROWS_WITH_AS(consume(), doctest::Contains("cannot read example 37"), Error);
    CHECK(seen == 30);  // the batches before the bad one arrived
    // The error was in the first batch: begin() throws.
    DataLoader<int64_t, Ids> first(std::make_shared<FailingDataset>(0), identity, DataLoaderOptions(10).prefetch(prefetch));
    CHECK_THROWS_WITH_AS(first.begin(), doctest::Contains("cannot read example 0"), Error);
    // Any exception type passes through unchanged.
    DataLoader<int64_t, Ids> bad_collate(
        range_dataset(30), [](std::vector<int64_t> xs) -> Ids {
          if (xs[0] >= 20) throw std::out_of_range("collate failed");
          return xs;
        },
        DataLoaderOptions(10).prefetch(prefetch));
    int64_t batches = 0;
    auto consume_collate = [&] {
      for (Ids& b : bad_collate) batches += static_cast<int64_t>(!b.empty());
    };
    CHECK_THROWS_WITH_AS(consume_collate(), "collate failed", std::out_of_range);
    CHECK(batches == 2);
    // The loader is usable again after an error.
    bad_collate.set_epoch(0);
    auto it = bad_collate.begin();
    CHECK(*it == Ids{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  }
}

TEST_CASE("DataLoader: breaking out early and destroying mid-epoch are safe") {
  std::atomic<int64_t> made{0};
  auto counting = [&made](std::vector<int64_t> xs) {
    ++made;
    return xs;
  };
  DataLoader<int64_t, Ids> loader(range_dataset(10000), counting, DataLoaderOptions(1).prefetch(4));
  for (int rep = 0; rep < 20; ++rep) {
    int64_t k = 0;
    for (Ids& b : loader) {
      CHECK(b.size() == 1);
      if (++k == 3) break;
    }
  }
  // The prefetch thread stops at the bounded queue: far fewer batches than the epoch made.
  CHECK(made.load() <= 20 * (3 + 4 + 1));
  {
    auto it = loader.begin();  // an iterator dropped without reading further
    CHECK(it != loader.end());
  }
  // An iterator may outlive its loader.
  DataLoader<int64_t, Ids>::Iterator survivor;
  {
    DataLoader<int64_t, Ids> temp(range_dataset(5), identity, DataLoaderOptions(2));
    survivor = temp.begin();
  }
  CHECK(*survivor == Ids{0, 1});
  ++survivor;
  CHECK(*survivor == Ids{2, 3});
}

TEST_CASE("DataLoader rejects bad options") {
  auto ds = range_dataset(4);
  CHECK_THROWS_WITH_AS(Loader(ds, identity, DataLoaderOptions(0)),
                       doctest::Contains("[DataLoader] batch_size must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(Loader(ds, identity, DataLoaderOptions(2).prefetch(-1)),
                       doctest::Contains("prefetch must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(Loader(ds, identity, DataLoaderOptions(2).bucket(3)),
                       doctest::Contains("bucket(3) needs a length function"), Error);
  CHECK_THROWS_WITH_AS(Loader(nullptr, identity, DataLoaderOptions(2)),
                       doctest::Contains("dataset is null"), Error);
  CHECK_THROWS_WITH_AS(Loader(ds, nullptr, DataLoaderOptions(2)),
                       doctest::Contains("collate function is empty"), Error);
  CHECK_THROWS_WITH_AS(range_dataset(4)->get(4), doctest::Contains("index 4 out of range for size 4"), Error);
  auto negative = [](const int64_t&) { return int64_t{-1}; };
  DataLoader<int64_t, Ids> neg(ds, identity, DataLoaderOptions(2).bucket(1), negative);
  CHECK_THROWS_WITH_AS(neg.begin(), doctest::Contains("length of example 0 is negative"), Error);
}

}  // TEST_SUITE

TEST_SUITE("data") {

// The DataLoader example of docs/API.md ("Loading data"), kept in sync by hand.
TEST_CASE("docs/API.md data loading example runs") {
  int64_t batches = 0, padded = 0;
  using Seq = std::vector<int64_t>;
  auto vocab = data::Vocab::build(data::split_utf8("a small corpus of characters"));
  std::vector<Seq> seqs;
  for (std::string word : {"small", "corpus", "of", "characters"}) {
    Seq ids = {vocab.bos_id()};
    for (int64_t id : vocab.encode(data::split_utf8(word))) ids.push_back(id);
    ids.push_back(vocab.eos_id());
    seqs.push_back(ids);
  }
  auto dataset = std::make_shared<data::VectorDataset<Seq>>(seqs);
  data::DataLoader<Seq, data::PaddedBatch> loader(
      dataset, [&](std::vector<Seq> batch) { return data::pad_sequences(batch, vocab.pad_id()); },
      data::DataLoaderOptions(2).shuffle(true).seed(0).bucket(4).prefetch(2),
      [](const Seq& s) { return static_cast<int64_t>(s.size()); });   // length, for bucketing
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    loader.set_epoch(epoch);                      // the order depends only on (seed, epoch)
    for (data::PaddedBatch& batch : loader) {
      ++batches;
      padded += batch.key_padding_mask.to(kInt64).sum().item<int64_t>();
      // batch.tokens [B, T] int64, batch.key_padding_mask [B, T] bool (true = padding),
      // batch.lengths [B]: feed them to the model, e.g. as src_key_padding_mask.
    }
  }
  std::string meta = vocab.to_json();   // store in the checkpoint meta; data::Vocab::from_json(meta) restores it
  CHECK(batches == 6);
  // Lengths 7, 8, 4, 12 in one bucket window: batches {4, 7} and {8, 12} pad 3 + 4 per epoch.
  CHECK(padded == 3 * 7);
  CHECK(data::Vocab::from_json(meta) == vocab);
}

}  // TEST_SUITE
