#pragma once
// The 2-D spiral toy problem (three interleaved arms, as in CS231n) and a two-layer MLP
// trained on it with plain tensor ops and a hand-written SGD step. Used by the
// end-to-end test.
#include <focus/focus.h>

#include <functional>

namespace focus::demo {

struct Spiral {
  Tensor x;  // [classes * points, 2] float32
  Tensor y;  // [classes * points] int64
};

/// points per arm, classes arms, angular noise; seeded through focus::manual_seed.
inline Spiral make_spiral(int64_t points, int64_t classes, double noise, uint64_t seed) {
  manual_seed(seed);
  std::vector<Tensor> xs, ys;
  for (int64_t k = 0; k < classes; ++k) {
    Tensor r = linspace(0.0, 1.0, points);
    Tensor t = linspace(4.0 * k, 4.0 * (k + 1), points) + randn({points}) * noise;
    xs.push_back(stack({r * sin(t), r * cos(t)}, 1));
    ys.push_back(full({points}, k, kInt64));
  }
  return {cat(xs, 0), cat(ys, 0)};
}

struct MlpResult {
  double first_loss = 0;
  double final_loss = 0;
  double accuracy = 0;
};

/// Trains x -> relu(x W1^T + b1) W2^T + b2 with full-batch SGD; on_step(step, loss) is
/// called every report_every steps.
inline MlpResult train_mlp(const Spiral& data, int64_t hidden, int64_t steps, double lr, uint64_t seed,
                           const std::function<void(int64_t, double)>& on_step = {}, int64_t report_every = 100) {
  manual_seed(seed);
  const int64_t in = data.x.size(1);
  const int64_t classes = focus::max(data.y).item<int64_t>() + 1;
  // Kaiming-uniform-like init, as nn.Linear.
  auto init = [](int64_t out, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return (rand({out, fan_in}) * (2 * bound) - bound).requires_grad_();
  };
  Tensor w1 = init(hidden, in), b1 = zeros({hidden}).requires_grad_();
  Tensor w2 = init(classes, hidden), b2 = zeros({classes}).requires_grad_();
  std::vector<Tensor> params{w1, b1, w2, b2};
  MlpResult res;
  for (int64_t step = 0; step < steps; ++step) {
    Tensor h = relu(linear(data.x, w1, b1));
    Tensor logits = linear(h, w2, b2);
    Tensor loss = cross_entropy(logits, data.y);
    for (auto& p : params) p.set_grad(Tensor());
    loss.backward();
    {
      NoGradGuard no_grad;
      for (auto& p : params) p.sub_(p.grad(), lr);
    }
    const double l = loss.item<double>();
    if (step == 0) res.first_loss = l;
    res.final_loss = l;
    if (on_step && (step % report_every == 0 || step + 1 == steps)) on_step(step, l);
  }
  NoGradGuard no_grad;
  Tensor pred = linear(relu(linear(data.x, w1, b1)), w2, b2).argmax(1);
  res.accuracy = eq(pred, data.y).to(kFloat64).mean().item<double>();
  return res;
}

}  // namespace focus::demo
