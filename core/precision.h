#pragma once
/// Process-wide numeric settings (PyTorch's names).
#include <string>

namespace focus {

/// "highest" (default: float32 matrix products in full float32), "high" (TF32 tensor
/// cores allowed on CUDA) or "medium" (treated as "high": focus has no bfloat16 path for
/// float32 inputs). Other values throw focus::Error. The CPU always computes in float32.
void set_float32_matmul_precision(const std::string& precision);
std::string get_float32_matmul_precision();
/// True when float32 matrix products may use TF32 ("high" or "medium").
bool allow_tf32();

}  // namespace focus
