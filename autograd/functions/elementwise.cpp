// Differentiable elementwise ops: forward through raw ops, backward right beside it.
#include "autograd/functions/elementwise.h"

#include <cmath>
#include <limits>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/common.h"
#include "core/ops/elementwise.h"

namespace focus {

namespace {

// What a backward needs to know of an input without keeping it alive. The shape is
// copied only when the input was broadcast (it differs from the output's), so the
// common same-shape case records without allocating.
struct InputInfo {
  Shape shape;
  DType dtype;
  bool broadcast;
  InputInfo(const Tensor& t, const Tensor& out)
      : dtype(t.dtype()), broadcast(t.shape() != out.shape()) {
    if (broadcast) shape = t.shape();
  }
};

// Broadcast gradient -> the input's shape and dtype.
Tensor to_input(const Tensor& g, const InputInfo& in) {
  Tensor r = in.broadcast ? sum_to(g, in.shape) : g;
  return r.dtype() == in.dtype ? r : r.to(in.dtype);
}

// Fused backward kernels are not themselves differentiable: refuse create_graph rather
// than return silently wrong second derivatives.
void no_double_backward(const char* name) {
  FOCUS_CHECK(!GradMode::is_enabled(), "[backward] double backward (create_graph=true) through {} is not supported",
              name);
}

Tensor unary_bw(UnaryBackwardOp op, const Tensor& g, const Tensor& x, const Tensor& result, UnaryParams p,
                const char* name) {
  no_double_backward(name);
  return raw::unary_backward(op, g, x, result, p, name, true);
}

// Records a unary op y = f(x) whose backward is fn(ctx, x, y).
// recomputable (with save_x): consumers may save y by reference and get it recomputed
// from x in their backward (SavedTensor::recomputable).
template <typename F> Tensor unary_op(UnaryOp op, const Tensor& x, UnaryParams p, const char* name, const char* node,
                                      bool save_x, bool save_y, F fn, bool recomputable = false) {
  Tensor y = raw::unary(op, x, p, name);
  if (needs_grad(x) && y.is_floating_point()) {
    InputInfo info(x, y);
    auto backward = [fn, info](BackwardContext& c) {
      return grads(to_input(fn(c.grad(0), c.saved(0), c.saved(1)), info));
    };
    std::vector<SavedTensor> saved{save_x ? save(x) : SavedTensor(), save_y ? save(y, true) : SavedTensor()};
    if (recomputable && save_x && x.dtype() == y.dtype())
      record_recomputable(node, {x}, {y}, std::move(saved), backward,
                          [op, p, name](BackwardContext& c) { return raw::unary(op, c.saved(0), p, name); });
    else
      record(node, {x}, {y}, std::move(saved), backward);
  }
  return y;
}

}  // namespace

// ---- arithmetic ----------------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b, Scalar alpha) {
  const bool unit = alpha.to_double() == 1.0;
  Tensor out = unit ? raw::binary(BinaryOp::Add, a, b, "add") : raw::binary(BinaryOp::Add, a, raw::binary(BinaryOp::Mul, b, alpha, "add"), "add");
  if (needs_grad(a, b)) {
    InputInfo ia(a, out), ib(b, out);
    record("AddBackward0", {a, b}, {out}, {}, [ia, ib, alpha, unit](BackwardContext& c) {
      // grad_a = sum_to(grad), grad_b = sum_to(alpha * grad)
      const Tensor& g = c.grad(0);
      return grads(c.needs_input_grad(0) ? to_input(g, ia) : Tensor(),
                   c.needs_input_grad(1) ? to_input(unit ? g : g * alpha, ib) : Tensor());
    });
  }
  return out;
}

Tensor add(const Tensor& a, Scalar b) {
  Tensor out = raw::binary(BinaryOp::Add, a, b, "add");
  if (needs_grad(a)) {
    InputInfo ia(a, out);
    record("AddBackward1", {a}, {out}, {}, [ia](BackwardContext& c) { return grads(to_input(c.grad(0), ia)); });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b, Scalar alpha) {
  raw::check_defined(a, "sub", "input");
  FOCUS_CHECK(a.dtype() != kBool || !b.defined() || b.dtype() != kBool,
              "[sub] subtraction of bool tensors is not supported; use logical_xor");
  return add(a, b, alpha.is_floating() ? Scalar(-alpha.to_double()) : Scalar(-alpha.to_int()));
}

Tensor sub(const Tensor& a, Scalar b) {
  return add(a, b.is_floating() ? Scalar(-b.to_double()) : Scalar(-b.to_int()));
}

Tensor rsub(const Tensor& a, Scalar b) { return add(neg(a), b); }

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Mul, a, b, "mul");
  if (needs_grad(a, b)) {
    InputInfo ia(a, out), ib(b, out);
    const bool ga = needs_grad(a), gb = needs_grad(b);
    record("MulBackward0", {a, b}, {out}, {gb ? save(a) : SavedTensor(), ga ? save(b) : SavedTensor()},
           [ia, ib](BackwardContext& c) {
             // grad_a = grad * b, grad_b = grad * a (then reduced to each input's shape)
             const Tensor& g = c.grad(0);
             return grads(c.needs_input_grad(0) ? to_input(g * c.saved(1), ia) : Tensor(),
                          c.needs_input_grad(1) ? to_input(g * c.saved(0), ib) : Tensor());
           });
  }
  return out;
}

Tensor mul(const Tensor& a, Scalar b) {
  Tensor out = raw::binary(BinaryOp::Mul, a, b, "mul");
  if (needs_grad(a)) {
    InputInfo ia(a, out);
    record("MulBackward1", {a}, {out}, {}, [ia, b](BackwardContext& c) { return grads(to_input(c.grad(0) * b, ia)); });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Div, a, b, "div");
  if (needs_grad(a, b)) {
    InputInfo ia(a, out), ib(b, out);
    const bool gb = needs_grad(b);
    record("DivBackward0", {a, b}, {out}, {save(b), gb ? save(out, true) : SavedTensor()},
           [ia, ib](BackwardContext& c) {
             // grad_a = grad / b; grad_b = -grad * a / b^2 = -grad * out / b
             const Tensor& g = c.grad(0);
             Tensor b = c.saved(0);
             return grads(c.needs_input_grad(0) ? to_input(g / b, ia) : Tensor(),
                          c.needs_input_grad(1) ? to_input(-(g * c.saved(1)) / b, ib) : Tensor());
           });
  }
  return out;
}

Tensor div(const Tensor& a, Scalar b) {
  Tensor out = raw::binary(BinaryOp::Div, a, b, "div");
  if (needs_grad(a)) {
    InputInfo ia(a, out);
    record("DivBackward1", {a}, {out}, {}, [ia, b](BackwardContext& c) { return grads(to_input(c.grad(0) / b, ia)); });
  }
  return out;
}

Tensor neg(const Tensor& x) {
  return unary_op(UnaryOp::Neg, x, {}, "neg", "NegBackward0", false, false,
                  [](const Tensor& g, const Tensor&, const Tensor&) { return -g; });
}

Tensor pow(const Tensor& base, Scalar e) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return pow(t...); }, base, e);
  Tensor out = raw::binary(BinaryOp::Pow, base, e, "pow");
  if (needs_grad(base) && out.is_floating_point()) {
    InputInfo ib(base, out);
    record("PowBackward0", {base}, {out}, {save(base)}, [ib, e](BackwardContext& c) {
      // grad_x = grad * e * x^(e-1)
      const double ev = e.to_double();
      if (ev == 0.0) return grads(to_input(zeros_like(c.grad(0)), ib));
      Tensor x = c.saved(0);
      Tensor d = ev == 2.0 ? x * 2.0 : pow(x, ev - 1.0) * ev;
      return grads(to_input(c.grad(0) * d, ib));
    });
  }
  return out;
}

Tensor pow(const Tensor& base, const Tensor& e) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return pow(t...); }, base, e);
  Tensor out = raw::binary(BinaryOp::Pow, base, e, "pow");
  if (needs_grad(base, e) && out.is_floating_point()) {
    InputInfo ib(base, out), ie(e, out);
    record("PowBackward1", {base, e}, {out}, {save(base), save(e), save(out, true)}, [ib, ie](BackwardContext& c) {
      const Tensor& g = c.grad(0);
      Tensor x = c.saved(0), ex = c.saved(1), y = c.saved(2);
      Tensor grad_x, grad_e;
      if (c.needs_input_grad(0)) {
        // grad_x = grad * e * x^(e-1), 0 where e == 0
        grad_x = to_input(masked_fill(g * ex * pow(x, ex - 1.0), eq(ex, 0.0), 0), ib);
      }
      if (c.needs_input_grad(1)) {
        // grad_e = grad * x^e * log(x), 0 where x == 0 and e >= 0
        grad_e = to_input(masked_fill(g * y * log(x), logical_and(eq(x, 0.0), ge(ex, 0.0)), 0), ie);
      }
      return grads(grad_x, grad_e);
    });
  }
  return out;
}

Tensor pow(Scalar base, const Tensor& e) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return pow(t...); }, base, e);
  raw::check_defined(e, "pow", "exponent");
  const DType dt = raw::result_type(e, base);
  return pow(full({}, base, TensorOptions(dt).device(e.device())), e);
}

// ---- unary ---------------------------------------------------------------------------------

Tensor exp(const Tensor& x) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return exp(t...); }, x);
  return unary_op(UnaryOp::Exp, x, {}, "exp", "ExpBackward0", false, true,
                  [](const Tensor& g, const Tensor&, const Tensor& y) { return g * y; });
}
Tensor log(const Tensor& x) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return log(t...); }, x);
  return unary_op(UnaryOp::Log, x, {}, "log", "LogBackward0", true, false,
                  [](const Tensor& g, const Tensor& x, const Tensor&) { return g / x; });
}
Tensor log1p(const Tensor& x) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return log1p(t...); }, x);
  return unary_op(UnaryOp::Log1p, x, {}, "log1p", "Log1PBackward0", true, false,
                  [](const Tensor& g, const Tensor& x, const Tensor&) { return g / (x + 1.0); });
}
Tensor sqrt(const Tensor& x) {
  return unary_op(UnaryOp::Sqrt, x, {}, "sqrt", "SqrtBackward0", false, true,
                  [](const Tensor& g, const Tensor&, const Tensor& y) { return g / (y * 2.0); });
}
Tensor rsqrt(const Tensor& x) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return rsqrt(t...); }, x);
  // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
  return unary_op(UnaryOp::Rsqrt, x, {}, "rsqrt", "RsqrtBackward0", false, true,
                  [](const Tensor& g, const Tensor&, const Tensor& y) { return g * (y * y * y) * -0.5; });
}
Tensor abs(const Tensor& x) {
  return unary_op(UnaryOp::Abs, x, {}, "abs", "AbsBackward0", true, false,
                  [](const Tensor& g, const Tensor& x, const Tensor&) { return g * raw::unary(UnaryOp::Sign, x, {}, "sign"); });
}
Tensor sin(const Tensor& x) {
  return unary_op(UnaryOp::Sin, x, {}, "sin", "SinBackward0", true, false,
                  [](const Tensor& g, const Tensor& x, const Tensor&) { return g * cos(x); });
}
Tensor cos(const Tensor& x) {
  return unary_op(UnaryOp::Cos, x, {}, "cos", "CosBackward0", true, false,
                  [](const Tensor& g, const Tensor& x, const Tensor&) { return -(g * sin(x)); });
}
Tensor tanh(const Tensor& x) {
  return unary_op(UnaryOp::Tanh, x, {}, "tanh", "TanhBackward0", false, true,
                  [](const Tensor& g, const Tensor&, const Tensor& y) {
                    return GradMode::is_enabled() ? g * (1.0 - y * y)
                                                  : raw::unary_backward(UnaryBackwardOp::Tanh, g, y, y, {}, "tanh", true);
                  });
}
Tensor sigmoid(const Tensor& x) {
  return unary_op(UnaryOp::Sigmoid, x, {}, "sigmoid", "SigmoidBackward0", false, true,
                  [](const Tensor& g, const Tensor&, const Tensor& y) {
                    return GradMode::is_enabled() ? g * y * (1.0 - y)
                                                  : raw::unary_backward(UnaryBackwardOp::Sigmoid, g, y, y, {}, "sigmoid", true);
                  });
}
Tensor relu(const Tensor& x) {
  return unary_op(UnaryOp::Relu, x, {}, "relu", "ReluBackward0", false, true,
                  [](const Tensor& g, const Tensor&, const Tensor& y) {
                    return GradMode::is_enabled() ? g * gt(y, 0).to(g.dtype())
                                                  : raw::unary_backward(UnaryBackwardOp::Relu, g, y, y, {}, "relu", true);
                  });
}
Tensor gelu(const Tensor& x, std::string_view approximate) {
  FOCUS_CHECK(approximate == "none" || approximate == "tanh",
              "[gelu] approximate must be 'none' or 'tanh', got '{}'", approximate);
  const bool t = approximate == "tanh";
  return unary_op(t ? UnaryOp::GeluTanh : UnaryOp::Gelu, x, {}, "gelu", "GeluBackward0", true, false,
                  [t](const Tensor& g, const Tensor& x, const Tensor&) {
                    return unary_bw(t ? UnaryBackwardOp::GeluTanh : UnaryBackwardOp::Gelu, g, x, Tensor(), {},
                                    "GeluBackward0");
                  },
                  true);
}
Tensor silu(const Tensor& x) {
  return unary_op(UnaryOp::Silu, x, {}, "silu", "SiluBackward0", true, false,
                  [](const Tensor& g, const Tensor& x, const Tensor&) {
                    return unary_bw(UnaryBackwardOp::Silu, g, x, Tensor(), {}, "SiluBackward0");
                  });
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return softplus(t...); }, x, beta, threshold);
  FOCUS_CHECK(beta != 0, "[softplus] beta must be nonzero");
  UnaryParams p{beta, threshold};
  return unary_op(UnaryOp::Softplus, x, p, "softplus", "SoftplusBackward0", true, false,
                  [p](const Tensor& g, const Tensor& x, const Tensor&) {
                    return unary_bw(UnaryBackwardOp::Softplus, g, x, Tensor(), p, "SoftplusBackward0");
                  });
}

Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max) {
  raw::check_defined(x, "clamp", "input");
  FOCUS_CHECK(min || max, "[clamp] at least one of min and max must be given");
  // A floating bound on an integer tensor gives a floating result, as torch.clamp.
  if (!x.is_floating_point() && ((min && min->is_floating()) || (max && max->is_floating())))
    return clamp(x.to(default_float_dtype()), min, max);
  // Absent bounds are +-inf; integer kernels saturate bounds to their dtype's range.
  const UnaryParams p{min ? min->to_double() : -INFINITY, max ? max->to_double() : INFINITY};
  return unary_op(UnaryOp::Clamp, x, p, "clamp", "ClampBackward1", true, false,
                  [p](const Tensor& g, const Tensor& x, const Tensor&) {
                    // grad_x = grad where min <= x <= max, else 0
                    return g * logical_and(ge(x, p.alpha), le(x, p.beta)).to(g.dtype());
                  });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Maximum, a, b, "maximum");
  if (needs_grad(a, b)) {
    InputInfo ia(a, out), ib(b, out);
    record("MaximumBackward0", {a, b}, {out}, {save(a), save(b)}, [ia, ib](BackwardContext& c) {
      // grad goes to the larger input; ties split it in half
      const Tensor& g = c.grad(0);
      Tensor x = c.saved(0), y = c.saved(1);
      Tensor half = eq(x, y).to(g.dtype()) * 0.5;
      return grads(c.needs_input_grad(0) ? to_input(g * (gt(x, y).to(g.dtype()) + half), ia) : Tensor(),
                   c.needs_input_grad(1) ? to_input(g * (lt(x, y).to(g.dtype()) + half), ib) : Tensor());
    });
  }
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = raw::binary(BinaryOp::Minimum, a, b, "minimum");
  if (needs_grad(a, b)) {
    InputInfo ia(a, out), ib(b, out);
    record("MinimumBackward0", {a, b}, {out}, {save(a), save(b)}, [ia, ib](BackwardContext& c) {
      const Tensor& g = c.grad(0);
      Tensor x = c.saved(0), y = c.saved(1);
      Tensor half = eq(x, y).to(g.dtype()) * 0.5;
      return grads(c.needs_input_grad(0) ? to_input(g * (lt(x, y).to(g.dtype()) + half), ia) : Tensor(),
                   c.needs_input_grad(1) ? to_input(g * (gt(x, y).to(g.dtype()) + half), ib) : Tensor());
    });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = raw::where(cond, a, b);
  if (needs_grad(a, b)) {
    InputInfo ia(a, out), ib(b, out);
    record("WhereBackward0", {a, b}, {out}, {save(cond)}, [ia, ib](BackwardContext& c) {
      // grad_a = grad where cond, grad_b = grad where !cond
      const Tensor& g = c.grad(0);
      Tensor m = c.saved(0);
      return grads(c.needs_input_grad(0) ? to_input(masked_fill(g, logical_not(m), 0), ia) : Tensor(),
                   c.needs_input_grad(1) ? to_input(masked_fill(g, m, 0), ib) : Tensor());
    });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, Scalar b) {
  raw::check_defined(a, "where", "input");
  return where(cond, a, full({}, b, TensorOptions(raw::result_type(a, b)).device(a.device())));
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, Scalar value) {
  Tensor out = raw::masked_fill(x, mask, value);
  if (needs_grad(x)) {
    InputInfo ix(x, out);
    record("MaskedFillBackward0", {x}, {out}, {save(mask)}, [ix](BackwardContext& c) {
      return grads(to_input(masked_fill(c.grad(0), c.saved(0), 0), ix));
    });
  }
  return out;
}

// ---- comparisons and logic (no gradient) ------------------------------------------------------

#define FOCUS_COMPARE(fn, OP)                                                                          \
  Tensor fn(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::OP, a, b, #fn); }         \
  Tensor fn(const Tensor& a, Scalar b) { return raw::binary(BinaryOp::OP, a, b, #fn); }
FOCUS_COMPARE(eq, Eq)
FOCUS_COMPARE(ne, Ne)
FOCUS_COMPARE(lt, Lt)
FOCUS_COMPARE(le, Le)
FOCUS_COMPARE(gt, Gt)
FOCUS_COMPARE(ge, Ge)
#undef FOCUS_COMPARE

Tensor logical_and(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::LogicalAnd, a, b, "logical_and"); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::LogicalOr, a, b, "logical_or"); }
Tensor logical_xor(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::LogicalXor, a, b, "logical_xor"); }
Tensor logical_not(const Tensor& x) { return raw::unary(UnaryOp::LogicalNot, x, {}, "logical_not"); }

// ---- operators -------------------------------------------------------------------------------

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
Tensor operator+(Scalar a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, b); }
Tensor operator-(Scalar a, const Tensor& b) { return rsub(b, a); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, b); }
Tensor operator/(Scalar a, const Tensor& b) {
  raw::check_defined(b, "div", "other");
  return div(full({}, a, TensorOptions(raw::result_type(b, a)).device(b.device())), b);
}
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator&(const Tensor& a, const Tensor& b) { return logical_and(a, b); }
Tensor operator|(const Tensor& a, const Tensor& b) { return logical_or(a, b); }
Tensor operator~(const Tensor& x) { return logical_not(x); }

}  // namespace focus
