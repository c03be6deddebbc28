#pragma once
/// Element types, their sizes and names, and PyTorch's type promotion.
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace focus {

/// Element type of a tensor. Float16/BFloat16 work on every device with PyTorch's
/// semantics: values stored in 16 bits, arithmetic done in float32 and each result rounded
/// to nearest even into the 16-bit type (the CPU widens them to float32 around its float32
/// kernels: backends/cpu/half_adapter.h). Int8 is a storage type (copy, to(dtype), fill,
/// safetensors "I8"): it holds the weights of int8-quantized layers (nn/quantized.h); the
/// arithmetic kernels do not take it. It comes last so the other values keep their numbers.
enum class DType : uint8_t { Bool, UInt8, Int32, Int64, Float16, BFloat16, Float32, Float64, Int8 };

inline constexpr DType kBool = DType::Bool;
inline constexpr DType kUInt8 = DType::UInt8;
inline constexpr DType kInt8 = DType::Int8;
inline constexpr DType kInt32 = DType::Int32;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kFloat16 = DType::Float16;
inline constexpr DType kBFloat16 = DType::BFloat16;
inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;

/// Bytes per element.
size_t dtype_size(DType t);
/// PyTorch-style name: "float32", "int64", "bool", ...
std::string_view dtype_name(DType t);
/// True for Float16, BFloat16, Float32, Float64.
bool is_floating(DType t);
/// True for Bool, UInt8, Int8, Int32, Int64.
bool is_integral(DType t, bool include_bool = true);
/// The smallest dtype that can hold both, as torch.promote_types.
DType promote_types(DType a, DType b);
/// Default floating dtype (float32), as torch.get_default_dtype().
DType default_float_dtype();

/// Maps C++ types to DType.
template <typename T> struct dtype_of;
template <> struct dtype_of<bool> { static constexpr DType value = kBool; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = kUInt8; };
template <> struct dtype_of<int8_t> { static constexpr DType value = kInt8; };
template <> struct dtype_of<int32_t> { static constexpr DType value = kInt32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = kInt64; };
template <> struct dtype_of<float> { static constexpr DType value = kFloat32; };
template <> struct dtype_of<double> { static constexpr DType value = kFloat64; };
template <typename T> inline constexpr DType dtype_of_v = dtype_of<T>::value;

}  // namespace focus

template <> struct fmt::formatter<focus::DType> : fmt::formatter<std::string_view> {
  template <typename Ctx> auto format(focus::DType t, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(focus::dtype_name(t), ctx);
  }
};
