// CPU tests of the host-and-device math of the fused kernels (backends/common/): the CUDA
// kernels run these same functions, so what is checked here is what the GPU computes, up to
// the last bits of exp and log.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backends/backend.h"
#include "backends/common/hd_math.h"
#include "backends/common/loss_math.h"
#include "backends/common/norm_math.h"
#include "backends/common/optim_math.h"

using namespace focus;
using namespace focus::common;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<double> random_values(size_t n, uint32_t seed, double scale = 1.0, double shift = 0.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = shift + scale * dist(gen);
  return v;
}

// Reference statistics of a row in double, two-pass.
double ref_lse(const std::vector<double>& x) {
  double m = -kInf;
  for (double v : x) m = std::max(m, v);
  double s = 0;
  for (double v : x) s += std::exp(v - m);
  return m + std::log(s);
}

template <typename A> MaxSum<A> maxsum_of(const std::vector<double>& x, size_t b, size_t e) {
  MaxSum<A> s = maxsum_empty<A>();
  for (size_t i = b; i < e; ++i) s = maxsum_push(s, static_cast<A>(x[i]));
  return s;
}

template <typename A> Welford<A> welford_of(const std::vector<double>& x, size_t b, size_t e) {
  Welford<A> s = welford_empty<A>();
  for (size_t i = b; i < e; ++i) welford_add(s, static_cast<A>(x[i]));
  return s;
}

template <typename A> A population_variance(const Welford<A>& s) { return welford_var(s, A(0)); }

// Merges the values of x split into `parts` interleaved lanes (as a warp does: lane k takes
// k, k + parts, ...), then the lanes as a butterfly would (pairs, then pairs of pairs).
template <typename State, typename Push, typename Merge>
State lanes_then_tree(const std::vector<double>& x, int parts, State empty, Push push, Merge merge) {
  std::vector<State> lanes(static_cast<size_t>(parts), empty);
  for (size_t i = 0; i < x.size(); ++i) lanes[i % parts] = push(lanes[i % parts], x[i]);
  for (int width = 1; width < parts; width *= 2)
    for (int k = 0; k + width < parts; k += 2 * width) lanes[k] = merge(lanes[k], lanes[k + width]);
  return lanes[0];
}

// ---- optimizer references: the CPU loops as they were written before the shared header ----

template <typename T>
void adam_reference(T& p, T g, T& m, T& v, T& vmax, const Backend::AdamStepParams& s) {
  const T sign = s.maximize ? T(-1) : T(1);
  T gi = g * sign;
  T pi = p;
  if (s.weight_decay != 0) gi = std::fma(pi, static_cast<T>(s.weight_decay), gi);
  const T mi = std::fma(gi, static_cast<T>(1 - s.beta1), m * static_cast<T>(s.beta1));
  const T gg = static_cast<T>(1 - s.beta2) * gi;
  const T vi = std::fma(gg, gi, v * static_cast<T>(s.beta2));
  m = mi;
  v = vi;
  T vd = vi;
  if (s.amsgrad) {
    vd = (vmax > vi || vmax != vmax) ? vmax : vi;
    vmax = vd;
  }
  const T denom = std::sqrt(vd) / static_cast<T>(s.bias_correction2_sqrt) + static_cast<T>(s.eps);
  const T step = (static_cast<T>(-s.step_size) * mi) / denom;
  // param.mul_(1 - lr * wd), rounded on its own (volatile: the compiler may not fuse it
  // into the addition), then param.addcdiv_.
  volatile T scaled = s.param_scale != 1 ? pi * static_cast<T>(s.param_scale) : pi;
  p = scaled + step;
}

template <typename T> TensorView view_of(std::vector<T>& v, DType dt) {
  TensorView t;
  t.data = v.data();
  t.dtype = dt;
  t.ndim = 1;
  t.numel = static_cast<int64_t>(v.size());
  t.sizes[0] = t.numel;
  t.strides[0] = 1;
  return t;
}

template <typename T> bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// The CPU backend's adam_step against the shared per-element update, bit for bit, for every
// combination of the flags.
template <typename T> void check_cpu_adam_uses_header(DType dt) {
  const size_t n = 1037;  // not a multiple of any vector width
  for (int combo = 0; combo < 16; ++combo) {
    CAPTURE(combo);
    Backend::AdamStepParams s;
    s.weight_decay = (combo & 1) ? 0.01 : 0;
    s.param_scale = (combo & 2) ? 1 - 1e-3 * 0.05 : 1;
    s.amsgrad = (combo & 4) != 0;
    s.maximize = (combo & 8) != 0;
    s.step_size = 1e-3 / (1 - std::pow(0.9, 4));
    s.bias_correction2_sqrt = std::sqrt(1 - std::pow(0.999, 4));
    auto cast = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
    std::vector<T> p = cast(random_values(n, 1)), g = cast(random_values(n, 2, 0.1));
    std::vector<T> m = cast(random_values(n, 3, 0.01)), v = cast(random_values(n, 4, 0.001));
    std::vector<T> vmax = cast(random_values(n, 5, 0.001));
    for (auto& x : v) x = std::abs(x);
    for (auto& x : vmax) x = std::abs(x);
    vmax[7] = std::numeric_limits<T>::quiet_NaN();
    std::vector<T> rp = p, rm = m, rv = v, rvmax = vmax;
    backend_for(Device::cpu()).adam_step(view_of(p, dt), view_of(g, dt), view_of(m, dt), view_of(v, dt),
                                         view_of(vmax, dt), s);
    for (size_t i = 0; i < n; ++i) adam_reference<T>(rp[i], g[i], rm[i], rv[i], rvmax[i], s);
    CHECK(same_bits(p, rp));
    CHECK(same_bits(m, rm));
    CHECK(same_bits(v, rv));
    if (s.amsgrad) {
      CHECK(same_bits(vmax, rvmax));
      CHECK(std::isnan(p[7]));  // torch.maximum propagates NaN into the denominator
    }
  }
}

template <typename T> void check_cpu_sgd_uses_header(DType dt) {
  const size_t n = 1037;
  for (int combo = 0; combo < 32; ++combo) {
    CAPTURE(combo);
    Backend::SgdStepParams s;
    s.lr = 0.05;
    s.weight_decay = (combo & 1) ? 0.01 : 0;
    s.momentum = (combo & 2) ? 0.9 : 0;
    s.nesterov = (combo & 4) && (combo & 2);
    s.maximize = (combo & 8) != 0;
    s.dampening = (combo & 16) ? 0.1 : 0;
    auto cast = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
    std::vector<T> p = cast(random_values(n, 11)), g = cast(random_values(n, 12, 0.1));
    std::vector<T> buf = cast(random_values(n, 13, 0.01));
    std::vector<T> rp = p, rbuf = buf;
    for (int step = 0; step < 2; ++step) {
      s.first_step = step == 0;
      backend_for(Device::cpu()).sgd_step(view_of(p, dt), view_of(g, dt), view_of(buf, dt), s);
      // The reference: PyTorch's single-tensor SGD with its fused adds, written out.
      for (size_t i = 0; i < n; ++i) {
        T gi = s.maximize ? -g[i] : g[i];
        if (s.weight_decay != 0) gi = std::fma(rp[i], static_cast<T>(s.weight_decay), gi);
        if (s.momentum != 0) {
          rbuf[i] = s.first_step ? gi
                                 : std::fma(gi, static_cast<T>(1 - s.dampening), rbuf[i] * static_cast<T>(s.momentum));
          gi = s.nesterov ? std::fma(rbuf[i], static_cast<T>(s.momentum), gi) : rbuf[i];
        }
        rp[i] = std::fma(gi, static_cast<T>(-s.lr), rp[i]);
      }
    }
    CHECK(same_bits(p, rp));
    if (s.momentum != 0) CHECK(same_bits(buf, rbuf));
  }
}

}  // namespace

TEST_SUITE("fused_math") {

TEST_CASE("hd_math: fma is fused, sqrt and division are correctly rounded") {
  const float a = 1.0f + std::ldexp(1.0f, -12);
  // a * a = 1 + 2^-11 + 2^-24 exactly; only a fused multiply-add keeps the 2^-24.
  CHECK(hd_fma(a, a, -(1.0f + std::ldexp(1.0f, -11))) == std::ldexp(1.0f, -24));
  const double ad = 1.0 + std::ldexp(1.0, -30);
  CHECK(hd_fma(ad, ad, -(1.0 + std::ldexp(1.0, -29))) == std::ldexp(1.0, -60));
  CHECK(hd_sqrt(2.0f) == std::sqrt(2.0f));
  CHECK(hd_sqrt(2.0) == std::sqrt(2.0));
  CHECK(hd_exp(0.0f) == 1.0f);
  CHECK(hd_log(1.0) == 0.0);
  CHECK(hd_isinf(hd_inf<float>()));
  CHECK(hd_isinf(-hd_inf<double>()));
  CHECK_FALSE(hd_isinf(hd_nan<double>()));
  CHECK_FALSE(hd_isinf(1e308));
}

TEST_CASE("online softmax statistics: push and merge give the row's log-sum-exp in any split") {
  for (size_t n : {1u, 2u, 7u, 32u, 33u, 1000u}) {
    CAPTURE(n);
    const auto x = random_values(n, 7 + static_cast<uint32_t>(n), 3.0, 1.0);
    const double ref = ref_lse(x);
    const MaxSum<double> whole = maxsum_of<double>(x, 0, n);
    CHECK(maxsum_lse(whole) == doctest::Approx(ref).epsilon(1e-14));
    // Split in two, merged both ways.
    const size_t h = n / 2;
    const MaxSum<double> a = maxsum_of<double>(x, 0, h), b = maxsum_of<double>(x, h, n);
    CHECK(maxsum_lse(maxsum_merge(a, b)) == doctest::Approx(ref).epsilon(1e-14));
    CHECK(maxsum_lse(maxsum_merge(b, a)) == doctest::Approx(ref).epsilon(1e-14));
    // As a warp would: 32 interleaved lanes, then a tree (some lanes empty when n < 32).
    for (int lanes : {32, 256}) {
      const MaxSum<double> t = lanes_then_tree(
          x, lanes, maxsum_empty<double>(), [](MaxSum<double> s, double v) { return maxsum_push(s, v); },
          [](MaxSum<double> p, MaxSum<double> q) { return maxsum_merge(p, q); });
      CHECK(t.max == whole.max);
      CHECK(maxsum_lse(t) == doctest::Approx(ref).epsilon(1e-14));
    }
    // In float, as the GPU accumulates 16-bit and float32 rows.
    CHECK(maxsum_lse(maxsum_of<float>(x, 0, n)) == doctest::Approx(ref).epsilon(1e-5));
  }
}

TEST_CASE("online softmax statistics: softmax and log_softmax of a finished row") {
  const std::vector<double> x = {1.0, 2.0, 3.0, -1.0};
  const MaxSum<double> s = maxsum_of<double>(x, 0, x.size());
  CHECK(s.max == 3.0);
  const double total = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(-1.0);
  double sum = 0;
  for (double v : x) {
    const double y = softmax_value(v, s.max, 1.0 / s.sum);
    CHECK(y == doctest::Approx(std::exp(v) / total).epsilon(1e-14));
    CHECK(log_softmax_value(v, s.max, std::log(s.sum)) == doctest::Approx(v - std::log(total)).epsilon(1e-14));
    sum += y;
  }
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-14));
}

TEST_CASE("online softmax statistics: infinities, NaN and empty rows as the two-pass computation") {
  using S = MaxSum<double>;
  auto row = [](std::vector<double> v) { return maxsum_of<double>(v, 0, v.size()); };
  // Empty and all -inf: max -inf, sum 0, lse -inf; softmax values exp(-inf - -inf) = NaN.
  const S empty = maxsum_empty<double>();
  CHECK(maxsum_lse(empty) == -kInf);
  const S neg = row({-kInf, -kInf});
  CHECK(neg.max == -kInf);
  CHECK(neg.sum == 0.0);
  CHECK(maxsum_lse(neg) == -kInf);
  CHECK(std::isnan(softmax_value(-kInf, neg.max, 1.0 / neg.sum)));
  // -inf entries (masked) add nothing, before or after the max.
  for (const std::vector<double>& v : {std::vector<double>{-kInf, 0.0}, std::vector<double>{0.0, -kInf},
                                       std::vector<double>{-kInf, -kInf, 0.0, -kInf}}) {
    const S s = row(v);
    CHECK(s.max == 0.0);
    CHECK(s.sum == 1.0);
    CHECK(softmax_value(0.0, s.max, 1.0 / s.sum) == 1.0);
    CHECK(softmax_value(-kInf, s.max, 1.0 / s.sum) == 0.0);
  }
  // A masked lane merged with a live one.
  const S merged = maxsum_merge(row({-kInf}), row({2.0}));
  CHECK(merged.max == 2.0);
  CHECK(merged.sum == 1.0);
  CHECK(maxsum_merge(row({2.0}), empty).sum == 1.0);
  // +inf: the sum is NaN (exp(inf - inf)), the lse +inf, as the CPU's cross_entropy has it.
  for (const std::vector<double>& v : {std::vector<double>{1.0, kInf}, std::vector<double>{kInf, 1.0},
                                       std::vector<double>{kInf}, std::vector<double>{kInf, kInf}}) {
    const S s = row(v);
    CHECK(s.max == kInf);
    CHECK(std::isnan(s.sum));
    CHECK(maxsum_lse(s) == kInf);
  }
  CHECK(std::isnan(maxsum_merge(row({kInf}), row({1.0})).sum));
  CHECK(std::isnan(maxsum_merge(row({1.0}), row({kInf})).sum));
  // NaN: never the max, but the sum (and so every value of the row) is NaN.
  for (const std::vector<double>& v : {std::vector<double>{NAN, 1.0}, std::vector<double>{1.0, NAN},
                                       std::vector<double>{NAN}}) {
    const S s = row(v);
    CHECK_FALSE(std::isnan(s.max));
    CHECK(std::isnan(s.sum));
  }
  CHECK(std::isnan(maxsum_merge(row({NAN}), row({1.0})).sum));
  CHECK(std::isnan(maxsum_lse(row({1.0, NAN}))));
}

TEST_CASE("Welford as layer_norm uses it: a row split over lanes, in double and float") {
  for (size_t n : {1u, 2u, 5u, 64u, 777u}) {
    CAPTURE(n);
    // A large shift: the naive sum-of-squares formula would lose most digits in float.
    const auto x = random_values(n, 100 + static_cast<uint32_t>(n), 2.0, 1000.0);
    double mean = 0;
    for (double v : x) mean += v;
    mean /= static_cast<double>(n);
    double var = 0;
    for (double v : x) var += (v - mean) * (v - mean);
    var /= static_cast<double>(n);
    const Welford<double> w = welford_of<double>(x, 0, n);
    CHECK(w.count == static_cast<double>(n));
    CHECK(w.mean == doctest::Approx(mean).epsilon(1e-13));
    CHECK(population_variance(w) == doctest::Approx(var).epsilon(1e-10));
    for (int lanes : {2, 32, 256}) {
      const Welford<double> t = lanes_then_tree(
          x, lanes, welford_empty<double>(),
          [](Welford<double> s, double v) {
            welford_add(s, v);
            return s;
          },
          [](Welford<double> p, Welford<double> q) { return welford_merge(p, q); });
      CHECK(t.count == static_cast<double>(n));
      CHECK(t.mean == doctest::Approx(mean).epsilon(1e-13));
      CHECK(population_variance(t) == doctest::Approx(var).epsilon(1e-10));
    }
    const Welford<float> f = welford_of<float>(x, 0, n);
    CHECK(f.mean == doctest::Approx(mean).epsilon(1e-6));
    if (n > 1) CHECK(population_variance(f) == doctest::Approx(var).epsilon(1e-3));
  }
  // A lane that saw nothing (a row shorter than the warp) changes nothing; a constant row
  // has variance 0 (rstd = 1 / sqrt(eps)).
  const Welford<double> one = welford_of<double>({3.5}, 0, 1);
  const Welford<double> a = welford_merge(welford_empty<double>(), one), b = welford_merge(one, welford_empty<double>());
  CHECK((a.count == 1.0 && a.mean == 3.5 && a.m2 == 0.0));
  CHECK((b.count == 1.0 && b.mean == 3.5 && b.m2 == 0.0));
  CHECK(population_variance(welford_of<float>(std::vector<double>(100, 0.1), 0, 100)) == 0.0f);
  CHECK(layer_norm_rstd(3.0, 1.0) == 0.5);
}

TEST_CASE("layer_norm_dx is the gradient of sum(dout * layer_norm(x))") {
  const size_t N = 9;
  const auto x = random_values(N, 21), w = random_values(N, 22), dout = random_values(N, 23);
  const double eps = 1e-5;
  auto forward = [&](const std::vector<double>& v) {
    const Welford<double> st = welford_of<double>(v, 0, N);
    const double rs = layer_norm_rstd(population_variance(st), eps);
    double loss = 0;
    for (size_t i = 0; i < N; ++i) loss += dout[i] * (v[i] - st.mean) * rs * w[i];
    return loss;
  };
  const Welford<double> st = welford_of<double>(x, 0, N);
  const double rs = layer_norm_rstd(population_variance(st), eps);
  double a = 0, b = 0;
  for (size_t i = 0; i < N; ++i) {
    const double dn = dout[i] * w[i], n = (x[i] - st.mean) * rs;
    a += dn;
    b += dn * n;
  }
  a /= static_cast<double>(N);
  b /= static_cast<double>(N);
  for (size_t i = 0; i < N; ++i) {
    auto xp = x, xm = x;
    xp[i] += 1e-6;
    xm[i] -= 1e-6;
    const double numeric = (forward(xp) - forward(xm)) / 2e-6;
    const double dx = layer_norm_dx(dout[i] * w[i], (x[i] - st.mean) * rs, a, b, rs);
    CHECK(dx == doctest::Approx(numeric).epsilon(1e-6));
  }
}

TEST_CASE("add_layer_norm_dx: layer_norm_dx rounded, then dsum added (no fma), float and double") {
  const auto v = random_values(64, 31, 2.0);
  for (size_t k = 0; k + 6 <= v.size(); k += 6) {
    const float dn = static_cast<float>(v[k]), n = static_cast<float>(v[k + 1]), a = static_cast<float>(v[k + 2]);
    const float b = static_cast<float>(v[k + 3]), rs = static_cast<float>(v[k + 4] + 3.0);
    const float ds = static_cast<float>(v[k + 5]);
    // volatile: the reference product is rounded before the add, as two separate ops round it.
    volatile float dx = layer_norm_dx(dn, n, a, b, rs);
    CHECK(add_layer_norm_dx(dn, n, a, b, rs, ds) == dx + ds);
    volatile double dxd = layer_norm_dx<double>(dn, n, a, b, rs);
    CHECK(add_layer_norm_dx<double>(dn, n, a, b, rs, ds) == dxd + ds);
  }
  CHECK(add_layer_norm_dx(1.0, 0.5, 0.25, 2.0, 2.0, 10.0) == (1.0 - 0.25 - 1.0) * 2.0 + 10.0);
}

TEST_CASE("cross entropy rows and their gradients") {
  const int64_t C = 6;
  const auto x = random_values(C, 31, 2.0);
  const auto w = random_values(C, 32, 0.3, 1.0);
  double wsum = 0;
  for (double v : w) wsum += v;
  for (double eps : {0.0, 0.1, 1.0}) {
    for (bool weighted : {false, true}) {
      for (int64_t t = 0; t < C; t += 5) {
        CAPTURE(eps);
        CAPTURE(weighted);
        CAPTURE(t);
        // The loss of a row straight from the definition:
        //   (1 - eps) w_t (lse - x_t) + eps / C sum_c w_c (lse - x_c).
        auto loss = [&](const std::vector<double>& v) {
          const double l = ref_lse(v);
          double smooth = 0;
          for (int64_t c = 0; c < C; ++c) smooth += (weighted ? w[c] : 1.0) * (l - v[c]);
          return (1 - eps) * (weighted ? w[t] : 1.0) * (l - v[t]) + eps / static_cast<double>(C) * smooth;
        };
        const double l = maxsum_lse(maxsum_of<double>(x, 0, C));
        double sum_x = 0, acc = 0;
        for (int64_t c = 0; c < C; ++c) {
          sum_x += x[c];
          acc += w[c] * (l - x[c]);
        }
        const double row = weighted ? cross_entropy_row_weighted(l, x[t], w[t], eps, C, acc)
                                    : cross_entropy_row(l, x[t], eps, C, sum_x);
        CHECK(row == doctest::Approx(loss(x)).epsilon(1e-12));
        // Gradients with a scale s, against central differences.
        const double s = 0.7, off = eps / static_cast<double>(C), on = 1 - eps;
        for (int64_t c = 0; c < C; ++c) {
          auto xp = x, xm = x;
          xp[c] += 1e-6;
          xm[c] -= 1e-6;
          const double numeric = s * (loss(xp) - loss(xm)) / 2e-6;
          const double p = std::exp(x[c] - l);
          const double g = weighted
                               ? cross_entropy_grad_weighted(p, cross_entropy_grad_coef(w[t], eps, C, wsum) * s,
                                                             off * s, w[c], on, w[t], s, c == t)
                               : cross_entropy_grad(p, off, on, s, c == t);
          CHECK(g == doctest::Approx(numeric).epsilon(1e-6).scale(1.0));
        }
      }
    }
  }
  CHECK(dropout_scale(0.0) == 1.0);
  CHECK(dropout_scale(0.5) == 2.0);
  CHECK(dropout_scale(1.0) == 0.0);
}

TEST_CASE("adam_update: the first step moves each parameter by about lr against its gradient") {
  // m = v = 0, step 1: m = (1 - b1) g, v = (1 - b2) g^2, so the update is
  // lr * g / (|g| + eps * sqrt(1 - b2)) / ... ~ lr * sign(g).
  const double lr = 0.01, b1 = 0.9, b2 = 0.999;
  for (bool maximize : {false, true}) {
    const AdamScalars<double> s =
        make_adam_scalars<double>(b1, b2, 1e-8, 0, 1, lr / (1 - b1), std::sqrt(1 - b2), maximize);
    for (double g : {0.5, -2.0}) {
      const AdamElement<double> r = adam_update<double, false, false, false>(s, 1.0, g, 0.0, 0.0, 0.0);
      const double dir = maximize ? -1.0 : 1.0;
      CHECK(r.exp_avg == doctest::Approx(dir * (1 - b1) * g));
      CHECK(r.exp_avg_sq == doctest::Approx((1 - b2) * g * g));
      CHECK(r.param == doctest::Approx(1.0 - dir * lr * (g > 0 ? 1.0 : -1.0)).epsilon(1e-6));
    }
  }
  // AdamW's decoupled decay scales the parameter; Adam's L2 term adds wd * p to the gradient.
  const AdamScalars<double> w = make_adam_scalars<double>(b1, b2, 1e-8, 0, 1 - lr * 0.1, lr / (1 - b1),
                                                          std::sqrt(1 - b2), false);
  CHECK(adam_update<double, false, true, false>(w, 2.0, 0.5, 0, 0, 0).param ==
        doctest::Approx(2.0 * (1 - lr * 0.1) - lr).epsilon(1e-6));
  const AdamScalars<double> l2 = make_adam_scalars<double>(b1, b2, 1e-8, 0.5, 1, lr / (1 - b1), std::sqrt(1 - b2), false);
  CHECK(adam_update<double, true, false, false>(l2, 2.0, 0.5, 0, 0, 0).exp_avg == doctest::Approx((1 - b1) * 1.5));
  // amsgrad keeps the running maximum of v and divides by it.
  const AdamScalars<double> a = make_adam_scalars<double>(b1, b2, 1e-8, 0, 1, lr, 1.0, false);
  const AdamElement<double> big = adam_update<double, false, false, true>(a, 0.0, 0.0, 1.0, 0.0, 4.0);
  CHECK(big.max_exp_avg_sq == 4.0);
  CHECK(big.param == doctest::Approx(-lr * b1 / (2.0 + 1e-8)));
  CHECK(std::isnan(adam_update<double, false, false, true>(a, 0.0, 0.0, 1.0, 0.0, NAN).max_exp_avg_sq));
}

TEST_CASE("sgd_update: momentum, dampening, nesterov and weight decay") {
  const SgdScalars<double> plain = make_sgd_scalars<double>(0.1, 0, 0, 0, false);
  CHECK(sgd_update<double, false, false, false>(plain, false, 1.0, 2.0, 0.0).param == doctest::Approx(0.8));
  const SgdScalars<double> maxi = make_sgd_scalars<double>(0.1, 0, 0, 0, true);
  CHECK(sgd_update<double, false, false, false>(maxi, false, 1.0, 2.0, 0.0).param == doctest::Approx(1.2));
  const SgdScalars<double> wd = make_sgd_scalars<double>(0.1, 0, 0, 0.5, false);
  CHECK(sgd_update<double, true, false, false>(wd, false, 1.0, 2.0, 0.0).param == doctest::Approx(1.0 - 0.1 * 2.5));
  const SgdScalars<double> mom = make_sgd_scalars<double>(0.1, 0.9, 0.2, 0, false);
  // First step: buf = g (no dampening), then buf = 0.9 buf + 0.8 g.
  const SgdElement<double> first = sgd_update<double, false, true, false>(mom, true, 1.0, 2.0, 123.0);
  CHECK(first.momentum_buffer == 2.0);
  CHECK(first.param == doctest::Approx(0.8));
  const SgdElement<double> second = sgd_update<double, false, true, false>(mom, false, 1.0, 2.0, 2.0);
  CHECK(second.momentum_buffer == doctest::Approx(0.9 * 2.0 + 0.8 * 2.0));
  CHECK(second.param == doctest::Approx(1.0 - 0.1 * 3.4));
  const SgdElement<double> nest = sgd_update<double, false, true, true>(mom, false, 1.0, 2.0, 2.0);
  CHECK(nest.param == doctest::Approx(1.0 - 0.1 * (2.0 + 0.9 * 3.4)));
}

TEST_CASE("the CPU optimizer kernels compute the shared per-element updates bit for bit") {
  check_cpu_adam_uses_header<float>(kFloat32);
  check_cpu_adam_uses_header<double>(kFloat64);
  check_cpu_sgd_uses_header<float>(kFloat32);
  check_cpu_sgd_uses_header<double>(kFloat64);
}

}  // TEST_SUITE
