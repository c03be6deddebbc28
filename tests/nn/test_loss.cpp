// The losses of issue 3 (class weights, probability targets, l1, smooth l1, huber, binary
// cross entropies; the loss modules): hand-computed values, float64 gradchecks and errors.
// (tests/core/test_loss.cpp covers the unweighted class-index kernels; tests/parity/test_loss.cpp
// compares everything with PyTorch.)
#include <cmath>
#include <limits>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

const Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

Tensor f64(std::initializer_list<double> v, const Shape& shape) { return tensor<double>(std::vector<double>(v), shape); }
Tensor f64(std::initializer_list<double> v) { return tensor<double>(std::vector<double>(v)); }
Tensor idx(std::initializer_list<int64_t> v, const Shape& shape) {
  return tensor<int64_t>(std::vector<int64_t>(v), shape);
}

double lse3(double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); }

// Reference weighted, smoothed cross entropy on [N, C, D] values (row-major) and targets [N, D]:
// per-position losses as PyTorch: (1-eps) w_t (lse - x_t) + eps/C sum_c w_c (lse - x_c).
std::vector<double> ref_rows(const std::vector<double>& x, const std::vector<int64_t>& t, const std::vector<double>& w,
                             int64_t N, int64_t C, int64_t D, int64_t ignore, double eps) {
  std::vector<double> out(static_cast<size_t>(N * D), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t tg = t[n * D + d];
      if (tg == ignore) continue;
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(x[(n * C + c) * D + d]);
      const double lse = std::log(s);
      double smooth = 0;
      for (int64_t c = 0; c < C; ++c) smooth += w[c] * (lse - x[(n * C + c) * D + d]);
      out[n * D + d] = (1 - eps) * w[tg] * (lse - x[(n * C + tg) * D + d]) + eps / C * smooth;
    }
  return out;
}

}  // namespace

TEST_SUITE("nn_loss") {

TEST_CASE("cross_entropy with class weights: hand-computed values, mean divides by the target weights") {
  Tensor x = f64({1, 2, 3, 1, 0, -1, 0.5, -0.5, 2}, {3, 3}).requires_grad_();
  Tensor t = idx({2, 0, -100}, {3});
  Tensor w = f64({0.5, 1, 2});
  const double r0 = 2 * (lse3(1, 2, 3) - 3), r1 = 0.5 * (lse3(1, 0, -1) - 1);
  auto o = CrossEntropyOptions().weight(w);
  CHECK(allclose(cross_entropy(x, t, CrossEntropyOptions(o).reduction(Reduction::None)), f64({r0, r1, 0}), 1e-12,
                 1e-14));
  CHECK(cross_entropy(x, t, CrossEntropyOptions(o).reduction("sum")).item<double>() ==
        doctest::Approx(r0 + r1).epsilon(1e-12));
  CHECK(cross_entropy(x, t, o).item<double>() == doctest::Approx((r0 + r1) / 2.5).epsilon(1e-12));
  CHECK(cross_entropy(x, t, o).item<double>() == doctest::Approx(0.40760596444438041).epsilon(1e-12));  // torch

  // label smoothing 0.2: (1 - eps) w_t (lse - x_t) + eps / C * sum_c w_c (lse - x_c); mean / (2 + 0.5)
  const double eps = 0.2;
  auto smooth_row = [&](double a, double b, double c, int tg) {
    const double l = lse3(a, b, c), xs[3] = {a, b, c}, ws[3] = {0.5, 1, 2};
    double s = 0;
    for (int k = 0; k < 3; ++k) s += ws[k] * (l - xs[k]);
    return (1 - eps) * ws[tg] * (l - xs[tg]) + eps / 3 * s;
  };
  const double s0 = smooth_row(1, 2, 3, 2), s1 = smooth_row(1, 0, -1, 0);
  auto os = CrossEntropyOptions(o).label_smoothing(eps);
  CHECK(allclose(cross_entropy(x, t, CrossEntropyOptions(os).reduction(Reduction::None)), f64({s0, s1, 0}), 1e-12,
                 1e-14));
  Tensor mean = cross_entropy(x, t, os);
  CHECK(mean.item<double>() == doctest::Approx((s0 + s1) / 2.5).epsilon(1e-12));
  CHECK(mean.item<double>() == doctest::Approx(0.58883788491845546).epsilon(1e-12));  // torch 1.13
  mean.backward();
  CHECK(allclose(x.grad(),
                 f64({0.05268908699161232, 0.15280087877351828, -0.20548996576513068, -0.00480562453704514,
                      0.03533121266721541, -0.03052558813017028, 0, 0, 0},
                     {3, 3}),
                 1e-10, 1e-14));
  // every target ignored: 0/0 = nan, as PyTorch
  CHECK(std::isnan(cross_entropy(x, idx({-100, -100, -100}, {3}), o).item<double>()));
}

TEST_CASE("cross_entropy with weights against float64 loops: K-dim, smoothing, reductions, float32") {
  manual_seed(11);
  for (Shape shape : {Shape{5, 4}, Shape{3, 4, 2, 3}, Shape{2, 6, 5}}) {
    for (double eps : {0.0, 0.3}) {
      const int64_t N = shape[0], C = shape[1];
      int64_t D = 1;
      Shape tshape{N};
      for (size_t d = 2; d < shape.size(); ++d) {
        D *= shape[d];
        tshape.push_back(shape[d]);
      }
      Tensor x = randn(shape, kFloat64) * 2.0;
      Tensor t = randint(0, C, tshape);
      Tensor w = rand({C}, kFloat64) + 0.2;
      const int64_t ignore = 1;
      auto rows = ref_rows(x.to_vector<double>(), t.to_vector<int64_t>(), w.to_vector<double>(), N, C, D, ignore, eps);
      double total = 0, wsum = 0;
      const auto tv = t.to_vector<int64_t>();
      const auto wv = w.to_vector<double>();
      for (size_t i = 0; i < rows.size(); ++i) {
        total += rows[i];
        if (tv[i] != ignore) wsum += wv[tv[i]];
      }
      CAPTURE(shape);
      CAPTURE(eps);
      auto o = CrossEntropyOptions().weight(w).ignore_index(ignore).label_smoothing(eps);
      CHECK(allclose(cross_entropy(x, t, CrossEntropyOptions(o).reduction(Reduction::None)), tensor<double>(rows, tshape),
                     1e-12, 1e-12));
      CHECK(cross_entropy(x, t, CrossEntropyOptions(o).reduction(Reduction::Sum)).item<double>() ==
            doctest::Approx(total).epsilon(1e-12));
      CHECK(cross_entropy(x, t, o).item<double>() == doctest::Approx(total / wsum).epsilon(1e-12));
      Tensor l32 = cross_entropy(x.to(kFloat32), t, CrossEntropyOptions(o).weight(w.to(kFloat32)));
      CHECK(l32.dtype() == kFloat32);
      CHECK(l32.item<double>() == doctest::Approx(total / wsum).epsilon(1e-5));
    }
  }
}

TEST_CASE("cross_entropy with weights: gradcheck over reductions, smoothing, K-dim, unbatched") {
  manual_seed(12);
  for (Reduction r : kReductions) {
    for (double eps : {0.0, 0.25}) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(eps);
      Tensor w = rand({5}, kFloat64) + 0.5;
      Tensor x = randn({4, 5}, kFloat64).requires_grad_();
      Tensor t = idx({0, 4, 2, -100}, {4});
      auto o = CrossEntropyOptions().weight(w).label_smoothing(eps).reduction(r);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, o); }, {x}));
      Tensor xs = randn({2, 3, 2, 2}, kFloat64).requires_grad_();
      Tensor ts = idx({0, 2, 1, 1, 2, 0, 0, 1}, {2, 2, 2});
      auto os = CrossEntropyOptions().weight(f64({0.3, 1.5, 2})).ignore_index(1).label_smoothing(eps).reduction(r);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], ts, os); }, {xs}));
      Tensor xu = randn({5}, kFloat64).requires_grad_();
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], scalar_tensor(int64_t{3}), o); },
                      {xu}));
    }
  }
}

TEST_CASE("cross_entropy with class probabilities: values, smoothing, weights, gradcheck in input and target") {
  Tensor x = f64({1, 2, 3, 1, 0, -1}, {2, 3});
  Tensor p = f64({0.2, 0.3, 0.5, 1, 0, 0}, {2, 3});
  Tensor w = f64({0.5, 1, 2});
  // -sum_c w_c p_c log_softmax(x)_c, mean over the 2 rows
  auto row = [](double a, double b, double c, const double* pc, const double* wc) {
    const double l = lse3(a, b, c), xs[3] = {a, b, c};
    double s = 0;
    for (int k = 0; k < 3; ++k) s += wc[k] * pc[k] * (l - xs[k]);
    return s;
  };
  const double w1[3] = {1, 1, 1}, wv[3] = {0.5, 1, 2}, p0[3] = {0.2, 0.3, 0.5}, p1[3] = {1, 0, 0};
  CHECK(cross_entropy(x, p).item<double>() ==
        doctest::Approx((row(1, 2, 3, p0, w1) + row(1, 0, -1, p1, w1)) / 2).epsilon(1e-12));
  CHECK(cross_entropy(x, p, CrossEntropyOptions().weight(w)).item<double>() ==
        doctest::Approx(0.63722566622216148).epsilon(1e-12));  // torch 1.13
  CHECK(cross_entropy(x, p, CrossEntropyOptions().weight(w)).item<double>() ==
        doctest::Approx((row(1, 2, 3, p0, wv) + row(1, 0, -1, p1, wv)) / 2).epsilon(1e-12));
  // label smoothing mixes the target with the uniform distribution: p' = 0.9 p + 0.1 / 3
  Tensor none = cross_entropy(x, p, CrossEntropyOptions().weight(w).label_smoothing(0.1).reduction(Reduction::None));
  CHECK(allclose(none, f64({1.07780421105176383, 0.39764337985181558}), 1e-12, 1e-14));
  // unbatched [C] with a [C] target; empty batch gives nan for mean
  CHECK(cross_entropy(f64({1, 2, 3}), f64({0.2, 0.3, 0.5})).item<double>() ==
        doctest::Approx(row(1, 2, 3, p0, w1)).epsilon(1e-12));
  CHECK(std::isnan(cross_entropy(zeros({0, 3}), zeros({0, 3})).item<float>()));

  manual_seed(13);
  for (Reduction r : kReductions) {
    for (double eps : {0.0, 0.2}) {
      CAPTURE(static_cast<int>(r));
      Tensor xi = randn({3, 4, 2}, kFloat64).requires_grad_();
      Tensor ti = softmax(randn({3, 4, 2}, kFloat64), 1).requires_grad_();
      auto o = CrossEntropyOptions().weight(rand({4}, kFloat64) + 0.5).label_smoothing(eps).reduction(r);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], o); }, {xi, ti}));
    }
  }
}

TEST_CASE("nll_loss with class weights: values and gradcheck") {
  Tensor lp = tensor<float>({-1, -2, -3, -0.5, -1.5, -2.5}, {2, 3});
  Tensor t = idx({1, 2}, {2});
  auto o = NLLLossOptions().weight(tensor<float>({1, 2, 3}));
  // (2 * 2 + 3 * 2.5) / (2 + 3)
  CHECK(nll_loss(lp, t, o).item<float>() == doctest::Approx(2.3).epsilon(1e-6));
  CHECK(allclose(nll_loss(lp, t, NLLLossOptions(o).reduction("none")), tensor<float>({4, 7.5})));
  CHECK(nll_loss(lp, t, NLLLossOptions(o).reduction(Reduction::Sum)).item<float>() == doctest::Approx(11.5));
  manual_seed(14);
  for (Reduction r : kReductions) {
    Tensor x = randn({3, 4, 2}, kFloat64).requires_grad_();
    Tensor tt = idx({0, 3, 2, 2, -100, 1}, {3, 2});
    auto ow = NLLLossOptions().weight(rand({4}, kFloat64) + 0.1).reduction(r);
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return nll_loss(in[0], tt, ow); }, {x}));
  }
}

TEST_CASE("l1_loss, smooth_l1_loss and huber_loss: values, zero-difference gradient, gradcheck") {
  Tensor a = tensor<float>({0, 1, 3});
  Tensor b = tensor<float>({0.5, -1, 3});
  CHECK(l1_loss(a, b).item<float>() == doctest::Approx(2.5 / 3));
  CHECK(allclose(l1_loss(a, b, Reduction::None), tensor<float>({0.5, 2, 0})));
  // smooth l1, beta 1.5: 0.5 * 0.25 / 1.5, 2 - 0.75, 0
  CHECK(allclose(smooth_l1_loss(a, b, Reduction::None, 1.5), tensor<float>({0.25 / 3, 1.25, 0})));
  CHECK(allclose(smooth_l1_loss(a, b, Reduction::None, 0.0), tensor<float>({0.5, 2, 0})));
  // huber, delta 1.5: 0.5 * 0.25, 1.5 * (2 - 0.75), 0
  CHECK(allclose(huber_loss(a, b, Reduction::None, 1.5), tensor<float>({0.125, 1.875, 0})));
  Tensor x = tensor<double>({0, 1, 3}).requires_grad_();
  l1_loss(x, tensor<double>({0.5, -1, 3}), Reduction::Sum).backward();
  CHECK(allclose(x.grad(), tensor<double>({-1, 1, 0})));  // sign, 0 where equal (as PyTorch)

  manual_seed(15);
  for (Reduction r : kReductions) {
    Tensor xi = randn({3, 4}, kFloat64).requires_grad_();
    Tensor ti = randn({4}, kFloat64).requires_grad_();  // broadcast target
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1], r); }, {xi, ti}));
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return smooth_l1_loss(in[0], in[1], r, 0.7); }, {xi, ti}));
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return huber_loss(in[0], in[1], r, 0.6); }, {xi, ti}));
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], r); }, {xi, ti}));
  }
}

TEST_CASE("binary_cross_entropy_with_logits: stable values, weights, gradcheck in input and target") {
  Tensor x = f64({0, 3, -2, 100, -100, 1}, {2, 3});
  Tensor t = f64({1, 0, 0.5, 0, 1, 1}, {2, 3});
  // (1 - t) x + log(1 + exp(-x)); exact at +-100 (no overflow)
  auto ref = [](double xv, double tv, double pw) {
    return (1 - tv) * xv + (1 + (pw - 1) * tv) * (std::max(-xv, 0.0) + std::log1p(std::exp(-std::abs(xv))));
  };
  CHECK(allclose(binary_cross_entropy_with_logits(x, t, BCEWithLogitsOptions().reduction("none")),
                 f64({ref(0, 1, 1), ref(3, 0, 1), ref(-2, 0.5, 1), 100, 100, ref(1, 1, 1)}, {2, 3}), 1e-12, 1e-14));
  CHECK(allclose(binary_cross_entropy_with_logits(x, t, BCEWithLogitsOptions().reduction("none")),
                 f64({0.69314718055994529, 3.04858735157374205, 1.12692801104297269, 100, 100,
                      0.31326168751822286},
                     {2, 3}),
                 1e-12, 1e-14));  // torch 1.13
  Tensor pw = f64({2, 1, 0.5});
  Tensor w = f64({1, 3}, {2, 1});
  auto o = BCEWithLogitsOptions().weight(w).pos_weight(pw);
  CHECK(allclose(binary_cross_entropy_with_logits(x, t, BCEWithLogitsOptions(o).reduction(Reduction::None)),
                 f64({1.38629436111989057, 3.04858735157374205, 0.59519600828222963, 300, 300, 0.46989253127733432},
                     {2, 3}),
                 1e-12, 1e-14));  // torch 1.13
  CHECK(binary_cross_entropy_with_logits(x, t, o).item<double>() ==
        doctest::Approx((1.38629436111989057 + 3.04858735157374205 + 0.59519600828222963 + 600 +
                         0.46989253127733432) /
                        6)
            .epsilon(1e-12));
  // float32 at extreme logits stays finite
  Tensor big = binary_cross_entropy_with_logits(tensor<float>({1000, -1000}), tensor<float>({0, 1}),
                                                BCEWithLogitsOptions().reduction(Reduction::None));
  CHECK(allclose(big, tensor<float>({1000, 1000})));

  manual_seed(16);
  for (Reduction r : kReductions) {
    Tensor xi = (randn({3, 4}, kFloat64) * 3.0).requires_grad_();
    Tensor ti = rand({3, 4}, kFloat64).requires_grad_();
    for (bool weights : {false, true}) {
      auto ow = BCEWithLogitsOptions().reduction(r);
      if (weights) ow.weight(rand({3, 1}, kFloat64) + 0.5).pos_weight(rand({4}, kFloat64) * 2.0 + 0.1);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], in[1], ow); },
                      {xi, ti}));
    }
  }
}

TEST_CASE("binary_cross_entropy: clamped logs, gradcheck") {
  Tensor l = binary_cross_entropy(tensor<float>({0, 0.25, 1, 0.5}), tensor<float>({0, 1, 0, 0.5}), {}, Reduction::None);
  CHECK(allclose(l, tensor<float>({0, std::log(4.f), 100, std::log(2.f)})));
  manual_seed(17);
  for (Reduction r : kReductions) {
    Tensor xi = (rand({3, 4}, kFloat64) * 0.9 + 0.05).requires_grad_();
    Tensor ti = rand({3, 4}, kFloat64).requires_grad_();
    Tensor w = rand({4}, kFloat64) + 0.5;
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return binary_cross_entropy(in[0], in[1], w, r); },
                    {xi, ti}));
  }
}

TEST_CASE("binary_cross_entropy checks its input range on the input's device") {
  // Backend::check_range instead of min/max read back to the host: the CPU throws at once,
  // CUDA at the next synchronisation (item()); the message names the first bad element.
  FOR_EACH_DEVICE(dev) {
    const Tensor t = zeros({2, 3}, dev);
    CHECK_THROWS_WITH_AS(
        binary_cross_entropy(tensor<float>({0.5f, 0.f, 1.f, 1.25f, -3.f, 0.5f}, {2, 3}).to(dev), t).item<float>(),
        doctest::Contains(
            "[binary_cross_entropy] all elements of input should be between 0 and 1, got 1.25 (at position 3"),
        Error);
    CHECK_THROWS_WITH_AS(
        binary_cross_entropy(tensor<double>({0.5, NAN}).to(dev), zeros({2}, TensorOptions(kFloat64).device(dev)))
            .item<double>(),
        doctest::Contains("should be between 0 and 1, got nan (at position 1"), Error);
    // Large enough for the CPU check to split across threads: the first bad element wins.
    Tensor big = full({200003}, 0.5, TensorOptions(kFloat32).device(dev));
    big.narrow(0, 150000, 1).fill_(2.0);
    big.narrow(0, 70001, 1).fill_(-0.5);
    big.narrow(0, 200002, 1).fill_(NAN);
    CHECK_THROWS_WITH_AS(binary_cross_entropy(big, zeros({200003}, dev)).item<float>(),
                         doctest::Contains("got -0.5 (at position 70001"), Error);
    // In range (ends included): the loss, also right after a failed check.
    const Tensor x = tensor<float>({0.f, 1.f, 0.5f, 0.25f, 0.75f, 1.f}, {2, 3}).to(dev);
    CHECK(binary_cross_entropy(x, t, {}, Reduction::Sum).item<float>() ==
          doctest::Approx(0 + 100 + std::log(2.0) + std::log(4.0 / 3) + std::log(4.0) + 100).epsilon(1e-6));
  }
}

TEST_CASE("reduction strings") {
  CHECK(reduction_from_string("none") == Reduction::None);
  CHECK(reduction_from_string("mean") == Reduction::Mean);
  CHECK(reduction_from_string("sum") == Reduction::Sum);
  CHECK(to_string(Reduction::Sum) == "sum");
  CHECK_THROWS_WITH_AS(CrossEntropyOptions().reduction("avg"),
                       "[cross_entropy] avg is not a valid value for reduction (expected \"none\", \"mean\" or \"sum\")",
                       Error);
}

TEST_CASE("loss errors name the loss") {
  Tensor x = zeros({2, 3});
  Tensor t = idx({0, 1}, {2});
  CHECK_THROWS_WITH_AS(cross_entropy(x, t, CrossEntropyOptions().weight(ones({4}))),
                       doctest::Contains("[cross_entropy] weight tensor should be defined either for all 3 classes"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, t, CrossEntropyOptions().weight(ones({3}, kFloat64))),
                       "[cross_entropy] expected weight of dtype float32 (the input's), got float64", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, t, CrossEntropyOptions().weight(ones({3, 1}))),
                       doctest::Contains("[cross_entropy] weight tensor should be defined"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, zeros({2, 3}), CrossEntropyOptions().ignore_index(0)),
                       "[cross_entropy] ignore_index is not supported with class-probability targets (got "
                       "ignore_index 0)",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, zeros({2, 3}, kInt64)),
                       doctest::Contains("[cross_entropy] expected a floating point target with class probabilities"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, zeros({2, 3}, kFloat64)),
                       "[cross_entropy] expected class-probability target of the input's dtype float32, got float64",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, zeros({2})),
                       "[cross_entropy] a floating point target holds class probabilities and must have the input's "
                       "shape [2, 3], got [2]",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, zeros({2, 3}), CrossEntropyOptions().weight(ones({2}))),
                       doctest::Contains("[cross_entropy] weight tensor should be defined either for all 3 classes"),
                       Error);
  CHECK_THROWS_WITH_AS(nll_loss(x, t, NLLLossOptions().weight(ones({5}))),
                       doctest::Contains("[nll_loss] weight tensor should be defined either for all 3 classes"), Error);
  CHECK_THROWS_WITH_AS(nll_loss(x, idx({0, 3}, {2}), NLLLossOptions().weight(ones({3}))),
                       "[nll_loss] target 3 is out of bounds for [0, 3) (at position 1)", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, idx({-2, 0}, {2}), CrossEntropyOptions().label_smoothing(0.1)),
                       "[cross_entropy] target -2 is out of bounds for [0, 3) (at position 0)", Error);
  CHECK_THROWS_WITH_AS(l1_loss(x, zeros({2, 3}, kFloat64)),
                       "[l1_loss] expected input and target of one dtype, got float32 and float64", Error);
  CHECK_THROWS_WITH_AS(l1_loss(x, zeros({3, 2})), doctest::Contains("[l1_loss]"), Error);
  CHECK_THROWS_WITH_AS(smooth_l1_loss(x, x, Reduction::Mean, -1.0),
                       "[smooth_l1_loss] beta must be non-negative, got -1", Error);
  CHECK_THROWS_WITH_AS(huber_loss(x, x, Reduction::Mean, 0.0), "[huber_loss] delta must be positive, got 0", Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, zeros({3, 2})),
                       "[binary_cross_entropy_with_logits] target size ([3, 2]) must be the same as input size ([2, 3])",
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, zeros({2, 3}, kFloat64)),
                       doctest::Contains("[binary_cross_entropy_with_logits] expected input and target of one dtype"),
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, x, BCEWithLogitsOptions().pos_weight(ones({2}))),
                       "[binary_cross_entropy_with_logits] pos_weight of shape [2] does not broadcast to the input's "
                       "shape [2, 3]",
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, x, BCEWithLogitsOptions().weight(ones({3}, kFloat64))),
                       doctest::Contains("[binary_cross_entropy_with_logits] expected weight of dtype float32"), Error);
  // The input range is checked on the input's device (Backend::check_range), not read back
  // with min/max: the first bad element is reported with its flat position.
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<float>({0.5, 1.5}), tensor<float>({0, 1})),
                       doctest::Contains("[binary_cross_entropy] all elements of input should be between 0 and 1"),
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<float>({0.5, 1.5}), tensor<float>({0, 1})),
                       "[binary_cross_entropy] all elements of input should be between 0 and 1, got 1.5 (at position 1)",
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<double>({0.0, 1.0, -1e-9, 2.0}, {2, 2}).t(), zeros({2, 2}, kFloat64)),
                       "[binary_cross_entropy] all elements of input should be between 0 and 1, got -1e-09 (at position 1)",
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<float>({0.5f, NAN}), tensor<float>({0, 1})),
                       "[binary_cross_entropy] all elements of input should be between 0 and 1, got nan (at position 1)",
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<float>({-INFINITY}), tensor<float>({0})),
                       doctest::Contains("got -inf (at position 0)"), Error);
  // The ends 0 and 1 are allowed (each log clamped to -100), and an empty input is fine.
  CHECK(binary_cross_entropy(tensor<float>({0.f, 1.f}), tensor<float>({1.f, 0.f}), {}, Reduction::Sum).item<float>() ==
        200.f);
  CHECK(binary_cross_entropy(zeros({0}), zeros({0}), {}, Reduction::Sum).item<float>() == 0.f);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(zeros({2}, kInt64), zeros({2}, kInt64)),
                       doctest::Contains("[binary_cross_entropy] expected a floating point 'input'"), Error);
}

}  // TEST_SUITE

TEST_SUITE("nn_loss") {

TEST_CASE("loss modules: forward equals the function, weights are buffers, to() converts them") {
  manual_seed(21);
  Tensor x = randn({4, 3});
  Tensor t = tensor<int64_t>({0, 2, 1, -100});
  Tensor w = tensor<float>({0.5, 1, 2});
  auto ce = std::make_shared<nn::CrossEntropyLoss>(
      nn::CrossEntropyLossOptions().weight(w).label_smoothing(0.1).reduction("sum"));
  CHECK(allclose((*ce)(x, t),
                 cross_entropy(x, t, CrossEntropyOptions().weight(w).label_smoothing(0.1).reduction(Reduction::Sum))));
  CHECK(ce->parameters().empty());
  auto bufs = ce->named_buffers();
  REQUIRE(bufs.size() == 1);
  CHECK(bufs[0].first == "weight");
  CHECK(ce->state_dict().keys() == std::vector<std::string>{"weight"});
  CHECK(fmt::format("{}", *ce) == "CrossEntropyLoss()");
  ce->to(kFloat64);
  CHECK(ce->weight().dtype() == kFloat64);
  CHECK(w.dtype() == kFloat32);  // the caller's tensor is not converted with the module
  Tensor x64 = x.to(kFloat64);
  CHECK(allclose(ce->forward(x64, t),
                 cross_entropy(x64, t,
                               CrossEntropyOptions().weight(w.to(kFloat64)).label_smoothing(0.1).reduction(Reduction::Sum)),
                 1e-12));
  // no weight: no buffer, like PyTorch's None buffer
  nn::CrossEntropyLoss plain;
  CHECK(plain.named_buffers().empty());
  CHECK(plain(x, t).item<float>() == doctest::Approx(cross_entropy(x, t).item<float>()));
  // class probabilities through the module
  Tensor p = softmax(randn({4, 3}), 1);
  CHECK(plain(x, p).item<float>() == doctest::Approx(cross_entropy(x, p).item<float>()));

  nn::NLLLoss nll(nn::NLLLossOptions().weight(w).ignore_index(1));
  Tensor lp = log_softmax(x, 1);
  Tensor t1 = tensor<int64_t>({0, 2, 1, 1});
  CHECK(nll(lp, t1).item<float>() ==
        doctest::Approx(nll_loss(lp, t1, NLLLossOptions().weight(w).ignore_index(1)).item<float>()));
  CHECK(nll.named_buffers().size() == 1);

  Tensor y = randn({4, 3});
  CHECK(nn::MSELoss()(x, y).item<float>() == doctest::Approx(mse_loss(x, y).item<float>()));
  CHECK(allclose(nn::MSELoss(Reduction::None)(x, y), mse_loss(x, y, Reduction::None)));
  CHECK(allclose(nn::L1Loss("sum")(x, y), l1_loss(x, y, Reduction::Sum)));
  CHECK(allclose(nn::SmoothL1Loss(nn::SmoothL1LossOptions().beta(0.5))(x, y), smooth_l1_loss(x, y, Reduction::Mean, 0.5)));
  CHECK(allclose(nn::HuberLoss(nn::HuberLossOptions().delta(0.5).reduction("none"))(x, y),
                 huber_loss(x, y, Reduction::None, 0.5)));

  Tensor pw = tensor<float>({1, 2, 3});
  Tensor bt = rand({4, 3});
  nn::BCEWithLogitsLoss bce(nn::BCEWithLogitsLossOptions().pos_weight(pw).weight(ones({4, 1})));
  auto names = bce.state_dict().keys();
  CHECK(names == std::vector<std::string>{"weight", "pos_weight"});
  CHECK(allclose(bce(x, bt),
                 binary_cross_entropy_with_logits(x, bt, BCEWithLogitsOptions().pos_weight(pw).weight(ones({4, 1})))));
  CHECK(allclose(nn::BCELoss()(sigmoid(x), bt), binary_cross_entropy(sigmoid(x), bt)));

  // gradients flow through the module to the input
  Tensor xi = randn({4, 3}).requires_grad_();
  (*ce)(xi.to(kFloat64), t).backward();
  CHECK(xi.grad().defined());
}

TEST_CASE("loss modules: option and input errors name the loss") {
  CHECK_THROWS_WITH_AS(nn::CrossEntropyLoss(nn::CrossEntropyLossOptions().label_smoothing(2)),
                       "[CrossEntropyLoss] label_smoothing must be between 0.0 and 1.0, got 2", Error);
  CHECK_THROWS_WITH_AS(nn::SmoothL1Loss(nn::SmoothL1LossOptions().beta(-1)),
                       "[SmoothL1Loss] beta must be non-negative, got -1", Error);
  CHECK_THROWS_WITH_AS(nn::HuberLoss(nn::HuberLossOptions().delta(0)), "[HuberLoss] delta must be positive, got 0",
                       Error);
  CHECK_THROWS_WITH_AS(nn::MSELoss("average"),
                       "[MSELoss] average is not a valid value for reduction (expected \"none\", \"mean\" or \"sum\")",
                       Error);
  CHECK_THROWS_WITH_AS(nn::L1Loss(nn::L1LossOptions().reduction("avg")),
                       doctest::Contains("[L1Loss] avg is not a valid value for reduction"), Error);
  CHECK_THROWS_WITH_AS(nn::NLLLoss(nn::NLLLossOptions().reduction("x")),
                       doctest::Contains("[nll_loss] x is not a valid value for reduction"), Error);
  nn::CrossEntropyLoss ce(nn::CrossEntropyLossOptions().weight(ones({4})));
  CHECK_THROWS_WITH_AS(ce(zeros({2, 3}), tensor<int64_t>({0, 1})),
                       doctest::Contains("[cross_entropy] weight tensor should be defined either for all 3 classes"),
                       Error);
}

}  // TEST_SUITE
