#include "core/precision.h"

#include <atomic>

#include "core/error.h"

namespace focus {
namespace {
// 0 highest, 1 high, 2 medium.
std::atomic<int> g_precision{0};
}  // namespace

void set_float32_matmul_precision(const std::string& precision) {
  if (precision == "highest") g_precision = 0;
  else if (precision == "high") g_precision = 1;
  else if (precision == "medium") g_precision = 2;
  else FOCUS_FAIL("[set_float32_matmul_precision] expected 'highest', 'high' or 'medium', got '{}'", precision);
}

std::string get_float32_matmul_precision() {
  switch (g_precision.load()) {
    case 1: return "high";
    case 2: return "medium";
    default: return "highest";
  }
}

bool allow_tf32() { return g_precision.load() != 0; }

}  // namespace focus
