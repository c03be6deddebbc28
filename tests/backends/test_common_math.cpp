// The host-and-device math of backends/common/scalar_math.h (what the CUDA elementwise and
// random kernels compute per element) against the CPU kernels it must match: every unary
// op and gradient in float64 (same formulas and libm: equal to rounding) and float32 (the
// CPU's vectorized approximations: a few ulp), the integer ops exactly, and the random
// draws bit for bit against CpuBackend::uniform / normal / randint (which Philox counter
// and word each element uses, float and double paths, Box-Muller). Where a GPU is there,
// the same random states give the same bits on it, and the elementwise kernels agree with
// the CPU on the integer, bool and float16/bfloat16 cases.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/common/half.h"
#include "backends/common/philox.h"
#include "backends/common/scalar_math.h"
#include "core/ops/common.h"
#include "core/ops/elementwise.h"
#include "test_util.h"

using namespace focus;
namespace cm = focus::common;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const std::vector<double> kInputs{-kInf, -200, -50, -20.5, -10, -5, -3.3, -1, -0.7, -1e-8, -0.0, 0.0, 1e-8, 0.3,
                                  0.5,   1,    2,   2.5,   3.1, 7,  10,   25, 50,   100,   kInf, kNaN};

// |got - want| <= rtol |want| + atol, NaN equal to NaN, infinities exactly.
bool close(double got, double want, double rtol, double atol) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::fabs(got - want) <= rtol * std::fabs(want) + atol;
}

// The CPU kernel's result for every input, against f (in T) on each input, as doubles.
template <typename T>
void check_unary(const char* name, const std::function<Tensor(const Tensor&)>& op, const std::function<T(T)>& f,
                 double rtol, double atol) {
  INFO("op " << name << " in " << dtype_name(dtype_of_v<T>));
  const std::vector<T> xs(kInputs.begin(), kInputs.end());
  const std::vector<double> got = op(tensor(xs)).template to_vector<double>();
  REQUIRE(got.size() == xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    const double want = static_cast<double>(f(xs[i]));
    INFO("x = " << static_cast<double>(xs[i]) << ": kernel " << got[i] << ", scalar_math " << want);
    CHECK(close(got[i], want, rtol, atol));
  }
}

template <typename T> void check_all_unary(double rtol, double atol) {
  using U = UnaryOp;
  auto un = [](U op, UnaryParams p = {}) {
    return [op, p](const Tensor& x) { return raw::unary(op, x, p, "test"); };
  };
  check_unary<T>("neg", un(U::Neg), [](T x) { return -x; }, rtol, atol);
  check_unary<T>("exp", un(U::Exp), [](T x) { return cm::hd::exp(x); }, rtol, atol);
  check_unary<T>("log", un(U::Log), [](T x) { return cm::hd::log(x); }, rtol, atol);
  check_unary<T>("log1p", un(U::Log1p), [](T x) { return cm::hd::log1p(x); }, rtol, atol);
  check_unary<T>("sqrt", un(U::Sqrt), [](T x) { return cm::hd::sqrt(x); }, rtol, atol);
  check_unary<T>("rsqrt", un(U::Rsqrt), [](T x) { return cm::rsqrt(x); }, rtol, atol);
  check_unary<T>("abs", un(U::Abs), [](T x) { return cm::absolute(x); }, 0, 0);
  check_unary<T>("sin", un(U::Sin), [](T x) { return cm::hd::sin(x); }, rtol, atol);
  check_unary<T>("cos", un(U::Cos), [](T x) { return cm::hd::cos(x); }, rtol, atol);
  check_unary<T>("tanh", un(U::Tanh), [](T x) { return cm::hd::tanh(x); }, rtol, atol);
  check_unary<T>("sigmoid", un(U::Sigmoid), [](T x) { return cm::sigmoid(x); }, rtol, atol);
  check_unary<T>("relu", un(U::Relu), [](T x) { return cm::relu(x); }, 0, 0);
  check_unary<T>("gelu", un(U::Gelu), [](T x) { return cm::gelu(x); }, rtol * 4, atol);
  check_unary<T>("gelu_tanh", un(U::GeluTanh), [](T x) { return cm::gelu_tanh(x); }, rtol, atol);
  check_unary<T>("silu", un(U::Silu), [](T x) { return cm::silu(x); }, rtol, atol);
  check_unary<T>("softplus", un(U::Softplus, {2.0, 3.0}), [](T x) { return cm::softplus(x, T(2), T(3)); }, rtol, atol);
  check_unary<T>("softplus beta 0.5", un(U::Softplus, {0.5, 20.0}),
                 [](T x) { return cm::softplus(x, T(0.5), T(20)); }, rtol, atol);
  check_unary<T>("clamp", un(U::Clamp, {-0.5, 0.7}), [](T x) { return cm::clamp(x, T(-0.5), T(0.7)); }, 0, 0);
  check_unary<T>("clamp lo > hi", un(U::Clamp, {1.0, -1.0}), [](T x) { return cm::clamp(x, T(1), T(-1)); }, 0, 0);
  check_unary<T>("clamp max only", un(U::Clamp, {-kInf, 2.0}), [](T x) { return cm::clamp(x, T(-kInf), T(2)); }, 0, 0);
  for (double a : {2.0, 0.5, 1.0, 3.0, -1.5, 0.0}) {
    INFO("exponent " << a);
    check_unary<T>("pow", un(U::PowScalar, {a, 0}), [a](T x) { return cm::pow_scalar(x, T(a)); }, rtol, atol);
  }
  check_unary<T>("rpow", un(U::RPowScalar, {2.0, 0}), [](T x) { return cm::hd::pow(T(2), x); }, rtol, atol);
  check_unary<T>("add", un(U::AddScalar, {0.25, 0}), [](T x) { return x + T(0.25); }, 0, 0);
  check_unary<T>("mul", un(U::MulScalar, {-3.0, 0}), [](T x) { return x * T(-3); }, 0, 0);
  check_unary<T>("sign", un(U::Sign), [](T x) { return cm::sign(x); }, 0, 0);
  check_unary<T>("reciprocal", un(U::Reciprocal), [](T x) { return cm::reciprocal(x); }, 0, 0);
}

template <typename T> void check_all_backward(double rtol, double atol) {
  using B = UnaryBackwardOp;
  const std::vector<T> xs(kInputs.begin(), kInputs.end());
  std::vector<T> gs(xs.size());
  for (size_t i = 0; i < gs.size(); ++i) gs[i] = static_cast<T>(0.5 + 0.25 * static_cast<double>(i % 5));
  const Tensor x = tensor(xs), g = tensor(gs);
  auto check = [&](const char* name, B op, UnaryParams p, const Tensor& res, const std::function<T(T, T)>& f,
                   bool on_result) {
    INFO("backward " << name << " in " << dtype_name(dtype_of_v<T>));
    const std::vector<double> got = raw::unary_backward(op, g, x, res, p, name).template to_vector<double>();
    const std::vector<T> rv = res.defined() ? res.template to_vector<T>() : xs;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double want = static_cast<double>(f(gs[i], on_result ? rv[i] : xs[i]));
      INFO("x = " << static_cast<double>(xs[i]) << ": kernel " << got[i] << ", scalar_math " << want);
      CHECK(close(got[i], want, rtol, atol));
    }
  };
  check("gelu", B::Gelu, {}, Tensor(), [](T g, T x) { return cm::gelu_backward(g, x); }, false);
  check("gelu_tanh", B::GeluTanh, {}, Tensor(), [](T g, T x) { return cm::gelu_tanh_backward(g, x); }, false);
  check("silu", B::Silu, {}, Tensor(), [](T g, T x) { return cm::silu_backward(g, x); }, false);
  check("softplus", B::Softplus, {2.0, 3.0}, Tensor(),
        [](T g, T x) { return cm::softplus_backward(g, x, T(2), T(3)); }, false);
  check("relu", B::Relu, {}, Tensor(), [](T g, T x) { return cm::relu_backward(g, x); }, false);
  check("sigmoid", B::Sigmoid, {}, sigmoid(x), [](T g, T y) { return cm::sigmoid_backward(g, y); }, true);
  check("tanh", B::Tanh, {}, tanh(x), [](T g, T y) { return cm::tanh_backward(g, y); }, true);
}

template <typename T> void check_int_unary() {
  INFO("dtype " << dtype_name(dtype_of_v<T>));
  std::vector<T> xs;
  // (no values whose negation, square or cube overflows: that is undefined in C++ on both sides)
  if constexpr (std::is_signed_v<T>) {
    xs = {-1000, -100, -7, -2, -1, 0, 1, 2, 3, 7, 100, 1000};
  } else {
    xs = {0, 1, 2, 3, 7, 100, 200, 255};
  }
  const Tensor x = tensor(xs);
  auto check = [&](const char* name, UnaryOp op, UnaryParams p, const std::function<T(T)>& f) {
    INFO("op " << name << " alpha " << p.alpha << " beta " << p.beta);
    const Tensor y = raw::unary(op, x, p, name);
    REQUIRE(y.dtype() == dtype_of_v<T>);
    const std::vector<T> got = y.template to_vector<T>();
    for (size_t i = 0; i < xs.size(); ++i) {
      INFO("x = " << static_cast<int64_t>(xs[i]));
      CHECK(static_cast<int64_t>(got[i]) == static_cast<int64_t>(f(xs[i])));
    }
  };
  check("neg", UnaryOp::Neg, {}, [](T v) { return static_cast<T>(-v); });
  check("abs", UnaryOp::Abs, {}, [](T v) { return cm::absolute(v); });
  check("sign", UnaryOp::Sign, {}, [](T v) { return cm::sign(v); });
  check("relu", UnaryOp::Relu, {}, [](T v) { return cm::relu(v); });
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{{-3.0, 5.0}, {-1.0, 1e30}, {-kInf, 2.5}, {10.0, 0.0},
                                                              {-1e30, 300.0}}) {
    const T l = cm::int_bound<T>(lo), h = cm::int_bound<T>(hi);
    check("clamp", UnaryOp::Clamp, {lo, hi}, [l, h](T v) { return cm::clamp(v, l, h); });
  }
  for (double a : {3.0, -2.0, 2.9, -1e30, kNaN}) {
    const T ai = cm::int_param<T>(a);
    check("add", UnaryOp::AddScalar, {a, 0}, [ai](T v) { return static_cast<T>(v + ai); });
    if (a > -1e3) check("mul", UnaryOp::MulScalar, {a, 0}, [ai](T v) { return static_cast<T>(v * ai); });
  }
  for (double a : {0.0, 1.0, 2.0, 3.0}) {
    const T ai = cm::int_param<T>(a);
    check("pow", UnaryOp::PowScalar, {a, 0}, [ai](T v) { return cm::int_pow<T>(v, ai); });
  }
}

// Bit-exactness of the random draws needs the CPU kernel's multiply-adds to be fused as
// the shared functions fuse them: true where the build targets FMA hardware (-march=native
// on any x86-64 of the last decade); elsewhere the CPU rounds twice and only 1 ulp is
// promised.
#if defined(__FMA__) || defined(__aarch64__)
constexpr bool kFusedCpu = true;
#else
constexpr bool kFusedCpu = false;
#endif

template <typename T> bool same_or_ulp(T got, T want) {
  if (got == want || (std::isnan(got) && std::isnan(want))) return true;
  if (kFusedCpu) return false;
  return std::nextafter(want, got) == got;
}

Tensor cpu_random(const char* kind, DType dt, int64_t n, RandomState rng, double a, double b) {
  Tensor t = empty({n}, dt);
  Backend& be = backend_for(kCPU);
  const std::string k = kind;
  if (k == "uniform") be.uniform(raw::make_view(t), a, b, rng);
  else if (k == "normal") be.normal(raw::make_view(t), a, b, rng);
  else be.randint(raw::make_view(t), static_cast<int64_t>(a), static_cast<int64_t>(b), rng);
  return t;
}

}  // namespace

TEST_SUITE("common_math") {

TEST_CASE("unary ops: scalar_math equals the CPU kernels (float64 to rounding, float32 to a few ulp)") {
  check_all_unary<double>(4e-15, 1e-300);
  // float32: the CPU's vexp/vtanh/vsigmoid/erf-free GELU against libm float functions; the
  // GELU tails carry erfcf's argument rounding (about 2 z^2 ulp).
  check_all_unary<float>(3e-6, 1e-37);
}

TEST_CASE("unary gradients: scalar_math equals the CPU kernels") {
  check_all_backward<double>(4e-15, 1e-300);
  check_all_backward<float>(5e-6, 1e-37);
}

TEST_CASE("integer unary ops: scalar_math equals the CPU kernels exactly") {
  check_int_unary<int64_t>();
  check_int_unary<int32_t>();
  check_int_unary<uint8_t>();
}

TEST_CASE("the device's sin/cos (trig::) agree with libm to 1 ulp for every argument") {
  // ulps between two finite doubles of one sign (or both zero)
  auto ulps = [](double a, double b) -> int64_t {
    if (a == b) return 0;
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
    int64_t ia, ib;
    std::memcpy(&ia, &a, 8);
    std::memcpy(&ib, &b, 8);
    if (ia < 0) ia = INT64_MIN - ia;
    if (ib < 0) ib = INT64_MIN - ib;
    return ia > ib ? ia - ib : ib - ia;
  };
  std::vector<double> xs{0.0, -0.0, 1e-300, 1e-9, 0.5, 0.785398163397448279, 1.5707963267948966, 3.141592653589793,
                         4.71238898038469, 6.283185307179586, 10, 100, 1e5, 1647099.0, 1647100.0, 1e6, 1e9,
                         1e15, 1e22, 1e100, 1e200, 1.79769313486231570815e+308,
                         2.6965218719166e+11};
  std::mt19937_64 gen(11);
  std::uniform_real_distribution<double> e(-30, 1023);
  for (int i = 0; i < 20000; ++i) xs.push_back(std::exp2(e(gen)) * ((gen() & 1) ? 1 : -1));
  std::uniform_real_distribution<double> small(-10, 10);
  for (int i = 0; i < 20000; ++i) xs.push_back(small(gen));
  for (int k = 1; k < 2000; ++k) {  // next to multiples of pi/2, where the reduction cancels
    const double m = k * 1.5707963267948966;
    xs.push_back(m);
    xs.push_back(std::nextafter(m, 0.0));
    xs.push_back(std::nextafter(m, 1e300));
  }
  int64_t worst = 0;
  double worst_x = 0;
  for (double x : xs) {
    for (double v : {x, -x}) {
      double s, c;
      cm::trig::sin_cos(v, s, c);
      const int64_t d = std::max(ulps(s, std::sin(v)), ulps(c, std::cos(v)));
      if (d > worst) {
        worst = d;
        worst_x = v;
      }
    }
  }
  INFO("worst at x = " << worst_x);
  CHECK(worst <= 1);
  double s, c;
  cm::trig::sin_cos(kInf, s, c);
  CHECK((std::isnan(s) && std::isnan(c)));
  cm::trig::sin_cos(kNaN, s, c);
  CHECK((std::isnan(s) && std::isnan(c)));
  cm::trig::sin_cos(-0.0, s, c);
  CHECK((s == 0 && std::signbit(s) && c == 1));
  // The hardest double for the reduction, 6381956970095103 2^797 (62 bits cancel against a
  // multiple of pi/2), against its value to 20 digits (glibc's cos is 8 ulp off there).
  cm::trig::sin_cos(5.319372648326541e+255, s, c);
  CHECK(s == 1.0);
  CHECK(std::fabs(c - -4.6871659242546276111e-19) <= 1e-16 * 4.69e-19);
  // float arguments through double: the correctly rounded float nearly always
  int bad = 0;
  for (int i = 0; i < 20000; ++i) {
    const float f = static_cast<float>(std::fmod(xs[static_cast<size_t>(i) % xs.size()], 3e38));
    const float sf = static_cast<float>(cm::trig::sin(f)), cf = static_cast<float>(cm::trig::cos(f));
    bad += !(sf == std::sin(f) || std::nextafter(std::sin(f), sf) == sf);
    bad += !(cf == std::cos(f) || std::nextafter(std::cos(f), cf) == cf);
  }
  CHECK(bad == 0);
}

TEST_CASE("binary helpers: integer pow and division, NaN-propagating max/min") {
  CHECK(cm::int_pow<int64_t>(3, 4) == 81);
  CHECK(cm::int_pow<int64_t>(-2, 3) == -8);
  CHECK(cm::int_pow<int64_t>(2, -1) == 0);
  CHECK(cm::int_pow<int64_t>(1, -5) == 1);
  CHECK(cm::int_pow<int64_t>(-1, -5) == -1);
  CHECK(cm::int_pow<int64_t>(-1, -4) == 1);
  CHECK(cm::int_pow<int64_t>(0, 0) == 1);
  CHECK(cm::int_pow<uint8_t>(2, 9) == 0);  // wraps
  CHECK(cm::int_pow<int32_t>(3, 19) == 1162261467);
  CHECK(cm::int_pow<bool>(false, false) == true);
  CHECK(cm::int_pow<bool>(false, true) == false);
  CHECK(cm::divide<int64_t>(7, -2) == -3);
  CHECK(cm::divide<int64_t>(-7, 2) == -3);
  CHECK(cm::divide<int32_t>(5, 0) == 0);
  CHECK(cm::divide<uint8_t>(200, 3) == 66);
  CHECK(std::isinf(cm::divide<double>(1.0, 0.0)));
  CHECK(std::isnan(cm::maximum(kNaN, 1.0)));
  CHECK(std::isnan(cm::maximum(1.0, kNaN)));
  CHECK(std::isnan(cm::minimum(2.0f, std::numeric_limits<float>::quiet_NaN())));
  CHECK(cm::maximum<int64_t>(-3, 2) == 2);
  CHECK(cm::minimum<uint8_t>(3, 200) == 3);

  // integer pow and max/min of tensors through the CPU kernels
  const std::vector<int64_t> a{-3, -1, 0, 1, 2, 5, 7, -2}, e{3, 4, 0, 7, 10, 3, 2, 5};
  const std::vector<int64_t> p = raw::binary(BinaryOp::Pow, tensor(a), tensor(e), "pow").to_vector<int64_t>();
  for (size_t i = 0; i < a.size(); ++i) CHECK(p[i] == cm::int_pow<int64_t>(a[i], e[i]));
  const std::vector<double> x{kNaN, 1, -2, 3, kNaN}, y{1, kNaN, 5, -kInf, kNaN};
  const std::vector<double> mx = maximum(tensor(x), tensor(y)).to_vector<double>();
  const std::vector<double> mn = minimum(tensor(x), tensor(y)).to_vector<double>();
  for (size_t i = 0; i < x.size(); ++i) {
    CHECK(close(mx[i], cm::maximum(x[i], y[i]), 0, 0));
    CHECK(close(mn[i], cm::minimum(x[i], y[i]), 0, 0));
  }
}

TEST_CASE("random draws: the shared per-element functions give the CPU kernels' bits") {
  if (!kFusedCpu) MESSAGE("this build's CPU kernels round multiply-adds twice: comparing to 1 ulp");
  const uint64_t seed = 0x1234567890abcdefull;
  for (uint64_t offset : {uint64_t{0}, uint64_t{5}, uint64_t{1} << 33}) {
    INFO("offset " << offset);
    const RandomState rng{seed, offset};
    const int64_t n = 1031;  // not a multiple of 4
    for (auto [lo, hi] : std::vector<std::pair<double, double>>{{0.0, 1.0}, {-3.0, 7.5}, {1e-3, 1e-3 + 1e-9}}) {
      INFO("uniform [" << lo << ", " << hi << ")");
      const std::vector<float> f = cpu_random("uniform", kFloat32, n, rng, lo, hi).to_vector<float>();
      const std::vector<double> d = cpu_random("uniform", kFloat64, n, rng, lo, hi).to_vector<double>();
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t u = static_cast<uint64_t>(i);
        const float want_f = cm::uniform_float(cm::uniform_float_at(seed, offset, u), lo, hi);
        const cm::Philox4 w = cm::philox4x32(offset + u / 2, seed);
        const int k = 2 * static_cast<int>(u % 2);
        const double want_d = cm::uniform_double(cm::u64_to_unit_double(w[k], w[k + 1]), lo, hi);
        bad += !same_or_ulp(f[i], want_f) + !same_or_ulp(d[i], want_d);
        bad += !(f[i] == static_cast<float>(lo) || (f[i] > static_cast<float>(lo) && f[i] < static_cast<float>(hi)));
        bad += !(d[i] >= lo && d[i] < hi);
      }
      CHECK(bad == 0);
    }
    for (auto [mean, std] : std::vector<std::pair<double, double>>{{0.0, 1.0}, {3.0, 0.25}}) {
      INFO("normal mean " << mean << " std " << std);
      const std::vector<float> f = cpu_random("normal", kFloat32, n, rng, mean, std).to_vector<float>();
      const std::vector<double> d = cpu_random("normal", kFloat64, n, rng, mean, std).to_vector<double>();
      int bad = 0;
      for (int64_t i = 0; i + 1 < n; i += 2) {
        const cm::Philox4 w = cm::philox4x32(offset + static_cast<uint64_t>(i) / 2, seed);
        double fe, fo, de, dd;
        cm::normal_pair_float(w[0], w[1], mean, std, fe, fo);
        cm::normal_pair_double(w[0], w[1], w[2], w[3], mean, std, de, dd);
        bad += !same_or_ulp(f[i], static_cast<float>(fe)) + !same_or_ulp(f[i + 1], static_cast<float>(fo));
        bad += !same_or_ulp(d[i], de) + !same_or_ulp(d[i + 1], dd);
      }
      CHECK(bad == 0);
    }
    for (auto [lo, hi] :
         std::vector<std::pair<int64_t, int64_t>>{{-7, 1000}, {0, 2}, {-(int64_t{1} << 62), int64_t{1} << 62}}) {
      INFO("randint [" << lo << ", " << hi << ")");
      const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);  // 2^63 fits only unsigned
      const std::vector<int64_t> v = cpu_random("randint", kInt64, n, rng, static_cast<double>(lo),
                                                static_cast<double>(hi))
                                         .to_vector<int64_t>();
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t u = static_cast<uint64_t>(i);
        const cm::Philox4 w = cm::philox4x32(offset + u / 2, seed);
        const int k = 2 * static_cast<int>(u % 2);
        bad += v[i] != cm::randint_value(w[k], w[k + 1], lo, range);
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("random draws: the same seed gives the same bits on every device") {
  const int64_t n = 4099;
  const uint64_t seed = 77;
  auto draw = [&](Device dev, DType dt, const char* kind) {
    Generator g(seed);
    g.next(3);  // an offset that is not a multiple of 4
    const TensorOptions o = TensorOptions(dt).device(dev);
    const std::string k = kind;
    Tensor t = k == "rand" ? rand({n}, o, &g) : k == "randn" ? randn({n}, o, &g) : randint(-50, 1 << 20, {n}, o, &g);
    return t.cpu();
  };
  auto bits_equal = [](const Tensor& a, const Tensor& b) {
    if (a.dtype() != b.dtype() || a.numel() != b.numel()) return false;
    Tensor ac = a.contiguous(), bc = b.contiguous();
    return std::memcmp(ac.data_ptr(), bc.data_ptr(), static_cast<size_t>(a.numel()) * a.element_size()) == 0;
  };
  FOR_EACH_DEVICE(dev) {
    CHECK(bits_equal(draw(dev, kFloat32, "rand"), draw(kCPU, kFloat32, "rand")));
    CHECK(bits_equal(draw(dev, kFloat64, "rand"), draw(kCPU, kFloat64, "rand")));
    for (DType dt : {kInt64, kInt32, kUInt8, kFloat32, kFloat64}) {
      INFO("randint " << dtype_name(dt));
      CHECK(bits_equal(draw(dev, dt, "randint"), draw(kCPU, dt, "randint")));
    }
    // Box-Muller runs log/sin/cos in double: glibc and CUDA's libm may differ in the last
    // bit of a double, which a float32 result almost never shows.
    {
      const std::vector<float> got = draw(dev, kFloat32, "randn").to_vector<float>();
      const std::vector<float> want = draw(kCPU, kFloat32, "randn").to_vector<float>();
      int differ = 0, far = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        differ += got[i] != want[i];
        far += !(got[i] == want[i] || std::nextafter(want[i], got[i]) == got[i]);
      }
      CHECK(far == 0);
      CHECK(differ <= 1);
      const std::vector<double> gd = draw(dev, kFloat64, "randn").to_vector<double>();
      const std::vector<double> wd = draw(kCPU, kFloat64, "randn").to_vector<double>();
      int dfar = 0;
      for (size_t i = 0; i < gd.size(); ++i) dfar += !close(gd[i], wd[i], 1e-14, 1e-15);
      CHECK(dfar == 0);
    }
    if (dev.is_cuda()) {
      // float16/bfloat16 (the CPU has no random kernels for them): the float32 draw rounded
      // to the dtype, and for uniform lo where that rounding reached hi.
      for (DType dt : {kFloat16, kBFloat16}) {
        INFO("dtype " << dtype_name(dt));
        const std::vector<float> f = draw(kCPU, kFloat32, "rand").to_vector<float>();
        const std::vector<float> got = draw(dev, dt, "rand").to_vector<float>();
        int bad = 0;
        for (size_t i = 0; i < f.size(); ++i) {
          const uint16_t bits = dt == kFloat16 ? cm::float_to_half_bits(f[i]) : cm::float_to_bfloat16_bits(f[i]);
          float want = dt == kFloat16 ? cm::half_bits_to_float(bits) : cm::bfloat16_bits_to_float(bits);
          if (!(want < 1.0f)) want = 0.0f;
          bad += got[i] != want;
        }
        CHECK(bad == 0);
        const Tensor rn = draw(dev, dt, "randn");
        const Tensor want_n = draw(kCPU, kFloat32, "randn").to(dt);
        CHECK(testing::allclose(rn.to(kFloat32), want_n.to(kFloat32), 1e-2, 1e-3));
        CHECK(bits_equal(draw(dev, dt, "randint"), draw(kCPU, kInt64, "randint").to(dt)));
      }
    }
  }
}

TEST_CASE("elementwise kernels agree with the CPU on integer, bool and 16-bit cases") {
  if (!testing::have_cuda()) return;  // have_cuda() printed why
  const Device gpu = Device::cuda(0);
  auto same = [](const Tensor& got, const Tensor& want) {
    CHECK(got.dtype() == want.dtype());
    CHECK(got.shape() == want.shape());
    CHECK(testing::allclose(got.cpu(), want, 0, 0));
  };
  // integers: every op with broadcasting and a non-contiguous operand
  for (DType dt : {kInt64, kInt32, kUInt8}) {
    INFO("dtype " << dtype_name(dt));
    Generator g(5);
    const Tensor a = randint(0, 40, {4, 6}, TensorOptions(dt), &g) - (dt == kUInt8 ? 0 : 20);
    const Tensor a2 = a.to(dt);
    const Tensor b = randint(0, 5, {6}, TensorOptions(dt), &g).to(dt);
    const Tensor at = a2;                                  // CPU operand
    const Tensor at_gpu = a2.t().contiguous().to(gpu).t();  // the same values, non-contiguous on the GPU
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Pow, BinaryOp::Maximum,
                        BinaryOp::Minimum, BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt,
                        BinaryOp::Ge, BinaryOp::LogicalAnd, BinaryOp::LogicalOr, BinaryOp::LogicalXor}) {
      INFO("binary op " << static_cast<int>(op));
      same(raw::binary(op, at_gpu, b.to(gpu), "t"), raw::binary(op, at, b, "t"));
    }
    for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign, UnaryOp::Relu, UnaryOp::LogicalNot}) {
      INFO("unary op " << static_cast<int>(op));
      same(raw::unary(op, at_gpu, {}, "t"), raw::unary(op, at, {}, "t"));
    }
    same(raw::unary(UnaryOp::Clamp, a2.to(gpu), {-1.0, 7.5}, "t"), raw::unary(UnaryOp::Clamp, a2, {-1.0, 7.5}, "t"));
    same(raw::unary(UnaryOp::PowScalar, a2.to(gpu), {3.0, 0}, "t"), raw::unary(UnaryOp::PowScalar, a2, {3.0, 0}, "t"));
    same(raw::unary(UnaryOp::AddScalar, a2.to(gpu), {-9.0, 0}, "t"), raw::unary(UnaryOp::AddScalar, a2, {-9.0, 0}, "t"));
    same(raw::unary(UnaryOp::MulScalar, a2.to(gpu), {3.0, 0}, "t"), raw::unary(UnaryOp::MulScalar, a2, {3.0, 0}, "t"));
    // conversions to and from every dtype
    for (DType to : {kBool, kUInt8, kInt32, kInt64, kFloat32, kFloat64, kFloat16, kBFloat16}) {
      INFO("to " << dtype_name(to));
      same(at_gpu.to(to), at.to(to));
    }
  }
  // bool: logical ops, where, arithmetic as the CPU defines it
  {
    const Tensor p = tensor(std::vector<bool>{true, false, true, false, true, true}).reshape({2, 3});
    const Tensor q = tensor(std::vector<bool>{true, true, false});
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Mul, BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Pow,
                        BinaryOp::Eq, BinaryOp::Lt, BinaryOp::LogicalAnd, BinaryOp::LogicalXor}) {
      INFO("bool binary op " << static_cast<int>(op));
      same(raw::binary(op, p.to(gpu), q.to(gpu), "t"), raw::binary(op, p, q, "t"));
    }
    same(logical_not(p.to(gpu)), logical_not(p));
    const Tensor x = arange(0, 6, 1, kFloat64).reshape({2, 3});
    same(where(p.to(gpu), x.to(gpu), -x.t().contiguous().t().to(gpu)), where(p, x, -x));
    for (DType dt : {kInt64, kUInt8, kBool, kFloat16}) {
      INFO("where " << dtype_name(dt));
      same(where(p.to(gpu), x.to(dt).to(gpu), q.to(dt).to(gpu)), where(p, x.to(dt), q.to(dt)));
    }
  }
  // floating -> integer conversions are defined the same way on both devices
  {
    const Tensor f = tensor(std::vector<double>{kNaN, kInf, -kInf, 3e9, -3e9, 1e20, -1.0, 300.7, -2.5, 0.5});
    for (DType to : {kInt64, kInt32, kUInt8, kBool}) {
      INFO("float64 to " << dtype_name(to));
      same(f.to(gpu).to(to), f.to(to));
      same(f.to(kFloat32).to(gpu).to(to), f.to(kFloat32).to(to));
      same(f.to(kFloat16).to(gpu).to(to), f.to(kFloat16).to(to));
    }
  }
  // float16/bfloat16 arithmetic is computed in float32 and rounded once
  for (DType dt : {kFloat16, kBFloat16}) {
    INFO("dtype " << dtype_name(dt));
    Generator g(9);
    const Tensor a = randn({5, 7}, TensorOptions(kFloat32), &g).to(dt), b = randn({7}, TensorOptions(kFloat32), &g).to(dt);
    const Tensor af = a.to(kFloat32), bf = b.to(kFloat32);
    // +, -, *, /, max, min, comparisons are exact in float32 before the one rounding
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum,
                        BinaryOp::Minimum}) {
      INFO("binary op " << static_cast<int>(op));
      same(raw::binary(op, a.to(gpu), b.to(gpu), "t"), raw::binary(op, af, bf, "t").to(dt));
    }
    for (BinaryOp op : {BinaryOp::Lt, BinaryOp::Eq, BinaryOp::LogicalOr})
      same(raw::binary(op, a.to(gpu), b.to(gpu), "t"), raw::binary(op, af, bf, "t"));
    for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu, UnaryOp::Sign})
      same(raw::unary(op, a.t().to(gpu), {}, "t"), raw::unary(op, af.t(), {}, "t").to(dt));
    for (UnaryOp op : {UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Gelu, UnaryOp::GeluTanh, UnaryOp::Silu}) {
      INFO("unary op " << static_cast<int>(op));
      const Tensor got = raw::unary(op, a.to(gpu), {}, "t").cpu();
      CHECK(got.dtype() == dt);
      CHECK(testing::allclose(got.to(kFloat32), raw::unary(op, af, {}, "t").to(dt).to(kFloat32), 1e-2, 1e-3));
    }
    const Tensor gb = raw::unary_backward(UnaryBackwardOp::Gelu, a.to(gpu), b.to(gpu).expand({5, 7}), Tensor(), {}, "t");
    CHECK(testing::allclose(gb.cpu().to(kFloat32),
                            raw::unary_backward(UnaryBackwardOp::Gelu, af, bf.expand({5, 7}), Tensor(), {}, "t"), 1e-2,
                            1e-2));
  }
}

}  // TEST_SUITE
