#include "data/sampler.h"

#include "core/error.h"

namespace focus::data {

DistributedSampler::DistributedSampler(int64_t dataset_size, int64_t num_replicas, int64_t rank, bool shuffle,
                                       uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size),
      num_replicas_(num_replicas),
      rank_(rank),
      shuffle_(shuffle),
      seed_(seed),
      drop_last_(drop_last) {
  FOCUS_CHECK(dataset_size >= 0, "[DistributedSampler] dataset_size must be >= 0, got {}", dataset_size);
  FOCUS_CHECK(num_replicas >= 1, "[DistributedSampler] num_replicas must be >= 1, got {}", num_replicas);
  FOCUS_CHECK(rank >= 0 && rank < num_replicas,
              "[DistributedSampler] rank {} out of range [0, {}) for num_replicas {}", rank, num_replicas,
              num_replicas);
  // PyTorch: ceil((n - r) / r) with drop_last when r does not divide n, which is floor(n / r)
  // (0 when n < r); else ceil(n / r). Written without n + r - 1, which could overflow.
  const int64_t floor = dataset_size / num_replicas;
  num_samples_ = (drop_last || dataset_size % num_replicas == 0) ? floor : floor + 1;
}

void DistributedSampler::set_epoch(int64_t epoch) {
  FOCUS_CHECK(epoch >= 0, "[DistributedSampler] set_epoch: epoch must be >= 0, got {}", epoch);
  epoch_ = epoch;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  FOCUS_CHECK(epoch >= 0, "[DistributedSampler] epoch must be >= 0, got {}", epoch);
  std::vector<int64_t> order;
  if (shuffle_) {
    order = epoch_permutation(dataset_size_, seed_, epoch);
  } else {
    order.resize(static_cast<size_t>(dataset_size_));
    for (int64_t i = 0; i < dataset_size_; ++i) order[static_cast<size_t>(i)] = i;
  }
  const int64_t total = total_size();
  const int64_t n = dataset_size_;
  // PyTorch pads with indices[:padding] when padding <= n, else with
  // (indices * ceil(padding / n))[:padding]: both are indices[i % n] for i < padding.
  // (total > n implies n >= 1: total <= n + num_replicas - 1 and n == 0 gives total == 0.)
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(num_samples_));
  for (int64_t i = rank_; i < total; i += num_replicas_)
    mine.push_back(order[static_cast<size_t>(i < n ? i : (i - n) % n)]);
  return mine;
}

}  // namespace focus::data
