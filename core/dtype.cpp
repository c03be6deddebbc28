#include "core/dtype.h"

namespace focus {

size_t dtype_size(DType t) {
  switch (t) {
    case kBool: case kUInt8: case kInt8: return 1;
    case kFloat16: case kBFloat16: return 2;
    case kInt32: case kFloat32: return 4;
    case kInt64: case kFloat64: return 8;
  }
  return 1;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case kBool: return "bool";
    case kUInt8: return "uint8";
    case kInt8: return "int8";
    case kInt32: return "int32";
    case kInt64: return "int64";
    case kFloat16: return "float16";
    case kBFloat16: return "bfloat16";
    case kFloat32: return "float32";
    case kFloat64: return "float64";
  }
  return "unknown";
}

bool is_floating(DType t) { return t == kFloat16 || t == kBFloat16 || t == kFloat32 || t == kFloat64; }
bool is_integral(DType t, bool include_bool) { return !is_floating(t) && (include_bool || t != kBool); }
DType default_float_dtype() { return kFloat32; }

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (a == kBool) return b;
  if (b == kBool) return a;
  const bool fa = is_floating(a), fb = is_floating(b);
  if (fa && !fb) return a;
  if (fb && !fa) return b;
  if (fa && fb) {
    // float16 with bfloat16 promotes to float32, as in PyTorch.
    if ((a == kFloat16 && b == kBFloat16) || (a == kBFloat16 && b == kFloat16)) return kFloat32;
    return static_cast<uint8_t>(a) > static_cast<uint8_t>(b) ? a : b;
  }
  // Integers: the wider one; uint8 with a signed type gives the signed type. int8 with uint8
  // is int16 in PyTorch, which focus lacks: the next wider, int32.
  if ((a == kInt8 && b == kUInt8) || (a == kUInt8 && b == kInt8)) return kInt32;
  auto rank = [](DType t) { return t == kInt64 ? 3 : t == kInt32 ? 2 : 1; };
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace focus
