#pragma once
/// Where a tensor's storage lives.
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace focus {

enum class DeviceType : uint8_t { CPU, CUDA };

/// A device: type plus index ("cpu", "cuda:0").
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  Device() = default;
  Device(DeviceType t, int i = 0) : type(t), index(i) {}
  /// Parses "cpu", "cuda", "cuda:1"; throws focus::Error otherwise.
  explicit Device(const std::string& spec);
  /// Device::cpu(), Device::cuda(1): the spelled-out forms of "cpu" and "cuda:1".
  static Device cpu() { return Device(DeviceType::CPU, 0); }
  static Device cuda(int index = 0) { return Device(DeviceType::CUDA, index); }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

inline const Device kCPU{DeviceType::CPU, 0};

}  // namespace focus

template <> struct fmt::formatter<focus::Device> : fmt::formatter<std::string> {
  template <typename Ctx> auto format(const focus::Device& d, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(d.str(), ctx);
  }
};
