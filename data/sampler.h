#pragma once
/// Samplers: the order in which a DataLoader visits a dataset's indices, as
/// torch.utils.data.Sampler, and DistributedSampler, as
/// torch.utils.data.distributed.DistributedSampler (each rank of a data-parallel run reads
/// its own share of every epoch).
#include <cstdint>
#include <vector>

namespace focus::data {

/// The indices a DataLoader visits in one epoch, in order (DataLoaderOptions::sampler).
/// Unlike PyTorch's iterator protocol, the epoch is an argument: indices(e) must depend only
/// on the sampler's construction and e, so a DataLoader can reproduce any epoch (set_epoch,
/// resuming) and share the sampler between threads.
class Sampler {
 public:
  virtual ~Sampler() = default;
  /// Indices per epoch, as len(sampler).
  virtual int64_t size() const = 0;
  /// The dataset indices of epoch `epoch` (>= 0): size() of them, each in [0, dataset size).
  virtual std::vector<int64_t> indices(int64_t epoch) const = 0;
  /// True when the order is random: a bucketing DataLoader then also shuffles the order of
  /// its batches (with its own seed and epoch), as it does with shuffle(true); otherwise the
  /// bucketed batches would come shortest first in every window.
  virtual bool shuffles() const { return false; }
};

/// torch.utils.data.distributed.DistributedSampler: rank `rank` of `num_replicas` gets every
/// num_replicas-th index of the epoch's order, starting at `rank`, so the ranks together see
/// each index once per epoch (plus the padding below).
///
/// The epoch's order is range(dataset_size), or with shuffle a permutation of it fixed by
/// (seed, epoch) and the same on every rank and machine. Without drop_last the order is
/// padded to total_size() by repeating its first indices, so every rank gets num_samples() =
/// ceil(dataset_size / num_replicas) indices; with drop_last its tail is dropped instead
/// (floor). Then rank r takes order[r : total_size : num_replicas]. All of this is PyTorch's
/// algorithm, index for index, except the permutation itself: PyTorch draws
/// torch.randperm from a generator seeded with seed + epoch; focus uses its own permutation,
/// data::epoch_permutation(dataset_size, seed, epoch) (SplitMix64 + Fisher-Yates, defined in
/// the code, reproducible with every compiler and standard library). It is the order of
/// DataLoaderOptions().shuffle(true).seed(seed) in the same epoch, so one replica with
/// shuffle reproduces a plain shuffling DataLoader. Orders with shuffle therefore differ
/// from PyTorch's; those without shuffle are identical.
///
/// rank and num_replicas are explicit, so no process group is needed to build one; in a
/// distributed run pass focus::distributed::get_rank() / get_world_size() (as PyTorch's
/// defaults, torch.distributed's). data/ sits below distributed/ (docs/DESIGN.md), so there
/// is no overload that reads them.
///
/// In PyTorch a user calls sampler.set_epoch(epoch) before each epoch; a focus DataLoader
/// asks indices(epoch) with its own epoch counter instead (see DataLoaderOptions::sampler),
/// so set_epoch() / indices() here only matter when the sampler is used on its own.
class DistributedSampler : public Sampler {
 public:
  /// dataset_size >= 0, num_replicas >= 1, 0 <= rank < num_replicas; else focus::Error.
  DistributedSampler(int64_t dataset_size, int64_t num_replicas, int64_t rank, bool shuffle = true,
                     uint64_t seed = 0, bool drop_last = false);

  /// The epoch indices() (without argument) returns; epoch >= 0.
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  /// Indices per rank and epoch: floor(dataset_size / num_replicas) with drop_last when
  /// num_replicas does not divide dataset_size, else ceil(dataset_size / num_replicas).
  int64_t num_samples() const { return num_samples_; }
  /// num_samples() * num_replicas: the padded (or truncated) length of an epoch's order.
  int64_t total_size() const { return num_samples_ * num_replicas_; }
  int64_t size() const override { return num_samples_; }

  /// This rank's indices of the current epoch (set_epoch).
  std::vector<int64_t> indices() const { return indices(epoch_); }
  /// This rank's indices of epoch `epoch` (>= 0): num_samples() of them.
  std::vector<int64_t> indices(int64_t epoch) const override;

  int64_t dataset_size() const { return dataset_size_; }
  int64_t num_replicas() const { return num_replicas_; }
  int64_t rank() const { return rank_; }
  bool shuffle() const { return shuffle_; }
  bool shuffles() const override { return shuffle_; }
  uint64_t seed() const { return seed_; }
  bool drop_last() const { return drop_last_; }

 private:
  int64_t dataset_size_, num_replicas_, rank_;
  bool shuffle_;
  uint64_t seed_;
  bool drop_last_;
  int64_t num_samples_;
  int64_t epoch_ = 0;
};

/// The shuffled order of range(n) in epoch `epoch` for seed `seed`: the permutation that
/// DataLoaderOptions::shuffle and DistributedSampler use. Fixed by its definition (SplitMix64
/// streams derived from (seed, epoch), Fisher-Yates), so the same on every machine; not
/// torch.randperm's. n >= 0, epoch >= 0.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace focus::data
