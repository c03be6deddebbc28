#pragma once
/// DataLoader, as torch.utils.data.DataLoader for map-style datasets: seeded shuffling that
/// is reproducible per epoch (or a Sampler's order, e.g. DistributedSampler), batching,
/// drop_last, optional bucketing by length, and a background thread that prepares the next
/// batches while the model trains.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <algorithm>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/sampler.h"

namespace focus::data {

/// Options of a DataLoader, with chained setters:
/// `DataLoaderOptions(32).shuffle(true).seed(7).drop_last(true).bucket(50)`.
struct DataLoaderOptions {
  /// batch_size >= 1 (checked by the DataLoader).
  DataLoaderOptions(int64_t batch_size = 1) : batch_size_(batch_size) {}
  DataLoaderOptions& batch_size(int64_t n) { batch_size_ = n; return *this; }
  /// Shuffle the examples (and, with bucketing, the batch order) in every epoch.
  DataLoaderOptions& shuffle(bool s = true) { shuffle_ = s; return *this; }
  /// Seed of the shuffling; the order of an epoch depends only on (seed, epoch)
  /// (epoch_permutation). A sampler has its own seed.
  DataLoaderOptions& seed(uint64_t s) { seed_ = s; return *this; }
  /// Drop the last batch when it is smaller than batch_size.
  DataLoaderOptions& drop_last(bool d = true) { drop_last_ = d; return *this; }
  /// Batches prepared ahead on a background thread (0 = none: batches are made on the
  /// consumer's thread when asked for). Default 2.
  DataLoaderOptions& prefetch(int n) { prefetch_ = n; return *this; }
  /// Bucketing by length: 0 = off; else the (shuffled) order is cut into windows of
  /// k * batch_size examples, each window sorted by length, cut into batches, and the batch
  /// order shuffled (when shuffle is on). Batches then hold examples of similar lengths, so
  /// padding is small. Needs the DataLoader's length function.
  DataLoaderOptions& bucket(int64_t k) { bucket_ = k; return *this; }
  /// Put each batch's CPU tensors in page-locked memory (on the prefetch thread when there
  /// is one), so that `.to(Device::cuda(), true)` copies them asynchronously, as
  /// torch.utils.data.DataLoader(pin_memory=True). Batches are pinned through pin_batch():
  /// a Tensor, a vector, pair or tuple of them, or a type with a pin_memory() member that
  /// pins its tensors (data::PaddedBatch has one). Needs a CUDA build with a GPU.
  DataLoaderOptions& pin_memory(bool p = true) { pin_memory_ = p; return *this; }
  /// Visit the indices the sampler gives for each epoch, in its order, instead of
  /// range(n) or its shuffle, as torch.utils.data.DataLoader(sampler=...): mutually
  /// exclusive with shuffle(true) (the sampler shuffles, e.g. DistributedSampler's shuffle).
  /// Epoch e of the loader is sampler->indices(e): the loader's epoch counter (set_epoch,
  /// and each begin() moving on to the next epoch) plays the part of PyTorch's
  /// `sampler.set_epoch(epoch)` before each epoch, so a plain loop over epochs reshuffles.
  /// batch_size and drop_last apply to the sampler's indices; bucketing sorts windows of
  /// them by length, and shuffles the batch order (by seed and epoch, as shuffle(true) does)
  /// when the sampler's order is random (Sampler::shuffles()). The sampler is only read, so
  /// loaders may share one. nullptr = no sampler.
  DataLoaderOptions& sampler(std::shared_ptr<const Sampler> s) { sampler_ = std::move(s); return *this; }

  int64_t batch_size_;
  bool shuffle_ = false;
  uint64_t seed_ = 0;
  bool drop_last_ = false;
  int prefetch_ = 2;
  int64_t bucket_ = 0;
  bool pin_memory_ = false;
  std::shared_ptr<const Sampler> sampler_;
};

/// Pins the CPU tensors of a batch in place (DataLoaderOptions::pin_memory).
template <typename B> void pin_batch(B& b) {
  if constexpr (std::is_same_v<B, Tensor>) {
    if (b.defined() && b.device().is_cpu()) b = b.pin_memory();
  } else if constexpr (requires { b.pin_memory(); }) {
    b.pin_memory();
  } else if constexpr (requires { b.first; b.second; }) {
    pin_batch(b.first);
    pin_batch(b.second);
  } else if constexpr (requires { std::tuple_size<B>::value; }) {
    std::apply([](auto&... x) { (pin_batch(x), ...); }, b);
  } else if constexpr (requires { b.begin(); b.end(); }) {
    for (auto& x : b) pin_batch(x);
  } else {
    FOCUS_FAIL("[DataLoader] pin_memory: the batch type has no tensors pin_batch knows how to reach; give it a "
               "pin_memory() member that pins its tensors");
  }
}

/// The batches of one epoch as lists of dataset indices: the plan a DataLoader follows.
/// n examples; lengths (n values) are needed iff opts.bucket_ > 0. Deterministic: the same
/// (n, opts, epoch, lengths) give the same plan on every machine. With opts.sampler_, the
/// examples are sampler->indices(epoch) (each checked to be in [0, n)).
std::vector<std::vector<int64_t>> plan_batches(int64_t n, const DataLoaderOptions& opts, int64_t epoch,
                                               const std::vector<int64_t>* lengths = nullptr);

/// Checks opts (batch_size >= 1, prefetch >= 0, bucket >= 0, not both sampler and shuffle)
/// with errors naming the loader.
void check_options(const DataLoaderOptions& opts, bool has_length);

/// Iterates a dataset in batches: `for (Batch& b : loader) {...}` is one epoch.
/// Example: the dataset's element type; Batch: what collate makes of a vector of examples.
template <class Example, class Batch>
class DataLoader {
 public:
  using Collate = std::function<Batch(std::vector<Example>)>;
  using Length = std::function<int64_t(const Example&)>;

 private:
  /// One pass over an epoch; owns the prefetch thread. Shared by the iterators of the pass.
  class Pass {
   public:
    Pass(std::shared_ptr<const Dataset<Example>> dataset, Collate collate,
         std::vector<std::vector<int64_t>> plan, int prefetch, bool pin)
        : dataset_(std::move(dataset)), collate_(std::move(collate)), plan_(std::move(plan)),
          prefetch_(prefetch), pin_(pin) {
      if (plan_.empty()) {
        finished_ = true;  // nothing to make: no thread, and advance() must not wait for one
      } else if (prefetch_ > 0) {
        worker_ = std::thread([this] { work(); });
      }
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      space_.notify_all();
      if (worker_.joinable()) worker_.join();
    }

    /// Moves to the next batch; false at the end of the epoch. Rethrows the worker's errors.
    bool advance() {
      current_.reset();
      if (prefetch_ == 0) {
        if (next_ >= plan_.size()) return false;
        current_.emplace(make(next_++));
        return true;
      }
      std::unique_lock<std::mutex> lock(mu_);
      ready_.wait(lock, [this] { return !queue_.empty() || error_ || finished_; });
      if (!queue_.empty()) {
        current_.emplace(std::move(queue_.front()));
        queue_.pop_front();
        lock.unlock();
        space_.notify_one();
        return true;
      }
      if (error_) {
        auto e = std::exchange(error_, nullptr);
        finished_ = true;
        std::rethrow_exception(e);
      }
      return false;
    }
    Batch& current() { return *current_; }

   private:
    Batch make(size_t b) const {
      std::vector<Example> examples;
      examples.reserve(plan_[b].size());
      for (int64_t i : plan_[b]) examples.push_back(dataset_->get(i));
      Batch batch = collate_(std::move(examples));
      if (pin_) pin_batch(batch);
      return batch;
    }
    void work() {
      for (size_t b = 0; b < plan_.size(); ++b) {
        {
          std::unique_lock<std::mutex> lock(mu_);
          space_.wait(lock, [this] { return stop_ || queue_.size() < static_cast<size_t>(prefetch_); });
          if (stop_) return;
        }
        std::optional<Batch> batch;
        std::exception_ptr error;
        try {
          batch.emplace(make(b));
        } catch (...) {
          error = std::current_exception();
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (error) {
            error_ = error;
          } else {
            queue_.push_back(std::move(*batch));
          }
        }
        ready_.notify_one();
        if (error) return;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        finished_ = true;
      }
      ready_.notify_one();
    }

    std::shared_ptr<const Dataset<Example>> dataset_;
    Collate collate_;
    std::vector<std::vector<int64_t>> plan_;
    int prefetch_;
    bool pin_;
    size_t next_ = 0;  // prefetch == 0 only
    std::optional<Batch> current_;
    std::mutex mu_;
    std::condition_variable ready_, space_;
    std::deque<Batch> queue_;
    std::exception_ptr error_;
    bool finished_ = false, stop_ = false;
    std::thread worker_;
  };

 public:
  /// Input iterator over one epoch's batches. Copies share the pass; destroying the last
  /// one (e.g. breaking out of the loop) stops and joins the prefetch thread.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = Batch*;
    using reference = Batch&;

    Iterator() = default;
    Batch& operator*() const { return pass_->current(); }
    Batch* operator->() const { return &pass_->current(); }
    Iterator& operator++() {
      try {
        if (!pass_->advance()) pass_.reset();
      } catch (...) {
        pass_.reset();
        throw;
      }
      return *this;
    }
    bool operator==(const Iterator& o) const { return pass_ == o.pass_; }
    bool operator!=(const Iterator& o) const { return pass_ != o.pass_; }

   private:
    friend class DataLoader;
    explicit Iterator(std::shared_ptr<Pass> pass) : pass_(std::move(pass)) {}
    std::shared_ptr<Pass> pass_;
  };

  /// dataset: the examples; collate: makes a Batch of a batch's examples (called on the
  /// prefetch thread when prefetch > 0); length: an example's length, needed iff
  /// opts.bucket_ > 0. Bad options -> focus::Error.
  DataLoader(std::shared_ptr<const Dataset<Example>> dataset, Collate collate, DataLoaderOptions opts,
             Length length = {})
      : dataset_(std::move(dataset)), collate_(std::move(collate)), opts_(opts), length_(std::move(length)) {
    FOCUS_CHECK(dataset_ != nullptr, "[DataLoader] dataset is null");
    FOCUS_CHECK(static_cast<bool>(collate_), "[DataLoader] collate function is empty");
    check_options(opts_, static_cast<bool>(length_));
    // PyTorch's DistributedSampler takes the dataset itself; focus's takes its size, which
    // must then match.
    if (auto* ds = dynamic_cast<const DistributedSampler*>(opts_.sampler_.get())) {
      FOCUS_CHECK(ds->dataset_size() == dataset_->size(),
                  "[DataLoader] the DistributedSampler was built for dataset_size {}, but the dataset has {} examples",
                  ds->dataset_size(), dataset_->size());
    }
  }

  /// The next pass (begin()) iterates epoch `epoch`, starting at batch start_batch (to resume
  /// in the middle of an epoch; 0 <= start_batch <= num_batches()). Each begin() then moves on
  /// to the following epoch, so a plain loop over epochs reshuffles every time, and
  /// set_epoch(e) reproduces epoch e exactly.
  void set_epoch(int64_t epoch, int64_t start_batch = 0) {
    FOCUS_CHECK(epoch >= 0, "[DataLoader] set_epoch: epoch must be >= 0, got {}", epoch);
    FOCUS_CHECK(start_batch >= 0 && start_batch <= num_batches(),
                "[DataLoader] set_epoch: start_batch {} out of range [0, {}]", start_batch, num_batches());
    epoch_ = epoch;
    start_batch_ = start_batch;
  }
  /// The epoch the next begin() iterates.
  int64_t epoch() const { return epoch_; }
  /// Batches per epoch: ceil(n / batch_size), or floor with drop_last; n is the dataset's
  /// size, or with a sampler its size() (for DistributedSampler: num_samples(), the same on
  /// every rank).
  int64_t num_batches() const {
    const int64_t n = opts_.sampler_ ? opts_.sampler_->size() : dataset_->size(), b = opts_.batch_size_;
    return opts_.drop_last_ ? n / b : (n + b - 1) / b;
  }
  int64_t batch_size() const { return opts_.batch_size_; }
  const DataLoaderOptions& options() const { return opts_; }
  const Dataset<Example>& dataset() const { return *dataset_; }

  /// The dataset indices of each batch of epoch `epoch` (what iterating that epoch yields).
  std::vector<std::vector<int64_t>> batch_indices(int64_t epoch) const {
    FOCUS_CHECK(epoch >= 0, "[DataLoader] epoch must be >= 0, got {}", epoch);
    return plan_batches(dataset_->size(), opts_, epoch, opts_.bucket_ > 0 ? &lengths() : nullptr);
  }

  /// Starts a pass over the current epoch (see set_epoch) and returns its first batch;
  /// errors from get/collate surface here or in operator++.
  Iterator begin() {
    auto plan = batch_indices(epoch_);
    plan.erase(plan.begin(), plan.begin() + std::min<int64_t>(start_batch_, static_cast<int64_t>(plan.size())));
    ++epoch_;
    start_batch_ = 0;
    Iterator it(std::make_shared<Pass>(dataset_, collate_, std::move(plan), opts_.prefetch_, opts_.pin_memory_));
    ++it;
    return it;
  }
  Iterator end() { return Iterator(); }

 private:
  // Lengths are computed once (one get per example) and kept: bucketing needs all of them
  // every epoch.
  const std::vector<int64_t>& lengths() const {
    std::lock_guard<std::mutex> lock(*lengths_mu_);
    if (!lengths_ready_) {
      const int64_t n = dataset_->size();
      std::vector<int64_t> lengths(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        lengths[static_cast<size_t>(i)] = length_(dataset_->get(i));
        FOCUS_CHECK(lengths[static_cast<size_t>(i)] >= 0, "[DataLoader] length of example {} is negative: {}", i,
                    lengths[static_cast<size_t>(i)]);
      }
      lengths_ = std::move(lengths);
      lengths_ready_ = true;
    }
    return lengths_;
  }

  std::shared_ptr<const Dataset<Example>> dataset_;
  Collate collate_;
  DataLoaderOptions opts_;
  Length length_;
  int64_t epoch_ = 0;
  int64_t start_batch_ = 0;
  mutable std::vector<int64_t> lengths_;
  mutable bool lengths_ready_ = false;
  std::unique_ptr<std::mutex> lengths_mu_ = std::make_unique<std::mutex>();
};

}  // namespace focus::data
