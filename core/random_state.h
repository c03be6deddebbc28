#pragma once
/// The state of one draw from a Philox counter-based random stream.
#include <cstdint>

namespace focus {

/// Philox counter-based random stream: (seed, offset) fully determines the values, so
/// results do not depend on thread count or device.
struct RandomState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

}  // namespace focus
