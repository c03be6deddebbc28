#pragma once
/// The CPU's int8 GEMM for dynamically quantized Linear layers (the kernels behind
/// CpuBackend::linear_int8; the arithmetic is backends/common/int8_math.h's).
///
/// Two kernels compute the same integers, so they agree bit for bit:
///   "avx512-vnni": 4 rows x 64 output channels per register tile, vpdpbusd (uint8 x int8,
///                  4 products summed into int32 per lane) on AVX-512 VNNI CPUs (Cascade
///                  Lake, Ice Lake, Sapphire Rapids, Zen 4 and later);
///   "generic":     plain C++ loops over the same packed layout, for every other CPU.
/// The packed weight holds blocks of 16 output channels; within a block, groups of 4
/// consecutive k: byte (block b, group g, channel j, t) sits at ((b * G + g) * 16 + j) * 4 + t
/// with G = round_up(K, 4) / 4, so one 64-byte load feeds 16 lanes of vpdpbusd.
#include <string>

namespace focus::cpu {

/// The kernel linear_int8 uses: "avx512-vnni" or "generic".
std::string int8_kernel();
/// Names the kernel to use ("auto": the fastest this CPU runs; "generic"; "avx512-vnni",
/// an error where the CPU lacks it). For tests and benchmarks: the kernels give equal results.
void set_int8_kernel(const std::string& name);
/// Whether this CPU runs the AVX-512 VNNI kernel.
bool cpu_has_avx512_vnni();

}  // namespace focus::cpu
