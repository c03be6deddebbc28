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
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

inline const Device kCPU{DeviceType::CPU, 0};

}  // namespace focus

template <> struct fmt::formatter<focus::Device> : fmt::formatter<std::string> {
  template <typename Ctx> auto format(const focus::Device& d, Ctx& ctx) const {
    return fmt::formatter<std::string>::format(d.str(), ctx);
  }
};
