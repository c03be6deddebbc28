#pragma once
/// The kernel table one device implements. Kernels see raw strided views (pointer,
/// sizes, strides, dtype), never Tensor; the raw ops in core/ validate, allocate and
/// build the views before calling them, so a kernel may assume its arguments are valid:
/// shapes already broadcast (stride 0 on broadcast dims), dtypes already matched.
#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
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

/// Philox counter-based random stream: (seed, offset) fully determines the values, so
/// results do not depend on thread count or device.
struct RandomState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;

  // ---- memory ---------------------------------------------------------------------------
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  /// Contiguous bytes between this device and the host.
  virtual void copy_to_host(void* host_dst, const void* src, size_t nbytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, size_t nbytes) = 0;

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

  // ---- shape and indexing (section owned by the indexing work) ------------------------------

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

 protected:
  /// Throws "[op] is not implemented for device X".
  [[noreturn]] void unsupported(const char* op) const;
};

/// The backend of a device type; throws if that device is not available in this build.
Backend& backend_for(DeviceType type);
inline Backend& backend_for(Device d) { return backend_for(d.type); }

}  // namespace focus
