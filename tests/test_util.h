#pragma once
// Shared helpers for the test suite.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>
#include <unistd.h>
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

/// A fresh temporary directory (named after `tag` and the process), removed with its
/// contents at the end of the scope.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("focus_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The path of `name` inside the directory.
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace focus::testing
