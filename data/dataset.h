#pragma once
/// Map-style datasets, as torch.utils.data.Dataset: a size and random access by index.
#include <cstdint>
#include <utility>
#include <vector>

#include "core/error.h"

namespace focus::data {

/// A dataset of `size()` examples read by index. `get` may be called from the DataLoader's
/// prefetch thread, so it must be safe to call concurrently with other const members.
template <class Example>
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of examples (>= 0).
  virtual int64_t size() const = 0;
  /// The example at index, 0 <= index < size(); out of range -> focus::Error.
  virtual Example get(int64_t index) const = 0;
};

/// A dataset held in memory as a vector; `get` returns a copy of the element.
template <class Example>
class VectorDataset : public Dataset<Example> {
 public:
  explicit VectorDataset(std::vector<Example> items) : items_(std::move(items)) {}
  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  Example get(int64_t index) const override {
    FOCUS_CHECK(index >= 0 && index < size(), "[VectorDataset] index {} out of range for size {}", index,
                size());
    return items_[static_cast<size_t>(index)];
  }
  /// All examples, in index order.
  const std::vector<Example>& items() const { return items_; }

 private:
  std::vector<Example> items_;
};

}  // namespace focus::data
