#pragma once
/// Philox-4x32-10 (Salmon et al., 2011): a counter-based generator. Element i of a random
/// op with state (seed, offset) uses counter offset + i / 4, word i % 4, so every element's
/// value is fixed whatever the thread split, and the same on the CPU and the GPU.
#include <cstdint>

#include "backends/common/hd.h"

namespace focus::common {

/// Four random words of one Philox counter.
struct Philox4 {
  uint32_t w[4];
  FOCUS_HD uint32_t operator[](int i) const { return w[i]; }
};

FOCUS_HD Philox4 philox4x32(uint64_t counter, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * c0;
    const uint64_t p1 = uint64_t{0xCD9E8D57u} * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

/// Uniform float in [0, 1) from 24 random bits; double from 53 bits of two words.
FOCUS_HD float u32_to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
FOCUS_HD double u64_to_unit_double(uint32_t a, uint32_t b) {
  return static_cast<double>(((static_cast<uint64_t>(a) << 32) | b) >> 11) * (1.0 / 9007199254740992.0);
}

/// The float32 uniform of element i of a stream (counter offset + i / 4, word i % 4).
FOCUS_HD float uniform_float_at(uint64_t seed, uint64_t offset, uint64_t i) {
  return u32_to_unit_float(philox4x32(offset + i / 4, seed)[static_cast<int>(i % 4)]);
}

/// Dropout's keep flag of element i: the float32 uniform of element i is >= p. Forward and
/// backward (and both devices) regenerate identical masks from it.
FOCUS_HD bool dropout_keep(uint64_t seed, uint64_t offset, uint64_t i, double p) {
  return static_cast<double>(uniform_float_at(seed, offset, i)) >= p;
}

}  // namespace focus::common
