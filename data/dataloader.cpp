#include "data/dataloader.h"

#include <algorithm>
#include <numeric>

namespace focus::data {

namespace {

// SplitMix64: a tiny generator whose output is fixed by its definition, so shuffles are the
// same with every standard library (std::uniform_int_distribution and std::shuffle are not).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n >= 1, without modulo bias (rejection).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next(); while (x >= limit);
    return x % n;
  }

 private:
  uint64_t state_;
};

template <class T>
void shuffle(std::vector<T>& v, SplitMix64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// Two streams from (seed, epoch): one for the example order (epoch_permutation), one for the
// batch order of bucketing. Changing this changes every run's data order.
uint64_t epoch_base(uint64_t seed, int64_t epoch) {
  SplitMix64 mix(seed ^ 0x5eed5eed5eed5eedull);
  return mix.next() + static_cast<uint64_t>(epoch) * 0x9e3779b97f4a7c15ull;
}

}  // namespace

// Declared in data/sampler.h (DistributedSampler uses it too); defined here, beside the
// batch-order stream that shares its derivation.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  FOCUS_CHECK(n >= 0, "[epoch_permutation] n must be >= 0, got {}", n);
  FOCUS_CHECK(epoch >= 0, "[epoch_permutation] epoch must be >= 0, got {}", epoch);
  SplitMix64 order_rng(SplitMix64(epoch_base(seed, epoch)).next());
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  shuffle(order, order_rng);
  return order;
}

void check_options(const DataLoaderOptions& opts, bool has_length) {
  FOCUS_CHECK(opts.batch_size_ >= 1, "[DataLoader] batch_size must be >= 1, got {}", opts.batch_size_);
  FOCUS_CHECK(opts.prefetch_ >= 0, "[DataLoader] prefetch must be >= 0, got {}", opts.prefetch_);
  FOCUS_CHECK(opts.bucket_ >= 0, "[DataLoader] bucket must be >= 0 (0 = off), got {}", opts.bucket_);
  FOCUS_CHECK(opts.bucket_ == 0 || has_length,
              "[DataLoader] bucket({}) needs a length function (the DataLoader's 4th argument)", opts.bucket_);
  FOCUS_CHECK(!(opts.sampler_ && opts.shuffle_),
              "[DataLoader] sampler and shuffle(true) are mutually exclusive (as in PyTorch): the sampler sets the "
              "order; shuffle in the sampler instead (DistributedSampler's shuffle argument)");
}

std::vector<std::vector<int64_t>> plan_batches(int64_t n, const DataLoaderOptions& opts, int64_t epoch,
                                               const std::vector<int64_t>* lengths) {
  check_options(opts, lengths != nullptr);
  FOCUS_CHECK(n >= 0, "[DataLoader] dataset size must be >= 0, got {}", n);
  FOCUS_CHECK(epoch >= 0, "[DataLoader] epoch must be >= 0, got {}", epoch);
  const int64_t bs = opts.batch_size_;
  SplitMix64 batch_rng(SplitMix64(epoch_base(opts.seed_, epoch) ^ 0xb5ad4eceda1ce2a9ull).next());

  std::vector<int64_t> order;
  if (opts.sampler_) {
    order = opts.sampler_->indices(epoch);
    FOCUS_CHECK(static_cast<int64_t>(order.size()) == opts.sampler_->size(),
                "[DataLoader] the sampler gave {} indices for epoch {}, but its size() is {}", order.size(), epoch,
                opts.sampler_->size());
    for (int64_t i : order)
      FOCUS_CHECK(i >= 0 && i < n, "[DataLoader] sampler index {} out of range for a dataset of {} examples", i, n);
  } else if (opts.shuffle_) {
    order = epoch_permutation(n, opts.seed_, epoch);
  } else {
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  const int64_t m = static_cast<int64_t>(order.size());

  if (opts.bucket_ > 0) {
    FOCUS_CHECK(static_cast<int64_t>(lengths->size()) == n,
                "[DataLoader] bucketing needs one length per example: got {} lengths for {} examples",
                lengths->size(), n);
    const int64_t window = opts.bucket_ * bs;
    for (int64_t start = 0; start < m; start += window) {
      auto first = order.begin() + start, last = order.begin() + std::min(m, start + window);
      // Stable: equal lengths keep their (shuffled) order, so ties stay random.
      std::stable_sort(first, last, [&](int64_t a, int64_t b) {
        return (*lengths)[static_cast<size_t>(a)] < (*lengths)[static_cast<size_t>(b)];
      });
    }
  }

  std::vector<std::vector<int64_t>> batches;
  batches.reserve(static_cast<size_t>((m + bs - 1) / bs));
  for (int64_t start = 0; start < m; start += bs) {
    const int64_t stop = std::min(m, start + bs);
    if (stop - start < bs && opts.drop_last_) break;
    batches.emplace_back(order.begin() + start, order.begin() + stop);
  }
  if (opts.bucket_ > 0 && (opts.shuffle_ || (opts.sampler_ && opts.sampler_->shuffles()))) shuffle(batches, batch_rng);
  return batches;
}

}  // namespace focus::data
