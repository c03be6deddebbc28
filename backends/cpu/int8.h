#pragma once
/// The CPU's int8 GEMM for dynamically quantized Linear layers (the kernels behind
/// CpuBackend::linear_int8; the arithmetic is backends/common/int8_math.h's).
///
/// Three kernels compute the same integers (and one epilogue), so they agree bit for bit:
///   "amx":         Advanced Matrix Extensions (Sapphire Rapids and later, where Linux grants
///                  the tile registers): 32 rows x 32 output channels per step, four TDPBUSD
///                  of 16 x 64 uint8 by 64 x 16 int8; used for 16 rows or more;
///   "avx512-vnni": 4 rows x 64 output channels per register tile, vpdpbusd (uint8 x int8,
///                  4 products summed into int32 per lane) on AVX-512 VNNI CPUs (Cascade
///                  Lake, Ice Lake, Sapphire Rapids, Zen 4 and later); few rows on AMX CPUs;
///   "generic":     plain C++ loops over the same packed layout, for every other CPU.
/// The packed weight holds blocks of 16 output channels (one zero block past the last);
/// within a block, groups of 4 consecutive k: byte (block b, group g, channel j, t) sits at
/// ((b * G + g) * 16 + j) * 4 + t with G = round_up(K, 64) / 4, so one 64-byte load feeds 16
/// lanes of vpdpbusd and 16 groups are one AMX weight tile (rows 64 bytes apart).
#include <string>

namespace focus::cpu {

/// The kernel linear_int8 uses for 16 rows or more: "amx", "avx512-vnni" or "generic".
std::string int8_kernel();
/// Names the kernel to use ("auto": the fastest this CPU runs, by rows; "generic";
/// "avx512-vnni" or "amx", an error where the CPU lacks it, then used for every size). For
/// tests and benchmarks: the kernels give equal results.
void set_int8_kernel(const std::string& name);
/// Whether this CPU runs the AVX-512 VNNI kernel.
bool cpu_has_avx512_vnni();
/// Whether this CPU runs the AMX kernel (AMX-INT8, and Linux granted the tile registers).
bool cpu_has_amx();

}  // namespace focus::cpu
