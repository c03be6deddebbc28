#pragma once
/// Philox-4x32-10 (Salmon et al., 2011): a counter-based generator. Element i of a random
/// op with state (seed, offset) uses counter offset + i / 4, so every element's value is
/// fixed whatever the thread split.
#include <array>
#include <cmath>
#include <cstdint>

namespace focus::cpu {

inline std::array<uint32_t, 4> philox4x32(uint64_t counter, uint64_t seed) {
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
  return {c0, c1, c2, c3};
}

/// Uniform float in [0, 1) from 24 random bits; double from 53 bits of two words.
inline float u32_to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
inline double u64_to_unit_double(uint32_t a, uint32_t b) {
  return static_cast<double>(((static_cast<uint64_t>(a) << 32) | b) >> 11) * (1.0 / 9007199254740992.0);
}

/// Dropout keep flags for elements [start, start + n) of a stream: keep = (u >= p) with u the
/// float32 uniform of CpuBackend::uniform (counter offset + i / 4, word i % 4), so a forward
/// and its backward regenerate identical masks. Flag is bool or uint8_t.
template <typename Flag> void keep_mask(uint64_t seed, uint64_t offset, uint64_t start, int64_t n, double p, Flag* out) {
  uint64_t i = start;
  const uint64_t end = start + static_cast<uint64_t>(n);
  while (i < end) {
    const auto w = philox4x32(offset + i / 4, seed);
    for (uint64_t j = i % 4; j < 4 && i < end; ++j, ++i)
      out[i - start] = static_cast<double>(u32_to_unit_float(w[j])) >= p;
  }
}

}  // namespace focus::cpu
