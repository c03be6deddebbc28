// CUDA kernels for copy, fill and the elementwise ops (unary, their gradients, binary,
// where), in MLX's backend/cuda manner: one generic launcher per arity with two kernels,
//   - a contiguous kernel: every operand a dense run (or a stride-0 scalar), V elements per
//     thread moved as one 16-byte vector when the pointers are aligned to it;
//   - a strided kernel: any strides and broadcasts (stride 0), dims coalesced on the host,
//     32-bit index arithmetic unless a view needs 64 bits;
// and the per-element math as small functors over backends/common/scalar_math.h (the
// functions the CPU tests check), computed in acc_t<T> (float for float16/bfloat16).
// Conversions in copy/fill go through backends/common/half.h, the CPU's own code, so a
// copy gives the same bits on both devices.
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "backends/common/half.h"
#include "backends/common/scalar_math.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernel_utils.cuh"

namespace focus::cuda_detail {

namespace {

namespace cm = focus::common;

// ---- the generic launcher ---------------------------------------------------------------------

/// One input of the contiguous kernel: a dense run, or one value broadcast to every element.
template <typename T> struct In {
  const T* p;
  bool scalar;
};

template <typename T, int V> struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

/// Elements per thread in the contiguous kernel: one 16-byte vector of the widest operand.
template <typename Out, typename... Ins> constexpr int vec_width() {
  size_t widest = sizeof(Out);
  ((widest = sizeof(Ins) > widest ? sizeof(Ins) : widest), ...);
  return static_cast<int>(16 / widest);
}

template <int V, typename T> __device__ __forceinline__ Pack<T, V> load_pack(const In<T>& in, int64_t j) {
  if (in.scalar) {
    Pack<T, V> p;
    const T x = in.p[0];
#pragma unroll
    for (int k = 0; k < V; ++k) p.v[k] = x;
    return p;
  }
  return reinterpret_cast<const Pack<T, V>*>(in.p)[j];
}

template <typename T> __device__ __forceinline__ T load_one(const In<T>& in, int64_t i) {
  return in.p[in.scalar ? 0 : i];
}

template <int V, typename Out, typename F, typename... P>
__device__ __forceinline__ Pack<Out, V> map_packs(const F& f, const P&... packs) {
  Pack<Out, V> o;
#pragma unroll
  for (int k = 0; k < V; ++k) o.v[k] = f(packs.v[k]...);
  return o;
}

/// out[i] = f(in[i]...) over n dense elements: thread t does elements [V t, V t + V) with one
/// vector load per input and one vector store, then the n % V tail elements one each.
template <int V, typename Out, typename F, typename... Ins>
__global__ void __launch_bounds__(kThreads) contiguous_kernel(int64_t n, F f, Out* out, In<Ins>... in) {
  const int64_t nv = n / V;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  Pack<Out, V>* o = reinterpret_cast<Pack<Out, V>*>(out);
  for (int64_t j = tid; j < nv; j += step) o[j] = map_packs<V, Out>(f, load_pack<V>(in, j)...);
  const int64_t i = nv * V + tid;
  if (i < n) out[i] = f(load_one(in, i)...);
}

template <typename Out, typename F, int N, typename I, typename... Ins, size_t... K>
__device__ __forceinline__ void apply_strided(const F& f, Out* out, const I (&off)[N], std::index_sequence<K...>,
                                              const Ins*... in) {
  out[off[0]] = f(in[off[K + 1]]...);
}

/// out[i] = f(in[i]...) over any strides: the linear element number becomes each view's
/// offset through the coalesced dims (view 0 is out).
template <int N, typename I, typename Out, typename F, typename... Ins>
__global__ void __launch_bounds__(kThreads) strided_kernel(Indexer<N, I> ix, int64_t n, F f, Out* out,
                                                           const Ins*... in) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    I off[N];
    ix.offsets(static_cast<I>(i), off);
    apply_strided(f, out, off, std::index_sequence_for<Ins...>{}, in...);
  }
}

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <int V, typename Out, typename... Ins, typename F, size_t... K>
void launch_contiguous(cudaStream_t stream, int64_t n, const F& f, const TensorView* const* views,
                       const bool* scalar, std::index_sequence<K...>) {
  const int64_t nv = n / V;
  contiguous_kernel<V, Out><<<blocks_for(nv > 0 ? nv : 1), kThreads, 0, stream>>>(
      n, f, static_cast<Out*>(views[0]->data), In<Ins>{static_cast<const Ins*>(views[K + 1]->data), scalar[K + 1]}...);
}

template <int N, typename I, typename Out, typename... Ins, typename F, size_t... K>
void launch_strided(cudaStream_t stream, const Coalesced<N>& c, const F& f, const TensorView* const* views,
                    std::index_sequence<K...>) {
  strided_kernel<N, I, Out><<<blocks_for(c.numel), kThreads, 0, stream>>>(
      make_indexer<N, I>(c), c.numel, f, static_cast<Out*>(views[0]->data),
      static_cast<const Ins*>(views[K + 1]->data)...);
}

/// out = f(ins...) elementwise on `device`'s stream. Out and Ins are the element types of
/// the views (out first; every view has out's sizes, broadcast dims with stride 0).
template <typename Out, typename... Ins, typename F, typename... Views>
void launch(int device, const char* op, const TensorView& out, const F& f, const Views&... ins) {
  static_assert(sizeof...(Ins) == sizeof...(Views), "one element type per input view");
  constexpr int N = 1 + static_cast<int>(sizeof...(Ins));
  if (out.numel == 0) return;
  const TensorView* const views[N] = {&out, &ins...};
  const Coalesced<N> c = coalesce(views);
  cudaStream_t stream = stream_of(device);
  const auto seq = std::index_sequence_for<Ins...>{};

  // Contiguous fast path: after coalescing, one dim with out dense and every input dense or
  // a stride-0 scalar (or a single element), and every dense pointer aligned to the vector.
  constexpr int V = vec_width<Out, Ins...>();
  constexpr size_t elem[N] = {sizeof(Out), sizeof(Ins)...};
  bool scalar[N] = {};
  bool flat = (c.ndim == 0 || (c.ndim == 1 && c.strides[0][0] == 1)) && aligned_to(out.data, sizeof(Out) * V);
  for (int k = 1; k < N; ++k) {
    scalar[k] = c.ndim == 0 || c.strides[k][0] == 0;
    flat = flat && (scalar[k] || (c.strides[k][0] == 1 && aligned_to(views[k]->data, elem[k] * V)));
  }
  if (flat) {
    launch_contiguous<V, Out, Ins...>(stream, c.numel, f, views, scalar, seq);
  } else if (fits_int32(c)) {
    launch_strided<N, int32_t, Out, Ins...>(stream, c, f, views, seq);
  } else {
    launch_strided<N, int64_t, Out, Ins...>(stream, c, f, views, seq);
  }
  FOCUS_CUDA_LAUNCH_CHECK(op);
}

// ---- dtypes ----------------------------------------------------------------------------------

/// Every dtype with the storage type copy and fill use (float16/bfloat16 as common::Half /
/// common::BFloat16, converted by half.h exactly as on the CPU).
template <typename F> decltype(auto) dispatch_storage(DType t, const char* op, F&& f) {
  switch (t) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kFloat16: return f(cm::Half{});
    case kBFloat16: return f(cm::BFloat16{});
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    case kUInt8: return f(uint8_t{});
    case kInt8: return f(int8_t{});
    case kBool: return f(bool{});
  }
  FOCUS_FAIL("[{}] unknown dtype on cuda", op);
}

/// An unsigned integer of the dtype's size: moving elements needs nothing else.
template <typename F> decltype(auto) dispatch_bits(DType t, F&& f) {
  switch (dtype_size(t)) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    default: return f(uint64_t{});
  }
}

/// The integer dtypes the CPU's integer kernels take (not bool).
template <typename F> decltype(auto) dispatch_int(DType t, const char* op, F&& f) {
  switch (t) {
    case kInt64: return f(int64_t{});
    case kInt32: return f(int32_t{});
    case kUInt8: return f(uint8_t{});
    default: FOCUS_FAIL("[{}] not implemented for {} tensors on cuda", op, t);
  }
}

// ---- copy and fill functors --------------------------------------------------------------------

template <typename To, typename From> struct CastFn {
  __device__ __forceinline__ To operator()(From v) const { return cm::cast_value<To>(v); }
};
template <typename T> struct IdentityFn {
  __device__ __forceinline__ T operator()(T v) const { return v; }
};
template <typename T> struct ConstFn {
  T v;
  __device__ __forceinline__ T operator()() const { return v; }
};

// ---- unary functors -------------------------------------------------------------------------
// Op functors act on the arithmetic type A (acc_t of the element type); UnaryFn converts in
// and out.

template <typename T, typename Op> struct UnaryFn {
  Op op;
  __device__ __forceinline__ T operator()(T x) const { return convert<T>(op(convert<acc_t<T>>(x))); }
};
template <typename T, typename Op> UnaryFn<T, Op> unary_fn(Op op) { return UnaryFn<T, Op>{op}; }

struct NegOp {
  template <typename A> __device__ A operator()(A x) const { return static_cast<A>(-x); }
};
struct ExpOp {
  template <typename A> __device__ A operator()(A x) const { return cm::hd::exp(x); }
};
struct LogOp {
  template <typename A> __device__ A operator()(A x) const { return cm::hd::log(x); }
};
struct Log1pOp {
  template <typename A> __device__ A operator()(A x) const { return cm::hd::log1p(x); }
};
struct SqrtOp {
  template <typename A> __device__ A operator()(A x) const { return cm::hd::sqrt(x); }
};
struct RsqrtOp {
  template <typename A> __device__ A operator()(A x) const { return cm::rsqrt(x); }
};
struct AbsOp {
  template <typename A> __device__ A operator()(A x) const { return cm::absolute(x); }
};
struct SinOp {
  template <typename A> __device__ A operator()(A x) const { return cm::hd::sin(x); }
};
struct CosOp {
  template <typename A> __device__ A operator()(A x) const { return cm::hd::cos(x); }
};
struct TanhOp {
  template <typename A> __device__ A operator()(A x) const { return cm::hd::tanh(x); }
};
struct SigmoidOp {
  template <typename A> __device__ A operator()(A x) const { return cm::sigmoid(x); }
};
struct ReluOp {
  template <typename A> __device__ A operator()(A x) const { return cm::relu(x); }
};
struct GeluOp {
  template <typename A> __device__ A operator()(A x) const { return cm::gelu(x); }
};
struct GeluTanhOp {
  template <typename A> __device__ A operator()(A x) const { return cm::gelu_tanh(x); }
};
struct SiluOp {
  template <typename A> __device__ A operator()(A x) const { return cm::silu(x); }
};
struct SignOp {
  template <typename A> __device__ A operator()(A x) const { return cm::sign(x); }
};
struct ReciprocalOp {
  template <typename A> __device__ A operator()(A x) const { return cm::reciprocal(x); }
};
template <typename A> struct SoftplusOp {
  A beta, threshold;
  __device__ A operator()(A x) const { return cm::softplus(x, beta, threshold); }
};
template <typename A> struct ClampOp {
  A lo, hi;
  __device__ A operator()(A x) const { return cm::clamp(x, lo, hi); }
};
template <typename A> struct PowScalarOp {
  A a;
  __device__ A operator()(A x) const { return cm::pow_scalar(x, a); }
};
template <typename A> struct IntPowScalarOp {
  A a;
  __device__ A operator()(A x) const { return cm::int_pow<A>(x, a); }
};
template <typename A> struct RPowScalarOp {
  A a;
  __device__ A operator()(A x) const { return cm::hd::pow(a, x); }
};
template <typename A> struct AddScalarOp {
  A a;
  __device__ A operator()(A x) const { return static_cast<A>(x + a); }
};
template <typename A> struct MulScalarOp {
  A a;
  __device__ A operator()(A x) const { return static_cast<A>(x * a); }
};
template <typename T> struct LogicalNotFn {
  __device__ __forceinline__ bool operator()(T x) const { return !convert<bool>(convert<acc_t<T>>(x)); }
};

// ---- unary backward functors: out = grad * f'(x or y) ------------------------------------------------

template <typename T, typename Op> struct BackwardFn {
  Op op;
  __device__ __forceinline__ T operator()(T g, T x) const {
    return convert<T>(op(convert<acc_t<T>>(g), convert<acc_t<T>>(x)));
  }
};
template <typename T, typename Op> BackwardFn<T, Op> backward_fn(Op op) { return BackwardFn<T, Op>{op}; }

struct GeluBackOp {
  template <typename A> __device__ A operator()(A g, A x) const { return cm::gelu_backward(g, x); }
};
struct GeluTanhBackOp {
  template <typename A> __device__ A operator()(A g, A x) const { return cm::gelu_tanh_backward(g, x); }
};
struct SiluBackOp {
  template <typename A> __device__ A operator()(A g, A x) const { return cm::silu_backward(g, x); }
};
struct ReluBackOp {
  template <typename A> __device__ A operator()(A g, A x) const { return cm::relu_backward(g, x); }
};
struct SigmoidBackOp {
  template <typename A> __device__ A operator()(A g, A y) const { return cm::sigmoid_backward(g, y); }
};
struct TanhBackOp {
  template <typename A> __device__ A operator()(A g, A y) const { return cm::tanh_backward(g, y); }
};
template <typename A> struct SoftplusBackOp {
  A beta, threshold;
  __device__ A operator()(A g, A x) const { return cm::softplus_backward(g, x, beta, threshold); }
};

// ---- binary functors -----------------------------------------------------------------------------

/// out = op(a, b) in acc_t<T>, rounded once to T.
template <typename T, typename Op> struct BinaryFn {
  __device__ __forceinline__ T operator()(T a, T b) const {
    return convert<T>(Op{}(convert<acc_t<T>>(a), convert<acc_t<T>>(b)));
  }
};
/// bool out = op(a, b), compared in acc_t<T> (exact for the 16-bit types).
template <typename T, typename Op> struct PredicateFn {
  __device__ __forceinline__ bool operator()(T a, T b) const {
    return Op{}(convert<acc_t<T>>(a), convert<acc_t<T>>(b));
  }
};

// Arithmetic as the CPU defines it per type: bool + is or, bool * is and; integers wrap.
struct AddOp {
  template <typename A> __device__ A operator()(A x, A y) const {
    if constexpr (std::is_same_v<A, bool>) return x || y;
    else return static_cast<A>(x + y);
  }
};
struct SubOp {
  template <typename A> __device__ A operator()(A x, A y) const { return static_cast<A>(x - y); }
};
struct MulOp {
  template <typename A> __device__ A operator()(A x, A y) const {
    if constexpr (std::is_same_v<A, bool>) return x && y;
    else return static_cast<A>(x * y);
  }
};
struct DivOp {
  template <typename A> __device__ A operator()(A x, A y) const { return cm::divide(x, y); }
};
struct PowOp {
  template <typename A> __device__ A operator()(A x, A y) const { return cm::power(x, y); }
};
struct MaxOp {
  template <typename A> __device__ A operator()(A x, A y) const { return cm::maximum(x, y); }
};
struct MinOp {
  template <typename A> __device__ A operator()(A x, A y) const { return cm::minimum(x, y); }
};
struct EqOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return x == y; }
};
struct NeOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return x != y; }
};
struct LtOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return x < y; }
};
struct LeOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return x <= y; }
};
struct GtOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return x > y; }
};
struct GeOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return x >= y; }
};
struct AndOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return static_cast<bool>(x) && static_cast<bool>(y); }
};
struct OrOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return static_cast<bool>(x) || static_cast<bool>(y); }
};
struct XorOp {
  template <typename A> __device__ bool operator()(A x, A y) const { return static_cast<bool>(x) != static_cast<bool>(y); }
};

struct WhereFn {
  template <typename T> __device__ __forceinline__ T operator()(uint8_t c, T x, T y) const { return c ? x : y; }
};

// ---- host-side op dispatch ----------------------------------------------------------------------

template <typename T> void unary_floating(int dev, UnaryOp op, const TensorView& out, const TensorView& in,
                                          UnaryParams p) {
  using A = acc_t<T>;
  const A a = static_cast<A>(p.alpha), b = static_cast<A>(p.beta);
  auto run = [&](auto op_fn) { launch<T, T>(dev, "unary", out, unary_fn<T>(op_fn), in); };
  switch (op) {
    case UnaryOp::Neg: return run(NegOp{});
    case UnaryOp::Exp: return run(ExpOp{});
    case UnaryOp::Log: return run(LogOp{});
    case UnaryOp::Log1p: return run(Log1pOp{});
    case UnaryOp::Sqrt: return run(SqrtOp{});
    case UnaryOp::Rsqrt: return run(RsqrtOp{});
    case UnaryOp::Abs: return run(AbsOp{});
    case UnaryOp::Sin: return run(SinOp{});
    case UnaryOp::Cos: return run(CosOp{});
    case UnaryOp::Tanh: return run(TanhOp{});
    case UnaryOp::Sigmoid: return run(SigmoidOp{});
    case UnaryOp::Relu: return run(ReluOp{});
    case UnaryOp::Gelu: return run(GeluOp{});
    case UnaryOp::GeluTanh: return run(GeluTanhOp{});
    case UnaryOp::Silu: return run(SiluOp{});
    case UnaryOp::Softplus: return run(SoftplusOp<A>{a, b});
    case UnaryOp::Clamp: return run(ClampOp<A>{a, b});
    case UnaryOp::PowScalar: return run(PowScalarOp<A>{a});
    case UnaryOp::RPowScalar: return run(RPowScalarOp<A>{a});
    case UnaryOp::AddScalar: return run(AddScalarOp<A>{a});
    case UnaryOp::MulScalar: return run(MulScalarOp<A>{a});
    case UnaryOp::Sign: return run(SignOp{});
    case UnaryOp::Reciprocal: return run(ReciprocalOp{});
    case UnaryOp::LogicalNot: break;
  }
  FOCUS_FAIL("[unary] op {} is not a float op", static_cast<int>(op));
}

template <typename T> void unary_integer(int dev, UnaryOp op, const TensorView& out, const TensorView& in,
                                         UnaryParams p) {
  auto run = [&](auto op_fn) { launch<T, T>(dev, "unary", out, unary_fn<T>(op_fn), in); };
  const T a = cm::int_param<T>(p.alpha);
  switch (op) {
    case UnaryOp::Neg: return run(NegOp{});
    case UnaryOp::Abs: return run(AbsOp{});
    case UnaryOp::Sign: return run(SignOp{});
    case UnaryOp::Clamp: return run(ClampOp<T>{cm::int_bound<T>(p.alpha), cm::int_bound<T>(p.beta)});
    case UnaryOp::AddScalar: return run(AddScalarOp<T>{a});
    case UnaryOp::MulScalar: return run(MulScalarOp<T>{a});
    case UnaryOp::PowScalar: return run(IntPowScalarOp<T>{a});
    case UnaryOp::Relu: return run(ReluOp{});
    default: FOCUS_FAIL("[unary] op {} needs a floating tensor", static_cast<int>(op));
  }
}

}  // namespace

// ---- the kernel table -------------------------------------------------------------------------------

void CudaBackend::copy(const TensorView& dst, const TensorView& src) {
  if (dst.numel == 0) return;
  if (dst.dtype == src.dtype) {
    if (dst.is_contiguous() && src.is_contiguous()) {
      const size_t nbytes = static_cast<size_t>(dst.numel) * dtype_size(dst.dtype);
      if (dst.data != src.data)
        FOCUS_CUDA_CHECK(
            cudaMemcpyAsync(dst.data, src.data, nbytes, cudaMemcpyDeviceToDevice, stream_of(index_)));
      return;
    }
    dispatch_bits(dst.dtype, [&](auto tag) {
      using U = decltype(tag);
      launch<U, U>(index_, "copy", dst, IdentityFn<U>{}, src);
    });
    return;
  }
  dispatch_storage(dst.dtype, "copy", [&](auto out_tag) {
    using O = decltype(out_tag);
    dispatch_storage(src.dtype, "copy", [&](auto in_tag) {
      using I = decltype(in_tag);
      launch<O, I>(index_, "copy", dst, CastFn<O, I>{}, src);
    });
  });
}

void CudaBackend::fill(const TensorView& dst, Scalar value) {
  if (dst.numel == 0) return;
  // The element's bytes, converted on the host exactly as the CPU's fill converts them.
  uint64_t bits = 0;
  dispatch_storage(dst.dtype, "fill_", [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (std::is_same_v<T, cm::Half>) v = T{cm::double_to_half_bits(value.to_double())};
    else if constexpr (std::is_same_v<T, cm::BFloat16>) v = T{cm::double_to_bfloat16_bits(value.to_double())};
    else v = value.to<T>();
    std::memcpy(&bits, &v, sizeof v);
  });
  const size_t es = dtype_size(dst.dtype);
  if (dst.is_contiguous()) {
    // One repeated byte (zeros, bool, uint8, ...): a memset.
    bool one_byte = true;
    for (size_t k = 1; k < es; ++k) one_byte = one_byte && ((bits >> (8 * k)) & 0xFF) == (bits & 0xFF);
    if (one_byte) {
      FOCUS_CUDA_CHECK(cudaMemsetAsync(dst.data, static_cast<int>(bits & 0xFF), static_cast<size_t>(dst.numel) * es,
                                       stream_of(index_)));
      return;
    }
  }
  dispatch_bits(dst.dtype, [&](auto tag) {
    using U = decltype(tag);
    launch<U>(index_, "fill_", dst, ConstFn<U>{static_cast<U>(bits)});
  });
}

void CudaBackend::unary(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p) {
  if (out.numel == 0) return;
  if (op == UnaryOp::LogicalNot) {
    dispatch_all(in.dtype, "logical_not", [&](auto tag) {
      using T = decltype(tag);
      launch<bool, T>(index_, "logical_not", out, LogicalNotFn<T>{}, in);
    });
    return;
  }
  if (is_floating(in.dtype)) {
    dispatch_float(in.dtype, "unary", [&](auto tag) { unary_floating<decltype(tag)>(index_, op, out, in, p); });
  } else {
    dispatch_int(in.dtype, "unary", [&](auto tag) { unary_integer<decltype(tag)>(index_, op, out, in, p); });
  }
}

void CudaBackend::unary_backward(UnaryBackwardOp op, const TensorView& out, const TensorView& grad,
                                 const TensorView& in, const TensorView& result, UnaryParams p) {
  if (out.numel == 0) return;
  dispatch_float(out.dtype, "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    const int dev = index_;
    auto on_input = [&](auto op_fn) { launch<T, T, T>(dev, "unary_backward", out, backward_fn<T>(op_fn), grad, in); };
    auto on_result = [&](auto op_fn) {
      launch<T, T, T>(dev, "unary_backward", out, backward_fn<T>(op_fn), grad, result);
    };
    switch (op) {
      case UnaryBackwardOp::Gelu: return on_input(GeluBackOp{});
      case UnaryBackwardOp::GeluTanh: return on_input(GeluTanhBackOp{});
      case UnaryBackwardOp::Silu: return on_input(SiluBackOp{});
      case UnaryBackwardOp::Softplus:
        return on_input(SoftplusBackOp<A>{static_cast<A>(p.alpha), static_cast<A>(p.beta)});
      case UnaryBackwardOp::Relu: return on_input(ReluBackOp{});
      case UnaryBackwardOp::Sigmoid: return on_result(SigmoidBackOp{});
      case UnaryBackwardOp::Tanh: return on_result(TanhBackOp{});
    }
    FOCUS_FAIL("[unary_backward] unexpected op {}", static_cast<int>(op));
  });
}

void CudaBackend::binary(BinaryOp op, const TensorView& out, const TensorView& a, const TensorView& b) {
  if (out.numel == 0) return;
  const int dev = index_;
  switch (op) {
    case BinaryOp::Eq: case BinaryOp::Ne: case BinaryOp::Lt: case BinaryOp::Le: case BinaryOp::Gt:
    case BinaryOp::Ge: case BinaryOp::LogicalAnd: case BinaryOp::LogicalOr: case BinaryOp::LogicalXor:
      dispatch_all(a.dtype, "compare", [&](auto tag) {
        using T = decltype(tag);
        auto run = [&](auto op_tag) {
          launch<bool, T, T>(dev, "compare", out, PredicateFn<T, decltype(op_tag)>{}, a, b);
        };
        switch (op) {
          case BinaryOp::Eq: return run(EqOp{});
          case BinaryOp::Ne: return run(NeOp{});
          case BinaryOp::Lt: return run(LtOp{});
          case BinaryOp::Le: return run(LeOp{});
          case BinaryOp::Gt: return run(GtOp{});
          case BinaryOp::Ge: return run(GeOp{});
          case BinaryOp::LogicalAnd: return run(AndOp{});
          case BinaryOp::LogicalOr: return run(OrOp{});
          default: return run(XorOp{});
        }
      });
      return;
    default: break;
  }
  dispatch_all(out.dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](auto op_tag) { launch<T, T, T>(dev, "binary", out, BinaryFn<T, decltype(op_tag)>{}, a, b); };
    switch (op) {
      case BinaryOp::Add: return run(AddOp{});
      case BinaryOp::Sub: return run(SubOp{});
      case BinaryOp::Mul: return run(MulOp{});
      case BinaryOp::Div: return run(DivOp{});
      case BinaryOp::Pow: return run(PowOp{});
      case BinaryOp::Maximum: return run(MaxOp{});
      case BinaryOp::Minimum: return run(MinOp{});
      default: FOCUS_FAIL("[binary] unexpected op {}", static_cast<int>(op));
    }
  });
}

void CudaBackend::where(const TensorView& out, const TensorView& cond, const TensorView& a, const TensorView& b) {
  if (out.numel == 0) return;
  // Selecting moves elements: one kernel per element size; cond is bool (read as bytes).
  dispatch_bits(out.dtype, [&](auto tag) {
    using U = decltype(tag);
    launch<U, uint8_t, U, U>(index_, "where", out, WhereFn{}, cond, a, b);
  });
}

}  // namespace focus::cuda_detail
