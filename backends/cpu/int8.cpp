// CPU kernels of dynamic int8 quantization: weight quantization and packing, and the int8
// GEMM of linear_int8 (backends/cpu/int8.h says how the kernels and the layout go).
#include "backends/cpu/int8.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "backends/common/int8_math.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/parallel.h"
#include "core/error.h"

namespace focus::cpu {

namespace {

using common::Int8RowParams;
constexpr int64_t kBN = common::kInt8BlockN;  // output channels per block
constexpr int64_t kGK = common::kInt8GroupK;  // k per group
constexpr int kMR = 4;                        // rows per register tile
constexpr int kNB = 4;                        // blocks per register tile (64 channels)

enum KernelChoice : int { kAuto = 0, kGeneric = 1, kVnni = 2, kAmx = 3 };
std::atomic<int> g_choice{kAuto};

// The activations of x quantized per row: q [rows, Kp] (Kp = int8_padded_k(K); the padding,
// and the rows past M, zero) and each row's parameters; a row with NaN or infinity is marked
// bad (its output is NaN).
struct QuantizedRows {
  std::vector<uint8_t> q;
  std::vector<Int8RowParams> params;
  std::vector<uint8_t> bad;
};

// One row: its parameters, or false when it holds NaN or infinity.
bool row_params_generic(const float* xr, int64_t K, Int8RowParams& p) {
  float lo = 0.0f, hi = 0.0f;
  bool nan = false;
  for (int64_t k = 0; k < K; ++k) {
    const float v = xr[k];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    nan |= v != v;
  }
  if (nan || !std::isfinite(hi - lo)) return false;
  p = common::int8_row_params(lo, hi);
  return true;
}

void quantize_row_generic(const float* xr, int64_t K, const Int8RowParams& p, uint8_t* qr) {
  for (int64_t k = 0; k < K; ++k) qr[k] = common::int8_quantize_activation(xr[k], p);
}

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of their masked
// builtins, which -Wmaybe-uninitialized reports in every caller (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define FOCUS_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// The same as row_params_generic / quantize_row_generic, 16 lanes at a time: min and max are
// exact, and cvtps_epi32 rounds to nearest even (MXCSR's default) as nearbyintf does.
FOCUS_VNNI bool row_params_avx512(const float* xr, int64_t K, Int8RowParams& p) {
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  __mmask16 nan = 0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(xr + k);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, xr + k);  // zeros elsewhere: 0 is in the range anyway
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  if (nan) return false;
  // exact either way: min and max do not round (lanes started at 0, in the range anyway)
  const float l = _mm512_reduce_min_ps(lo), h = _mm512_reduce_max_ps(hi);
  if (!std::isfinite(h - l)) return false;
  p = common::int8_row_params(l, h);
  return true;
}

FOCUS_VNNI void quantize_row_avx512(const float* xr, int64_t K, const Int8RowParams& p, uint8_t* qr) {
  const __m512 inv = _mm512_set1_ps(p.inv_scale);
  const __m512i zp = _mm512_set1_epi32(p.zero_point), lo = _mm512_setzero_si512(), hi = _mm512_set1_epi32(255);
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (K - k)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, xr + k);
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zp);
    q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
    _mm_mask_storeu_epi8(qr + k, m, _mm512_cvtepi32_epi8(q));
  }
}
#endif

// Scratch reused by each thread's calls (no allocation per product once warm).
thread_local QuantizedRows tl_rows;

// rows >= M: the AMX kernel reads whole tiles of 16 rows (the extra rows are zeros).
void quantize_rows(const float* x, int64_t M, int64_t rows, int64_t K, int64_t K4, bool avx512, QuantizedRows& r) {
  const auto need = static_cast<size_t>(rows * K4);
  if (r.q.size() < need) r.q.resize(need);
  std::memset(r.q.data() + M * K4, 0, static_cast<size_t>((rows - M) * K4));
  r.params.resize(static_cast<size_t>(M));
  r.bad.resize(static_cast<size_t>(M));
  parallel_for(0, M, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, K)), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* xr = x + m * K;
      uint8_t* qr = r.q.data() + m * K4;
      std::memset(qr + K, 0, static_cast<size_t>(K4 - K));
      Int8RowParams p{1.0f, 1.0f, 0};
      bool ok = false;
#if defined(__x86_64__)
      if (avx512) {
        ok = row_params_avx512(xr, K, p);
        if (ok) quantize_row_avx512(xr, K, p, qr);
      }
#endif
      if (!avx512) {
        ok = row_params_generic(xr, K, p);
        if (ok) quantize_row_generic(xr, K, p, qr);
      }
      if (!ok) std::memset(qr, 0, static_cast<size_t>(K));
      r.bad[static_cast<size_t>(m)] = ok ? 0 : 1;
      r.params[static_cast<size_t>(m)] = ok ? p : Int8RowParams{1.0f, 1.0f, 0};
    }
  });
}

// Everything a tile needs.
struct GemmArgs {
  const QuantizedRows* rows;
  const int8_t* packed;  // the whole packed weight
  const int32_t* colsum;
  const float* scale;
  const float* bias;  // null: none
  float* out;
  int64_t M, Nc, K4, G, n_begin;
};

// The epilogue of one output element (both kernels: fmaf is one rounding either way).
inline float finish(const GemmArgs& a, int64_t m, int64_t n, int32_t acc) {
  if (a.rows->bad[static_cast<size_t>(m)]) return std::numeric_limits<float>::quiet_NaN();
  return common::int8_output(acc, a.colsum[n], a.rows->params[static_cast<size_t>(m)], a.scale[n],
                             a.bias ? a.bias[n] : 0.0f);
}

// Rows m0 .. m0 + mr - 1, blocks b0 .. b0 + nb - 1 (relative to n_begin), plain C++.
void tile_generic(const GemmArgs& a, int64_t m0, int mr, int64_t b0, int nb) {
  for (int r = 0; r < mr; ++r) {
    const int64_t m = m0 + r;
    const uint8_t* u = a.rows->q.data() + m * a.K4;
    for (int b = 0; b < nb; ++b) {
      const int64_t block = a.n_begin / kBN + b0 + b;
      const int8_t* w = a.packed + block * a.G * kBN * kGK;
      int32_t acc[kBN] = {};
      for (int64_t g = 0; g < a.G; ++g) {
        const uint8_t* ug = u + g * kGK;
        const int8_t* wg = w + g * kBN * kGK;
        for (int64_t j = 0; j < kBN; ++j) {
          int32_t s = 0;
          for (int64_t t = 0; t < kGK; ++t) s += static_cast<int32_t>(ug[t]) * static_cast<int32_t>(wg[j * kGK + t]);
          acc[j] += s;
        }
      }
      const int64_t c0 = (b0 + b) * kBN;  // first output column of the block
      for (int64_t j = 0; j < kBN && c0 + j < a.Nc; ++j)
        a.out[m * a.Nc + c0 + j] = finish(a, m, a.n_begin + c0 + j, acc[j]);
    }
  }
}

#if defined(__x86_64__)
// The epilogue of 16 outputs of row m from column c0 (relative to n_begin): the same
// arithmetic as finish(), 16 lanes at a time.
FOCUS_VNNI inline void store_row_avx512(const GemmArgs& a, int64_t m, int64_t c0, __m512i acc) {
  const int64_t n0 = a.n_begin + c0;
  const int64_t valid = std::min<int64_t>(kBN, a.Nc - c0);
  if (valid <= 0) return;
  const __mmask16 mask = valid >= kBN ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << valid) - 1u);
  float* dst = a.out + m * a.Nc + c0;
  if (a.rows->bad[static_cast<size_t>(m)]) {
    _mm512_mask_storeu_ps(dst, mask, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
    return;
  }
  const __m512i cs = _mm512_loadu_si512(a.colsum + n0);
  const __m512 sw = _mm512_loadu_ps(a.scale + n0);
  const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps();
  const Int8RowParams& p = a.rows->params[static_cast<size_t>(m)];
  const __m512i centred = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(p.zero_point), cs));
  const __m512 s = _mm512_mul_ps(_mm512_set1_ps(p.scale), sw);
  _mm512_mask_storeu_ps(dst, mask, _mm512_fmadd_ps(_mm512_mask_cvtepi32_ps(_mm512_setzero_ps(), 0xFFFF, centred), s, bias));
}

template <int MR, int NB>
FOCUS_VNNI void tile_vnni_fixed(const GemmArgs& a, int64_t m0, int64_t b0) {
  __m512i acc[MR][NB];
  for (int r = 0; r < MR; ++r)
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_si512();
  const int64_t block0 = a.n_begin / kBN + b0;
  const int8_t* w = a.packed + block0 * a.G * kBN * kGK;
  const int64_t wstride = a.G * kBN * kGK;  // bytes from one block to the next
  const uint8_t* u[MR];
  for (int r = 0; r < MR; ++r) u[r] = a.rows->q.data() + (m0 + r) * a.K4;
  for (int64_t g = 0; g < a.G; ++g) {
    __m512i wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_si512(w + b * wstride + g * kBN * kGK);
    for (int r = 0; r < MR; ++r) {
      int32_t four;
      std::memcpy(&four, u[r] + g * kGK, sizeof four);
      const __m512i av = _mm512_set1_epi32(four);
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], av, wv[b]);
    }
  }
  for (int b = 0; b < NB; ++b)
    for (int r = 0; r < MR; ++r) store_row_avx512(a, m0 + r, (b0 + b) * kBN, acc[r][b]);
}

template <int MR>
FOCUS_VNNI void tile_vnni_rows(const GemmArgs& a, int64_t m0, int64_t b0, int nb) {
  switch (nb) {
    case 4: tile_vnni_fixed<MR, 4>(a, m0, b0); break;
    case 3: tile_vnni_fixed<MR, 3>(a, m0, b0); break;
    case 2: tile_vnni_fixed<MR, 2>(a, m0, b0); break;
    default: tile_vnni_fixed<MR, 1>(a, m0, b0); break;
  }
}

void tile_vnni(const GemmArgs& a, int64_t m0, int mr, int64_t b0, int nb) {
  switch (mr) {
    case 4: tile_vnni_rows<4>(a, m0, b0, nb); break;
    case 3: tile_vnni_rows<3>(a, m0, b0, nb); break;
    case 2: tile_vnni_rows<2>(a, m0, b0, nb); break;
    default: tile_vnni_rows<1>(a, m0, b0, nb); break;
  }
}

// ---- AMX (Sapphire Rapids and later): 16 x 64 int8 tiles, 2 x 2 tiles of 16 x 16 sums ----
#define FOCUS_AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni")))

// The tile configuration: tiles 0-3 the sums (16 rows of 16 int32), 4-5 activations (16 rows
// of 64 bytes), 6-7 weights (16 groups of 4 k for 16 channels: 64 bytes a row, the packed
// layout as it is).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

FOCUS_AMX void amx_begin() {
  TileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.colsb[t] = 64;
    c.rows[t] = 16;
  }
  _tile_loadconfig(&c);
}

FOCUS_AMX void amx_end() { _tile_release(); }

// Rows m0 .. m0 + 31 (the rows past M are zeros), blocks b0, b0 + 1 (relative to n_begin).
FOCUS_AMX void tile_amx(const GemmArgs& a, int64_t m0, int64_t b0) {
  const int64_t block0 = a.n_begin / kBN + b0;
  const int8_t* w0 = a.packed + block0 * a.G * kBN * kGK;
  const int8_t* w1 = w0 + a.G * kBN * kGK;
  const uint8_t* u0 = a.rows->q.data() + m0 * a.K4;
  const uint8_t* u1 = u0 + 16 * a.K4;
  const auto stride = static_cast<long>(a.K4);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t k = 0; k < a.K4; k += 64) {
    _tile_loadd(4, u0 + k, stride);
    _tile_loadd(5, u1 + k, stride);
    _tile_loadd(6, w0 + k * kBN, 64);  // 16 groups of 4 k: k / 4 * 64 bytes in
    _tile_loadd(7, w1 + k * kBN, 64);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  alignas(64) int32_t sums[4][16 * 16];
  _tile_stored(0, sums[0], 64);
  _tile_stored(1, sums[1], 64);
  _tile_stored(2, sums[2], 64);
  _tile_stored(3, sums[3], 64);
  for (int t = 0; t < 4; ++t) {
    const int64_t mt = m0 + (t / 2) * 16, c0 = (b0 + t % 2) * kBN;
    for (int r = 0; r < 16 && mt + r < a.M; ++r) store_row_avx512(a, mt + r, c0, _mm512_load_si512(sums[t] + r * 16));
  }
}

// Whether the CPU has AMX-INT8 and Linux lets this process use the tile registers.
bool detect_amx() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool tile = (edx >> 24) & 1u, int8 = (edx >> 25) & 1u;
  if (!tile || !int8) return false;
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // asm/prctl.h
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
}
#endif

bool detect_vnni() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool has_amx() {
#if defined(__x86_64__)
  static const bool has = cpu_has_avx512_vnni() && detect_amx();
  return has;
#else
  return false;
#endif
}

// The kernel to run now.
int kernel() {
  const int c = g_choice.load(std::memory_order_relaxed);
  if (c != kAuto) return c;
  return has_amx() ? kAmx : cpu_has_avx512_vnni() ? kVnni : kGeneric;
}

}  // namespace

bool cpu_has_avx512_vnni() {
  static const bool has = detect_vnni();
  return has;
}

std::string int8_kernel() {
  const int k = kernel();
  return k == kAmx ? "amx" : k == kVnni ? "avx512-vnni" : "generic";
}

bool cpu_has_amx() { return has_amx(); }

void set_int8_kernel(const std::string& name) {
  if (name == "auto") {
    g_choice = kAuto;
  } else if (name == "generic") {
    g_choice = kGeneric;
  } else if (name == "avx512-vnni") {
    FOCUS_CHECK(cpu_has_avx512_vnni(), "[set_int8_kernel] this CPU has no AVX-512 VNNI");
    g_choice = kVnni;
  } else if (name == "amx") {
    FOCUS_CHECK(has_amx(), "[set_int8_kernel] this CPU (or the kernel's permission) gives no AMX-INT8");
    g_choice = kAmx;
  } else {
    FOCUS_FAIL("[set_int8_kernel] expected \"auto\", \"generic\", \"avx512-vnni\" or \"amx\", got \"{}\"", name);
  }
}

void CpuBackend::quantize_int8_weight(const TensorView& q, const TensorView& scale, const TensorView& weight) {
  const int64_t N = weight.sizes[0], K = weight.sizes[1];
  const float* w = weight.ptr<float>();
  int8_t* qp = q.ptr<int8_t>();
  float* sp = scale.ptr<float>();
  parallel_for(0, N, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, K)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float amax = 0.0f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(w[n * K + k]));
      const float s = common::int8_weight_scale(amax);
      sp[n] = s;
      for (int64_t k = 0; k < K; ++k) qp[n * K + k] = common::int8_quantize_weight(w[n * K + k], s);
    }
  });
}

void CpuBackend::pack_int8_weight(const TensorView& packed, const TensorView& colsum, const TensorView& q) {
  const int64_t N = q.sizes[0], K = q.sizes[1];
  const int64_t Np = common::int8_padded_n(N), G = common::int8_padded_k(K) / kGK;
  const int8_t* src = q.ptr<int8_t>();
  int8_t* dst = packed.ptr<int8_t>();
  int32_t* cs = colsum.ptr<int32_t>();
  std::memset(dst, 0, static_cast<size_t>(Np * G * kGK));
  for (int64_t n = 0; n < Np; ++n) {
    int32_t sum = 0;
    if (n < N) {
      const int64_t block = n / kBN, j = n % kBN;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = k / kGK, t = k % kGK;
        dst[((block * G + g) * kBN + j) * kGK + t] = src[n * K + k];
        sum += src[n * K + k];
      }
    }
    cs[n] = sum;
  }
}

void CpuBackend::linear_int8(const TensorView& out, const TensorView& x, const TensorView& packed,
                             const TensorView& colsum, const TensorView& scale, const TensorView& bias,
                             int64_t n_begin) {
  const int64_t M = x.sizes[0], K = x.sizes[1], Nc = out.sizes[1];
  const int64_t Kp = common::int8_padded_k(K);
  int k = kernel();
  // AMX computes 32 rows at a time: for a few rows (decoding one token) VNNI is faster.
  if (k == kAmx && g_choice.load(std::memory_order_relaxed) == kAuto && M < 16) k = kVnni;
  const bool amx = k == kAmx, vnni = k == kVnni;
  QuantizedRows& rows = tl_rows;
  const int64_t padded_rows = amx ? common::int8_round_up(M, 32) : M;
  quantize_rows(x.ptr<float>(), M, padded_rows, K, Kp, amx || vnni, rows);
  const GemmArgs a{&rows, packed.ptr<int8_t>(), colsum.ptr<int32_t>(), scale.ptr<float>(),
                   bias.data ? bias.ptr<float>() : nullptr, out.ptr<float>(), M, Nc, Kp, Kp / kGK, n_begin};
  const int64_t blocks = (Nc + kBN - 1) / kBN;
  // A tile's rows and blocks: AMX 32 x 2 (2 x 2 tiles of 16 x 16), the others kMR x kNB.
  const int64_t tile_m = amx ? 32 : kMR, tile_b = amx ? 2 : kNB;
  const int64_t row_tiles = (M + tile_m - 1) / tile_m;
  const int64_t col_tiles = (blocks + tile_b - 1) / tile_b;
  // Below kGemmGrain products sgemm runs on one thread; int8 does ~2x (VNNI) to ~8x (AMX) the
  // products per cycle, so the threshold grows by as much.
  const int64_t tile_work = tile_m * tile_b * kBN * Kp;
  const int64_t grain = std::max<int64_t>(1, (amx ? 8 : 2) * kGemmGrain / tile_work);
  // Tiles in column-major order: consecutive tiles share one panel of the weight.
  parallel_for(0, row_tiles * col_tiles, grain, [&](int64_t t0, int64_t t1) {
#if defined(__x86_64__)
    if (amx) amx_begin();  // each thread configures its own tile registers
#endif
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ct = t / row_tiles, rt = t % row_tiles;
      const int64_t m0 = rt * tile_m, b0 = ct * tile_b;
#if defined(__x86_64__)
      if (amx) {
        tile_amx(a, m0, b0);
        continue;
      }
#endif
      const int mr = static_cast<int>(std::min<int64_t>(kMR, M - m0));
      const int nb = static_cast<int>(std::min<int64_t>(kNB, blocks - b0));
#if defined(__x86_64__)
      if (vnni) {
        tile_vnni(a, m0, mr, b0, nb);
        continue;
      }
#endif
      tile_generic(a, m0, mr, b0, nb);
    }
#if defined(__x86_64__)
    if (amx) amx_end();
#endif
  });
}

}  // namespace focus::cpu
