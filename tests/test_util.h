#pragma once
// Shared helpers for the test suite.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <focus/focus.h>

namespace focus::testing {

/// Element-wise closeness like torch.allclose; reports the first mismatch.
inline bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8) {
  if (a.shape() != b.shape()) {
    MESSAGE("shape mismatch: " << fmt::format("{} vs {}", a.shape(), b.shape()));
    return false;
  }
  auto va = a.to_vector<double>();
  auto vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    const bool both_nan = std::isnan(va[i]) && std::isnan(vb[i]);
    if (!both_nan && !(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i])) && va[i] != vb[i]) {
      MESSAGE("mismatch at flat index " << i << ": " << va[i] << " vs " << vb[i]);
      return false;
    }
  }
  return true;
}

/// The values of t as doubles, row-major.
inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

/// Devices the device-generic tests run on (CUDA joins when a CUDA build finds a GPU).
inline std::vector<Device> test_devices() { return {kCPU}; }

}  // namespace focus::testing
