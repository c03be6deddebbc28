#pragma once
// Shared helpers for the test suite.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
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

/// The whole content of a file ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A stream buffer that calls `action` once, as soon as the text written to it contains
/// `needle` (for example: press Ctrl-C, zoo::Run::request_interrupt, when a run prints the
/// validation line of a given step).
struct CallOnText : std::stringbuf {
  std::string needle;
  std::function<void()> action;
  CallOnText(std::string n, std::function<void()> a) : needle(std::move(n)), action(std::move(a)) {}
  int sync() override {
    if (action && str().find(needle) != std::string::npos) std::exchange(action, nullptr)();
    return 0;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const auto r = std::stringbuf::xsputn(s, n);
    sync();
    return r;
  }
};

}  // namespace focus::testing
