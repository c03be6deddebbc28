#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace focus {

Device::Device(const std::string& spec) {
  if (spec == "cpu") { type = DeviceType::CPU; return; }
  if (spec.rfind("cuda", 0) == 0) {
    type = DeviceType::CUDA;
    if (spec.size() == 4) return;
    if (spec[4] == ':') {
      const char* b = spec.data() + 5;
      const char* e = spec.data() + spec.size();
      auto [p, ec] = std::from_chars(b, e, index);
      if (ec == std::errc() && p == e && b != e && index >= 0) return;
    }
  }
  FOCUS_FAIL("[device] expected 'cpu', 'cuda' or 'cuda:N', got '{}'", spec);
}

std::string Device::str() const {
  return type == DeviceType::CPU ? std::string("cpu") : fmt::format("cuda:{}", index);
}

}  // namespace focus
