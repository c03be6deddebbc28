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

  // ---- linear algebra (section owned by the linalg work) ------------------------------------

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

 protected:
  /// Throws "[op] is not implemented for device X".
  [[noreturn]] void unsupported(const char* op) const;
};

/// The backend of a device type; throws if that device is not available in this build.
Backend& backend_for(DeviceType type);
inline Backend& backend_for(Device d) { return backend_for(d.type); }

}  // namespace focus
