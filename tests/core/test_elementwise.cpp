// Elementwise ops: forward values against float64 references computed here with <cmath>
// (all layouts, broadcasting, size-1 / empty / 0-d shapes, integer and bool dtypes, type
// promotion), the float32 fast math of backends/cpu/vec_math.h over a wide range, the
// in-place variants with their version counter, every error path, and gradcheck for
// every differentiable elementwise op and every view op.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kGeluK = 0.79788456080286535588;  // sqrt(2 / pi)

using F1 = std::function<double(double)>;
using F2 = std::function<double(double, double)>;
using Op1 = std::function<Tensor(const Tensor&)>;
using Op2 = std::function<Tensor(const Tensor&, const Tensor&)>;

// float64 reference: f over x's values, in x's shape.
Tensor ref_unary(const Tensor& x, const F1& f) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) e = f(e);
  return tensor(v, x.shape());
}

// float64 reference of a broadcasting binary op.
Tensor ref_binary(const Tensor& a, const Tensor& b, const F2& f) {
  NoGradGuard ng;
  const Shape s = broadcast_shapes(a.shape(), b.shape(), "ref");
  const std::vector<double> va = a.expand(s).to_vector<double>(), vb = b.expand(s).to_vector<double>();
  std::vector<double> out(va.size());
  for (size_t i = 0; i < va.size(); ++i) out[i] = f(va[i], vb[i]);
  return tensor(out, s);
}

Tensor uniform(const Shape& s, DType dt, double lo, double hi) {
  Tensor t = zeros(s, dt);
  if (t.numel() > 0) uniform_(t, lo, hi);
  return t;
}

struct Layout {
  std::string name;
  Tensor t;
};

// The same logical kind of input in several memory layouts and shapes.
std::vector<Layout> layouts(DType dt, double lo, double hi) {
  return {{"contiguous [3, 4]", uniform({3, 4}, dt, lo, hi)},
          {"transposed", uniform({4, 3}, dt, lo, hi).t()},
          {"sliced (step 2)", uniform({3, 8}, dt, lo, hi).slice(1, 1, std::nullopt, 2)},
          {"expanded", uniform({3, 1}, dt, lo, hi).expand({3, 4})},
          {"size-1 dims", uniform({1, 3, 1}, dt, lo, hi)},
          {"permuted 3-d", uniform({2, 3, 4}, dt, lo, hi).permute({2, 0, 1})},
          {"0-d", uniform({}, dt, lo, hi)},
          {"empty", uniform({0, 4}, dt, lo, hi)},
          {"empty inner dim", uniform({4, 0}, dt, lo, hi)}};
}

double gelu_ref(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double gelu_tanh_ref(double x) {
  const double u = kGeluK * (x + 0.044715 * x * x * x);
  return x / (1.0 + std::exp(-2.0 * u));  // = 0.5 x (1 + tanh u), without cancellation
}
double sigmoid_ref(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }
double softplus_ref(double x, double beta, double threshold) {
  return x * beta > threshold ? x : std::log1p(std::exp(beta * x)) / beta;
}
double clamp_ref(double x, double lo, double hi) { return std::isnan(x) ? x : std::min(std::max(x, lo), hi); }

struct UnaryCase {
  const char* name;
  Op1 op;
  F1 ref;
  double lo, hi;  // input range
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, -3, 3},
      {"unary -", [](const Tensor& x) { return -x; }, [](double x) { return -x; }, -3, 3},
      {"exp", [](const Tensor& x) { return focus::exp(x); }, [](double x) { return std::exp(x); }, -5, 5},
      {"Tensor::exp", [](const Tensor& x) { return x.exp(); }, [](double x) { return std::exp(x); }, -5, 5},
      {"log", [](const Tensor& x) { return focus::log(x); }, [](double x) { return std::log(x); }, 0.1, 5},
      {"Tensor::log", [](const Tensor& x) { return x.log(); }, [](double x) { return std::log(x); }, 0.1, 5},
      {"log1p", [](const Tensor& x) { return focus::log1p(x); }, [](double x) { return std::log1p(x); }, -0.9, 5},
      {"sqrt", [](const Tensor& x) { return focus::sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.1, 5},
      {"Tensor::sqrt", [](const Tensor& x) { return x.sqrt(); }, [](double x) { return std::sqrt(x); }, 0.1, 5},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1.0 / std::sqrt(x); }, 0.1, 5},
      {"abs", [](const Tensor& x) { return focus::abs(x); }, [](double x) { return std::abs(x); }, -3, 3},
      {"Tensor::abs", [](const Tensor& x) { return x.abs(); }, [](double x) { return std::abs(x); }, -3, 3},
      {"sin", [](const Tensor& x) { return focus::sin(x); }, [](double x) { return std::sin(x); }, -4, 4},
      {"cos", [](const Tensor& x) { return focus::cos(x); }, [](double x) { return std::cos(x); }, -4, 4},
      {"tanh", [](const Tensor& x) { return focus::tanh(x); }, [](double x) { return std::tanh(x); }, -4, 4},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_ref, -6, 6},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; }, -3, 3},
      {"gelu", [](const Tensor& x) { return gelu(x); }, gelu_ref, -5, 5},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, "tanh"); }, gelu_tanh_ref, -5, 5},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_ref(x); }, -6, 6},
      {"softplus", [](const Tensor& x) { return softplus(x); }, [](double x) { return softplus_ref(x, 1, 20); },
       -6, 6},
      {"softplus beta=2 threshold=3", [](const Tensor& x) { return softplus(x, 2.0, 3.0); },
       [](double x) { return softplus_ref(x, 2, 3); }, -4, 4},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }, [](double x) { return clamp_ref(x, -0.5, 0.7); },
       -2, 2},
      {"clamp min", [](const Tensor& x) { return clamp(x, -0.5, std::nullopt); },
       [](double x) { return clamp_ref(x, -0.5, kInf); }, -2, 2},
      {"clamp max", [](const Tensor& x) { return clamp(x, std::nullopt, 0.7); },
       [](double x) { return clamp_ref(x, -kInf, 0.7); }, -2, 2},
      {"clamp min > max", [](const Tensor& x) { return clamp(x, 1.0, -1.0); }, [](double) { return -1.0; }, -2, 2},
      {"pow 2", [](const Tensor& x) { return focus::pow(x, 2); }, [](double x) { return x * x; }, -3, 3},
      {"pow 3", [](const Tensor& x) { return x.pow(3); }, [](double x) { return x * x * x; }, -3, 3},
      {"pow 0.5", [](const Tensor& x) { return focus::pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, 0.1, 4},
      {"pow -1.5", [](const Tensor& x) { return focus::pow(x, -1.5); }, [](double x) { return std::pow(x, -1.5); },
       0.1, 4},
      {"pow 1", [](const Tensor& x) { return focus::pow(x, 1); }, [](double x) { return x; }, -3, 3},
      {"pow 0", [](const Tensor& x) { return focus::pow(x, 0); }, [](double) { return 1.0; }, -3, 3},
      {"pow(2.5, x)", [](const Tensor& x) { return focus::pow(2.5, x); }, [](double x) { return std::pow(2.5, x); },
       -3, 3},
      {"x + 2.5", [](const Tensor& x) { return x + 2.5; }, [](double x) { return x + 2.5; }, -3, 3},
      {"2.5 + x", [](const Tensor& x) { return 2.5 + x; }, [](double x) { return x + 2.5; }, -3, 3},
      {"x - 1", [](const Tensor& x) { return x - 1; }, [](double x) { return x - 1; }, -3, 3},
      {"2 - x", [](const Tensor& x) { return 2 - x; }, [](double x) { return 2 - x; }, -3, 3},
      {"rsub", [](const Tensor& x) { return rsub(x, 2); }, [](double x) { return 2 - x; }, -3, 3},
      {"x * 3", [](const Tensor& x) { return x * 3; }, [](double x) { return x * 3; }, -3, 3},
      {"-0.5 * x", [](const Tensor& x) { return -0.5 * x; }, [](double x) { return -0.5 * x; }, -3, 3},
      {"x / 4", [](const Tensor& x) { return x / 4; }, [](double x) { return x / 4; }, -3, 3},
      {"2 / x", [](const Tensor& x) { return 2 / x; }, [](double x) { return 2 / x; }, 0.5, 3},
      {"add(x, 1.5)", [](const Tensor& x) { return add(x, 1.5); }, [](double x) { return x + 1.5; }, -3, 3},
      {"sub(x, 1.5)", [](const Tensor& x) { return sub(x, 1.5); }, [](double x) { return x - 1.5; }, -3, 3},
      {"mul(x, 1.5)", [](const Tensor& x) { return mul(x, 1.5); }, [](double x) { return x * 1.5; }, -3, 3},
      {"div(x, 1.5)", [](const Tensor& x) { return div(x, 1.5); }, [](double x) { return x / 1.5; }, -3, 3},
  };
}

struct BinaryCase {
  const char* name;
  Op2 op;
  F2 ref;
  double lo, hi;  // input range (both operands)
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double a, double b) { return a + b; }, -3,
       3},
      {"add alpha=2", [](const Tensor& a, const Tensor& b) { return add(a, b, 2); },
       [](double a, double b) { return a + 2 * b; }, -3, 3},
      {"operator+", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double a, double b) { return a + b; },
       -3, 3},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double a, double b) { return a - b; }, -3,
       3},
      {"sub alpha=0.5", [](const Tensor& a, const Tensor& b) { return sub(a, b, 0.5); },
       [](double a, double b) { return a - 0.5 * b; }, -3, 3},
      {"operator-", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double a, double b) { return a - b; },
       -3, 3},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double a, double b) { return a * b; }, -3,
       3},
      {"operator*", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double a, double b) { return a * b; },
       -3, 3},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, [](double a, double b) { return a / b; }, 0.5,
       3},
      {"operator/", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double a, double b) { return a / b; },
       0.5, 3},
      {"pow", [](const Tensor& a, const Tensor& b) { return focus::pow(a, b); },
       [](double a, double b) { return std::pow(a, b); }, 0.2, 2.5},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, -3, 3},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }, -3, 3},
  };
}

struct ShapePair {
  std::string name;
  Tensor a, b;
};

std::vector<ShapePair> shape_pairs(DType dt, double lo, double hi) {
  auto u = [&](const Shape& s) { return uniform(s, dt, lo, hi); };
  return {{"same shape", u({3, 4}), u({3, 4})},
          {"[2,1,4] with [3,1]", u({2, 1, 4}), u({3, 1})},
          {"[4] with [2,3,4]", u({4}), u({2, 3, 4})},
          {"[3,1] with [1,4]", u({3, 1}), u({1, 4})},
          {"[1] with [2,3]", u({1}), u({2, 3})},
          {"0-d with [2,3]", u({}), u({2, 3})},
          {"[2,3] with 0-d", u({2, 3}), u({})},
          {"0-d with 0-d", u({}), u({})},
          {"[0,3] with [1,3]", u({0, 3}), u({1, 3})},
          {"[2,0] with [2,1]", u({2, 0}), u({2, 1})},
          {"transposed with contiguous", u({4, 3}).t(), u({3, 4})},
          {"sliced with transposed", u({3, 8}).slice(1, 0, std::nullopt, 2), u({4, 3}).t()},
          {"expanded with sliced", u({1, 4}).expand({3, 4}), u({6, 4}).slice(0, 0, std::nullopt, 2)}};
}

// Tolerances of float32 results against float64 references for ordinary ops.
constexpr double kRtol32 = 1e-5, kAtol32 = 1e-6;
constexpr double kRtol64 = 1e-12, kAtol64 = 1e-14;

// Whether a tensor of shape s can be laid out non-contiguously (two dims above 1).
bool can_be_noncontiguous(const Shape& s) {
  int big = 0;
  for (int64_t d : s) big += d > 1;
  return big >= 2;
}

// A float64 leaf requiring grad, values uniform in [lo, hi); with noncontig, a view with
// all dims reversed (so not contiguous).
Tensor grad_input(const Shape& s, double lo, double hi, bool noncontig = false) {
  Tensor x;
  if (noncontig) {
    DimList rev;
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) rev.push_back(d);
    x = uniform(Shape(s.rbegin(), s.rend()), kFloat64, lo, hi).permute(rev);
    REQUIRE(x.shape() == s);
    REQUIRE_FALSE(x.is_contiguous());
  } else {
    x = uniform(s, kFloat64, lo, hi);
  }
  x.requires_grad_();
  return x;
}

// Largest |got - ref| / (atol + rtol |ref|) (<= 1 passes), NaN/inf must match exactly.
double worst_ratio(const Tensor& got, const Tensor& ref, double rtol, double atol, double* at = nullptr,
                   const Tensor* x = nullptr) {
  const std::vector<double> g = got.to_vector<double>();
  std::vector<double> r = ref.to_vector<double>();
  if (got.dtype() == kFloat32)  // what a correctly rounded float32 result would be
    for (double& v : r)
      v = std::abs(v) > std::numeric_limits<float>::max() ? std::copysign(kInf, v) : double(static_cast<float>(v));
  const std::vector<double> xs = x ? x->to_vector<double>() : std::vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    double ratio;
    if (std::isnan(r[i]) || std::isinf(r[i])) ratio = (std::isnan(r[i]) ? std::isnan(g[i]) : g[i] == r[i]) ? 0 : kInf;
    else ratio = std::abs(g[i] - r[i]) / (atol + rtol * std::abs(r[i]));
    if (!(ratio <= worst)) {
      worst = ratio;
      if (at && x) *at = xs[i];
    }
  }
  return worst;
}

}  // namespace

TEST_SUITE("elementwise") {

// ---- forward values -------------------------------------------------------------------------

TEST_CASE("unary ops match float64 references in every layout and both float dtypes") {
  manual_seed(1);
  for (DType dt : {kFloat32, kFloat64}) {
    for (const UnaryCase& c : unary_cases()) {
      for (const Layout& l : layouts(dt, c.lo, c.hi)) {
        INFO(std::string(c.name) << " on " << l.name << " " << dtype_name(dt));
        const Tensor y = c.op(l.t);
        CHECK(y.dtype() == dt);
        CHECK(y.shape() == l.t.shape());
        CHECK(y.is_contiguous());
        if (dt == kFloat32) CHECK(allclose(y, ref_unary(l.t, c.ref), kRtol32, kAtol32));
        else CHECK(allclose(y, ref_unary(l.t, c.ref), kRtol64, kAtol64));
      }
    }
  }
}

TEST_CASE("binary ops match float64 references with broadcasting and any layout") {
  manual_seed(2);
  for (DType dt : {kFloat32, kFloat64}) {
    for (const BinaryCase& c : binary_cases()) {
      for (const ShapePair& p : shape_pairs(dt, c.lo, c.hi)) {
        INFO(std::string(c.name) << " on " << p.name << " " << dtype_name(dt));
        const Tensor y = c.op(p.a, p.b);
        const Tensor r = ref_binary(p.a, p.b, c.ref);
        CHECK(y.dtype() == dt);
        CHECK(y.shape() == r.shape());
        if (dt == kFloat32) CHECK(allclose(y, r, kRtol32, kAtol32));
        else CHECK(allclose(y, r, kRtol64, kAtol64));
      }
    }
  }
}

TEST_CASE("binary ops with mixed float dtypes compute in the promoted dtype") {
  manual_seed(3);
  const Tensor a = uniform({3, 4}, kFloat32, 0.5, 2), b = uniform({4}, kFloat64, 0.5, 2);
  for (const BinaryCase& c : binary_cases()) {
    INFO(std::string(c.name));
    const Tensor y = c.op(a, b);
    CHECK(y.dtype() == kFloat64);
    CHECK(allclose(y, ref_binary(a, b, c.ref), 1e-12, 1e-14));
  }
}

TEST_CASE("large tensors (split across threads) give the same values") {
  manual_seed(11);
  const int prev = get_num_threads();
  set_num_threads(2);
  const Tensor a = uniform({300, 250}, kFloat32, 0.5, 2), b = uniform({250}, kFloat32, 0.5, 2);
  CHECK(allclose(focus::exp(a), ref_unary(a, [](double x) { return std::exp(x); }), kRtol32, kAtol32));
  CHECK(allclose(gelu(a.t()), ref_unary(a.t(), gelu_ref), kRtol32, kAtol32));
  CHECK(allclose(a * b, ref_binary(a, b, [](double x, double y) { return x * y; }), kRtol32, kAtol32));
  CHECK(allclose(focus::pow(a.t(), b.view({250, 1})),
                 ref_binary(a.t(), b.view({250, 1}), [](double x, double y) { return std::pow(x, y); }), kRtol32,
                 kAtol32));
  const Tensor m = gt(a, b);
  CHECK(m.to_vector<bool>() == ref_binary(a, b, [](double x, double y) { return double(x > y); }).to_vector<bool>());
  CHECK(allclose(where(m, a, 0.0), ref_binary(a, b, [](double x, double y) { return x > y ? x : 0.0; }), 0, 0));
  const Tensor c = a.clone();
  c.add_(b, 2);
  CHECK(allclose(c, ref_binary(a, b, [](double x, double y) { return x + 2 * y; }), kRtol32, kAtol32));
  set_num_threads(prev);
}

TEST_CASE("special values: nan, inf, signed zero") {
  const Tensor x = tensor({-kInf, -1.0, -0.0, 0.0, 1.0, kInf, kNaN});
  CHECK(allclose(relu(x), tensor({0.0, 0.0, 0.0, 0.0, 1.0, kInf, kNaN})));
  CHECK(allclose(clamp(x, -0.5, 0.5), tensor({-0.5, -0.5, -0.0, 0.0, 0.5, 0.5, kNaN})));
  CHECK(allclose(focus::exp(x), tensor({0.0, std::exp(-1.0), 1.0, 1.0, std::exp(1.0), kInf, kNaN})));
  CHECK(allclose(sigmoid(x), tensor({0.0, sigmoid_ref(-1), 0.5, 0.5, sigmoid_ref(1), 1.0, kNaN})));
  CHECK(allclose(focus::abs(x), tensor({kInf, 1.0, 0.0, 0.0, 1.0, kInf, kNaN})));
  CHECK(std::signbit(focus::abs(x).to_vector<double>()[2]) == false);
  // NaN propagates through maximum/minimum from either side
  const Tensor a = tensor({1.0, kNaN, kNaN, 2.0}), b = tensor({kNaN, 2.0, kNaN, 1.0});
  CHECK(allclose(maximum(a, b), tensor({kNaN, kNaN, kNaN, 2.0})));
  CHECK(allclose(minimum(a, b), tensor({kNaN, kNaN, kNaN, 1.0})));
  CHECK(allclose(maximum(a.to(kFloat32), b.to(kFloat32)), tensor({kNaN, kNaN, kNaN, 2.0})));
  // division by zero follows IEEE
  CHECK(allclose(tensor({1.f, -1.f, 0.f}) / 0.0, tensor({kInf, -kInf, kNaN})));
  CHECK(allclose(focus::log(tensor({0.0, -1.0})), tensor({-kInf, kNaN})));
  CHECK(allclose(focus::pow(tensor({0.0, 0.0, 2.0}), tensor({0.0, -1.0, kNaN})), tensor({1.0, kInf, kNaN})));
}

TEST_CASE("integer and bool inputs") {
  const Tensor i = tensor<int64_t>({-3, -1, 0, 2, 5});
  CHECK(neg(i).dtype() == kInt64);
  CHECK(neg(i).to_vector<int64_t>() == std::vector<int64_t>{3, 1, 0, -2, -5});
  CHECK(focus::abs(i).to_vector<int64_t>() == std::vector<int64_t>{3, 1, 0, 2, 5});
  CHECK(relu(i).dtype() == kInt64);
  CHECK(relu(i).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 2, 5});
  CHECK(clamp(i, -1, 2).to_vector<int64_t>() == std::vector<int64_t>{-1, -1, 0, 2, 2});
  CHECK(clamp(i, -1, 2).dtype() == kInt64);
  // a floating bound gives a floating result, as torch.clamp
  CHECK(clamp(i, 2.5, std::nullopt).dtype() == kFloat32);
  CHECK(clamp(i, 2.5, std::nullopt).to_vector<float>() == std::vector<float>{2.5f, 2.5f, 2.5f, 2.5f, 5.f});
  // absent bounds saturate to the dtype's range (no overflow of the int32 / uint8 bounds)
  CHECK(clamp(tensor<int32_t>({1, 5, 10}), 3, std::nullopt).to_vector<int32_t>() == std::vector<int32_t>{3, 5, 10});
  CHECK(clamp(tensor<int32_t>({1, 5, 10}), std::nullopt, 6).to_vector<int32_t>() == std::vector<int32_t>{1, 5, 6});
  CHECK(clamp(tensor<uint8_t>({0, 7, 255}), -1, 300).to_vector<uint8_t>() == std::vector<uint8_t>{0, 7, 255});
  CHECK(focus::pow(i, 2).dtype() == kInt64);
  CHECK(focus::pow(i, 2).to_vector<int64_t>() == std::vector<int64_t>{9, 1, 0, 4, 25});
  CHECK(focus::pow(i, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1, 1, 1});
  CHECK((i * 2).to_vector<int64_t>() == std::vector<int64_t>{-6, -2, 0, 4, 10});
  CHECK((i - 1).to_vector<int64_t>() == std::vector<int64_t>{-4, -2, -1, 1, 4});
  CHECK((i + 1.5).dtype() == kFloat32);
  CHECK((i + 1.5).to_vector<float>() == std::vector<float>{-1.5f, 0.5f, 1.5f, 3.5f, 6.5f});
  CHECK((i / 2).dtype() == kFloat32);
  CHECK((i / 2).to_vector<float>() == std::vector<float>{-1.5f, -0.5f, 0.f, 1.f, 2.5f});
  CHECK((i / i).dtype() == kFloat32);
  // floating functions of integers compute in float32
  CHECK(focus::exp(i).dtype() == kFloat32);
  CHECK(allclose(focus::exp(i), ref_unary(i, [](double x) { return std::exp(x); }), kRtol32, kAtol32));
  CHECK(allclose(focus::sqrt(tensor<int32_t>({4, 9, 2})), tensor({2.0, 3.0, std::sqrt(2.0)}), kRtol32, kAtol32));
  CHECK(sigmoid(i).dtype() == kFloat32);
  CHECK(gelu(i).dtype() == kFloat32);
  // uint8 wraps like PyTorch
  const Tensor u = tensor<uint8_t>({1, 2});
  CHECK((u - 5).to_vector<uint8_t>() == std::vector<uint8_t>{252, 253});
  CHECK(neg(u).to_vector<uint8_t>() == std::vector<uint8_t>{255, 254});
  CHECK((u * 200).to_vector<uint8_t>() == std::vector<uint8_t>{200, 144});
  // integer pow
  CHECK(focus::pow(tensor<int64_t>({2, 3}), tensor<int64_t>({3, 2})).to_vector<int64_t>() ==
        std::vector<int64_t>{8, 9});
  CHECK(focus::pow(tensor<int64_t>({2, 1, -1}), tensor<int64_t>({-1, -2, -3})).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 1, -1});
  CHECK(focus::pow(2, tensor<int64_t>({1, 2, 3})).dtype() == kInt64);
  CHECK(focus::pow(2, tensor<int64_t>({1, 2, 3})).to_vector<int64_t>() == std::vector<int64_t>{2, 4, 8});
  CHECK(focus::pow(2.5, tensor<int64_t>({1, 2})).dtype() == kFloat32);
  CHECK(focus::pow(2.5, tensor<int64_t>({1, 2})).to_vector<float>() == std::vector<float>{2.5f, 6.25f});
  CHECK(focus::pow(tensor<int64_t>({2, 3}), 0.5).dtype() == kFloat32);
  CHECK(focus::pow(tensor({1.f, 2.f}), tensor<int64_t>({2})).to_vector<float>() == std::vector<float>{1.f, 4.f});
  // bool
  const Tensor t = tensor<bool>({true, false});
  CHECK((t + t).dtype() == kBool);
  CHECK((t + tensor<bool>({false, false})).to_vector<bool>() == std::vector<bool>{true, false});
  CHECK((t * tensor<bool>({true, true})).to_vector<bool>() == std::vector<bool>{true, false});
  CHECK((t + 1).dtype() == kInt64);
  CHECK((t + 1).to_vector<int64_t>() == std::vector<int64_t>{2, 1});
  CHECK((t * 1.5).dtype() == kFloat32);
  CHECK(focus::exp(t).dtype() == kFloat32);
  CHECK(allclose(focus::exp(t), tensor({std::exp(1.0), 1.0}), kRtol32, kAtol32));
}

TEST_CASE("type promotion of binary ops") {
  struct Case {
    Tensor a, b;
    DType want;
  };
  const std::vector<Case> cases = {
      {tensor<int64_t>({1}), tensor<int64_t>({2}), kInt64},
      {tensor<int32_t>({1}), tensor<int64_t>({2}), kInt64},
      {tensor<uint8_t>({1}), tensor<int32_t>({2}), kInt32},
      {tensor<bool>({true}), tensor<uint8_t>({2}), kUInt8},
      {tensor<int64_t>({1}), tensor({2.f}), kFloat32},
      {tensor({1.f}), tensor({2.0}), kFloat64},
      {tensor<bool>({true}), tensor({2.f}), kFloat32},
      // 0-d tensors only lift the category
      {tensor({1.f, 2.f}), scalar_tensor(2.0, kFloat64), kFloat32},
      {tensor<int32_t>({1, 2}), scalar_tensor(2.5, kFloat64), kFloat64},
      {tensor<uint8_t>({1, 2}), scalar_tensor(int64_t{3}), kUInt8},
      {tensor<int32_t>({1, 2}), scalar_tensor(int64_t{3}), kInt32},
      {scalar_tensor(1.0, kFloat64), scalar_tensor(1.f), kFloat64},
  };
  for (const Case& c : cases) {
    INFO(dtype_name(c.a.dtype()) << " and " << dtype_name(c.b.dtype()) << " (" << c.a.dim() << "-d, " << c.b.dim()
                                 << "-d)");
    CHECK((c.a + c.b).dtype() == c.want);
    CHECK((c.b * c.a).dtype() == c.want);
    CHECK(maximum(c.a, c.b).dtype() == c.want);
    CHECK(where(ones(broadcast_shapes(c.a.shape(), c.b.shape(), "t"), kBool), c.a, c.b).dtype() == c.want);
    CHECK(eq(c.a, c.b).dtype() == kBool);
  }
  // scalars
  CHECK((tensor<int32_t>({1}) + 1).dtype() == kInt32);
  CHECK((tensor<int32_t>({1}) + 1.0).dtype() == kFloat32);
  CHECK((tensor<uint8_t>({1}) * 2).dtype() == kUInt8);
  CHECK((tensor({1.0}) * 2.5f).dtype() == kFloat64);
  CHECK((tensor<bool>({true}) + true).dtype() == kBool);
  CHECK(div(tensor<int32_t>({3}), tensor<int32_t>({2})).to_vector<float>() == std::vector<float>{1.5f});
  CHECK((tensor<int32_t>({1, 2}) * scalar_tensor(2.5, kFloat64)).to_vector<double>() == std::vector<double>{2.5, 5});
}

TEST_CASE("comparisons return bool") {
  const Tensor a = tensor({1.f, 2.f, 3.f, 4.f}), b = tensor({4.f, 2.f, 1.f, 4.f});
  using V = std::vector<bool>;
  CHECK(eq(a, b).dtype() == kBool);
  CHECK(eq(a, b).to_vector<bool>() == V{false, true, false, true});
  CHECK(ne(a, b).to_vector<bool>() == V{true, false, true, false});
  CHECK(lt(a, b).to_vector<bool>() == V{true, false, false, false});
  CHECK(le(a, b).to_vector<bool>() == V{true, true, false, true});
  CHECK(gt(a, b).to_vector<bool>() == V{false, false, true, false});
  CHECK(ge(a, b).to_vector<bool>() == V{false, true, true, true});
  CHECK(eq(a, 2).to_vector<bool>() == V{false, true, false, false});
  CHECK(ne(a, 2).to_vector<bool>() == V{true, false, true, true});
  CHECK(lt(a, 2.5).to_vector<bool>() == V{true, true, false, false});
  CHECK(le(a, 2).to_vector<bool>() == V{true, true, false, false});
  CHECK(gt(a, 2.5).to_vector<bool>() == V{false, false, true, true});
  CHECK(ge(a, 3).to_vector<bool>() == V{false, false, true, true});
  // broadcasting and non-contiguous operands
  const Tensor c = tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3});
  const Tensor r = tensor({2.0, 4.0, 6.0}).view({3, 1});
  CHECK(lt(c.t(), r).shape() == Shape{3, 2});
  CHECK(lt(c.t(), r).to_vector<bool>() == V{true, false, true, false, true, false});
  CHECK(ge(c, r.t()).to_vector<bool>() == V{false, false, false, true, true, true});
  CHECK(eq(zeros({0, 3}), zeros({1, 3})).shape() == Shape{0, 3});
  // mixed dtypes compare in the promoted dtype
  CHECK(eq(tensor<int64_t>({1, 2}), tensor({1.0, 2.5})).to_vector<bool>() == V{true, false});
  CHECK(eq(tensor<int64_t>({1, 2}), 1.5).to_vector<bool>() == V{false, false});
  CHECK(lt(tensor<int64_t>({1, 2}), 1.5).to_vector<bool>() == V{true, false});
  CHECK(eq(tensor<bool>({true, false}), tensor<bool>({true, true})).to_vector<bool>() == V{true, false});
  // NaN is unordered and unequal to itself
  const Tensor n = tensor({kNaN, 1.0});
  CHECK(eq(n, n).to_vector<bool>() == V{false, true});
  CHECK(ne(n, n).to_vector<bool>() == V{true, false});
  CHECK(lt(n, 2.0).to_vector<bool>() == V{false, true});
  CHECK(ge(n, 0.0).to_vector<bool>() == V{false, true});
  // no gradient flows through comparisons
  const Tensor w = tensor({1.0, 2.0}).requires_grad_();
  CHECK_FALSE(gt(w, 1.0).requires_grad());
}

TEST_CASE("logical ops return bool for any input dtype") {
  using V = std::vector<bool>;
  const Tensor f = tensor({1.f, 0.f, 2.f, 0.f}), i = tensor<int64_t>({3, 3, 0, 0});
  CHECK(logical_and(f, i).dtype() == kBool);
  CHECK(logical_and(f, i).to_vector<bool>() == V{true, false, false, false});
  CHECK(logical_or(f, i).to_vector<bool>() == V{true, true, true, false});
  CHECK(logical_xor(f, i).to_vector<bool>() == V{false, true, true, false});
  CHECK(logical_not(f).to_vector<bool>() == V{false, true, false, true});
  CHECK(logical_not(i).dtype() == kBool);
  const Tensor a = tensor<bool>({true, true, false, false}), b = tensor<bool>({true, false, true, false});
  CHECK((a & b).to_vector<bool>() == V{true, false, false, false});
  CHECK((a | b).to_vector<bool>() == V{true, true, true, false});
  CHECK((~a).to_vector<bool>() == V{false, false, true, true});
  // broadcasting, non-contiguous
  const Tensor m = tensor<bool>({true, false, false, true, true, false}, {2, 3});
  CHECK(logical_and(m.t(), tensor<bool>({true, false})).to_vector<bool>() == V{true, false, false, false, false, false});
  CHECK(logical_or(m, tensor<bool>({false})).to_vector<bool>() == m.to_vector<bool>());
  CHECK(logical_not(zeros({2, 0})).shape() == Shape{2, 0});
}

TEST_CASE("where and masked_fill") {
  manual_seed(4);
  const Tensor cond = tensor<bool>({true, false}).view({2, 1});
  const Tensor a = uniform({1, 3}, kFloat32, -1, 1), b = uniform({2, 3}, kFloat32, -1, 1);
  const Tensor y = where(cond, a, b);
  CHECK(y.shape() == Shape{2, 3});
  const std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>(), vy = y.to_vector<float>();
  CHECK(vy == std::vector<float>{va[0], va[1], va[2], vb[3], vb[4], vb[5]});
  // non-contiguous condition and operands
  const Tensor c2 = tensor<bool>({true, false, false, true, true, false}, {2, 3}).t();
  const Tensor y2 = where(c2, b.t(), 0.5);
  CHECK(y2.shape() == Shape{3, 2});
  CHECK(y2.to_vector<float>() == std::vector<float>{vb[0], vb[3], 0.5f, vb[4], 0.5f, 0.5f});
  // promotion: integer with floating
  const Tensor wi = where(tensor<bool>({true, false}), tensor<int64_t>({1, 2}), tensor({0.5f, 0.25f}));
  CHECK(wi.dtype() == kFloat32);
  CHECK(wi.to_vector<float>() == std::vector<float>{1.f, 0.25f});
  CHECK(where(tensor<bool>({true, false}), tensor<int64_t>({1, 2}), 2.5).dtype() == kFloat32);
  CHECK(where(tensor<bool>({true, false}), tensor<int64_t>({1, 2}), 7).to_vector<int64_t>() ==
        std::vector<int64_t>{1, 7});
  CHECK(where(zeros({0}, kBool), zeros({1}), ones({1})).shape() == Shape{0});

  const Tensor x = tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3});
  const Tensor mask = tensor<bool>({true, false, true});
  CHECK(masked_fill(x, mask, -1).to_vector<float>() == std::vector<float>{-1, 2, -1, -1, 5, -1});
  CHECK(x.masked_fill(mask, 0.5).to_vector<float>() == std::vector<float>{0.5f, 2, 0.5f, 0.5f, 5, 0.5f});
  CHECK(masked_fill(x.t(), tensor<bool>({true, false}), 0).to_vector<float>() ==
        std::vector<float>{0, 4, 0, 5, 0, 6});
  CHECK(masked_fill(x, mask, -kInf).to_vector<float>()[0] == -std::numeric_limits<float>::infinity());
  CHECK(masked_fill(x, mask, 1).dtype() == kFloat32);
  // integer tensors keep their dtype (a floating value is truncated, as PyTorch)
  CHECK(masked_fill(tensor<int64_t>({1, 2}), tensor<bool>({true, false}), 7).to_vector<int64_t>() ==
        std::vector<int64_t>{7, 2});
  CHECK(masked_fill(tensor<int64_t>({1, 2}), tensor<bool>({true, false}), 2.5).to_vector<int64_t>() ==
        std::vector<int64_t>{2, 2});
  CHECK(masked_fill(zeros({0, 3}), mask, 1).shape() == Shape{0, 3});
}

// ---- float32 fast math (backends/cpu/vec_math.h) ----------------------------------------

TEST_CASE("float32 transcendental functions over a wide range against float64") {
  // 40001 points on [-20, 20] (every 0.001), extremes, and the edges of exp's range.
  std::vector<float> xs;
  for (int i = -20000; i <= 20000; ++i) xs.push_back(static_cast<float>(i) * 0.001f);
  for (float v : {-1e30f, -100.f, -88.8f, -87.4f, -1e-30f, 1e-30f, 87.4f, 88.7f, 88.75f, 100.f, 1e30f})
    xs.push_back(v);
  for (float v : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                  std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest()})
    xs.push_back(v);
  const Tensor x = tensor(xs);
  // exp down to its underflow and up to its overflow threshold, subnormal results included
  const Tensor xe = linspace(-104.0, 89.0, 20001, kFloat32);

  // Tolerances: 1 float32 ulp is at most 1.19e-7 relative. exp, sigmoid and softplus
  // compute subnormal results directly and must get them to 2 ulp of the smallest
  // subnormal (3e-45); silu and gelu multiply a subnormal intermediate by x, so their
  // subnormal results (below 1.2e-38) only get an absolute 1e-40.
  const double tiny = 3e-45, subnormal = 1e-40;
  struct Case {
    const char* name;
    Op1 op;
    F1 ref;
    double rtol, atol;
  };
  const std::vector<Case> cases = {
      {"exp", [](const Tensor& t) { return focus::exp(t); }, [](double v) { return std::exp(v); }, 2.5e-7, tiny},
      {"tanh", [](const Tensor& t) { return focus::tanh(t); }, [](double v) { return std::tanh(v); }, 2.5e-7, tiny},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }, sigmoid_ref, 4e-7, tiny},
      {"softplus", [](const Tensor& t) { return softplus(t); }, [](double v) { return softplus_ref(v, 1, 20); },
       5e-7, tiny},
      {"silu", [](const Tensor& t) { return silu(t); }, [](double v) { return v * sigmoid_ref(v); }, 1e-6,
       subnormal},
      // relative accuracy in the negative tail too (no 1 + erf(x / sqrt 2) cancellation)
      {"gelu", [](const Tensor& t) { return gelu(t); }, gelu_ref, 1e-6, subnormal},
  };
  for (const Case& c : cases) {
    for (const Tensor& in : {x, xe}) {
      INFO(std::string(c.name) << " on " << std::string(in.is_same(x) ? "[-20, 20] + extremes" : "[-104, 89]"));
      double at = 0;
      const double ratio = worst_ratio(c.op(in), ref_unary(in, c.ref), c.rtol, c.atol, &at, &in);
      INFO("worst at x = " << at << ": " << ratio << " of the tolerance");
      CHECK(ratio <= 1.0);
    }
  }
  // tanh-GELU: the float32 rounding of u = k (x + 0.044715 x^3) is amplified by |u| in
  // the negative tail, so the relative tolerance grows with |u| there.
  {
    const Tensor got = gelu(x, "tanh"), ref = ref_unary(x, gelu_tanh_ref);
    const std::vector<double> g = got.to_vector<double>(), r = ref.to_vector<double>();
    int bad = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double u = kGeluK * (double(xs[i]) + 0.044715 * double(xs[i]) * xs[i] * xs[i]);
      const double tol = subnormal + (1e-6 + 2.5e-7 * std::abs(u)) * std::abs(r[i]);
      const bool ok = std::isnan(r[i]) ? std::isnan(g[i]) : (std::isinf(r[i]) ? g[i] == r[i] : std::abs(g[i] - r[i]) <= tol);
      if (!ok && bad++ < 3) MESSAGE("gelu tanh at " << xs[i] << ": " << g[i] << " vs " << r[i]);
    }
    CHECK(bad == 0);
  }
  // exact values at the extremes
  const float finf = std::numeric_limits<float>::infinity();
  const Tensor e = tensor({-finf, -104.f, -100.f, 88.7f, 88.75f, 100.f, finf});
  const std::vector<float> ev = focus::exp(e).to_vector<float>();
  CHECK(ev[0] == 0.f);
  CHECK(ev[1] == 0.f);
  CHECK(ev[2] == static_cast<float>(std::exp(-100.0)));  // subnormal, correctly rounded
  CHECK(ev[3] == static_cast<float>(std::exp(double(88.7f))));
  CHECK(ev[4] == finf);
  CHECK(ev[5] == finf);
  CHECK(ev[6] == finf);
  CHECK(focus::tanh(e).to_vector<float>() == std::vector<float>{-1, -1, -1, 1, 1, 1, 1});
  CHECK(sigmoid(e).to_vector<float>() ==
        std::vector<float>{0, 0, static_cast<float>(std::exp(-100.0)), 1, 1, 1, 1});
  CHECK(gelu(e).to_vector<float>()[6] == finf);
  CHECK(std::isnan(gelu(e).to_vector<float>()[0]));  // -inf * Phi(-inf), as PyTorch
  CHECK(gelu(e).to_vector<float>()[2] == 0.f);
  CHECK(softplus(e).to_vector<float>() ==
        std::vector<float>{0, 0, static_cast<float>(std::exp(-100.0)), 88.7f, 88.75f, 100.f, finf});
}

TEST_CASE("float32 fused activation gradients against float64 over a wide range") {
  const Tensor x32 = linspace(-20.0, 20.0, 8001, kFloat32).requires_grad_();
  const Tensor x64 = x32.detach().to(kFloat64).requires_grad_();  // the same points
  const std::vector<std::pair<const char*, Op1>> cases = {
      {"gelu", [](const Tensor& t) { return gelu(t); }},
      {"gelu tanh", [](const Tensor& t) { return gelu(t, "tanh"); }},
      {"silu", [](const Tensor& t) { return silu(t); }},
      {"softplus", [](const Tensor& t) { return softplus(t); }},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }},
      {"tanh", [](const Tensor& t) { return focus::tanh(t); }},
  };
  for (const auto& [name, f] : cases) {
    INFO(std::string(name));
    const Tensor g32 = autograd::grad({f(x32)}, {x32}, {ones({8001})})[0];
    const Tensor g64 = autograd::grad({f(x64)}, {x64}, {ones({8001}, kFloat64)})[0];
    CHECK(g32.dtype() == kFloat32);
    CHECK(allclose(g32, g64, 2e-6, 5e-7));
  }
}

// ---- in-place ops and the version counter ---------------------------------------------------

TEST_CASE("in-place arithmetic writes through views and bumps the version once") {
  manual_seed(5);
  const Tensor base = uniform({3, 4}, kFloat64, 0.5, 2);
  const Tensor other = uniform({4}, kFloat64, 0.5, 2);
  struct Case {
    const char* name;
    std::function<void(const Tensor&)> op;
    F2 ref;  // new value from (old value, other value)
  };
  const std::vector<Case> cases = {
      {"add_", [&](const Tensor& t) { t.add_(other); }, [](double a, double b) { return a + b; }},
      {"add_ alpha", [&](const Tensor& t) { t.add_(other, -2); }, [](double a, double b) { return a - 2 * b; }},
      {"add_ scalar", [&](const Tensor& t) { t.add_(1.5); }, [](double a, double) { return a + 1.5; }},
      {"sub_", [&](const Tensor& t) { t.sub_(other); }, [](double a, double b) { return a - b; }},
      {"sub_ alpha", [&](const Tensor& t) { t.sub_(other, 0.5); }, [](double a, double b) { return a - 0.5 * b; }},
      {"sub_ scalar", [&](const Tensor& t) { t.sub_(2); }, [](double a, double) { return a - 2; }},
      {"mul_", [&](const Tensor& t) { t.mul_(other); }, [](double a, double b) { return a * b; }},
      {"mul_ scalar", [&](const Tensor& t) { t.mul_(-3); }, [](double a, double) { return a * -3; }},
      {"div_", [&](const Tensor& t) { t.div_(other); }, [](double a, double b) { return a / b; }},
      {"div_ scalar", [&](const Tensor& t) { t.div_(4); }, [](double a, double) { return a / 4; }},
      {"fill_", [&](const Tensor& t) { t.fill_(7.5); }, [](double, double) { return 7.5; }},
      {"zero_", [&](const Tensor& t) { t.zero_(); }, [](double, double) { return 0.0; }},
      {"copy_", [&](const Tensor& t) { t.copy_(other); }, [](double, double b) { return b; }},
      {"clamp_", [&](const Tensor& t) { t.clamp_(0.8, 1.6); }, [](double a, double) { return clamp_ref(a, 0.8, 1.6); }},
      {"clamp_ min", [&](const Tensor& t) { t.clamp_(1.0, std::nullopt); },
       [](double a, double) { return std::max(a, 1.0); }},
      {"masked_fill_",
       [&](const Tensor& t) { t.masked_fill_(tensor<bool>({true, false, false, true}), -1); },
       [](double a, double) { return a; }},  // checked separately below
  };
  for (const Case& c : cases) {
    for (bool transposed : {false, true}) {
      INFO(std::string(c.name) << std::string(transposed ? " on a transposed view" : ""));
      // the target: base itself, or a [4, 3] view whose transpose is base's layout
      const Tensor owner = base.clone();
      const Tensor t = transposed ? owner.t().contiguous().t() : owner;  // same values, other layout
      REQUIRE(t.is_contiguous() != transposed);
      const std::vector<double> before = t.to_vector<double>();
      const uint64_t v0 = t.version();
      c.op(t);
      CHECK(t.version() == v0 + 1);
      const std::vector<double> after = t.to_vector<double>();
      const std::vector<double> ov = other.expand({3, 4}).to_vector<double>();
      for (size_t i = 0; i < after.size(); ++i) {
        double want = c.ref(before[i], ov[i]);
        if (std::string(c.name) == "masked_fill_") want = (i % 4 == 0 || i % 4 == 3) ? -1.0 : before[i];
        CHECK(after[i] == doctest::Approx(want).epsilon(1e-14));
      }
    }
  }
  // writes through a view reach the base and share its version counter
  const Tensor x = zeros({3, 4});
  const Tensor col = x.select(1, 2);
  const uint64_t v0 = x.version();
  col.fill_(5);
  x.slice(1, 0, std::nullopt, 2).add_(1);
  x.t().mul_(2);
  CHECK(x.version() == v0 + 3);
  CHECK(col.version() == x.version());
  CHECK(x.to_vector<float>() == std::vector<float>{2, 0, 12, 0, 2, 0, 12, 0, 2, 0, 12, 0});
  // self as other, and overlapping other layouts (read before being overwritten)
  const Tensor s = tensor({1.0, 2.0, 3.0, 4.0}, {2, 2});
  s.add_(s);
  CHECK(s.to_vector<double>() == std::vector<double>{2, 4, 6, 8});
  s.add_(s.t());
  CHECK(s.to_vector<double>() == std::vector<double>{4, 10, 10, 16});
  s.copy_(s.t().contiguous().t());  // same values, another layout: no-op
  CHECK(s.to_vector<double>() == std::vector<double>{4, 10, 10, 16});
  const Tensor q = tensor({1.0, 2.0, 3.0, 4.0}, {2, 2});
  q.copy_(q.t());
  CHECK(q.to_vector<double>() == std::vector<double>{1, 3, 2, 4});
  const Tensor r = tensor({1.0, 2.0, 3.0, 4.0});
  r.slice(0, 1).copy_(r.slice(0, 0, 3));
  CHECK(r.to_vector<double>() == std::vector<double>{1, 1, 2, 3});
  // empty tensors: nothing to write, the version still moves
  const Tensor e = zeros({0, 3});
  e.add_(1);
  e.fill_(2);
  CHECK(e.version() == 2);
}

TEST_CASE("in-place ops on integer and bool tensors") {
  const Tensor i = tensor<int64_t>({1, 2, 3});
  i.add_(2);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{3, 4, 5});
  i.mul_(tensor<int64_t>({2}));
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{6, 8, 10});
  i.sub_(tensor<int32_t>({1, 2, 3}));
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{5, 6, 7});
  i.clamp_(6, std::nullopt);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{6, 6, 7});
  i.masked_fill_(tensor<bool>({false, true, false}), -1);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{6, -1, 7});
  i.copy_(tensor({1.7f, -2.7f, 3.2f}));  // truncates like a dtype conversion
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3});
  i.fill_(9);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{9, 9, 9});
  const Tensor f = tensor({1.f, 2.f});
  f.add_(tensor({0.5, 0.25}));  // float64 other into float32 self: allowed, as PyTorch
  CHECK(f.to_vector<float>() == std::vector<float>{1.5f, 2.25f});
  f.mul_(tensor<int64_t>({2, 4}));
  CHECK(f.to_vector<float>() == std::vector<float>{3.f, 9.f});
  const Tensor b = tensor<bool>({true, false});
  b.fill_(true);
  CHECK(b.to_vector<bool>() == std::vector<bool>{true, true});
}

TEST_CASE("changing in place a tensor that backward needs is an error, not a wrong gradient") {
  const Tensor x = tensor({0.5, 1.0, 2.0}).requires_grad_();
  {  // an input saved by the op (sin saves its input)
    const Tensor a = x * 1.0;
    const Tensor b = focus::sin(a);
    a.add_(1);
    CHECK_THROWS_WITH_AS(b.backward(ones({3}, kFloat64)),
                         "[backward] a tensor needed for gradient computation by SinBackward0 was modified by an "
                         "in-place operation: it had version 0 when saved and has version 1 now (shape [3])",
                         Error);
  }
  {  // an output saved by the op (exp saves its result)
    const Tensor y = focus::exp(x * 1.0);
    y.mul_(2);
    const Tensor z = y * 1.0;
    CHECK_THROWS_WITH_AS(z.backward(ones({3}, kFloat64)),
                         "[backward] a tensor needed for gradient computation by ExpBackward0 was modified by an "
                         "in-place operation: it had version 0 when saved and has version 1 now (shape [3])",
                         Error);
  }
  {  // through a view, under NoGradGuard, by each in-place op
    const std::vector<std::pair<const char*, std::function<void(const Tensor&)>>> writes = {
        {"add_", [](const Tensor& t) { t.add_(1.0); }},
        {"sub_", [](const Tensor& t) { t.sub_(ones({1}, kFloat64)); }},
        {"mul_", [](const Tensor& t) { t.mul_(2.0); }},
        {"div_", [](const Tensor& t) { t.div_(ones({1}, kFloat64)); }},
        {"fill_", [](const Tensor& t) { t.fill_(3); }},
        {"zero_", [](const Tensor& t) { t.zero_(); }},
        {"copy_", [](const Tensor& t) { t.copy_(zeros({1}, kFloat64)); }},
        {"clamp_", [](const Tensor& t) { t.clamp_(0, 1); }},
        {"masked_fill_", [](const Tensor& t) { t.masked_fill_(tensor<bool>({true}), 0); }},
    };
    for (const auto& [name, write] : writes) {
      INFO(std::string(name));
      const Tensor a = x * 1.0;
      const Tensor b = a * a;  // saves a (twice)
      {
        NoGradGuard ng;
        write(a.narrow(0, 1, 1));
      }
      CHECK_THROWS_WITH_AS(b.backward(ones({3}, kFloat64)),
                           "[backward] a tensor needed for gradient computation by MulBackward0 was modified by an "
                           "in-place operation: it had version 0 when saved and has version 1 now (shape [3])",
                           Error);
    }
  }
}

TEST_CASE("in-place ops record differentiable history") {
  manual_seed(6);
  const Tensor w = uniform({3, 4}, kFloat64, 0.5, 2).requires_grad_();
  const Tensor o = uniform({3, 4}, kFloat64, 0.5, 2).requires_grad_();
  auto run = [&](const char* name, const std::function<void(const Tensor&, const Tensor&)>& op) {
    INFO(std::string(name));
    CHECK(gradcheck(
        [&](const std::vector<Tensor>& v) {
          Tensor y = v[0] * 1.0;  // a non-leaf to modify in place
          op(y, v[1]);
          return y * y;  // something that uses the result nonlinearly
        },
        {w, o}));
  };
  run("add_", [](const Tensor& y, const Tensor& b) { y.add_(b, 0.5); });
  run("sub_", [](const Tensor& y, const Tensor& b) { y.sub_(b); });
  run("mul_", [](const Tensor& y, const Tensor& b) { y.mul_(b); });
  run("div_", [](const Tensor& y, const Tensor& b) { y.div_(b); });
  run("copy_", [](const Tensor& y, const Tensor& b) { y.copy_(b); });
  run("scalar ops", [](const Tensor& y, const Tensor&) { y.add_(1.0).mul_(3.0).sub_(0.5).div_(2.0); });
  run("clamp_", [](const Tensor& y, const Tensor&) { y.clamp_(0.8, 1.6); });
  run("masked_fill_", [](const Tensor& y, const Tensor&) { y.masked_fill_(tensor<bool>({true, false, false, true}), 2); });
  run("fill_", [](const Tensor& y, const Tensor& b) { y.fill_(2); y.add_(b); });
  run("zero_", [](const Tensor& y, const Tensor& b) { y.zero_(); y.add_(b); });
  // grad_fn names follow PyTorch
  const Tensor y = w * 1.0;
  y.add_(o);
  CHECK(y.grad_fn()->name() == "AddBackward0");
  y.mul_(2.0);
  CHECK(y.grad_fn()->name() == "MulBackward1");
  y.clamp_(0, 1);
  CHECK(y.grad_fn()->name() == "ClampBackward1");
  y.copy_(o);
  CHECK(y.grad_fn()->name() == "CopyBackwards");
  // a tensor that did not require grad starts requiring it when written from one that does
  const Tensor z = zeros({3, 4}, kFloat64);
  z.add_(o);
  CHECK(z.requires_grad());
  CHECK(z.grad_fn()->name() == "AddBackward0");
}

// ---- errors -----------------------------------------------------------------------------------

TEST_CASE("elementwise errors") {
  const Tensor x = zeros({2, 3}), y = zeros({4});
  CHECK_THROWS_WITH_AS(add(x, y), "[add] shapes [2, 3] and [4] cannot be broadcast together (dim -1: 3 vs 4)", Error);
  CHECK_THROWS_WITH_AS(x * y, "[mul] shapes [2, 3] and [4] cannot be broadcast together (dim -1: 3 vs 4)", Error);
  CHECK_THROWS_WITH_AS(maximum(x, y),
                       "[maximum] shapes [2, 3] and [4] cannot be broadcast together (dim -1: 3 vs 4)", Error);
  CHECK_THROWS_WITH_AS(lt(x, y), "[lt] shapes [2, 3] and [4] cannot be broadcast together (dim -1: 3 vs 4)", Error);
  CHECK_THROWS_WITH_AS(add(Tensor(), x), "[add] argument 'input' is an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(mul(x, Tensor()), "[mul] argument 'other' is an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(focus::exp(Tensor()), "[exp] argument 'input' is an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(neg(tensor<bool>({true})),
                       "[neg] negation of a bool tensor is not supported; use logical_not", Error);
  CHECK_THROWS_WITH_AS(relu(tensor<bool>({true})), "[relu] bool inputs are not supported", Error);
  CHECK_THROWS_WITH_AS(focus::abs(tensor<bool>({true})), "[abs] bool inputs are not supported", Error);
  CHECK_THROWS_WITH_AS(sub(tensor<bool>({true}), tensor<bool>({true})),
                       "[sub] subtraction of bool tensors is not supported; use logical_xor", Error);
  CHECK_THROWS_WITH_AS(gelu(x, "fast"), "[gelu] approximate must be 'none' or 'tanh', got 'fast'", Error);
  CHECK_THROWS_WITH_AS(softplus(x, 0.0), "[softplus] beta must be nonzero", Error);
  CHECK_THROWS_WITH_AS(clamp(x, std::nullopt, std::nullopt), "[clamp] at least one of min and max must be given",
                       Error);
  CHECK_THROWS_WITH_AS(focus::pow(tensor<int64_t>({2}), -1), "[pow] integers to negative integer powers are not allowed",
                       Error);
  CHECK_THROWS_WITH_AS(where(x, x, x), "[where] condition must be a bool tensor, got float32", Error);
  CHECK_THROWS_WITH_AS(where(ones({2, 3}, kBool), x, y),
                       "[where] shapes [2, 3] and [4] cannot be broadcast together (dim -1: 3 vs 4)", Error);
  CHECK_THROWS_WITH_AS(masked_fill(x, zeros({3}), 1), "[masked_fill] mask must be a bool tensor, got float32", Error);
  CHECK_THROWS_WITH_AS(masked_fill(zeros({3}), ones({2, 3}, kBool), 1),
                       "[masked_fill] mask of shape [2, 3] cannot be broadcast to the input's shape [3]", Error);
  CHECK_THROWS_WITH_AS(masked_fill(x, ones({2}, kBool), 1),
                       "[masked_fill] shapes [2, 3] and [2] cannot be broadcast together (dim -1: 3 vs 2)", Error);
  // in-place
  CHECK_THROWS_WITH_AS(zeros({3}).add_(zeros({2, 3})),
                       "[add_] output with shape [3] doesn't match the broadcast shape of [3] and [2, 3]", Error);
  CHECK_THROWS_WITH_AS(zeros({3}, kInt64).add_(ones({3})),
                       "[add_] result type float32 can't be cast to the desired output type int64", Error);
  CHECK_THROWS_WITH_AS(zeros({3}, kInt64).add_(1.5),
                       "[add_] result type float32 can't be cast to the desired output type int64", Error);
  CHECK_THROWS_WITH_AS(zeros({3}, kInt64).div_(2),
                       "[div_] result type float32 can't be cast to the desired output type int64", Error);
  CHECK_THROWS_WITH_AS(zeros({3}, kInt64).div_(ones({3}, kInt64)),
                       "[div_] result type float32 can't be cast to the desired output type int64", Error);
  CHECK_THROWS_WITH_AS(zeros({3}, kBool).add_(ones({3}, kInt64)),
                       "[add_] result type int64 can't be cast to the desired output type bool", Error);
  CHECK_THROWS_WITH_AS(zeros({3}, kInt64).clamp_(0.5, std::nullopt),
                       "[clamp_] result type float32 can't be cast to the desired output type int64", Error);
  CHECK_THROWS_WITH_AS(zeros({3}).clamp_(std::nullopt, std::nullopt),
                       "[clamp_] at least one of min and max must be given", Error);
  const std::string overlap =
      "unsupported in-place operation: more than one element of the written-to tensor refers to a single memory "
      "location (shape [2, 3], strides [0, 1]); clone() it first";
  const Tensor ex = zeros({3}).expand({2, 3});
  CHECK_THROWS_WITH_AS(ex.add_(1), ("[add_] " + overlap).c_str(), Error);
  CHECK_THROWS_WITH_AS(ex.mul_(ones({3})), ("[mul_] " + overlap).c_str(), Error);
  CHECK_THROWS_WITH_AS(ex.fill_(1), ("[fill_] " + overlap).c_str(), Error);
  CHECK_THROWS_WITH_AS(ex.clamp_(0, 1), ("[clamp_] " + overlap).c_str(), Error);
  CHECK_THROWS_WITH_AS(ex.masked_fill_(ones({3}, kBool), 1), ("[masked_fill_] " + overlap).c_str(), Error);
  CHECK_THROWS_WITH_AS(Tensor().add_(1), "[add_] argument 'self' is an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(zeros({3}).copy_(Tensor()), "[copy_] argument 'src' is an undefined tensor", Error);
}

// ---- gradients --------------------------------------------------------------------------------

TEST_CASE("gradcheck: unary ops, contiguous and non-contiguous inputs") {
  manual_seed(7);
  for (const UnaryCase& c : unary_cases()) {
    for (bool noncontig : {false, true}) {
      INFO(std::string(c.name) << std::string(noncontig ? " (transposed input)" : ""));
      const Tensor x = grad_input({3, 4}, c.lo, c.hi, noncontig);
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return c.op(v[0]); }, {x}));
      CHECK(c.op(x).requires_grad());
    }
  }
}

TEST_CASE("gradcheck: binary ops (same shapes), contiguous and non-contiguous inputs") {
  manual_seed(8);
  for (const BinaryCase& c : binary_cases()) {
    for (bool noncontig : {false, true}) {
      INFO(std::string(c.name) << std::string(noncontig ? " (transposed inputs)" : ""));
      const Tensor a = grad_input({3, 4}, c.lo, c.hi, noncontig), b = grad_input({3, 4}, c.lo, c.hi);
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return c.op(v[0], v[1]); }, {a, b}));
      // only one input requiring grad
      const Tensor bc = b.detach();
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return c.op(v[0], bc); }, {a}));
      const Tensor ac = a.detach();
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return c.op(ac, v[0]); }, {b}));
    }
  }
  // pow with a scalar base differentiates in the exponent
  const Tensor e = grad_input({3, 4}, -2, 2, true);
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return focus::pow(2.0, v[0]); }, {e}));
  // x ** e with x == 0: the exponent's gradient is 0 there (not NaN)
  const Tensor z = tensor({0.0, 0.5}).requires_grad_(), p = tensor({2.0, 3.0}).requires_grad_();
  const std::vector<Tensor> g = autograd::grad({focus::pow(z, p)}, {z, p}, {ones({2}, kFloat64)});
  CHECK(allclose(g[0], tensor({0.0, 0.75})));
  CHECK(allclose(g[1], tensor({0.0, 0.125 * std::log(0.5)})));
}

TEST_CASE("gradcheck: broadcasting binary ops reduce the gradient to each input's shape") {
  manual_seed(12);
  struct Pair {
    const char* name;
    Shape a, b;
    bool noncontig_a;
  };
  const std::vector<Pair> pairs = {
      {"[2,1,4] with [3,1]", {2, 1, 4}, {3, 1}, false},
      {"[4] with [2,3,4]", {4}, {2, 3, 4}, false},
      {"[3,1] with [1,4]", {3, 1}, {1, 4}, false},
      {"0-d with [2,3]", {}, {2, 3}, false},
      {"[1,3,1] with [2,3,4]", {1, 3, 1}, {2, 3, 4}, false},
      {"transposed [4,3] with [3]", {4, 3}, {3}, true},
      {"transposed [2,3] with [2,1]", {2, 3}, {2, 1}, true},
  };
  for (const BinaryCase& c : binary_cases()) {
    for (const Pair& p : pairs) {
      INFO(std::string(c.name) << " on " << std::string(p.name));
      const Tensor a = grad_input(p.a, c.lo, c.hi, p.noncontig_a), b = grad_input(p.b, c.lo, c.hi);
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return c.op(v[0], v[1]); }, {a, b}));
      // and with the operands swapped (the larger one first)
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return c.op(v[1], v[0]); }, {a, b}));
      const std::vector<Tensor> g = autograd::grad({c.op(a, b)}, {a, b}, {ones(broadcast_shapes(p.a, p.b, "t"), kFloat64)});
      CHECK(g[0].shape() == p.a);
      CHECK(g[1].shape() == p.b);
    }
  }
  // an expanded (stride-0) operand inside the function
  const Tensor col = grad_input({3, 1}, -1, 1), row = grad_input({4}, -1, 1);
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return v[0].expand({2, 3, 4}) * v[1]; }, {col, row}));
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return focus::exp(v[0].expand({3, 4})) + v[0]; }, {col}));
  // where and masked_fill with broadcast condition / mask / operands
  const Tensor cond = tensor<bool>({true, false, true}).view({3, 1});
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return where(cond, v[0], v[1]); }, {row, col}));
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return where(cond, v[0].view({1, 4}), 2.0); }, {row}));
  const Tensor full34 = grad_input({3, 4}, -1, 1, true);
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return masked_fill(v[0], tensor<bool>({true, false, false, true}), 0.5); },
                  {full34}));
  // mixed float dtypes with broadcasting: the float32 operand does not require grad
  const Tensor f32 = uniform({4}, kFloat32, 0.5, 2);
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return v[0] * f32 + f32 / v[0]; }, {grad_input({3, 4}, 0.5, 2)}));
  // a sum-reduced function of views
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return focus::sin(v[0].t()) * v[0].t().slice(0, 1).sum(); },
                  {grad_input({3, 4}, -1, 1, true)}));
}

TEST_CASE("gradcheck: in-place ops with a broadcast operand") {
  manual_seed(13);
  const Tensor w = uniform({3, 4}, kFloat64, 0.5, 2).requires_grad_();
  const Tensor o = uniform({4}, kFloat64, 0.5, 2).requires_grad_();
  const std::vector<std::pair<const char*, std::function<void(const Tensor&, const Tensor&)>>> ops = {
      {"add_", [](const Tensor& y, const Tensor& b) { y.add_(b, 2); }},
      {"sub_", [](const Tensor& y, const Tensor& b) { y.sub_(b); }},
      {"mul_", [](const Tensor& y, const Tensor& b) { y.mul_(b); }},
      {"div_", [](const Tensor& y, const Tensor& b) { y.div_(b); }},
      {"copy_", [](const Tensor& y, const Tensor& b) { y.copy_(b); }},
  };
  for (const auto& [name, op] : ops) {
    INFO(std::string(name));
    CHECK(gradcheck(
        [&](const std::vector<Tensor>& v) {
          Tensor y = v[0] * 1.0;
          op(y, v[1]);
          return y * y;
        },
        {w, o}));
  }
}

TEST_CASE("gradcheck: where, masked_fill, maximum/minimum ties") {
  manual_seed(9);
  const Tensor cond = tensor<bool>({true, false, false, true, true, false, true, false, true, true, false, false},
                                   {3, 4});
  const Tensor a = grad_input({3, 4}, -2, 2, true), b = grad_input({3, 4}, -2, 2);
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return where(cond, v[0], v[1]); }, {a, b}));
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return where(cond, v[0], 0.5); }, {a}));
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return masked_fill(v[0], cond, -1.0); }, {a}));
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return v[0].masked_fill(cond.t().t(), 3); }, {b}));
  // ties split the gradient evenly, as PyTorch
  const Tensor x = tensor({1.0, 2.0, 3.0}).requires_grad_(), y = tensor({1.0, 3.0, 2.0}).requires_grad_();
  std::vector<Tensor> g = autograd::grad({maximum(x, y)}, {x, y}, {ones({3}, kFloat64)});
  CHECK(g[0].to_vector<double>() == std::vector<double>{0.5, 0, 1});
  CHECK(g[1].to_vector<double>() == std::vector<double>{0.5, 1, 0});
  g = autograd::grad({minimum(x, y)}, {x, y}, {ones({3}, kFloat64)});
  CHECK(g[0].to_vector<double>() == std::vector<double>{0.5, 1, 0});
  CHECK(g[1].to_vector<double>() == std::vector<double>{0.5, 0, 1});
  // clamp passes the gradient at the bounds themselves
  const Tensor c = tensor({-1.0, 0.0, 0.5, 1.0, 2.0}).requires_grad_();
  CHECK(autograd::grad({clamp(c, 0, 1)}, {c}, {ones({5}, kFloat64)})[0].to_vector<double>() ==
        std::vector<double>{0, 1, 1, 1, 0});
  // relu's gradient at 0 is 0, abs's is 0 (sign)
  const Tensor r = tensor({-1.0, 0.0, 2.0}).requires_grad_();
  CHECK(autograd::grad({relu(r)}, {r}, {ones({3}, kFloat64)})[0].to_vector<double>() == std::vector<double>{0, 0, 1});
  CHECK(autograd::grad({focus::abs(r)}, {r}, {ones({3}, kFloat64)})[0].to_vector<double>() ==
        std::vector<double>{-1, 0, 1});
}

TEST_CASE("gradients of mixed-dtype ops come back in each input's dtype") {
  const Tensor a = tensor({1.f, 2.f}).requires_grad_();
  const Tensor b = tensor({3.0, 4.0}).requires_grad_();
  const Tensor y = a * b;
  CHECK(y.dtype() == kFloat64);
  y.backward(ones({2}, kFloat64));
  CHECK(a.grad().dtype() == kFloat32);
  CHECK(a.grad().to_vector<float>() == std::vector<float>{3, 4});
  CHECK(b.grad().dtype() == kFloat64);
  CHECK(b.grad().to_vector<double>() == std::vector<double>{1, 2});
  // an integer operand gets no gradient and needs none
  const Tensor c = tensor({1.0, 2.0}).requires_grad_();
  const Tensor z = c * tensor<int64_t>({3, 4});
  z.backward(ones({2}, kFloat64));
  CHECK(c.grad().to_vector<double>() == std::vector<double>{3, 4});
}

TEST_CASE("gradcheck: view ops, contiguous and non-contiguous inputs") {
  manual_seed(10);
  struct Case {
    const char* name;
    Shape shape;
    Op1 op;
  };
  const std::vector<Case> cases = {
      {"view", {3, 4}, [](const Tensor& x) { return x.contiguous().view({2, 6}); }},
      {"view -1", {3, 4}, [](const Tensor& x) { return x.contiguous().view({-1}); }},
      {"reshape", {3, 4}, [](const Tensor& x) { return x.reshape({4, 3}); }},
      {"reshape 0-d", {1, 1}, [](const Tensor& x) { return x.reshape({}); }},
      {"permute", {2, 3, 2}, [](const Tensor& x) { return x.permute({2, 0, 1}); }},
      {"transpose", {3, 4}, [](const Tensor& x) { return x.transpose(0, 1); }},
      {"transpose negative dims", {2, 3, 2}, [](const Tensor& x) { return x.transpose(-1, -3); }},
      {"t", {3, 4}, [](const Tensor& x) { return x.t(); }},
      {"narrow", {3, 4}, [](const Tensor& x) { return x.narrow(1, 1, 2); }},
      {"slice step 2", {3, 5}, [](const Tensor& x) { return x.slice(1, 0, std::nullopt, 2); }},
      {"slice negative", {4, 3}, [](const Tensor& x) { return x.slice(0, -3, -1); }},
      {"select", {3, 4}, [](const Tensor& x) { return x.select(1, -1); }},
      {"operator[]", {3, 4}, [](const Tensor& x) { return x[1]; }},
      {"squeeze", {3, 1, 4}, [](const Tensor& x) { return x.squeeze(); }},
      {"squeeze dim", {3, 1, 4}, [](const Tensor& x) { return x.squeeze(1); }},
      {"unsqueeze", {3, 4}, [](const Tensor& x) { return x.unsqueeze(1); }},
      {"unsqueeze -1", {3, 4}, [](const Tensor& x) { return x.unsqueeze(-1); }},
      {"flatten", {2, 3, 2}, [](const Tensor& x) { return x.flatten(); }},
      {"flatten 1..2", {2, 3, 2}, [](const Tensor& x) { return x.flatten(1, 2); }},
      {"unflatten", {3, 4}, [](const Tensor& x) { return x.unflatten(1, {2, 2}); }},
      {"contiguous", {3, 4}, [](const Tensor& x) { return x.contiguous(); }},
      {"clone", {3, 4}, [](const Tensor& x) { return x.clone(); }},
      {"expand", {3, 1}, [](const Tensor& x) { return x.expand({2, 3, 4}); }},
      {"expand -1", {3, 1}, [](const Tensor& x) { return x.expand({-1, 5}); }},
      {"expand_as", {1, 4}, [](const Tensor& x) { return x.expand_as(zeros({3, 4})); }},
      {"chain of views", {2, 3, 4},
       [](const Tensor& x) { return x.permute({1, 2, 0}).narrow(0, 1, 2).select(1, 2).t().unsqueeze(0); }},
  };
  for (const Case& c : cases) {
    for (bool noncontig : {false, true}) {
      if (noncontig && !can_be_noncontiguous(c.shape)) continue;
      INFO(std::string(c.name) << std::string(noncontig ? " (non-contiguous input)" : ""));
      const Tensor x = grad_input(c.shape, -2, 2, noncontig);
      CHECK(gradcheck([&](const std::vector<Tensor>& v) { return c.op(v[0]); }, {x}));
    }
  }
  // grad_fn names follow PyTorch
  const Tensor x = grad_input({3, 4}, -1, 1);
  CHECK(x.view({12}).grad_fn()->name() == "ViewBackward0");
  CHECK(x.reshape({12}).grad_fn()->name() == "ReshapeAliasBackward0");
  CHECK(x.permute({1, 0}).grad_fn()->name() == "PermuteBackward0");
  CHECK(x.t().grad_fn()->name() == "TransposeBackward0");
  CHECK(x.narrow(0, 0, 1).grad_fn()->name() == "NarrowBackward0");
  CHECK(x.slice(0, 0, 1).grad_fn()->name() == "SliceBackward0");
  CHECK(x.select(0, 0).grad_fn()->name() == "SelectBackward0");
  CHECK(x.expand({2, 3, 4}).grad_fn()->name() == "ExpandBackward0");
  CHECK(x.unsqueeze(0).grad_fn()->name() == "UnsqueezeBackward0");
  CHECK(x.clone().grad_fn()->name() == "CloneBackward0");
  CHECK(x.to(kFloat32).grad_fn()->name() == "ToCopyBackward0");
  CHECK(x.contiguous().is_same(x));  // already contiguous: itself, no new node
}

TEST_CASE("gradients through dtype conversion") {
  const Tensor x = tensor({1.0, -2.0, 3.0}).requires_grad_();
  const Tensor y = x.to(kFloat32);
  CHECK(y.dtype() == kFloat32);
  CHECK(y.requires_grad());
  (y * tensor({1.f, 2.f, 3.f})).backward(ones({3}));
  CHECK(x.grad().dtype() == kFloat64);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1, 2, 3});
  // float32 round trip: finite differences need a larger step than float64's default
  GradcheckOptions o;
  o.eps = 1e-2;
  o.atol = 1e-4;
  CHECK(gradcheck([](const std::vector<Tensor>& v) { return focus::exp(v[0].to(kFloat32)).to(kFloat64); },
                  {tensor({0.1, 0.2, -0.3}).requires_grad_()}, o));
  // to an integer dtype cuts the graph; to the same dtype is the identity
  CHECK_FALSE(x.to(kInt64).requires_grad());
  CHECK(x.to(kFloat64).is_same(x));
}

}  // TEST_SUITE
