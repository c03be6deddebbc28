// CPU kernels for elementwise ops: unary, their gradients, binary, where.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "backends/common/scalar_math.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/loops.h"
#include "backends/cpu/vec_math.h"

namespace focus::cpu {

namespace {

// The scalar math shared with the CUDA kernels (backends/common/scalar_math.h).
using common::gelu_tanh_inner;
using common::int_bound;
using common::int_param;
using common::int_pow;

template <typename T> void unary_float(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p) {
  const T a = static_cast<T>(p.alpha), b = static_cast<T>(p.beta);
  // Transcendental ops cost ~10x a cheap one per element: they split over threads sooner.
  const bool cheap = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu || op == UnaryOp::Clamp ||
                     op == UnaryOp::AddScalar || op == UnaryOp::MulScalar || op == UnaryOp::Sign ||
                     op == UnaryOp::Sqrt || op == UnaryOp::Reciprocal;
  auto run = [&](auto f) { elementwise_grain<T, T>(cheap ? kGrain : kHeavyGrain, out, f, in); };
  switch (op) {
    case UnaryOp::Neg: return run([](T x) { return -x; });
    case UnaryOp::Exp: return run([](T x) { return vexp(x); });
    case UnaryOp::Log: return run([](T x) { return std::log(x); });
    case UnaryOp::Log1p: return run([](T x) { return std::log1p(x); });
    case UnaryOp::Sqrt: return run([](T x) { return std::sqrt(x); });
    case UnaryOp::Rsqrt: return run([](T x) { return T(1) / std::sqrt(x); });
    case UnaryOp::Abs: return run([](T x) { return std::abs(x); });
    case UnaryOp::Sin: return run([](T x) { return std::sin(x); });
    case UnaryOp::Cos: return run([](T x) { return std::cos(x); });
    case UnaryOp::Tanh: return run([](T x) { return vtanh(x); });
    case UnaryOp::Sigmoid: return run([](T x) { return vsigmoid(x); });
    case UnaryOp::Relu: return run([](T x) { return x > T(0) ? x : (x != x ? x : T(0)); });
    case UnaryOp::Gelu:
      return run([](T x) {
        T cdf, pdf;
        vnormal_cdf_pdf(x, cdf, pdf);
        return x * cdf;
      });
    case UnaryOp::GeluTanh:
      // 0.5 x (1 + tanh(u)) = x sigmoid(2u): no cancellation for negative x.
      return run([](T x) { return x * vsigmoid(T(2) * gelu_tanh_inner(x)); });
    case UnaryOp::Silu: return run([](T x) { return x * vsigmoid(x); });
    case UnaryOp::Softplus:
      return run([a, b](T x) { return x * a > b ? x : std::log1p(vexp(a * x)) / a; });
    case UnaryOp::Clamp:
      // min(max(x, lo), hi) as torch.clamp (hi wins when lo > hi); NaN stays NaN.
      return run([a, b](T x) {
        const T lo = x < a ? a : x;
        return x != x ? x : (lo > b ? b : lo);
      });
    case UnaryOp::PowScalar:
      if (a == T(2)) return run([](T x) { return x * x; });
      if (a == T(0.5)) return run([](T x) { return std::sqrt(x); });
      if (a == T(1)) return run([](T x) { return x; });
      return run([a](T x) { return std::pow(x, a); });
    case UnaryOp::RPowScalar: return run([a](T x) { return std::pow(a, x); });
    case UnaryOp::AddScalar: return run([a](T x) { return x + a; });
    case UnaryOp::MulScalar: return run([a](T x) { return x * a; });
    case UnaryOp::Sign: return run([](T x) { return static_cast<T>((T(0) < x) - (x < T(0))); });
    case UnaryOp::Reciprocal: return run([](T x) { return T(1) / x; });
    case UnaryOp::LogicalNot: break;
  }
  FOCUS_FAIL("[unary] op {} is not a float op", static_cast<int>(op));
}

template <typename T> void unary_int(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p) {
  auto run = [&](auto f) { elementwise<T, T>(out, f, in); };
  const T a = int_param<T>(p.alpha);
  switch (op) {
    case UnaryOp::Neg: return run([](T x) { return static_cast<T>(-x); });
    case UnaryOp::Abs: return run([](T x) { return static_cast<T>(x < 0 ? -x : x); });
    case UnaryOp::Sign: return run([](T x) { return static_cast<T>((T(0) < x) - (x < T(0))); });
    case UnaryOp::Clamp: {
      const T lo = int_bound<T>(p.alpha), hi = int_bound<T>(p.beta);
      return run([lo, hi](T x) {
        const T m = x < lo ? lo : x;
        return m > hi ? hi : m;
      });
    }
    case UnaryOp::AddScalar: return run([a](T x) { return static_cast<T>(x + a); });
    case UnaryOp::MulScalar: return run([a](T x) { return static_cast<T>(x * a); });
    case UnaryOp::PowScalar: return run([a](T x) { return int_pow<T>(x, a); });
    case UnaryOp::Relu: return run([](T x) { return x > T(0) ? x : T(0); });
    default: FOCUS_FAIL("[unary] op {} needs a floating tensor", static_cast<int>(op));
  }
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p) {
  if (any_16bit(out, in)) [[unlikely]] {
    Float32Scope f(*this);
    unary(op, f.out(out), f.in(in), p);
    return f.commit();
  }
  if (op == UnaryOp::LogicalNot) {
    dispatch_all(in.dtype, "logical_not", [&](auto tag) {
      using T = decltype(tag);
      elementwise<bool, T>(out, [](T x) { return !static_cast<bool>(x); }, in);
    });
    return;
  }
  if (is_floating(in.dtype)) {
    dispatch_float(in.dtype, "unary", [&](auto tag) { unary_float<decltype(tag)>(op, out, in, p); });
  } else {
    dispatch_numeric(in.dtype, "unary", [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) return;
      else unary_int<T>(op, out, in, p);
    });
  }
}

void CpuBackend::unary_backward(UnaryBackwardOp op, const TensorView& out, const TensorView& grad,
                                const TensorView& in, const TensorView& result, UnaryParams p) {
  if (any_16bit(out, grad, in, result)) [[unlikely]] {
    // Each op reads either in or result, never both: widen only that one.
    Float32Scope f(*this);
    const bool on_result = op == UnaryBackwardOp::Sigmoid || op == UnaryBackwardOp::Tanh;
    const TensorView x = f.in(on_result ? result : in);
    unary_backward(op, f.out(out), f.in(grad), x, x, p);
    return f.commit();
  }
  dispatch_float(out.dtype, "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    const T a = static_cast<T>(p.alpha), b = static_cast<T>(p.beta);
    const bool cheap = op == UnaryBackwardOp::Relu;
    auto on_input = [&](auto f) { elementwise_grain<T, T, T>(cheap ? kGrain : kHeavyGrain, out, f, grad, in); };
    auto on_result = [&](auto f) { elementwise<T, T, T>(out, f, grad, result); };
    switch (op) {
      case UnaryBackwardOp::Gelu:
        // d/dx x Phi(x) = Phi(x) + x phi(x)
        return on_input([](T g, T x) {
          T cdf, pdf;
          vnormal_cdf_pdf(x, cdf, pdf);
          return g * (cdf + x * pdf);
        });
      case UnaryBackwardOp::GeluTanh:
        // y = x s, s = sigmoid(2u), u = k (x + c x^3): y' = s + 2 x s (1 - s) k (1 + 3 c x^2)
        return on_input([](T g, T x) {
          const T k = T(0.79788456080286535588), c = T(0.044715);
          const T s = vsigmoid(T(2) * gelu_tanh_inner(x));
          return g * (s + T(2) * x * s * (T(1) - s) * k * (T(1) + T(3) * c * x * x));
        });
      case UnaryBackwardOp::Silu:
        return on_input([](T g, T x) {
          const T s = vsigmoid(x);
          return g * s * (T(1) + x * (T(1) - s));
        });
      case UnaryBackwardOp::Softplus:
        // d/dx log1p(exp(a x)) / a = sigmoid(a x); 1 above the threshold
        return on_input([a, b](T g, T x) { return x * a > b ? g : g * vsigmoid(a * x); });
      case UnaryBackwardOp::Relu: return on_input([](T g, T x) { return x > T(0) ? g : T(0); });
      case UnaryBackwardOp::Sigmoid: return on_result([](T g, T y) { return g * y * (T(1) - y); });
      case UnaryBackwardOp::Tanh: return on_result([](T g, T y) { return g * (T(1) - y * y); });
    }
  });
}

void CpuBackend::binary(BinaryOp op, const TensorView& out, const TensorView& a, const TensorView& b) {
  if (any_16bit(out, a, b)) [[unlikely]] {  // comparisons and logical ops: a bool out stays as it is
    Float32Scope f(*this);
    binary(op, f.out(out), f.in(a), f.in(b));
    return f.commit();
  }
  switch (op) {
    case BinaryOp::Eq: case BinaryOp::Ne: case BinaryOp::Lt:
    case BinaryOp::Le: case BinaryOp::Gt: case BinaryOp::Ge:
      dispatch_all(a.dtype, "compare", [&](auto tag) {
        using T = decltype(tag);
        auto run = [&](auto f) { elementwise<bool, T, T>(out, f, a, b); };
        switch (op) {
          case BinaryOp::Eq: return run([](T x, T y) { return x == y; });
          case BinaryOp::Ne: return run([](T x, T y) { return x != y; });
          case BinaryOp::Lt: return run([](T x, T y) { return x < y; });
          case BinaryOp::Le: return run([](T x, T y) { return x <= y; });
          case BinaryOp::Gt: return run([](T x, T y) { return x > y; });
          default: return run([](T x, T y) { return x >= y; });
        }
      });
      return;
    case BinaryOp::LogicalAnd: case BinaryOp::LogicalOr: case BinaryOp::LogicalXor:
      dispatch_all(a.dtype, "logical", [&](auto tag) {
        using T = decltype(tag);
        auto run = [&](auto f) { elementwise<bool, T, T>(out, f, a, b); };
        if (op == BinaryOp::LogicalAnd) return run([](T x, T y) { return bool(x) && bool(y); });
        if (op == BinaryOp::LogicalOr) return run([](T x, T y) { return bool(x) || bool(y); });
        return run([](T x, T y) { return bool(x) != bool(y); });
      });
      return;
    default: break;
  }
  dispatch_all(out.dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](auto f) { elementwise<T, T, T>(out, f, a, b); };
    constexpr bool fp = std::is_floating_point_v<T>;
    switch (op) {
      case BinaryOp::Add:
        if constexpr (std::is_same_v<T, bool>) return run([](T x, T y) { return x || y; });
        else return run([](T x, T y) { return static_cast<T>(x + y); });
      case BinaryOp::Sub: return run([](T x, T y) { return static_cast<T>(x - y); });
      case BinaryOp::Mul:
        if constexpr (std::is_same_v<T, bool>) return run([](T x, T y) { return x && y; });
        else return run([](T x, T y) { return static_cast<T>(x * y); });
      case BinaryOp::Div:
        if constexpr (fp) return run([](T x, T y) { return x / y; });
        else return run([](T x, T y) { return y == T(0) ? T(0) : static_cast<T>(x / y); });
      case BinaryOp::Pow:
        if constexpr (fp) return run([](T x, T y) { return std::pow(x, y); });
        else return run([](T x, T y) { return int_pow<T>(x, y); });
      case BinaryOp::Maximum:
        if constexpr (fp) return run([](T x, T y) { return x != x ? x : (y != y ? y : (x > y ? x : y)); });
        else return run([](T x, T y) { return x > y ? x : y; });
      case BinaryOp::Minimum:
        if constexpr (fp) return run([](T x, T y) { return x != x ? x : (y != y ? y : (x < y ? x : y)); });
        else return run([](T x, T y) { return x < y ? x : y; });
      default: FOCUS_FAIL("[binary] unexpected op {}", static_cast<int>(op));
    }
  });
}

void CpuBackend::where(const TensorView& out, const TensorView& cond, const TensorView& a, const TensorView& b) {
  if (is_16bit(out.dtype)) [[unlikely]] {  // a choice between elements: their bits move as they are
    elementwise<uint16_t, bool, uint16_t, uint16_t>(out, [](bool c, uint16_t x, uint16_t y) { return c ? x : y; },
                                                    cond, a, b);
    return;
  }
  dispatch_all(out.dtype, "where", [&](auto tag) {
    using T = decltype(tag);
    elementwise<T, bool, T, T>(out, [](bool c, T x, T y) { return c ? x : y; }, cond, a, b);
  });
}

}  // namespace focus::cpu
