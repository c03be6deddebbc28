#pragma once
/// The seeded random generator behind every random op (rand, randn, randint, dropout,
/// init). A Philox stream: state is (seed, offset); each op takes a fresh range of offsets.
#include <cstdint>
#include <mutex>

#include "core/random_state.h"

namespace focus {

class Generator {
 public:
  explicit Generator(uint64_t seed = 67280421310721ull) : seed_(seed) {}
  /// Resets the stream: same seed, same numbers.
  void manual_seed(uint64_t seed);
  uint64_t seed() const;
  /// Reserves n counters and returns the state the kernel should use.
  RandomState next(uint64_t n);
  /// Full state, for checkpoints.
  RandomState get_state() const;
  void set_state(RandomState s);

 private:
  mutable std::mutex mu_;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

/// The process-wide generator used when none is given.
Generator& default_generator();
/// Seeds the default generator (torch.manual_seed).
void manual_seed(uint64_t seed);

}  // namespace focus
