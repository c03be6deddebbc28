// CUDA FlashAttention-2 (Dao 2023): Backend::flash_attention_forward / _backward for
// float16, bfloat16 and float32 (TF32 tensor cores) with head dims 32, 64 and 128 (E == Ev).
// The contract is Backend::attention_forward / attention_backward (backends/backend.h); the
// online-softmax math is written once in backends/common/flash.h and shared with the host
// tiling (backends/cpu/flash_attention.cpp), so both fold the keys in the same 64-key order.
//
// Tensor cores: raw `mma.sync` (m16n8k16 for float16/bfloat16, m16n8k8 for TF32) with
// float32 accumulators, not nvcuda::wmma. wmma's fragment layouts are opaque, so with wmma
// the scores would have to go through shared memory to be masked, softmaxed and rescaled
// row by row, and so would the output accumulator at every rescale. mma.sync's layouts are
// fixed by the PTX ISA ("Matrix fragments for mma.m16n8k16" / "mma.m16n8k8"), for lane =
// 4 g + t (g = groupID, t = threadID_in_group):
//   C/D 16x8 (float x4):   c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
//   A 16x16 (16-bit x2 x4): reg0 (g, 2t..2t+1)  reg1 (g+8, 2t..)  reg2 (g, 2t+8..)  reg3 (g+8, 2t+8..)
//   B 16x8  (16-bit x2 x2): reg0 (k 2t..2t+1, n g)  reg1 (k 2t+8..2t+9, n g)
//   A 16x8 tf32:  a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4);  B 8x8 tf32: b0 (k t, n g)  b1 (k t+4, n g)
// The only places these layouts matter are the helpers load_a / load_bt / load_b /
// acc_to_a / store rows below; everything else works on (row, col) computed by frag_row /
// frag_col. Two facts make the softmax stay in registers:
//  * 16-bit: the C fragments of two neighbouring n8 tiles hold exactly the A fragment of
//    the 16x16 k-block they span (FlashAttention-2's trick), so P = softmax(S) feeds P V
//    without leaving the registers.
//  * TF32: the A layout (k = t, t+4) is not the C layout (cols 2t, 2t+1). A product sums
//    over k, so any permutation of k applied to both operands gives the same result: every
//    TF32 operand here uses "logical k t <-> physical 2t, logical k t+4 <-> physical 2t+1",
//    under which the C fragment of one n8 tile is the A fragment of one k8 block.
// Operands are read from shared memory with plain 32-bit (16-bit pairs) or scalar loads,
// not ldmatrix: slower than FlashAttention's swizzled ldmatrix, but each load's address is
// the layout table above, read off directly.
//
// Forward (algorithm 1): one block of 4 warps per (batch entry, 64 query rows); each warp
// owns 16 rows. Q, K, V tiles [64, D] sit in shared memory (rows padded by 16 bytes so the
// fragment loads hit distinct banks); S = Q K^T, masked and scaled in float32, online
// softmax (flash_rescale / flash_prob), P rounded to T (TF32 for float32), O += P V; the
// running row max m and sum l are per thread (rows g and g+8), all four threads of a quad
// agreeing on m through shuffles; l is summed over the quad at the end.
// Backward (algorithm 2): D = rowsum(dO * O) first (dsum_kernel); then one block per (batch
// entry, 64 keys), each warp owning 16 keys, looping over chunks of QC query rows
// (QC = 64, or 32 / 16 where registers or shared memory would not hold 64): S^T = K Q^T and
// dP^T = V dO^T with the keys as rows, so P^T and dS^T sit in A-fragment layout for
// dV += W^T dO and dK += dS^T Q, whose accumulators stay in registers for the whole loop;
// dS goes through shared memory once for dQ += dS K (float32 atomics into a global buffer,
// converted to T at the end; into grad_q itself for float32) and for grad_mask.
//
// Indices: tile rows, columns and shared-memory offsets are 32-bit; batch offsets, output
// offsets, the dropout element number (b L + l) S + j and grad_mask offsets are 64-bit.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backends/common/flash.h"
#include "backends/common/philox.h"
#include "backends/cuda/attention_geom.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernel_utils.cuh"
#include "core/precision.h"

namespace focus::cuda_detail {

namespace {

constexpr const char* kFwdOp = "scaled_dot_product_attention (flash)";
constexpr const char* kBwdOp = "scaled_dot_product_attention_backward (flash)";

constexpr int kWarps = 4;
constexpr int kBlockThreads = kWarps * 32;
constexpr int kBM = common::kFlashBlockRows;  // query rows per forward block
constexpr int kBN = common::kFlashBlockCols;  // keys per tile (forward) and per backward block
static_assert(kBM == kWarps * 16 && kBN == kWarps * 16, "each warp owns 16 rows of a tile");
constexpr int kDefaultSmem = 48 * 1024;  // above this a kernel must opt in

// ---- geometry ---------------------------------------------------------------------------
// Where the rows of a [B..., rows, cols] view live: its batch dims coalesced (innermost
// first, size-1 dims dropped, stride 0 kept for broadcast) and its row and column strides.
// Whether a [B..., rows, D] view can be read in 16-byte vectors: unit column stride and
// every row start 16-byte aligned in every batch entry.
bool vec_ok(const TensorView& v, const RowGeom& g, size_t elem) {
  const int64_t n = static_cast<int64_t>(16 / elem);
  if (reinterpret_cast<uintptr_t>(v.data) % 16 != 0 || g.s_col != 1 || g.s_row % n != 0) return false;
  for (int d = 0; d < g.nb; ++d)
    if (g.strides[d] % n != 0) return false;
  return true;
}

// Dropout on the probabilities: keep = (u >= p) for Philox element i, kept values * ks.
struct DropoutArg {
  bool on = false;
  double p = 0;
  float ks = 1;
  uint64_t seed = 0, offset = 0;
};

DropoutArg dropout_arg(double p, RandomState rng) {
  DropoutArg d;
  d.on = p > 0;
  d.p = p;
  // As attention.cu's dropout_arg: 1 / (1 - p) rounded to the accumulation type (float32
  // for every dtype taken here), 0 when p == 1.
  d.ks = static_cast<float>(p < 1 ? 1.0 / (1.0 - p) : 0.0);
  d.seed = rng.seed;
  d.offset = rng.offset;
  return d;
}

__device__ __forceinline__ uint32_t pick_word(const common::Philox4& w, unsigned word) {
  // Selects, not w.w[word]: an indexed array would live in local memory (as keep_at).
  return word == 0 ? w.w[0] : word == 1 ? w.w[1] : word == 2 ? w.w[2] : w.w[3];
}

// The keep flags of elements i and i + 1 (common::dropout_keep), one Philox call for both
// unless they straddle two counters.
__device__ __forceinline__ void keep_pair(const DropoutArg& d, uint64_t i, bool& k0, bool& k1) {
  const common::Philox4 w = common::philox4x32(d.offset + i / 4, d.seed);
  const unsigned word = static_cast<unsigned>(i % 4);
  k0 = static_cast<double>(common::u32_to_unit_float(pick_word(w, word))) >= d.p;
  uint32_t x1;
  if (word == 3) {
    x1 = common::philox4x32(d.offset + (i + 1) / 4, d.seed).w[0];
  } else {
    x1 = pick_word(w, word + 1);
  }
  k1 = static_cast<double>(common::u32_to_unit_float(x1)) >= d.p;
}

// ---- tensor-core fragments ------------------------------------------------------------
template <typename T> inline constexpr bool kTf32 = std::is_same_v<T, float>;
// k per mma instruction, and the row padding (elements) of shared tiles: 16 bytes, so rows
// stay 16-byte aligned for vector stores and successive rows start 4 banks apart.
template <typename T> inline constexpr int kStepK = kTf32<T> ? 8 : 16;
template <typename T> inline constexpr int kPad = 16 / static_cast<int>(sizeof(T));

// Row (0..15) and column (0..7) of accumulator element i (0..3) of this lane's C fragment.
__device__ __forceinline__ int frag_row(int g, int i) { return g + 8 * (i >> 1); }
__device__ __forceinline__ int frag_col(int t, int i) { return 2 * t + (i & 1); }

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

template <typename T> __device__ __forceinline__ uint32_t bits16(T x) {
  if constexpr (std::is_same_v<T, __half>) return __half_as_ushort(x);
  else return __bfloat16_as_ushort(x);
}

// Two floats rounded to T and packed, the first in the low half (the lower k / column).
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  return bits16(convert<T>(lo)) | (bits16(convert<T>(hi)) << 16);
}

// A operand: rows 0..15 of the row-major shared tile s (pitch in elements), k from k0.
template <typename T>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const T* s, int pitch, int k0, int g, int t) {
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int row = g + 8 * (r & 1);
    if constexpr (kTf32<T>) {
      a[r] = to_tf32(s[row * pitch + k0 + 2 * t + (r >> 1)]);
    } else {
      a[r] = *reinterpret_cast<const uint32_t*>(s + row * pitch + k0 + 2 * t + 8 * (r >> 1));
    }
  }
}

// B operand (k from k0, n from n0) of a product whose B^T is the row-major shared tile s:
// B[k][n] = s[n][k] (K in Q K^T, Q in K Q^T, dO in V dO^T).
template <typename T>
__device__ __forceinline__ void load_bt(uint32_t (&b)[2], const T* s, int pitch, int n0, int k0, int g, int t) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if constexpr (kTf32<T>) {
      b[r] = to_tf32(s[(n0 + g) * pitch + k0 + 2 * t + r]);
    } else {
      b[r] = *reinterpret_cast<const uint32_t*>(s + (n0 + g) * pitch + k0 + 2 * t + 8 * r);
    }
  }
}

// B operand (k from k0, n from n0) stored as the row-major shared tile B[k][n] = s[k][n]
// (V in P V, dO in W^T dO, Q in dS^T Q, K in dS K): the k pairs are a row apart.
template <typename T>
__device__ __forceinline__ void load_b(uint32_t (&b)[2], const T* s, int pitch, int k0, int n0, int g, int t) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if constexpr (kTf32<T>) {
      b[r] = to_tf32(s[(k0 + 2 * t + r) * pitch + n0 + g]);
    } else {
      const int k = k0 + 2 * t + 8 * r;
      b[r] = bits16(s[k * pitch + n0 + g]) | (bits16(s[(k + 1) * pitch + n0 + g]) << 16);
    }
  }
}

// A operand for k-block kk of a 16 x (8 NB) accumulator tile c (rounded to T / TF32): the
// k-block is n8 tiles 2kk and 2kk+1 (16-bit) or n8 tile kk (TF32, under the k permutation
// of the file header).
template <typename T, int NB>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&c)[NB][4], int kk) {
  if constexpr (kTf32<T>) {
    a[0] = to_tf32(c[kk][0]);
    a[1] = to_tf32(c[kk][2]);
    a[2] = to_tf32(c[kk][1]);
    a[3] = to_tf32(c[kk][3]);
  } else {
    a[0] = pack2<T>(c[2 * kk][0], c[2 * kk][1]);
    a[1] = pack2<T>(c[2 * kk][2], c[2 * kk][3]);
    a[2] = pack2<T>(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    a[3] = pack2<T>(c[2 * kk + 1][2], c[2 * kk + 1][3]);
  }
}

// d += a b on the tensor cores, float32 accumulate.
template <typename T> __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (kTf32<T>) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else if constexpr (std::is_same_v<T, __half>) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

// Rows [r0, r0 + ROWS) of a [rows, D] view (base = its batch entry) into the shared tile s
// (pitch D + kPad); rows at or past `limit` become zeros, so padded rows give finite scores
// (0) and never NaN.
template <typename T, int ROWS, int D>
__device__ __forceinline__ void load_tile(T* s, const T* base, int64_t s_row, int64_t s_col, int r0, int limit,
                                          bool vec) {
  constexpr int P = D + kPad<T>;
  if (vec) {
    constexpr int V = 16 / static_cast<int>(sizeof(T));
    constexpr int kChunks = D / V;
    for (int i = threadIdx.x; i < ROWS * kChunks; i += kBlockThreads) {
      const int r = i / kChunks, c = (i % kChunks) * V;
      uint4 x = make_uint4(0, 0, 0, 0);
      if (r0 + r < limit) x = *reinterpret_cast<const uint4*>(base + (r0 + r) * s_row + c);
      *reinterpret_cast<uint4*>(s + r * P + c) = x;
    }
  } else {
    for (int i = threadIdx.x; i < ROWS * D; i += kBlockThreads) {
      const int r = i / D, c = i % D;
      T x = convert<T>(0.0f);
      if (r0 + r < limit) x = base[(r0 + r) * s_row + c * s_col];
      s[r * P + c] = x;
    }
  }
}

// The attention mask at (row l, key j) of one batch entry (mask = its base): allow for a
// bool mask, the additive value for a float mask.
template <typename T>
__device__ __forceinline__ void read_mask(int kind, const void* mask, const RowGeom& mg, int64_t l, int64_t j,
                                          bool& allow, float& add) {
  const int64_t off = l * mg.s_row + j * mg.s_col;
  if (kind == common::kFlashBoolMask) allow = static_cast<const bool*>(mask)[off];
  else if (kind == common::kFlashAddMask) add = convert<float>(static_cast<const T*>(mask)[off]);
}

// ---- forward --------------------------------------------------------------------------
struct FwdParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* mask = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  RowGeom qg, kg, vg, mg;
  int64_t nbatch = 0;
  int L = 0, S = 0;
  int mask_kind = common::kFlashNoMask;
  bool causal = false, q_vec = false, k_vec = false, v_vec = false;
  float scale = 1;
  DropoutArg drop;
};

template <typename T, int D> constexpr size_t fwd_smem() {
  return static_cast<size_t>(kBM + 2 * kBN) * (D + kPad<T>) * sizeof(T);
}

template <typename T, int D>
__global__ void __launch_bounds__(kBlockThreads) flash_forward_kernel(const FwdParams p) {
  constexpr int P = D + kPad<T>;
  constexpr int KS = kStepK<T>;
  constexpr int NB = kBN / 8;  // n8 tiles of a score row block
  constexpr int ND = D / 8;    // n8 tiles of an output row block
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kBM * P;
  T* sV = sK + kBN * P;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int q0 = static_cast<int>(blockIdx.x) * kBM;
  const int row0 = q0 + warp * 16 + g;  // this lane's rows: row0 and row0 + 8
  // Causal: key tiles entirely above the diagonal are never loaded.
  const int key_end = p.causal ? static_cast<int>(common::flash_causal_key_end(q0, kBM, p.S)) : p.S;
  const T* wq = sQ + warp * 16 * P;

  for (int64_t b = blockIdx.y; b < p.nbatch; b += gridDim.y) {
    const T* q = static_cast<const T*>(p.q) + batch_offset(p.qg, b);
    const T* k = static_cast<const T*>(p.k) + batch_offset(p.kg, b);
    const T* v = static_cast<const T*>(p.v) + batch_offset(p.vg, b);
    const void* mask = nullptr;
    if (p.mask_kind != common::kFlashNoMask)
      mask = static_cast<const char*>(p.mask) +
             batch_offset(p.mg, b) * (p.mask_kind == common::kFlashBoolMask ? 1 : static_cast<int64_t>(sizeof(T)));
    __syncthreads();  // the previous batch entry is done with sQ
    load_tile<T, kBM, D>(sQ, q, p.qg.s_row, p.qg.s_col, q0, p.L, p.q_vec);

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    float acc[ND][4];
#pragma unroll
    for (int j = 0; j < ND; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][i] = 0.f;

    for (int k0 = 0; k0 < key_end; k0 += kBN) {
      __syncthreads();  // every warp is done with the previous K/V tile
      load_tile<T, kBN, D>(sK, k, p.kg.s_row, p.kg.s_col, k0, p.S, p.k_vec);
      load_tile<T, kBN, D>(sV, v, p.vg.s_row, p.vg.s_col, k0, p.S, p.v_vec);
      __syncthreads();

      // S = Q K^T for this warp's 16 rows x 64 keys.
      float s[NB][4];
#pragma unroll
      for (int j = 0; j < NB; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) s[j][i] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / KS; ++kk) {
        uint32_t a[4];
        load_a<T>(a, wq, P, kk * KS, g, t);
#pragma unroll
        for (int j = 0; j < NB; ++j) {
          uint32_t bb[2];
          load_bt<T>(bb, sK, P, j * 8, kk * KS, g, t);
          mma<T>(s[j], a, bb);
        }
      }

      // Masked, scaled scores (-inf outside [L, S]) and the tile's row max.
      float tmax[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < NB; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int h = i >> 1;
          const int row = row0 + 8 * h, col = k0 + 8 * j + frag_col(t, i);
          float z = -INFINITY;
          if (row < p.L && col < p.S) {
            bool allow = true;
            float add = 0.f;
            if (p.mask_kind != common::kFlashNoMask) read_mask<T>(p.mask_kind, mask, p.mg, row, col, allow, add);
            z = common::flash_score(s[j][i] * p.scale, p.mask_kind, allow, add, p.causal, row, col);
          }
          s[j][i] = z;
          tmax[h] = fmaxf(tmax[h], z);
        }
      // The four lanes of a quad share rows g and g + 8: agree on the max.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(0xffffffffu, tmax[h], 1));
        tmax[h] = fmaxf(tmax[h], __shfl_xor_sync(0xffffffffu, tmax[h], 2));
      }
      float c[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        c[h] = common::flash_rescale(m[h], tmax[h]);
        l[h] *= c[h];
      }
#pragma unroll
      for (int j = 0; j < ND; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[j][i] *= c[i >> 1];

      // P (undropped into l, dropped into P V).
#pragma unroll
      for (int j = 0; j < NB; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float p0 = common::flash_prob(s[j][2 * h], m[h]);
          const float p1 = common::flash_prob(s[j][2 * h + 1], m[h]);
          l[h] += p0 + p1;
          float w0 = p0, w1 = p1;
          if (p.drop.on) {
            const int row = row0 + 8 * h, col = k0 + 8 * j + 2 * t;
            bool keep0 = false, keep1 = false;
            if (row < p.L && col < p.S) {
              keep_pair(p.drop, (static_cast<uint64_t>(b) * p.L + row) * p.S + col, keep0, keep1);
              keep1 = keep1 && col + 1 < p.S;  // element i + 1 is the next row's when col + 1 == S
            }
            w0 = keep0 ? p0 * p.drop.ks : 0.f;
            w1 = keep1 ? p1 * p.drop.ks : 0.f;
          }
          s[j][2 * h] = w0;
          s[j][2 * h + 1] = w1;
        }

      // O += P V: P is already in A-fragment layout.
#pragma unroll
      for (int kk = 0; kk < kBN / KS; ++kk) {
        uint32_t a[4];
        acc_to_a<T, NB>(a, s, kk);
#pragma unroll
        for (int j = 0; j < ND; ++j) {
          uint32_t bb[2];
          load_b<T>(bb, sV, P, kk * KS, j * 8, g, t);
          mma<T>(acc[j], a, bb);
        }
      }
    }

    // Finish: l summed over the quad, out = acc / l (0 and lse = +inf for an empty row).
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
      l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
      const int row = row0 + 8 * h;
      if (row >= p.L) continue;
      float lse = 0.f;
      const float inv = common::flash_finish(m[h], l[h], lse);
      const int64_t r = b * p.L + row;
      T* o = static_cast<T*>(p.out) + r * D;
#pragma unroll
      for (int j = 0; j < ND; ++j) {
        o[8 * j + 2 * t] = convert<T>(acc[j][2 * h] * inv);
        o[8 * j + 2 * t + 1] = convert<T>(acc[j][2 * h + 1] * inv);
      }
      if (t == 0) p.lse[r] = lse;
    }
  }
}

// ---- backward -------------------------------------------------------------------------
// D = rowsum(dO * O) in float32, one warp per row of [B * L].
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    dsum_kernel(float* dsum, const T* dout, RowGeom dog, const T* out, int64_t rows, int L, int E) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp; r < rows;
       r += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t b = r / L;
    const T* d = dout + batch_offset(dog, b) + (r - b * L) * dog.s_row;
    const T* o = out + r * E;
    float acc = 0.f;
    for (int e = lane; e < E; e += 32) acc += convert<float>(d[e * dog.s_col]) * convert<float>(o[e]);
#pragma unroll
    for (int s = 16; s > 0; s /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, s);
    if (lane == 0) dsum[r] = acc;
  }
}

// grad_q = dq_acc rounded to T (16-bit dtypes; float32 accumulates into grad_q directly).
template <typename T> __global__ void __launch_bounds__(kThreads) dq_convert_kernel(T* out, const float* in, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads)
    out[i] = convert<T>(in[i]);
}

struct BwdParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* mask = nullptr;
  const void* dout = nullptr;
  const float* lse = nullptr;
  const float* dsum = nullptr;
  float* dq = nullptr;     // float32 [B, L, E] accumulator (null = grad_q not wanted)
  void* dk = nullptr;      // [B, S, E] (null = not wanted)
  void* dv = nullptr;      // [B, S, E] (null = not wanted)
  void* dmask = nullptr;   // [B, L, S] (null = not wanted)
  RowGeom qg, kg, vg, mg, dog;
  int64_t nbatch = 0;
  int L = 0, S = 0;
  int mask_kind = common::kFlashNoMask;
  bool causal = false, q_vec = false, k_vec = false, v_vec = false, do_vec = false;
  float scale = 1;
  DropoutArg drop;
};

// Query rows per inner step of the backward: 64 where the dK and dV accumulators (2 D / 8 x
// 4 floats a lane) leave room in registers, else 32; float32 at D = 128 takes 16 to stay
// under 99 KB of shared memory (the most an sm_86/sm_89 block may have).
template <typename T, int D> constexpr int bwd_chunk() {
  if (D <= 64) return 64;
  return kTf32<T> ? 16 : 32;
}

template <typename T, int D> constexpr size_t bwd_smem() {
  constexpr int QC = bwd_chunk<T, D>();
  return static_cast<size_t>(2 * kBN + 2 * QC) * (D + kPad<T>) * sizeof(T) +
         static_cast<size_t>(QC) * (kBN + kPad<T>) * sizeof(T) + 2 * QC * sizeof(float);
}

template <typename T, int D>
__global__ void __launch_bounds__(kBlockThreads) flash_backward_kernel(const BwdParams p) {
  constexpr int QC = bwd_chunk<T, D>();
  constexpr int P = D + kPad<T>;
  constexpr int PS = kBN + kPad<T>;  // pitch of the dS tile [QC][64 keys]
  constexpr int KS = kStepK<T>;
  constexpr int NQ = QC / 8;  // n8 tiles of a key row block of S^T / dP^T
  constexpr int ND = D / 8;
  // dQ chunk [QC, D] split over the 4 warps: WR row groups of 16 x WC column groups of CW.
  constexpr int WR = QC / 16, WC = kWarps / WR, CW = D / WC, NC = CW / 8;
  static_assert(WR * WC == kWarps && CW % 8 == 0, "dQ split");
  extern __shared__ __align__(16) unsigned char smem[];
  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + kBN * P;
  T* sQ = sV + kBN * P;
  T* sdO = sQ + QC * P;
  T* sdS = sdO + QC * P;  // dS as [query][key]
  float* sLse = reinterpret_cast<float*>(sdS + QC * PS);
  float* sDsum = sLse + QC;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int c0 = static_cast<int>(blockIdx.x) * kBN;
  const int key0 = c0 + warp * 16 + g;  // this lane's keys: key0 and key0 + 8
  // Causal: query rows before the first that sees key c0 contribute nothing.
  const int q_begin = p.causal ? static_cast<int>(common::flash_causal_first_row(c0) / QC) * QC : 0;
  const bool want_ds = p.dq != nullptr || p.dmask != nullptr;
  const T* wk = sK + warp * 16 * P;
  const T* wv = sV + warp * 16 * P;

  for (int64_t b = blockIdx.y; b < p.nbatch; b += gridDim.y) {
    const T* q = static_cast<const T*>(p.q) + batch_offset(p.qg, b);
    const T* k = static_cast<const T*>(p.k) + batch_offset(p.kg, b);
    const T* v = static_cast<const T*>(p.v) + batch_offset(p.vg, b);
    const T* dout = static_cast<const T*>(p.dout) + batch_offset(p.dog, b);
    const void* mask = nullptr;
    if (p.mask_kind != common::kFlashNoMask)
      mask = static_cast<const char*>(p.mask) +
             batch_offset(p.mg, b) * (p.mask_kind == common::kFlashBoolMask ? 1 : static_cast<int64_t>(sizeof(T)));
    __syncthreads();  // the previous batch entry is done with sK / sV
    load_tile<T, kBN, D>(sK, k, p.kg.s_row, p.kg.s_col, c0, p.S, p.k_vec);
    load_tile<T, kBN, D>(sV, v, p.vg.s_row, p.vg.s_col, c0, p.S, p.v_vec);

    float dk[ND][4], dv[ND][4];
#pragma unroll
    for (int j = 0; j < ND; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) dk[j][i] = dv[j][i] = 0.f;

    for (int q0 = q_begin; q0 < p.L; q0 += QC) {
      __syncthreads();  // every warp is done with the previous chunk's sQ, sdO and sdS
      load_tile<T, QC, D>(sQ, q, p.qg.s_row, p.qg.s_col, q0, p.L, p.q_vec);
      load_tile<T, QC, D>(sdO, dout, p.dog.s_row, p.dog.s_col, q0, p.L, p.do_vec);
      for (int i = threadIdx.x; i < QC; i += kBlockThreads) {
        const bool in = q0 + i < p.L;
        const int64_t r = b * p.L + q0 + i;
        sLse[i] = in ? p.lse[r] : INFINITY;  // +inf: P = 0 on padded rows
        sDsum[i] = in ? p.dsum[r] : 0.f;
      }
      __syncthreads();

      // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x QC queries.
      float s[NQ][4], dp[NQ][4];
#pragma unroll
      for (int j = 0; j < NQ; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) s[j][i] = dp[j][i] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / KS; ++kk) {
        uint32_t a[4];
        load_a<T>(a, wk, P, kk * KS, g, t);
#pragma unroll
        for (int j = 0; j < NQ; ++j) {
          uint32_t bb[2];
          load_bt<T>(bb, sQ, P, j * 8, kk * KS, g, t);
          mma<T>(s[j], a, bb);
        }
        load_a<T>(a, wv, P, kk * KS, g, t);
#pragma unroll
        for (int j = 0; j < NQ; ++j) {
          uint32_t bb[2];
          load_bt<T>(bb, sdO, P, j * 8, kk * KS, g, t);
          mma<T>(dp[j], a, bb);
        }
      }

      // P = exp(z - lse), W = dropout(P) into s; dS = P (dropout'(dP) - D) into dp.
#pragma unroll
      for (int j = 0; j < NQ; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int key = key0 + 8 * h;
          const int qi = 8 * j + 2 * t;  // queries qi, qi + 1 of the chunk
          float pr[2] = {0.f, 0.f};
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int row = q0 + qi + e;
            if (key < p.S && row < p.L) {
              bool allow = true;
              float add = 0.f;
              if (p.mask_kind != common::kFlashNoMask) read_mask<T>(p.mask_kind, mask, p.mg, row, key, allow, add);
              const float z = common::flash_score(s[j][2 * h + e] * p.scale, p.mask_kind, allow, add, p.causal, row, key);
              pr[e] = common::flash_prob(z, sLse[qi + e]);
            }
          }
          float w[2] = {pr[0], pr[1]}, d[2] = {dp[j][2 * h], dp[j][2 * h + 1]};
          if (p.drop.on) {
            // Elements (row, key) and (row + 1, key) are S apart: one keep flag each.
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int row = q0 + qi + e;
              bool keep = false;
              if (key < p.S && row < p.L) {
                bool unused = false;
                keep_pair(p.drop, (static_cast<uint64_t>(b) * p.L + row) * p.S + key, keep, unused);
              }
              w[e] = keep ? pr[e] * p.drop.ks : 0.f;
              d[e] = keep ? d[e] * p.drop.ks : 0.f;
            }
          }
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            s[j][2 * h + e] = w[e];
            dp[j][2 * h + e] = pr[e] * (d[e] - sDsum[qi + e]);
          }
        }

      // dV += W^T dO and dK += dS^T Q (scale applied at the end): both A operands are
      // already in fragment layout, keys as rows.
#pragma unroll
      for (int kk = 0; kk < QC / KS; ++kk) {
        uint32_t a[4];
        acc_to_a<T, NQ>(a, s, kk);
#pragma unroll
        for (int j = 0; j < ND; ++j) {
          uint32_t bb[2];
          load_b<T>(bb, sdO, P, kk * KS, j * 8, g, t);
          mma<T>(dv[j], a, bb);
        }
        acc_to_a<T, NQ>(a, dp, kk);
#pragma unroll
        for (int j = 0; j < ND; ++j) {
          uint32_t bb[2];
          load_b<T>(bb, sQ, P, kk * KS, j * 8, g, t);
          mma<T>(dk[j], a, bb);
        }
      }

      if (!want_ds) continue;
      // dS (rounded to T, as it enters dK) to shared memory as [query][key].
#pragma unroll
      for (int j = 0; j < NQ; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i)
          sdS[(8 * j + frag_col(t, i)) * PS + warp * 16 + frag_row(g, i)] = convert<T>(dp[j][i]);
      __syncthreads();

      if (p.dmask) {
        // grad_mask = dS, row by row (coalesced along keys), 64-bit offsets.
        T* gm = static_cast<T*>(p.dmask);
        for (int i = threadIdx.x; i < QC * kBN; i += kBlockThreads) {
          const int qi = i / kBN, kj = i % kBN;
          if (q0 + qi < p.L && c0 + kj < p.S)
            gm[(b * p.L + q0 + qi) * static_cast<int64_t>(p.S) + c0 + kj] = sdS[qi * PS + kj];
        }
      }
      if (p.dq) {
        // dQ[chunk] += scale dS K: this warp's 16 rows x CW columns, float32 atomics.
        const int wr = warp / WC, wc = warp % WC;
        float acc[NC][4];
#pragma unroll
        for (int j = 0; j < NC; ++j)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[j][i] = 0.f;
#pragma unroll
        for (int kk = 0; kk < kBN / KS; ++kk) {
          uint32_t a[4];
          load_a<T>(a, sdS + wr * 16 * PS, PS, kk * KS, g, t);
#pragma unroll
          for (int j = 0; j < NC; ++j) {
            uint32_t bb[2];
            load_b<T>(bb, sK, P, kk * KS, wc * CW + j * 8, g, t);
            mma<T>(acc[j], a, bb);
          }
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = q0 + wr * 16 + frag_row(g, i);
          if (row >= p.L) continue;
          float* dq = p.dq + (b * p.L + row) * D + wc * CW + frag_col(t, i);
#pragma unroll
          for (int j = 0; j < NC; ++j) atomicAdd(dq + 8 * j, acc[j][i] * p.scale);
        }
      }
    }

    // grad_k = scale dK, grad_v = dV for this warp's keys (0 for keys no query sees).
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int key = key0 + 8 * h;
      if (key >= p.S) continue;
      const int64_t r = b * p.S + key;
#pragma unroll
      for (int j = 0; j < ND; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = 8 * j + 2 * t + e;
          if (p.dk) static_cast<T*>(p.dk)[r * D + col] = convert<T>(dk[j][2 * h + e] * p.scale);
          if (p.dv) static_cast<T*>(p.dv)[r * D + col] = convert<T>(dv[j][2 * h + e]);
        }
    }
  }
}

// ---- host -------------------------------------------------------------------------------
struct FlashDims {
  int nb = 0;
  int64_t nbatch = 1;
  int L = 0, S = 0, E = 0;
};

FlashDims flash_dims(const TensorView& q, const TensorView& k) {
  FlashDims d;
  d.nb = q.ndim - 2;
  for (int i = 0; i < d.nb; ++i) d.nbatch *= q.sizes[i];
  // The raw op checked that L, S and E fit 32 bits.
  d.L = static_cast<int>(q.sizes[d.nb]);
  d.E = static_cast<int>(q.sizes[d.nb + 1]);
  d.S = static_cast<int>(k.sizes[d.nb]);
  return d;
}

// The flash dtypes (T) and head dims (D) as template arguments.
template <typename F> void dispatch_flash(DType dt, int E, const char* op, F&& f) {
  auto by_dim = [&](auto tag) {
    using T = decltype(tag);
    switch (E) {
      case 32: f(T{}, std::integral_constant<int, 32>{}); return;
      case 64: f(T{}, std::integral_constant<int, 64>{}); return;
      case 128: f(T{}, std::integral_constant<int, 128>{}); return;
      default: FOCUS_FAIL("[{}] flash attention takes head dims 32, 64 and 128, got {}", op, E);
    }
  };
  switch (dt) {
    case kFloat16: by_dim(__half{}); return;
    case kBFloat16: by_dim(__nv_bfloat16{}); return;
    case kFloat32: by_dim(float{}); return;
    default: FOCUS_FAIL("[{}] flash attention takes float16, bfloat16 and float32, got {}", op, dt);
  }
}

// Grid: x over row (or key) tiles, y over batch entries (the kernels loop when there are
// more than 65535).
dim3 flash_grid(int tiles, int64_t nbatch) {
  return dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min<int64_t>(nbatch, 65535)));
}

template <typename Kernel, typename Params>
void launch_flash(Kernel kernel, dim3 grid, size_t smem, cudaStream_t stream, const Params& p, const char* op) {
  if (smem > static_cast<size_t>(kDefaultSmem))
    FOCUS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<grid, kBlockThreads, smem, stream>>>(p);
  FOCUS_CUDA_LAUNCH_CHECK(op);
}

void zero_view(const TensorView& v, cudaStream_t stream) {
  if (v.data && v.numel > 0)
    FOCUS_CUDA_CHECK(cudaMemsetAsync(v.data, 0, static_cast<size_t>(v.numel) * dtype_size(v.dtype), stream));
}

int mask_kind_of(const TensorView& mask) {
  if (!mask.data) return common::kFlashNoMask;
  return mask.dtype == kBool ? common::kFlashBoolMask : common::kFlashAddMask;
}

}  // namespace

bool CudaBackend::flash_attention_supports(DType dtype, int64_t E, int64_t Ev) const {
  if (E != Ev || !common::flash_head_dim_ok(E)) return false;
  if (dtype == kFloat16 || dtype == kBFloat16) return true;
  // float32 only on TF32 tensor cores; "highest" keeps the composed path's full float32.
  return dtype == kFloat32 && allow_tf32();
}

void CudaBackend::flash_attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                                          const TensorView& k, const TensorView& v, const TensorView& mask,
                                          bool is_causal, double scale, double dropout_p, RandomState rng) {
  const FlashDims dm = flash_dims(q, k);
  if (dm.nbatch == 0 || dm.L == 0) return;
  const cudaStream_t stream = stream_of(index_);
  dispatch_flash(q.dtype, dm.E, kFwdOp, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    FwdParams p;
    p.q = q.data;
    p.k = k.data;
    p.v = v.data;
    p.mask = mask.data;
    p.out = out.data;
    p.lse = lse.ptr<float>();
    p.qg = row_geom(q, dm.nb);
    p.kg = row_geom(k, dm.nb);
    p.vg = row_geom(v, dm.nb);
    p.mask_kind = mask_kind_of(mask);
    if (mask.data) p.mg = row_geom(mask, dm.nb);
    p.nbatch = dm.nbatch;
    p.L = dm.L;
    p.S = dm.S;
    p.causal = is_causal;
    p.q_vec = vec_ok(q, p.qg, sizeof(T));
    p.k_vec = vec_ok(k, p.kg, sizeof(T));
    p.v_vec = vec_ok(v, p.vg, sizeof(T));
    p.scale = static_cast<float>(scale);
    p.drop = dropout_arg(dropout_p, rng);
    launch_flash(flash_forward_kernel<T, D>, flash_grid((dm.L + kBM - 1) / kBM, dm.nbatch), fwd_smem<T, D>(),
                 stream, p, kFwdOp);
  });
}

void CudaBackend::flash_attention_backward(const TensorView& grad_q, const TensorView& grad_k,
                                           const TensorView& grad_v, const TensorView& grad_mask,
                                           const TensorView& grad_out, const TensorView& q, const TensorView& k,
                                           const TensorView& v, const TensorView& mask, bool is_causal,
                                           const TensorView& out, const TensorView& lse, double scale,
                                           double dropout_p, RandomState rng) {
  if (!grad_q.data && !grad_k.data && !grad_v.data && !grad_mask.data) return;
  const FlashDims dm = flash_dims(q, k);
  if (dm.nbatch == 0) return;
  const cudaStream_t stream = stream_of(index_);
  if (dm.L == 0 || dm.S == 0) {
    // No query row: grad_k and grad_v are 0 (grad_q, grad_mask are empty). No key: grad_q is
    // 0 (grad_k, grad_v, grad_mask are empty).
    for (const TensorView* t : {&grad_q, &grad_k, &grad_v}) zero_view(*t, stream);
    return;
  }
  dispatch_flash(q.dtype, dm.E, kBwdOp, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    const int dev = index_;
    const int64_t rows = dm.nbatch * dm.L;
    DeviceBuffer dsum(dev, static_cast<size_t>(rows) * sizeof(float));
    const RowGeom dog = row_geom(grad_out, dm.nb);
    dsum_kernel<T><<<blocks_for(rows, kWarps), kBlockThreads, 0, stream>>>(
        dsum.as<float>(), grad_out.ptr<T>(), dog, out.ptr<T>(), rows, dm.L, D);
    FOCUS_CUDA_LAUNCH_CHECK(kBwdOp);

    // dQ accumulates in float32: grad_q itself for float32, else a buffer converted at the end.
    constexpr bool kDirect = std::is_same_v<T, float>;
    const size_t nq = grad_q.data ? static_cast<size_t>(rows) * D : 0;
    DeviceBuffer dq_buf(dev, kDirect ? 0 : nq * sizeof(float));
    float* dq = nullptr;
    if (grad_q.data) {
      dq = kDirect ? static_cast<float*>(grad_q.data) : dq_buf.as<float>();
      FOCUS_CUDA_CHECK(cudaMemsetAsync(dq, 0, nq * sizeof(float), stream));
    }

    BwdParams p;
    p.q = q.data;
    p.k = k.data;
    p.v = v.data;
    p.mask = mask.data;
    p.dout = grad_out.data;
    p.lse = lse.ptr<float>();
    p.dsum = dsum.as<float>();
    p.dq = dq;
    p.dk = grad_k.data;
    p.dv = grad_v.data;
    p.dmask = grad_mask.data;
    p.qg = row_geom(q, dm.nb);
    p.kg = row_geom(k, dm.nb);
    p.vg = row_geom(v, dm.nb);
    p.dog = dog;
    p.mask_kind = mask_kind_of(mask);
    if (mask.data) p.mg = row_geom(mask, dm.nb);
    p.nbatch = dm.nbatch;
    p.L = dm.L;
    p.S = dm.S;
    p.causal = is_causal;
    p.q_vec = vec_ok(q, p.qg, sizeof(T));
    p.k_vec = vec_ok(k, p.kg, sizeof(T));
    p.v_vec = vec_ok(v, p.vg, sizeof(T));
    p.do_vec = vec_ok(grad_out, dog, sizeof(T));
    p.scale = static_cast<float>(scale);
    p.drop = dropout_arg(dropout_p, rng);
    launch_flash(flash_backward_kernel<T, D>, flash_grid((dm.S + kBN - 1) / kBN, dm.nbatch), bwd_smem<T, D>(),
                 stream, p, kBwdOp);

    if (grad_q.data && !kDirect) {
      dq_convert_kernel<T><<<blocks_for(static_cast<int64_t>(nq)), kThreads, 0, stream>>>(grad_q.ptr<T>(), dq,
                                                                                          static_cast<int64_t>(nq));
      FOCUS_CUDA_LAUNCH_CHECK(kBwdOp);
    }
  });
}

}  // namespace focus::cuda_detail
