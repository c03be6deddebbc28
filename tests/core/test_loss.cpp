// Losses (cross_entropy, nll_loss, mse_loss): float64 loop references, gradcheck and error
// messages.
#include <cmath>
#include <limits>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

// Reference cross entropy on logits viewed as [N, C, D] (row-major values) and targets [N, D]:
// per-position losses, torch 1.13 formulas: (1-eps) * nll + eps/C * sum_c(-log_softmax).
std::vector<double> ref_ce_rows(const std::vector<double>& x, const std::vector<int64_t>& t, int64_t N, int64_t C,
                                int64_t D, int64_t ignore, double eps) {
  std::vector<double> out(static_cast<size_t>(N * D), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t tg = t[n * D + d];
      if (tg == ignore) continue;
      double mx = -INFINITY;
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, x[(n * C + c) * D + d]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(x[(n * C + c) * D + d] - mx);
      const double lse = mx + std::log(s);
      double smooth = 0;
      for (int64_t c = 0; c < C; ++c) smooth += lse - x[(n * C + c) * D + d];
      out[n * D + d] = (1 - eps) * (lse - x[(n * C + tg) * D + d]) + eps / C * smooth;
    }
  return out;
}

double reduce(const std::vector<double>& rows, const std::vector<int64_t>& t, int64_t ignore, Reduction r) {
  double s = 0;
  int64_t n = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    s += rows[i];
    n += t[i] != ignore;
  }
  return r == Reduction::Mean ? s / static_cast<double>(n) : s;
}

Tensor targets(const std::vector<int64_t>& v, const Shape& shape) { return tensor<int64_t>(v, shape); }

const Reduction kReductions[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

}  // namespace

TEST_SUITE("loss") {

TEST_CASE("cross_entropy matches torch 1.13 with label smoothing and ignore_index") {
  // Values printed by torch 1.13 F.cross_entropy(..., label_smoothing=0.2).
  Tensor x = tensor<double>({1, 2, 3, 1, 0, -1, 0.5, -0.5, 2}, {3, 3}).requires_grad_();
  Tensor t = targets({2, -100, 0}, {3});
  auto opt = CrossEntropyOptions().label_smoothing(0.2);
  Tensor none = cross_entropy(x, t, CrossEntropyOptions(opt).reduction(Reduction::None));
  CHECK(allclose(none, tensor<double>({0.6076059644443805, 0.0, 1.7330345664738005}), 1e-12, 1e-12));
  CHECK(cross_entropy(x, t, CrossEntropyOptions(opt).reduction(Reduction::Sum)).item<double>() ==
        doctest::Approx(2.3406405309181806).epsilon(1e-12));
  Tensor mean = cross_entropy(x, t, opt);
  CHECK(mean.dim() == 0);
  CHECK(mean.item<double>() == doctest::Approx(1.1703202654590903).epsilon(1e-12));
  mean.backward();
  CHECK(allclose(x.grad(),
                 tensor<double>({0.011681953251856884, 0.08903090219406548, -0.10071285544592246, 0, 0, 0,
                                 -0.3478569432344382, -0.0018883267103995752, 0.3497452699448378},
                                {3, 3}),
                 1e-10, 1e-12));
  CHECK(mean.grad_fn()->name() == "CrossEntropyLossBackward0");
}

TEST_CASE("cross_entropy forward against float64 loops: 2-D, spatial, smoothing, reductions") {
  manual_seed(1);
  struct Case {
    Shape shape;  // logits
    double eps;
    int64_t ignore;
  };
  for (const Case& cs : {Case{{5, 4}, 0.0, -100}, Case{{5, 4}, 0.3, 1}, Case{{3, 4, 2, 3}, 0.1, 2},
                         Case{{2, 6, 5}, 0.0, 0}, Case{{1, 1}, 0.5, -100}}) {
    const int64_t N = cs.shape[0], C = cs.shape[1];
    int64_t D = 1;
    Shape tshape{N};
    for (size_t d = 2; d < cs.shape.size(); ++d) {
      D *= cs.shape[d];
      tshape.push_back(cs.shape[d]);
    }
    Tensor x = randn(cs.shape, kFloat64) * 3.0;
    Tensor t = randint(0, C, tshape);
    auto xv = x.to_vector<double>();
    auto tv = t.to_vector<int64_t>();
    auto rows = ref_ce_rows(xv, tv, N, C, D, cs.ignore, cs.eps);
    for (Reduction r : kReductions) {
      CAPTURE(cs.shape);
      CAPTURE(static_cast<int>(r));
      auto o = CrossEntropyOptions().ignore_index(cs.ignore).label_smoothing(cs.eps).reduction(r);
      Tensor l = cross_entropy(x, t, o);
      if (r == Reduction::None) {
        CHECK(l.shape() == tshape);
        CHECK(allclose(l, tensor<double>(rows, tshape), 1e-12, 1e-12));
      } else {
        CHECK(l.dim() == 0);
        const double ref = reduce(rows, tv, cs.ignore, r);
        if (std::isnan(ref)) CHECK(std::isnan(l.item<double>()));
        else CHECK(l.item<double>() == doctest::Approx(ref).epsilon(1e-12));
      }
      // float32 agrees with the float64 reference
      Tensor l32 = cross_entropy(x.to(kFloat32), t, o);
      CHECK(l32.dtype() == kFloat32);
      if (r == Reduction::None) CHECK(allclose(l32, tensor<double>(rows, tshape), 1e-5, 1e-5));
    }
  }
}

TEST_CASE("cross_entropy on non-contiguous logits and targets") {
  manual_seed(2);
  Tensor base = randn({4, 6}, kFloat64);
  Tensor x = base.t();  // [6, 4], column-major
  Tensor t = randint(0, 4, {6, 2}).select(1, 1);  // strided targets
  auto rows = ref_ce_rows(x.contiguous().to_vector<double>(), t.contiguous().to_vector<int64_t>(), 6, 4, 1, -100, 0.2);
  auto o = CrossEntropyOptions().label_smoothing(0.2).reduction(Reduction::None);
  CHECK(allclose(cross_entropy(x, t, o), tensor<double>(rows), 1e-12, 1e-12));
  // spatial logits with the class dim last in memory: [N, d, C] permuted to [N, C, d]
  Tensor sp = randn({2, 3, 5}, kFloat64).permute({0, 2, 1});
  Tensor st = randint(0, 5, {2, 3});
  auto srows = ref_ce_rows(sp.contiguous().to_vector<double>(), st.to_vector<int64_t>(), 2, 5, 3, -100, 0.0);
  CHECK(allclose(cross_entropy(sp, st, CrossEntropyOptions().reduction(Reduction::None)), tensor<double>(srows, {2, 3}),
                 1e-12, 1e-12));
}

TEST_CASE("cross_entropy: unbatched, empty, all ignored, extreme logits") {
  // unbatched [C] with a 0-d target (torch gives 1.4076 for this case)
  Tensor u = cross_entropy(tensor<float>({1, 2, 3}), scalar_tensor(int64_t{1}),
                           CrossEntropyOptions().reduction(Reduction::None));
  CHECK(u.dim() == 0);
  CHECK(u.item<double>() == doctest::Approx(1.4076059644443806).epsilon(1e-6));
  CHECK(cross_entropy(tensor<float>({1, 2, 3}), scalar_tensor(int64_t{1})).dim() == 0);
  // empty batch: mean is nan (0/0), sum 0, none empty
  Tensor e = zeros({0, 3});
  Tensor et = zeros({0}, kInt64);
  CHECK(std::isnan(cross_entropy(e, et).item<float>()));
  CHECK(cross_entropy(e, et, CrossEntropyOptions().reduction(Reduction::Sum)).item<float>() == 0.f);
  CHECK(cross_entropy(e, et, CrossEntropyOptions().reduction(Reduction::None)).shape() == Shape{0});
  // every target ignored: mean nan, sum 0, and a zero gradient
  Tensor x = randn({2, 3}, kFloat64).requires_grad_();
  Tensor ign = targets({-100, -100}, {2});
  CHECK(std::isnan(cross_entropy(x, ign).item<double>()));
  Tensor s = cross_entropy(x, ign, CrossEntropyOptions().reduction(Reduction::Sum));
  CHECK(s.item<double>() == 0.0);
  s.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>(6, 0.0));
  // large logits stay finite (log-sum-exp with the max subtracted)
  Tensor big = tensor<float>({1000, 0, -1000, 50}, {2, 2});
  Tensor bl = cross_entropy(big, targets({1, 0}, {2}), CrossEntropyOptions().reduction(Reduction::None));
  CHECK(allclose(bl, tensor<float>({1000, 1050}), 1e-6));
}

TEST_CASE("cross_entropy gradcheck: reductions, ignore_index, label smoothing, spatial, non-contiguous") {
  manual_seed(3);
  for (Reduction r : kReductions) {
    for (double eps : {0.0, 0.25}) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(eps);
      Tensor x = randn({4, 5}, kFloat64).requires_grad_();
      Tensor t = targets({1, -1, 4, 0}, {4});
      auto o = CrossEntropyOptions().ignore_index(-1).label_smoothing(eps).reduction(r);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], t, o); }, {x}));
      Tensor xs = randn({2, 3, 2, 2}, kFloat64).requires_grad_();
      Tensor ts = targets({0, 2, 1, 1, 2, 0, 0, 1}, {2, 2, 2});
      auto os = CrossEntropyOptions().ignore_index(1).label_smoothing(eps).reduction(r);
      CHECK(gradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], ts, os); }, {xs}));
    }
  }
  Tensor xt = randn({5, 3}, kFloat64).t().requires_grad_();  // [3, 5], non-contiguous
  Tensor tt = targets({4, 0, 2}, {3});
  CHECK(gradcheck([&](const std::vector<Tensor>& in) {
    return cross_entropy(in[0], tt, CrossEntropyOptions().label_smoothing(0.1));
  }, {xt}));
  Tensor xu = randn({4}, kFloat64).requires_grad_();
  CHECK(gradcheck([&](const std::vector<Tensor>& in) {
    return cross_entropy(in[0], scalar_tensor(int64_t{3}), CrossEntropyOptions().label_smoothing(0.1));
  }, {xu}));
}

TEST_CASE("cross_entropy errors") {
  Tensor x = zeros({2, 3});
  // Targets are checked by the raw op (Backend::check_indices), once for every device.
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets({0, 3}, {2})),
                       "[cross_entropy] target 3 is out of bounds for [0, 3) (at position 1)", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets({-5, 0}, {2}), CrossEntropyOptions().ignore_index(-1)),
                       "[cross_entropy] target -5 is out of bounds for [0, 3) (at position 0)", Error);
  // ignore_index is skipped, also outside [0, C); the first bad target is reported, at its
  // flat position in the target (here [2, 2] with classes on dim 1 of [2, 3, 2]).
  CHECK(cross_entropy(x, targets({-1, 2}, {2}), CrossEntropyOptions().ignore_index(-1)).item<float>() ==
        doctest::Approx(std::log(3.0)));
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3, 2}), targets({0, 7, 1, -9}, {2, 2}), CrossEntropyOptions().ignore_index(7)),
                       "[cross_entropy] target -9 is out of bounds for [0, 3) (at position 3)", Error);
  // A non-contiguous target is checked in its logical order.
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3, 2}), targets({0, 1, 5, 2}, {2, 2}).t()),
                       "[cross_entropy] target 5 is out of bounds for [0, 3) (at position 1)", Error);
  // Unbatched input with a 0-d target; the backward never sees a bad target.
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({3}), scalar_tensor(int64_t{3})),
                       "[cross_entropy] target 3 is out of bounds for [0, 3) (at position 0)", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, tensor<int32_t>({0, 1})),
                       "[cross_entropy] expected target of dtype int64 (class indices), got int32", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets({0, 1, 2}, {3})),
                       "[cross_entropy] expected target of shape [2] for input of shape [2, 3], got [3]", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3, 4}), targets({0, 1}, {2})),
                       "[cross_entropy] expected target of shape [2, 4] for input of shape [2, 3, 4], got [2]", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(x, targets({0, 1}, {2}), CrossEntropyOptions().label_smoothing(1.5)),
                       "[cross_entropy] label_smoothing must be between 0.0 and 1.0, got 1.5", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(scalar_tensor(1.0), scalar_tensor(int64_t{0})),
                       "[cross_entropy] expected input with at least 1 dim (the classes), got a 0-d tensor", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({3}), targets({0}, {1})),
                       "[cross_entropy] expected a 0-d target for unbatched input of shape [3], got a target of shape [1]",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}, kInt64), targets({0, 1}, {2})),
                       "[cross_entropy] expected a floating point 'input', got int64", Error);
  CHECK_THROWS_WITH_AS(cross_entropy(Tensor(), targets({0, 1}, {2})),
                       "[cross_entropy] argument 'input' is an undefined tensor", Error);
}

TEST_CASE("class targets are checked by the raw op on every device") {
  // Backend::check_indices: the CPU throws at once, CUDA at the next synchronisation (here
  // item()); either way the message names the op, the target and its flat position, and
  // the failed check leaves nothing behind for the next op.
  FOR_EACH_DEVICE(dev) {
    const Tensor x = zeros({2, 3, 2}, dev);
    const Tensor bad = targets({0, 1, 2, 3}, {2, 2}).to(dev);
    CHECK_THROWS_WITH_AS(cross_entropy(x, bad).item<float>(),
                         doctest::Contains("[cross_entropy] target 3 is out of bounds for [0, 3) (at position 3"), Error);
    CHECK_THROWS_WITH_AS(nll_loss(x, bad).item<float>(),
                         doctest::Contains("[nll_loss] target 3 is out of bounds for [0, 3) (at position 3"), Error);
    CHECK_THROWS_WITH_AS(
        cross_entropy(x, targets({-100, 1, -7, 0}, {2, 2}).to(dev), CrossEntropyOptions().label_smoothing(0.2))
            .item<float>(),
        doctest::Contains("[cross_entropy] target -7 is out of bounds for [0, 3) (at position 2"), Error);
    // ignore_index is skipped; good targets give the loss, also right after a failure.
    const Tensor ok = targets({0, -100, 2, 1}, {2, 2}).to(dev);
    CHECK(cross_entropy(x, ok).item<float>() == doctest::Approx(std::log(3.0)));
    CHECK(nll_loss(x, ok, -100, Reduction::Sum).item<float>() == 0.f);
    CHECK(cross_entropy(zeros({0, 3}, dev), targets({}, {0}).to(dev), CrossEntropyOptions().reduction(Reduction::Sum))
              .item<float>() == 0.f);
  }
}

TEST_CASE("nll_loss forward, gradcheck and errors") {
  manual_seed(4);
  Tensor lp = randn({4, 3, 2}, kFloat64);
  Tensor t = targets({0, 2, 1, -100, 2, 2, 0, 1}, {4, 2});
  auto lv = lp.to_vector<double>();
  auto tv = t.to_vector<int64_t>();
  std::vector<double> rows(8, 0.0);
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t d = 0; d < 2; ++d)
      if (tv[n * 2 + d] != -100) rows[n * 2 + d] = -lv[(n * 3 + tv[n * 2 + d]) * 2 + d];
  CHECK(allclose(nll_loss(lp, t, -100, Reduction::None), tensor<double>(rows, {4, 2}), 1e-14));
  CHECK(nll_loss(lp, t, -100, Reduction::Sum).item<double>() == doctest::Approx(reduce(rows, tv, -100, Reduction::Sum)));
  CHECK(nll_loss(lp, t).item<double>() == doctest::Approx(reduce(rows, tv, -100, Reduction::Mean)));
  // torch: nll_loss of a batch whose only target is ignored, mean -> nan
  CHECK(std::isnan(nll_loss(tensor<float>({-1, -2, -3}, {1, 3}), targets({5}, {1}), 5).item<float>()));
  CHECK(nll_loss(tensor<float>({-1, -2, -3}), scalar_tensor(int64_t{2}), -100, Reduction::None).item<float>() == 3.f);
  // non-contiguous log-probs
  Tensor lpt = randn({3, 4}, kFloat64).t();
  CHECK(allclose(nll_loss(lpt, targets({2, 0, 1, 1}, {4}), -100, Reduction::None),
                 -tensor<double>({lpt.contiguous().to_vector<double>()[2], lpt.contiguous().to_vector<double>()[3],
                                  lpt.contiguous().to_vector<double>()[7], lpt.contiguous().to_vector<double>()[10]})));
  for (Reduction r : kReductions) {
    Tensor x = randn({4, 3, 2}, kFloat64).requires_grad_();
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return nll_loss(in[0], t, -100, r); }, {x}));
  }
  Tensor x = randn({3, 4}, kFloat64).requires_grad_();
  Tensor l = nll_loss(x, targets({1, 3, 0}, {3}));
  CHECK(l.grad_fn()->name() == "NllLossBackward0");
  CHECK_THROWS_WITH_AS(nll_loss(zeros({2, 3}), targets({0, 7}, {2})),
                       "[nll_loss] target 7 is out of bounds for [0, 3) (at position 1)", Error);
  CHECK_THROWS_WITH_AS(nll_loss(zeros({2, 3, 2}), targets({0, 1, 2, -1}, {2, 2})),
                       "[nll_loss] target -1 is out of bounds for [0, 3) (at position 3)", Error);
  CHECK(nll_loss(zeros({2, 3}), targets({0, 1}, {2}), 1, Reduction::Sum).item<float>() == 0.f);
  CHECK_THROWS_WITH_AS(nll_loss(zeros({2, 3}), zeros({2})),
                       "[nll_loss] expected target of dtype int64 (class indices), got float32", Error);
  CHECK_THROWS_WITH_AS(nll_loss(zeros({2, 3}), targets({0, 1, 1, 0}, {2, 2})),
                       "[nll_loss] expected target of shape [2] for input of shape [2, 3], got [2, 2]", Error);
}

TEST_CASE("mse_loss forward: reductions, broadcasting, non-contiguous, empty") {
  manual_seed(5);
  Tensor a = randn({3, 4}, kFloat64);
  Tensor b = randn({3, 4}, kFloat64);
  auto av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> sq(12);
  double s = 0;
  for (size_t i = 0; i < 12; ++i) {
    sq[i] = (av[i] - bv[i]) * (av[i] - bv[i]);
    s += sq[i];
  }
  CHECK(allclose(mse_loss(a, b, Reduction::None), tensor<double>(sq, {3, 4}), 1e-14));
  CHECK(mse_loss(a, b, Reduction::Sum).item<double>() == doctest::Approx(s).epsilon(1e-13));
  CHECK(mse_loss(a, b).item<double>() == doctest::Approx(s / 12).epsilon(1e-13));
  // broadcasting: target [4] against input [3, 4]
  Tensor row = randn({4}, kFloat64);
  auto rv = row.to_vector<double>();
  double sb = 0;
  for (size_t i = 0; i < 12; ++i) sb += (av[i] - rv[i % 4]) * (av[i] - rv[i % 4]);
  CHECK(mse_loss(a, row).item<double>() == doctest::Approx(sb / 12).epsilon(1e-13));
  CHECK(mse_loss(a, row, Reduction::None).shape() == Shape{3, 4});
  // transposed input, float32, and a large tensor (several blocks and threads)
  CHECK(allclose(mse_loss(a.t(), b.t(), Reduction::None), tensor<double>(sq, {3, 4}).t(), 1e-14));
  Tensor big = randn({300, 500});
  Tensor big_t = randn({300, 500});
  auto x = big.to_vector<double>(), y = big_t.to_vector<double>();
  double sbig = 0;
  for (size_t i = 0; i < x.size(); ++i) sbig += (x[i] - y[i]) * (x[i] - y[i]);
  CHECK(mse_loss(big, big_t).item<float>() == doctest::Approx(sbig / x.size()).epsilon(1e-5));
  // empty: mean nan, sum 0
  CHECK(std::isnan(mse_loss(zeros({0, 2}), zeros({0, 2})).item<float>()));
  CHECK(mse_loss(zeros({0, 2}), zeros({0, 2}), Reduction::Sum).item<float>() == 0.f);
  CHECK(mse_loss(zeros({0, 2}), zeros({0, 2}), Reduction::None).shape() == Shape{0, 2});
}

TEST_CASE("mse_loss gradcheck and errors") {
  manual_seed(6);
  for (Reduction r : kReductions) {
    Tensor a = randn({3, 4}, kFloat64).requires_grad_();
    Tensor b = randn({4, 3}, kFloat64).t().requires_grad_();
    CHECK(gradcheck([&](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], r); }, {a, b}));
  }
  Tensor a = randn({2, 2}, kFloat64).requires_grad_();
  CHECK(mse_loss(a, zeros({2, 2}, kFloat64)).grad_fn()->name() == "MseLossBackward0");
  CHECK_THROWS_WITH_AS(mse_loss(zeros({2, 3}), zeros({2, 3}, kFloat64)),
                       "[mse_loss] expected input and target of one dtype, got float32 and float64", Error);
  CHECK_THROWS_WITH_AS(mse_loss(zeros({2, 3}), zeros({3, 2})),
                       "[mse_loss] shapes [2, 3] and [3, 2] cannot be broadcast together (dim -2: 2 vs 3)", Error);
  CHECK_THROWS_WITH_AS(mse_loss(zeros({2}, kInt64), zeros({2}, kInt64)),
                       "[mse_loss] expected a floating point 'input', got int64", Error);
}

}  // TEST_SUITE
