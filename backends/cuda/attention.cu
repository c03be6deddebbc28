// CUDA scaled dot-product attention, composed from batched GEMMs (CudaBackend::matmul on
// cuBLAS, views of q, k, v passed as they are: transposes are operation flags, broadcast
// batch dims stride 0) and fused row kernels, one block per row of the [B, L, S] scores.
// The contract and the reference are Backend::attention_forward / attention_backward in
// backends/backend.h and backends/cpu/attention.cpp, which this file follows step for step:
//
// forward:  Z = scale q k^T (GEMM into a [B, L, S] buffer: the returned weights when
//           need_weights, else a temporary); softmax_kernel masks Z in place (bool or
//           additive mask, causal), takes the row max, sum and lse = max + log(sum) and
//           writes W = P (dropout-applied) over Z; out = W v (GEMM).
// backward: Z again (GEMM), probs_kernel turns it into P = exp(Z - lse) (and W when dropout
//           is on); grad_v = W^T dO; dW = dO v^T (GEMM into grad_mask when wanted, else a
//           temporary); dscores_kernel turns dW into dZ = P (dW' - D) with
//           D = rowsum(dO * O) + rowsum(grad_weights * W); grad_q = scale dZ k;
//           grad_k = scale dZ^T q.
//
// Fully masked rows (and S == 0) get lse = +inf, P = W = 0, out = 0 and 0 gradients. The
// dropout keep flags come from backends/common/philox.h, element i = (b L + l) S + j, so the
// masks are bit-identical to the CPU's. float16/bfloat16 keep the scores in their own dtype
// (as PyTorch's math path does) and do the softmax in float32.
#include <cub/cub.cuh>

#include <algorithm>
#include <cmath>
#include <utility>

#include "backends/common/philox.h"
#include "backends/cuda/attention_geom.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernel_utils.cuh"

namespace focus::cuda_detail {

namespace {

constexpr const char* kFwdOp = "scaled_dot_product_attention";
constexpr const char* kBwdOp = "scaled_dot_product_attention_backward";
constexpr int kRowThreads = 128;

// The attention mask: none, bool (true = attend) or additive (the scores' dtype).
enum MaskKind : int { kNoMask = 0, kBoolMask = 1, kAddMask = 2 };
struct MaskArg {
  const void* data = nullptr;
  int kind = kNoMask;
  RowGeom g;
};

// Dropout on the weights: keep = (u >= p) for Philox element i, W = keep ? P * ks : 0.
struct DropoutArg {
  bool on = false;
  double p = 0;
  double ks = 1;
  uint64_t seed = 0, offset = 0;
};

template <typename A> __device__ __forceinline__ A exp_acc(A x) {
  if constexpr (std::is_same_v<A, double>) return exp(x);
  else return expf(x);
}
template <typename A> __device__ __forceinline__ A log_acc(A x) {
  if constexpr (std::is_same_v<A, double>) return log(x);
  else return logf(x);
}

// Max that never picks a NaN (as std::max(mx, x) in the CPU loop: a NaN score does not
// become the row max; it still poisons the row through the sum).
struct MaxOp {
  template <typename A> __device__ __forceinline__ A operator()(const A& a, const A& b) const { return a < b ? b : a; }
};

// The block's reduction of v, returned to every thread.
template <typename A, typename Op> __device__ __forceinline__ A block_all_reduce(A v, Op op) {
  using Reduce = cub::BlockReduce<A, kRowThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  __shared__ A result;
  const A r = Reduce(tmp).Reduce(v, op);
  if (threadIdx.x == 0) result = r;
  __syncthreads();
  const A out = result;
  __syncthreads();  // tmp and result are reused by the next call
  return out;
}

struct SumOp {
  template <typename A> __device__ __forceinline__ A operator()(const A& a, const A& b) const { return a + b; }
};

// The masked score: -inf where the bool mask is false, + the additive mask (in T, as the CPU
// adds it into its T buffer), -inf above the diagonal when causal (key j > query l).
template <typename T>
__device__ __forceinline__ T masked_score(T z, const MaskArg& mask, int64_t moff, int64_t j, int64_t l, bool causal) {
  using A = acc_t<T>;
  if (mask.kind == kBoolMask) {
    if (!static_cast<const bool*>(mask.data)[moff + j * mask.g.s_col]) z = convert<T>(-INFINITY);
  } else if (mask.kind == kAddMask) {
    z = convert<T>(convert<A>(z) + convert<A>(static_cast<const T*>(mask.data)[moff + j * mask.g.s_col]));
  }
  if (causal && j > l) z = convert<T>(-INFINITY);
  return z;
}

// common::dropout_keep(seed, offset, i, p), with the word picked by selects instead of an
// indexed array (which would put the four words in local memory).
__device__ __forceinline__ bool keep_at(const DropoutArg& drop, uint64_t i) {
  const common::Philox4 w = common::philox4x32(drop.offset + i / 4, drop.seed);
  const unsigned word = static_cast<unsigned>(i % 4);
  const uint32_t x = word == 0 ? w.w[0] : word == 1 ? w.w[1] : word == 2 ? w.w[2] : w.w[3];
  return static_cast<double>(common::u32_to_unit_float(x)) >= drop.p;
}

template <typename T>
__device__ __forceinline__ acc_t<T> dropped(acc_t<T> p, const DropoutArg& drop, uint64_t i) {
  if (!drop.on) return p;
  return keep_at(drop, i) ? p * static_cast<acc_t<T>>(drop.ks) : acc_t<T>(0);
}

// Forward, one block per row of z [rows, S]: masks the scores in place, then overwrites them
// with W (P after dropout) and writes lse[row]; a row with no allowed key gets W = 0 and
// lse = +inf.
template <typename T>
__global__ void __launch_bounds__(kRowThreads, 4)
    softmax_kernel(T* z, acc_t<T>* lse, int64_t rows, int64_t L, int64_t S, MaskArg mask, bool causal, DropoutArg drop) {
  using A = acc_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T* zr = z + r * S;
    const int64_t l = r % L;
    const int64_t moff = mask.kind != kNoMask ? row_offset(mask.g, r, L) : 0;
    A mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < S; j += kRowThreads) {
      const T v = masked_score(zr[j], mask, moff, j, l, causal);
      zr[j] = v;
      const A a = convert<A>(v);
      mx = mx < a ? a : mx;
    }
    mx = block_all_reduce(mx, MaxOp{});
    if (mx == A(-INFINITY)) {  // nothing to attend to
      for (int64_t j = threadIdx.x; j < S; j += kRowThreads) zr[j] = convert<T>(0.0f);
      if (threadIdx.x == 0) lse[r] = A(INFINITY);
      continue;
    }
    A sum = 0;
    // Summed as the CPU does: each exp(z - max) rounded to T first.
    for (int64_t j = threadIdx.x; j < S; j += kRowThreads) sum += convert<A>(convert<T>(exp_acc(convert<A>(zr[j]) - mx)));
    sum = block_all_reduce(sum, SumOp{});
    const A inv = A(1) / sum;
    for (int64_t j = threadIdx.x; j < S; j += kRowThreads) {
      // In T as the CPU: exp(z - max) rounded, then times 1/sum.
      const A e = convert<A>(convert<T>(exp_acc(convert<A>(zr[j]) - mx)));
      const A p = convert<A>(convert<T>(e * inv));
      zr[j] = convert<T>(dropped<T>(p, drop, static_cast<uint64_t>(r * S + j)));
    }
    if (threadIdx.x == 0) lse[r] = mx + log_acc(sum);
  }
}

// Backward, one block per row of z [rows, S]: the scores become P = exp(masked Z - lse) (0 on
// rows with lse = +inf), and w (when not null) gets W = P after dropout.
template <typename T>
__global__ void __launch_bounds__(kRowThreads, 4) probs_kernel(T* z, T* w, const acc_t<T>* lse, int64_t rows, int64_t L,
                                                            int64_t S, MaskArg mask, bool causal, DropoutArg drop) {
  using A = acc_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    T* zr = z + r * S;
    const int64_t l = r % L;
    const int64_t moff = mask.kind != kNoMask ? row_offset(mask.g, r, L) : 0;
    const A m = lse[r];
    const bool empty = m == A(INFINITY);
    for (int64_t j = threadIdx.x; j < S; j += kRowThreads) {
      const A p = empty ? A(0) : convert<A>(convert<T>(exp_acc(convert<A>(masked_score(zr[j], mask, moff, j, l, causal)) - m)));
      zr[j] = convert<T>(p);
      if (w) w[r * S + j] = convert<T>(dropped<T>(p, drop, static_cast<uint64_t>(r * S + j)));
    }
  }
}

// Backward, one block per row of dw [rows, S] (dO v^T on entry, dZ on exit):
//   D = rowsum(dO * O) + rowsum(grad_weights * W);
//   dZ = P * (dropout'(dW + grad_weights) - D).
template <typename T>
__global__ void __launch_bounds__(kRowThreads, 4)
    dscores_kernel(T* dw, const T* P, int64_t rows, int64_t L, int64_t S, int64_t Ev, const T* grad_out,
                   RowGeom go, const T* out, const T* gw, RowGeom gwg, DropoutArg drop) {
  using A = acc_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* pr = P + r * S;
    T* dr = dw + r * S;
    const T* o = out + r * Ev;
    const T* d = grad_out + row_offset(go, r, L);
    const T* g = gw ? gw + row_offset(gwg, r, L) : nullptr;
    A D = 0;
    for (int64_t e = threadIdx.x; e < Ev; e += kRowThreads) D += convert<A>(d[e * go.s_col]) * convert<A>(o[e]);
    if (g)
      for (int64_t j = threadIdx.x; j < S; j += kRowThreads) {
        const A wj = convert<A>(convert<T>(dropped<T>(convert<A>(pr[j]), drop, static_cast<uint64_t>(r * S + j))));
        D += convert<A>(g[j * gwg.s_col]) * wj;
      }
    D = block_all_reduce(D, SumOp{});
    for (int64_t j = threadIdx.x; j < S; j += kRowThreads) {
      A dj = convert<A>(dr[j]);
      if (g) dj = convert<A>(convert<T>(dj + convert<A>(g[j * gwg.s_col])));
      dj = convert<A>(convert<T>(dropped<T>(dj, drop, static_cast<uint64_t>(r * S + j))));
      dr[j] = convert<T>(convert<A>(pr[j]) * (dj - D));
    }
  }
}

// The [B..., rows, cols] contiguous view of data, batch sizes from `like`.
TensorView dense(void* data, DType dt, const TensorView& like, int nb, int64_t rows, int64_t cols) {
  TensorView v;
  v.data = data;
  v.dtype = dt;
  v.ndim = nb + 2;
  for (int d = 0; d < nb; ++d) v.sizes[d] = like.sizes[d];
  v.sizes[nb] = rows;
  v.sizes[nb + 1] = cols;
  int64_t s = 1;
  for (int d = nb + 1; d >= 0; --d) {
    v.strides[d] = s;
    s *= v.sizes[d];
  }
  v.numel = s;
  return v;
}

// The view with its last two dims swapped (a transpose, never a copy).
TensorView transposed(TensorView v) {
  const int n = v.ndim;
  std::swap(v.sizes[n - 2], v.sizes[n - 1]);
  std::swap(v.strides[n - 2], v.strides[n - 1]);
  return v;
}

void zero(const TensorView& v, int device) {
  if (v.numel > 0)
    FOCUS_CUDA_CHECK(cudaMemsetAsync(v.data, 0, static_cast<size_t>(v.numel) * dtype_size(v.dtype), stream_of(device)));
}

// out (contiguous) = alpha a @ b; an empty inner dim gives zeros without a GEMM.
void gemm(Backend& be, int device, const TensorView& out, const TensorView& a, const TensorView& b, double alpha) {
  if (out.numel == 0) return;
  if (a.sizes[a.ndim - 1] == 0) {
    zero(out, device);
    return;
  }
  be.matmul(out, a, b, alpha, 0.0);
}

MaskArg mask_arg(const TensorView& mask, int nb) {
  MaskArg m;
  if (!mask.data) return m;
  m.data = mask.data;
  m.kind = mask.dtype == kBool ? kBoolMask : kAddMask;
  m.g = row_geom(mask, nb);
  return m;
}

template <typename T> DropoutArg dropout_arg(double p, RandomState rng) {
  DropoutArg d;
  d.on = p > 0;
  d.p = p;
  // The CPU's ks is 1 / (1 - p) rounded to T (0 when p == 1).
  d.ks = static_cast<double>(static_cast<acc_t<T>>(p < 1 ? 1.0 / (1.0 - p) : 0.0));
  d.seed = rng.seed;
  d.offset = rng.offset;
  return d;
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(rows, int64_t{1} << 20)); }

struct Dims {
  int nb = 0;
  int64_t nbatch = 1, L = 0, S = 0, E = 0, Ev = 0;
};

Dims dims_of(const TensorView& q, const TensorView& k, const TensorView& v) {
  Dims d;
  d.nb = q.ndim - 2;
  for (int i = 0; i < d.nb; ++i) d.nbatch *= q.sizes[i];
  d.L = q.sizes[d.nb];
  d.E = q.sizes[d.nb + 1];
  d.S = k.sizes[d.nb];
  d.Ev = v.sizes[d.nb + 1];
  return d;
}

}  // namespace

void CudaBackend::attention_forward(const TensorView& out, const TensorView& lse, const TensorView& weights,
                                    const TensorView& q, const TensorView& k, const TensorView& v,
                                    const TensorView& mask, bool is_causal, double scale, double dropout_p,
                                    RandomState rng) {
  const Dims dm = dims_of(q, k, v);
  const int64_t rows = dm.nbatch * dm.L;
  if (rows == 0) return;
  const DType dt = q.dtype;
  dispatch_float(dt, kFwdOp, [&](auto tag) {
    using T = decltype(tag);
    const int dev = index_;
    // Z [B, L, S]: straight into the returned weights when they are wanted.
    DeviceBuffer zbuf(dev, weights.data ? 0 : static_cast<size_t>(rows * dm.S) * sizeof(T));
    T* z = weights.data ? weights.ptr<T>() : static_cast<T*>(zbuf.get());
    const TensorView zv = dense(z, dt, q, dm.nb, dm.L, dm.S);
    // Z = scale * q k^T : [B, L, E] x [B, E, S]
    gemm(*this, dev, zv, q, transposed(k), scale);
    softmax_kernel<T><<<row_blocks(rows), kRowThreads, 0, stream_of(dev)>>>(
        z, lse.ptr<acc_t<T>>(), rows, dm.L, dm.S, mask_arg(mask, dm.nb), is_causal, dropout_arg<T>(dropout_p, rng));
    FOCUS_CUDA_LAUNCH_CHECK(kFwdOp);
    // out = W v : [B, L, S] x [B, S, Ev]
    gemm(*this, dev, out, zv, v, 1.0);
  });
}

void CudaBackend::attention_backward(const TensorView& grad_q, const TensorView& grad_k, const TensorView& grad_v,
                                     const TensorView& grad_mask, const TensorView& grad_out,
                                     const TensorView& grad_weights, const TensorView& q, const TensorView& k,
                                     const TensorView& v, const TensorView& mask, bool is_causal,
                                     const TensorView& out, const TensorView& lse, double scale, double dropout_p,
                                     RandomState rng) {
  const Dims dm = dims_of(q, k, v);
  const int64_t rows = dm.nbatch * dm.L;
  const bool want_scores = grad_q.data || grad_k.data || grad_mask.data;
  if (rows == 0 || (!want_scores && !grad_v.data)) return;
  const DType dt = q.dtype;
  dispatch_float(dt, kBwdOp, [&](auto tag) {
    using T = decltype(tag);
    const int dev = index_;
    const size_t nscores = static_cast<size_t>(rows * dm.S) * sizeof(T);
    const DropoutArg drop = dropout_arg<T>(dropout_p, rng);
    const MaskArg margs = mask_arg(mask, dm.nb);
    // P [B, L, S]: the forward's probabilities, recomputed from Z = scale q k^T and lse.
    DeviceBuffer pbuf(dev, nscores);
    T* P = static_cast<T*>(pbuf.get());
    const TensorView pv = dense(P, dt, q, dm.nb, dm.L, dm.S);
    gemm(*this, dev, pv, q, transposed(k), scale);
    // W for grad_v: P itself, or P after dropout in its own buffer (dscores_kernel
    // recomputes the dropout itself).
    const bool own_w = drop.on && grad_v.data;
    DeviceBuffer wbuf(dev, own_w ? nscores : 0);
    T* W = own_w ? static_cast<T*>(wbuf.get()) : P;
    if (dm.S > 0) {
      probs_kernel<T><<<row_blocks(rows), kRowThreads, 0, stream_of(dev)>>>(
          P, own_w ? W : nullptr, lse.ptr<acc_t<T>>(), rows, dm.L, dm.S, margs, is_causal, drop);
      FOCUS_CUDA_LAUNCH_CHECK(kBwdOp);
    }
    const TensorView wv = dense(W, dt, q, dm.nb, dm.L, dm.S);
    // grad_v = W^T dO : [B, S, L] x [B, L, Ev]
    if (grad_v.data) gemm(*this, dev, grad_v, transposed(wv), grad_out, 1.0);
    if (!want_scores) return;
    // dW = dO v^T : [B, L, Ev] x [B, Ev, S], into grad_mask when it is wanted (dZ is its value).
    DeviceBuffer dbuf(dev, grad_mask.data ? 0 : nscores);
    T* dZ = grad_mask.data ? grad_mask.ptr<T>() : static_cast<T*>(dbuf.get());
    const TensorView dv = dense(dZ, dt, q, dm.nb, dm.L, dm.S);
    gemm(*this, dev, dv, grad_out, transposed(v), 1.0);
    if (dm.S > 0) {
      const T* gw = grad_weights.data ? grad_weights.ptr<T>() : nullptr;
      dscores_kernel<T><<<row_blocks(rows), kRowThreads, 0, stream_of(dev)>>>(
          dZ, P, rows, dm.L, dm.S, dm.Ev, grad_out.ptr<T>(), row_geom(grad_out, dm.nb), out.ptr<T>(),
          gw, gw ? row_geom(grad_weights, dm.nb) : RowGeom{}, drop);
      FOCUS_CUDA_LAUNCH_CHECK(kBwdOp);
    }
    // grad_q = scale dZ k : [B, L, S] x [B, S, E];  grad_k = scale dZ^T q : [B, S, L] x [B, L, E]
    if (grad_q.data) gemm(*this, dev, grad_q, dv, k, scale);
    if (grad_k.data) gemm(*this, dev, grad_k, transposed(dv), q, scale);
  });
}

}  // namespace focus::cuda_detail
