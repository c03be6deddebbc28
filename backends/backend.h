#pragma once
/// The kernel table one device implements. Kernels see raw strided views (pointer,
/// sizes, strides, dtype), never Tensor; the raw ops in core/ validate, allocate and
/// build the views before calling them, so a kernel may assume its arguments are valid:
/// shapes already broadcast (stride 0 on broadcast dims), dtypes already matched.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/device.h"
#include "core/dtype.h"
#include "core/random_state.h"
#include "core/scalar.h"

namespace focus {

/// Most dims a tensor may have.
inline constexpr int kMaxDims = 16;

/// A strided view: element (i0, i1, ...) lives at data + sum(ik * strides[k]) elements.
struct TensorView {
  void* data = nullptr;
  DType dtype = kFloat32;
  int ndim = 0;
  int64_t numel = 1;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  bool is_contiguous() const {
    if (numel == 0) return true;
    int64_t expected = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (sizes[d] != 1 && strides[d] != expected) return false;
      expected *= sizes[d];
    }
    return true;
  }
  template <typename T> T* ptr() const { return static_cast<T*>(data); }
};

/// Elementwise functions of one tensor. Params: alpha/beta as documented per op.
enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Log1p, Sqrt, Rsqrt, Abs, Sin, Cos, Tanh, Sigmoid, Relu,
  Gelu,        // exact (erf) form
  GeluTanh,    // tanh approximation
  Silu,
  Softplus,    // alpha = beta, beta = threshold
  Clamp,       // alpha = min (or -inf), beta = max (or +inf)
  PowScalar,   // x ** alpha
  RPowScalar,  // alpha ** x
  AddScalar,   // x + alpha
  MulScalar,   // x * alpha
  LogicalNot,  // bool out
  Sign,
  Reciprocal,
};

/// Gradients of unary ops: out = grad * f'(x); `result` is f(x) where cheaper (exp,
/// tanh, sigmoid, sqrt, rsqrt), else unused.
enum class UnaryBackwardOp : uint8_t {
  Gelu, GeluTanh, Silu, Softplus, Sigmoid, Tanh, Relu,
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  Eq, Ne, Lt, Le, Gt, Ge,               // bool out
  LogicalAnd, LogicalOr, LogicalXor,    // bool out, inputs any dtype
};

struct UnaryParams {
  double alpha = 0;
  double beta = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// The one device this backend object serves (backends are registered per device).
  virtual Device device() const = 0;
  DeviceType type() const { return device().type; }
  /// Waits until every kernel queued on this device has finished and reports an error
  /// that a kernel recorded on the device (check_indices) as focus::Error. No-op on CPU.
  virtual void synchronize() {}

  // ---- CUDA graphs (core/cuda.h's focus::cuda::Graph) -----------------------------------------
  // A graph is an opaque handle owned by the caller (cuda::Graph) from graph_capture_begin
  // until graph_destroy. Devices without graphs (the CPU) throw from begin and replay.
  /// Starts capturing every kernel queued on this device's stream into a new graph and
  /// routes the device's allocations to a memory pool private to it; returns its handle.
  /// Synchronises first (reporting pending checks), so a capture starts from an idle device.
  virtual void* graph_capture_begin() { unsupported("cuda.Graph.capture_begin"); }
  /// Ends the capture begun with graph and instantiates it; throws (leaving graph not
  /// capturing, to be destroyed) when the capture failed or was abandoned.
  virtual void graph_capture_end(void* graph) { unsupported("cuda.Graph.capture_end"); }
  /// Ends the capture of graph, if it is still under way, and discards what it recorded.
  virtual void graph_capture_abort(void* graph) noexcept {}
  /// Queues one run of an instantiated graph on the device's stream.
  virtual void graph_replay(void* graph) { unsupported("cuda.Graph.replay"); }
  /// Aborts a capture under way, frees the graph and gives its memory pool back to the
  /// device's cache (blocks still held by tensors go back when those tensors are freed).
  virtual void graph_destroy(void* graph) noexcept {}
  /// Whether a graph capture is under way on this device.
  virtual bool is_capturing() const { return false; }
  /// When a capture is under way on this device: abandons it (the stream is usable again,
  /// the graph stays empty) and throws "[op] cannot run during CUDA graph capture: <why>".
  /// A no-op otherwise. op and why are plain text.
  virtual void fail_if_capturing(const char* op, const char* why) {}

  // ---- memory ---------------------------------------------------------------------------
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  /// Contiguous bytes between this device and the host.
  virtual void copy_to_host(void* host_dst, const void* src, size_t nbytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, size_t nbytes) = 0;
  /// Page-locked host memory that this device copies from without waiting for the copy
  /// (Tensor::pin_memory). The CPU backend has none.
  virtual void* allocate_pinned(size_t nbytes) { unsupported("pin_memory"); }
  virtual void deallocate_pinned(void* ptr, size_t nbytes) {}
  /// Queues a copy from page-locked host memory and returns at once; `keep_alive` (the
  /// source's storage) is held until the copy has finished, so the memory is not reused
  /// before. Default: the blocking copy_from_host.
  virtual void copy_from_host_async(void* dst, const void* pinned_src, size_t nbytes,
                                    std::shared_ptr<const void> keep_alive) {
    copy_from_host(dst, pinned_src, nbytes);
  }
  /// Queues a copy into page-locked host memory and returns at once (the bytes are there
  /// after the device's next synchronisation, as with PyTorch's non_blocking copies to the
  /// CPU); `keep_alive` (the destination's storage) is held until the copy has finished.
  /// Default: the blocking copy_to_host.
  virtual void copy_to_host_async(void* pinned_dst, const void* src, size_t nbytes,
                                  std::shared_ptr<const void> keep_alive) {
    copy_to_host(pinned_dst, src, nbytes);
  }

  // ---- copy, fill, random -----------------------------------------------------------
  /// dst = src elementwise with dtype conversion; same sizes, any strides.
  virtual void copy(const TensorView& dst, const TensorView& src);
  virtual void fill(const TensorView& dst, Scalar value);
  /// Uniform in [lo, hi).
  virtual void uniform(const TensorView& out, double lo, double hi, RandomState rng);
  virtual void normal(const TensorView& out, double mean, double std, RandomState rng);
  /// Integers uniform in [lo, hi).
  virtual void randint(const TensorView& out, int64_t lo, int64_t hi, RandomState rng);

  // ---- elementwise ----------------------------------------------------------------------
  /// out = op(in); out and in same sizes (in may be broadcast), same dtype except
  /// LogicalNot (bool out).
  virtual void unary(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p);
  /// out = grad * f'(in) for the op; all views the same dtype and sizes.
  virtual void unary_backward(UnaryBackwardOp op, const TensorView& out, const TensorView& grad,
                              const TensorView& in, const TensorView& result, UnaryParams p);
  /// out = a op b; a, b broadcast to out's sizes and of one dtype; out bool for comparisons.
  virtual void binary(BinaryOp op, const TensorView& out, const TensorView& a, const TensorView& b);
  /// out = cond ? a : b; cond bool; all broadcast to out's sizes.
  virtual void where(const TensorView& out, const TensorView& cond, const TensorView& a,
                     const TensorView& b);

  // ---- reductions (section owned by the reductions work) ----------------------------------
  /// What reduce() computes over each output element's block of input values.
  enum class ReduceOp : uint8_t {
    Sum,   // float stays float; integer and bool inputs give int64
    Mean,  // floating only; nan over an empty block
    Prod,  // like Sum for dtypes; 1 over an empty block
    Max,   // same dtype out; NaN propagates; block must be non-empty
    Min,
    Norm,  // floating only; (sum |x|^p)^(1/p), with p = 0 (count of nonzeros), 1, 2, +-inf special
  };
  /// out[o] = op over the trailing `nreduce` dims of in, where o indexes in's leading
  /// in.ndim - nreduce dims (out has exactly those sizes, any strides). p: the norm's order.
  virtual void reduce(ReduceOp op, const TensorView& out, const TensorView& in, int nreduce, double p) {
    unsupported("reduce");
  }
  /// Max (is_max) or min along in's last dim: values[o] (same dtype; skipped when its data
  /// is null) and indices[o] (int64, the first occurrence; the first NaN wins). out views
  /// have in's leading dims; the last dim of in is non-empty.
  virtual void arg_reduce(bool is_max, const TensorView& values, const TensorView& indices, const TensorView& in) {
    unsupported("arg_reduce");
  }

  // ---- linear algebra (section owned by the linalg work) ------------------------------------
  /// out[..., M, N] = alpha * a[..., M, K] @ b[..., K, N] + beta * out. All three views have
  /// the same ndim >= 2; the batch dims of a and b are broadcast to out's (stride 0). Each
  /// matrix of a and b may have any strides (row- or column-major ones go to BLAS as they
  /// are). out's matrices are row-major (last stride 1, row stride >= N). A batch dim of out
  /// with stride 0 accumulates the products of that dim into one matrix (the caller then
  /// passes beta = 1 onto zeros). beta == 0 ignores out's old values (NaN included).
  virtual void matmul(const TensorView& out, const TensorView& a, const TensorView& b, double alpha,
                      double beta) { unsupported("matmul"); }
  /// nn.Linear's product: out[..., M, N] = x[..., M, K] @ weight[N, K]^T + bias[N] (bias.data
  /// null = no bias). out and x have one ndim >= 2 and the same leading dims (the raw op
  /// folds them into M when x's strides allow, so x [M, K] is the usual case); out is
  /// contiguous; x, weight (row- or column-major or any strides) and bias (any stride) share
  /// out's dtype. Default (every device, PyTorch's addmm): out = bias broadcast over the
  /// rows, then matmul(out, x, weight^T, 1, 1) (beta 0 without bias), so the CPU keeps its
  /// numbers. CUDA fuses the bias into one cuBLASLt GEMM epilogue where it can.
  virtual void linear(const TensorView& out, const TensorView& x, const TensorView& weight, const TensorView& bias);
  /// Linear + GELU (focus::linear_gelu): pre = x @ weight^T + bias exactly as linear() takes
  /// its views, and out = gelu(pre) (the tanh form when tanh_approx, else the exact erf
  /// form). out and pre: contiguous, of linear's out sizes and dtype; the backward needs pre.
  /// Default (every device): linear(pre, ...) then unary(Gelu / GeluTanh, out, pre), so the
  /// CPU gives the composition's numbers bit for bit. CUDA: one cuBLASLt GEMM with the
  /// GELU_AUX_BIAS epilogue for the tanh form (pre as its auxiliary output).
  virtual void linear_gelu(const TensorView& out, const TensorView& pre, const TensorView& x,
                           const TensorView& weight, const TensorView& bias, bool tanh_approx);
  /// Linear's gradients on rows (LinearGeluBackward0 after the elementwise GELU gradient):
  /// grad [R, N] (contiguous), x [R, K], weight [N, K] (any strides: row- or column-major go
  /// to BLAS as they are), R, N, K >= 1;
  ///   grad_x = grad @ weight       [R, K]  (data null = not wanted);
  ///   grad_weight = grad^T @ x     [N, K]  (data null = not wanted);
  ///   grad_bias = grad summed over rows [N]  (data null = not wanted);
  /// outputs contiguous and overwritten. Default: the products LinearBackward0 takes
  /// (grad_bias as the gemv ones[R] @ grad), so the CPU keeps the composition's numbers.
  /// CUDA computes grad_bias inside the grad_weight GEMM (cuBLASLt BGRADB epilogue) where
  /// it can.
  virtual void linear_backward(const TensorView& grad_x, const TensorView& grad_weight, const TensorView& grad_bias,
                               const TensorView& grad, const TensorView& x, const TensorView& weight);

  // ---- int8 dynamic quantization (the arithmetic: backends/common/int8_math.h) ---------------
  // As torch.ao.quantization.quantize_dynamic, these run on the CPU only.

  /// weight [N, K] float32 -> q [N, K] int8 and scale [N] float32, per output channel
  /// (int8_weight_scale, int8_quantize_weight). All contiguous.
  virtual void quantize_int8_weight(const TensorView& q, const TensorView& scale, const TensorView& weight) {
    unsupported("quantize_int8_weight");
  }
  /// Lays q [N, K] int8 (contiguous) out for linear_int8: packed, int8 of int8_padded_n(N) *
  /// int8_padded_k(K) elements, and colsum [int8_padded_n(N)] int32 (sum over k of each row
  /// of q; the padding is zeros). The layout is the device's own: only its linear_int8 reads it.
  virtual void pack_int8_weight(const TensorView& packed, const TensorView& colsum, const TensorView& q) {
    unsupported("pack_int8_weight");
  }
  /// out [M, Nc] float32 (contiguous) = x [M, K] float32 (contiguous) quantized per row,
  /// times the packed weight's rows n_begin .. n_begin + Nc - 1 (n_begin a multiple of
  /// kInt8BlockN), dequantized with scale [int8_padded_n(N)] float32 (padded like colsum) and
  /// plus bias [N] float32 (data null = none): int8_output of every element. A row of x holding NaN or infinity gives a row of
  /// NaN. M, Nc, K >= 1; K <= kMaxInt8K.
  virtual void linear_int8(const TensorView& out, const TensorView& x, const TensorView& packed,
                           const TensorView& colsum, const TensorView& scale, const TensorView& bias,
                           int64_t n_begin) {
    unsupported("linear_int8");
  }

  // ---- shape and indexing (section owned by the indexing work) ------------------------------
  // cat, stack, split, chunk and repeat need no kernels of their own: they copy through
  // narrow()/expand() views with copy(). Index views are int64 or int32; the raw ops check
  // every index with scan_indices() first, so the other kernels may assume them in range.

  /// Result of scan_indices: flat row-major position and value of the first index outside
  /// [lo, hi) (first_bad = -1 when none), and the smallest and largest index (min > max
  /// when the view is empty).
  struct IndexScan {
    int64_t first_bad = -1;
    int64_t bad_value = 0;
    int64_t min = 0;
    int64_t max = -1;
  };
  virtual IndexScan scan_indices(const TensorView& index, int64_t lo, int64_t hi) { unsupported("scan_indices"); }
  /// Checks that every index lies in [lo, hi) or equals skip (cross-entropy's ignore_index;
  /// pass lo when nothing is to be skipped) and reports the first that does not as a
  /// focus::Error
  ///   "[op] <what> <value> is out of bounds for [lo, hi) (at position <flat index>)".
  /// The CPU throws at once. A device that cannot throw from its kernels (CUDA) records the
  /// failure on the device and throws at the next synchronisation (item(), a copy to the
  /// host, synchronize()), so the check costs no host round trip. op and what must be
  /// string literals (they are kept until that synchronisation).
  virtual void check_indices(const TensorView& index, int64_t lo, int64_t hi, int64_t skip, const char* op,
                             const char* what);
  /// Checks that every element of x (floating) lies in [lo, hi] (NaN does not) and reports
  /// the first that does not as a focus::Error
  ///   "[op] <what>, got <value> (at position <flat index>)".
  /// Errors are reported as by check_indices (CPU: at once; CUDA: at the next
  /// synchronisation); op and what must be string literals.
  virtual void check_range(const TensorView& x, double lo, double hi, const char* op, const char* what);
  /// out = x.index_select(dim, index): index [n]; out is x's sizes with sizes[dim] = n.
  virtual void index_select(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
    unsupported("index_select");
  }
  /// out.index_add_(dim, index, src): out.select(dim, index[j]) += src.select(dim, j),
  /// skipping entries whose index equals skip (skip < 0: none). index [n]; src is out's
  /// sizes with sizes[dim] = n; repeated indices accumulate.
  virtual void index_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src,
                         int64_t skip) {
    unsupported("index_add");
  }
  /// out = gather(x, dim, index): out[..., i, ...] = x[..., index[..., i, ...], ...] with
  /// the index along dim; out has index's sizes; index.sizes[d] <= x.sizes[d] for d != dim.
  virtual void gather(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
    unsupported("gather");
  }
  /// out.scatter_add_(dim, index, src): out[..., index[..., i, ...], ...] += src[..., i, ...]
  /// over index's sizes (src and out at least as large as index elsewhere).
  virtual void scatter_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src) {
    unsupported("scatter_add");
  }
  /// out = tril(x, k) (lower) or triu(x, k) on the last two dims; same sizes and dtype.
  virtual void trilu(const TensorView& out, const TensorView& x, int64_t k, bool lower) { unsupported("tril"); }
  /// out [N, C] int64 contiguous = one-hot rows of index [N] (contiguous, values in [0, C)).
  virtual void one_hot(const TensorView& out, const TensorView& index) { unsupported("one_hot"); }

  // ---- fused nn primitives (section owned by the nn-functional work) ------------------------
  // softmax, log_softmax, layer_norm
  /// out = softmax(in) (log_softmax when log) along dim; in and out contiguous, same sizes,
  /// floating dtype.
  virtual void softmax(const TensorView& out, const TensorView& in, int dim, bool log) {
    unsupported(log ? "log_softmax" : "softmax");
  }
  /// grad_in from grad_out and the forward's output y (all contiguous, same sizes):
  /// softmax: y * (g - sum(g * y)); log_softmax: g - exp(y) * sum(g), sums along dim.
  virtual void softmax_backward(const TensorView& grad_in, const TensorView& grad_out, const TensorView& out,
                                int dim, bool log) {
    unsupported(log ? "log_softmax_backward" : "softmax_backward");
  }
  /// Rows of in [R, N] (contiguous) normalized: out = (x - mean) * rstd * weight + bias;
  /// mean and rstd [R] are saved for the backward. weight/bias [N] may be absent (data null).
  virtual void layer_norm(const TensorView& out, const TensorView& mean, const TensorView& rstd,
                          const TensorView& in, const TensorView& weight, const TensorView& bias, double eps) {
    unsupported("layer_norm");
  }
  /// dx [R, N], dweight and dbias [N] (either may be absent: data null) from dout [R, N], the
  /// forward's input and its saved mean and rstd; all contiguous. dweight/dbias are overwritten.
  virtual void layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                                   const TensorView& dout, const TensorView& in, const TensorView& mean,
                                   const TensorView& rstd, const TensorView& weight) {
    unsupported("layer_norm_backward");
  }
  /// A residual add fused with layer_norm over the rows of [R, N] (all contiguous, one
  /// dtype): sum = x + residual (rounded to the dtype, as the plain add), then out, mean and
  /// rstd of sum exactly as layer_norm(sum) computes them. One pass: the kernel reads x and
  /// residual and writes sum and out.
  virtual void add_layer_norm(const TensorView& sum, const TensorView& out, const TensorView& mean,
                              const TensorView& rstd, const TensorView& x, const TensorView& residual,
                              const TensorView& weight, const TensorView& bias, double eps) {
    unsupported("add_layer_norm");
  }
  /// layer_norm_backward of the norm of sum (in), the gradient that reached sum directly
  /// added: dx = the norm's input gradient (rounded to the dtype) + dsum, where dsum [R, N]
  /// may be absent (data null). dweight/dbias as layer_norm_backward.
  virtual void add_layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                                       const TensorView& dout, const TensorView& dsum, const TensorView& in,
                                       const TensorView& mean, const TensorView& rstd, const TensorView& weight) {
    unsupported("add_layer_norm_backward");
  }

  // losses, dropout, attention
  /// How a loss kernel reduces its per-element losses.
  enum class LossReduction : uint8_t { None, Mean, Sum };
  /// Cross entropy from logits [N, C, D] (classes on dim 1) and int64 targets [N, D], with
  /// optional class weights w [C] (contiguous, logits' dtype; data null = all ones):
  /// loss[n, d] = (1 - eps) w[t] (lse - x[t]) + eps / C * sum_c w[c] (lse - x[c]), 0 where
  /// t == ignore_index. Writes lse [N, D] (contiguous) and out: [N, D] for None, else 0-d
  /// (Mean divides by the sum of w[t] over non-ignored targets). Targets are in [0, C) or
  /// equal ignore_index: the raw op checked them (check_indices), the kernel does not.
  virtual void cross_entropy_forward(const TensorView& out, const TensorView& lse, const TensorView& logits,
                                     const TensorView& target, const TensorView& weight, int64_t ignore_index,
                                     double label_smoothing, LossReduction reduction) {
    unsupported("cross_entropy");
  }
  /// grad_logits [N, C, D] (contiguous) = d loss / d logits * g, 0 on ignored rows; grad
  /// [N, D] for None, else 0-d; weight as in the forward.
  virtual void cross_entropy_backward(const TensorView& grad_logits, const TensorView& grad,
                                      const TensorView& logits, const TensorView& lse, const TensorView& target,
                                      const TensorView& weight, int64_t ignore_index, double label_smoothing,
                                      LossReduction reduction) {
    unsupported("cross_entropy_backward");
  }
  /// loss[n, d] = -w[t] x[n, t, d] over log-probabilities [N, C, D], int64 targets [N, D];
  /// weight and targets as in cross_entropy_forward (Mean divides by the sum of w[t]).
  virtual void nll_loss_forward(const TensorView& out, const TensorView& log_probs, const TensorView& target,
                                const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
    unsupported("nll_loss");
  }
  /// grad_input [N, C, D] (contiguous) = -w[t] g at the target class, 0 elsewhere.
  virtual void nll_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& target,
                                 const TensorView& weight, int64_t ignore_index, LossReduction reduction) {
    unsupported("nll_loss_backward");
  }
  /// (input - target)^2; input and target broadcast to one shape; out that shape or 0-d.
  virtual void mse_loss_forward(const TensorView& out, const TensorView& input, const TensorView& target,
                                LossReduction reduction) { unsupported("mse_loss"); }
  /// grad_input = 2 (input - target) g (/ numel for Mean); all views of grad_input's sizes.
  virtual void mse_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& input,
                                 const TensorView& target, LossReduction reduction) {
    unsupported("mse_loss_backward");
  }
  /// Draws keep = (uniform >= p) into mask (bool, contiguous; element i from Philox counter
  /// rng.offset + i / 4) and writes out = in * keep / (1 - p) (0 scale when p == 1).
  virtual void dropout_forward(const TensorView& out, const TensorView& mask, const TensorView& in, double p,
                               RandomState rng) { unsupported("dropout"); }
  /// grad_in = grad * mask / (1 - p).
  virtual void dropout_backward(const TensorView& grad_in, const TensorView& grad, const TensorView& mask,
                                double p) { unsupported("dropout_backward"); }
  /// Fused scaled dot-product attention, FlashAttention-2 style: the forward keeps only the
  /// row logsumexp for the backward, which recomputes the probabilities.
  /// Views are broadcast to the batch dims B = B1..Bn (n >= 0; stride 0 allowed on every
  /// input view, any strides): q [B, L, E], k [B, S, E], v [B, S, Ev], all of one floating
  /// dtype T; mask (data null = none) bool (true = attend) or T (added to the scores),
  /// broadcast to [B, L, S]. With Z = scale * q k^T, then -inf where the bool mask is false
  /// (or + the float mask), then -inf where key j > query l when is_causal (top-left
  /// aligned, as torch.ones(L, S).tril(); is_causal never comes with a mask):
  ///   lse = logsumexp_j Z [B, L];  P = softmax_j Z = exp(Z - lse);
  ///   W = P * keep / (1 - dropout_p) (W = P when dropout_p == 0; scale 0 when p == 1);
  ///   out = W v [B, L, Ev].
  /// keep[i] = (u_i >= dropout_p) for the flat index i in [B, L, S], u_i the float32 uniform
  /// of dropout_forward (Philox-4x32-10 key rng.seed, counter rng.offset + i / 4, word
  /// i % 4, top 24 bits; cpu/philox.h keep_mask), so the backward regenerates it from rng.
  /// A row with no allowed key (every Z -inf, or S == 0) has lse = +inf, P = W = 0 and
  /// out = 0 (and gets 0 gradients).
  /// Writes out [B, L, Ev] (contiguous, T) and lse [B, L] (contiguous, of T's accumulation
  /// dtype: float32 for float16, bfloat16 and float32 inputs, float64 for float64) and, only when weights.data is set (need_weights),
  /// weights [B, L, S] (contiguous, T) = W; [B, L, S] is never written otherwise.
  virtual void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& weights,
                                 const TensorView& q, const TensorView& k, const TensorView& v,
                                 const TensorView& mask, bool is_causal, double scale, double dropout_p,
                                 RandomState rng) { unsupported("scaled_dot_product_attention"); }
  /// Gradients of attention_forward, at the broadcast batch shape B. Inputs: q, k, v, mask,
  /// is_causal, scale, dropout_p and rng exactly as given to the forward; out [B, L, Ev] and
  /// lse [B, L] as the forward wrote them (contiguous); grad_out [B, L, Ev] (T, any
  /// strides, stride 0 allowed); grad_weights (data null = none): the gradient flowing into
  /// the returned weights W, [B, L, S] (T, any strides, stride 0 allowed).
  /// Outputs (contiguous, T; data null = not wanted): grad_q [B, L, E], grad_k [B, S, E],
  /// grad_v [B, S, Ev], grad_mask [B, L, S] (the gradient of the masked scores Z, i.e. of an
  /// additive float mask; summing to the mask's shape is the caller's job).
  /// Recomputes P = exp(Z - lse) (0 where lse = +inf) and W, then
  ///   grad_v = W^T grad_out;  dW = grad_out v^T + grad_weights;
  ///   dZ = P * (dW * keep / (1 - dropout_p) - D),  D = rowsum(grad_out * out) + rowsum(grad_weights * W);
  ///   grad_mask = dZ;  grad_q = scale * dZ k;  grad_k = scale * dZ^T q.
  virtual void attention_backward(const TensorView& grad_q, const TensorView& grad_k, const TensorView& grad_v,
                                  const TensorView& grad_mask, const TensorView& grad_out,
                                  const TensorView& grad_weights, const TensorView& q, const TensorView& k,
                                  const TensorView& v, const TensorView& mask, bool is_causal,
                                  const TensorView& out, const TensorView& lse, double scale, double dropout_p,
                                  RandomState rng) { unsupported("scaled_dot_product_attention_backward"); }

  /// Whether flash_attention_forward / flash_attention_backward take a problem of this
  /// dtype and head dims on this device (need_weights is never asked of them). Default: no.
  virtual bool flash_attention_supports(DType dtype, int64_t E, int64_t Ev) const { return false; }
  /// FlashAttention-2 (backends/common/flash.h): attention_forward's contract without the
  /// weights, tiled over query rows x key columns with the online softmax, so no [B, L, S]
  /// buffer exists at any point. lse is of the accumulation dtype (float32 for float16,
  /// bfloat16 and float32 inputs, float64 for float64), as for attention_forward.
  virtual void flash_attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                                       const TensorView& k, const TensorView& v, const TensorView& mask,
                                       bool is_causal, double scale, double dropout_p, RandomState rng) {
    unsupported("scaled_dot_product_attention (flash)");
  }
  /// attention_backward's contract without grad_weights, recomputing the probabilities tile
  /// by tile from lse; grad_mask (data null = not wanted) is written tile by tile.
  virtual void flash_attention_backward(const TensorView& grad_q, const TensorView& grad_k,
                                        const TensorView& grad_v, const TensorView& grad_mask,
                                        const TensorView& grad_out, const TensorView& q, const TensorView& k,
                                        const TensorView& v, const TensorView& mask, bool is_causal,
                                        const TensorView& out, const TensorView& lse, double scale,
                                        double dropout_p, RandomState rng) {
    unsupported("scaled_dot_product_attention_backward (flash)");
  }

  // ---- optimizers (section owned by the optim work) -----------------------------------------
  /// Scalars of one Adam/AdamW update (optim::Adam, optim::AdamW), precomputed in double
  /// by the caller exactly as PyTorch's single-tensor implementation does.
  struct AdamStepParams {
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0;           // L2 (Adam): grad += weight_decay * param; 0 = none
    double param_scale = 1;            // decoupled decay (AdamW): param *= 1 - lr * wd; 1 = none
    double step_size = 0;              // lr / (1 - beta1^step)
    double bias_correction2_sqrt = 1;  // sqrt(1 - beta2^step)
    bool amsgrad = false;
    bool maximize = false;
    /// adam_step_multi only (PyTorch's capturable=True): each ref's step count lives on the
    /// device (AdamTensorRef::step) and the kernels add one to it and derive step_size =
    /// lr / (1 - beta1^step) and bias_correction2_sqrt from it on the device, so a captured
    /// CUDA graph steps correctly on every replay. Devices without it (the CPU) throw.
    bool capturable = false;
    double lr = 0;  // capturable only: the lr of step_size (param_scale stays host-computed)
  };
  /// One fused Adam/AdamW update of one parameter, in place. All views contiguous, same
  /// sizes and floating dtype; max_exp_avg_sq is read and written only when amsgrad. Per
  /// element, in the parameter's dtype and PyTorch's order:
  ///   g = maximize ? -grad : grad;  g = g + weight_decay * p;  p = p * param_scale;
  ///   m = m * beta1 + (1 - beta1) * g;  v = v * beta2 + (1 - beta2) * g * g;
  ///   vmax = max(vmax, v);  denom = sqrt(amsgrad ? vmax : v) / bias_correction2_sqrt + eps;
  ///   p = p + (-step_size) * m / denom.
  virtual void adam_step(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                         const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq, const AdamStepParams& p) {
    unsupported("adam_step");
  }
  /// Scalars of one SGD update (optim::SGD).
  struct SgdStepParams {
    double lr = 0;
    double momentum = 0;      // 0 = no momentum buffer
    double dampening = 0;
    double weight_decay = 0;  // 0 = none
    bool nesterov = false;
    bool maximize = false;
    bool first_step = false;  // momentum buffer not yet initialized: buf = g
  };
  /// One fused SGD update of one parameter, in place. All views contiguous, same sizes and
  /// floating dtype; momentum_buffer is used only when momentum != 0. Per element, with
  /// PyTorch's fused multiply-adds (`a.add(b, alpha=s)` is fma(b, s, a)):
  ///   g = maximize ? -grad : grad;  g = fma(p, weight_decay, g);
  ///   buf = first_step ? g : fma(g, 1 - dampening, buf * momentum);
  ///   g = nesterov ? fma(buf, momentum, g) : buf;  p = fma(g, -lr, p).
  virtual void sgd_step(const TensorView& param, const TensorView& grad, const TensorView& momentum_buffer,
                        const SgdStepParams& p) {
    unsupported("sgd_step");
  }

  // Multi-tensor steps (PyTorch's fused/_foreach optimizers): one call updates every
  // parameter of a param group, so a GPU launches a few kernels per group instead of one
  // per parameter.
  /// One parameter of adam_step_multi: adam_step's views (max_exp_avg_sq read and written
  /// only when amsgrad) plus the parameter's own bias corrections (each parameter counts
  /// its own steps): step_size = lr / (1 - beta1^step), bias_correction2_sqrt =
  /// sqrt(1 - beta2^step).
  struct AdamTensorRef {
    TensorView param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq;
    double step_size = 0;
    double bias_correction2_sqrt = 1;
    /// capturable only: the parameter's step count, one float32 in device memory, read,
    /// incremented and written back by the step (step_size / bias_correction2_sqrt unused).
    float* step = nullptr;
  };
  /// adam_step of refs[0], ..., refs[count - 1], in place, with p's shared scalars (its
  /// step_size and bias_correction2_sqrt are ignored: each ref's own apply). Each ref follows
  /// adam_step's contract (its views contiguous, of one size and floating dtype); refs may
  /// mix dtypes and sizes, empty ones included. No memory that one ref writes (param,
  /// exp_avg, exp_avg_sq, max_exp_avg_sq) may overlap any view of another ref: the refs are
  /// updated in no particular order, concurrently on a GPU. Every element gets exactly
  /// adam_step's bits. Default: adam_step on an empty view of each dtype (a dtype without a
  /// kernel throws before anything is written), then on each ref in turn; p.capturable
  /// throws (CUDA only).
  virtual void adam_step_multi(const AdamTensorRef* refs, size_t count, const AdamStepParams& p);
  /// One parameter of sgd_step_multi: sgd_step's views (momentum_buffer used only when
  /// momentum != 0) and the parameter's own first_step (its buffer not yet initialized).
  struct SgdTensorRef {
    TensorView param, grad, momentum_buffer;
    bool first_step = false;
  };
  /// sgd_step of refs[0], ..., refs[count - 1], in place, with p's shared scalars (its
  /// first_step is ignored: each ref's own applies). Same contract as adam_step_multi: each
  /// ref as for sgd_step, dtypes and sizes may mix, no overlap between one ref's written
  /// memory (param, momentum_buffer) and another ref's views, exactly sgd_step's bits.
  /// Default: as adam_step_multi's, with sgd_step.
  virtual void sgd_step_multi(const SgdTensorRef* refs, size_t count, const SgdStepParams& p);

 protected:
  /// Throws "[op] is not implemented for device X".
  [[noreturn]] void unsupported(const char* op) const;
};

/// The backend of a device (type and index); throws focus::Error if that device does not
/// exist or this build has no backend for it.
Backend& backend_for(Device d);

}  // namespace focus
