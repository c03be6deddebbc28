#pragma once
// Shared helpers for the test suite.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
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

/// A float64 leaf of shape s, drawn from randn, that requires grad (a gradcheck input).
inline Tensor leaf(const Shape& s) { return randn(s, kFloat64).requires_grad_(); }

/// An op of a cross-device test: its outputs from its inputs, on the inputs' device.
using DeviceOp = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

/// Runs op on device d from the CPU inputs (moved to d; the floating ones become leaves that
/// require grad), backpropagates sum(out * w) over the floating outputs with w drawn from
/// Generator(wseed), and returns the outputs and then the inputs' gradients, on the CPU.
inline std::vector<Tensor> run_with_grads(const std::vector<Tensor>& cpu_inputs, const DeviceOp& op, Device d,
                                          uint64_t wseed) {
  std::vector<Tensor> in;
  for (const Tensor& t : cpu_inputs) {
    Tensor x = t.to(d).detach();
    if (x.is_floating_point() && x.numel() > 0) x.requires_grad_();
    in.push_back(x);
  }
  const std::vector<Tensor> outs = op(in);
  std::vector<Tensor> result;
  Tensor loss;
  Generator wgen(wseed);
  for (const Tensor& o : outs) {
    result.push_back(o.detach().cpu());
    if (o.requires_grad() && o.numel() > 0) {
      Tensor term = sum(o * rand(o.shape(), TensorOptions(o.dtype()), &wgen).to(d));
      loss = loss.defined() ? loss + term : term;
    }
  }
  if (loss.defined()) {
    loss.backward();
    for (const Tensor& x : in)
      if (x.requires_grad()) result.push_back(x.grad().defined() ? x.grad().cpu() : zeros_like(x).cpu());
  }
  return result;
}

/// run_with_grads' results on two devices, compared result by result: the same count, and
/// each of the same dtype and allclose(got, want, rtol, atol).
inline void check_results_close(const std::vector<Tensor>& want, const std::vector<Tensor>& got, double rtol,
                                double atol) {
  REQUIRE(want.size() == got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("result " << i << " (outputs first, then input gradients)");
    CHECK(got[i].dtype() == want[i].dtype());
    CHECK(allclose(got[i], want[i], rtol, atol));
  }
}

/// Why the CUDA tests cannot run here ("" when a GPU is there), printed once per process
/// the first time a test asks.
inline std::string cuda_skip_reason() {
  static const std::string reason = [] {
    std::string r;
    if (!cuda::is_available()) {
      try {
        Tensor t = zeros({1}, Device::cuda());
        r = "cuda::is_available() is false, yet a CUDA tensor could be made";
      } catch (const Error& e) {
        r = e.what();
      }
      std::printf("CUDA tests skipped: %s\n", r.c_str());
    }
    return r;
  }();
  return reason;
}

/// True when a GPU is there; otherwise prints (once) why the CUDA tests are skipped.
inline bool have_cuda() { return cuda_skip_reason().empty(); }

/// Devices the device-generic tests run on: the CPU, and cuda:0 when a GPU is there.
inline std::vector<Device> test_devices() {
  std::vector<Device> d{kCPU};
  if (have_cuda()) d.push_back(Device::cuda(0));
  return d;
}

/// Runs the body once per device of test_devices(), the device named in failure messages:
///   FOR_EACH_DEVICE(dev) { CHECK(zeros({2}, dev).sum().item<float>() == 0); }
#define FOR_EACH_DEVICE(dev)                                   \
  for (const ::focus::Device dev : ::focus::testing::test_devices()) \
    if (INFO("device " << dev.str()); true)

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
/// `needle` (for example: press Ctrl-C, training::Run::request_interrupt, when a run prints the
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
