#pragma once
/// Calls a generic lambda with a value of the C++ type of a dtype:
///   dispatch_float(v.dtype, "softmax", [&](auto tag) { using T = decltype(tag); ... });
/// float16/bfloat16 never reach these: the kernels widen them to float32 first
/// (half_adapter.h), so they name them as supported in their errors.
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"

namespace focus::cpu {

template <typename F> decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    default: FOCUS_FAIL("[{}] expected a floating tensor (float16, bfloat16, float32 or float64) on the CPU, got {}", op, t);
  }
}

template <typename F> decltype(auto) dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    case kUInt8: return f(uint8_t{});
    default: FOCUS_FAIL("[{}] not implemented for {} tensors on the CPU", op, t);
  }
}

template <typename F> decltype(auto) dispatch_all(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    case kUInt8: return f(uint8_t{});
    case kBool: return f(bool{});
    default: FOCUS_FAIL("[{}] not implemented for {} tensors on the CPU", op, t);
  }
}

template <typename F> decltype(auto) dispatch_index(DType t, const char* op, F&& f) {
  switch (t) {
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    default: FOCUS_FAIL("[{}] indices must be int64 or int32, got {}", op, t);
  }
}

}  // namespace focus::cpu
