#pragma once
/// The CPU's use of the shared Philox stream (backends/common/philox.h).
#include <cstdint>

#include "backends/common/philox.h"

namespace focus::cpu {

using common::philox4x32;
using common::u32_to_unit_float;
using common::u64_to_unit_double;

/// Dropout keep flags for elements [start, start + n) of a stream: keep = (u >= p) with u the
/// float32 uniform of CpuBackend::uniform (counter offset + i / 4, word i % 4), so a forward
/// and its backward regenerate identical masks. Flag is bool or uint8_t.
template <typename Flag> void keep_mask(uint64_t seed, uint64_t offset, uint64_t start, int64_t n, double p, Flag* out) {
  uint64_t i = start;
  const uint64_t end = start + static_cast<uint64_t>(n);
  while (i < end) {
    const auto w = philox4x32(offset + i / 4, seed);
    for (uint64_t j = i % 4; j < 4 && i < end; ++j, ++i)
      out[i - start] = static_cast<double>(u32_to_unit_float(w[static_cast<int>(j)])) >= p;
  }
}

}  // namespace focus::cpu
