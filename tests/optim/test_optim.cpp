// Optimizers, param groups, state_dict round trips, gradient clipping and LR schedulers.
#include <cmath>
#include <limits>

#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::values;

namespace {

// loss = 0.5 * sum(c * p^2): grad = c * p.
void quadratic_backward(const Tensor& p, double c = 1.0) { (0.5 * c * (p * p).sum()).backward(); }

Tensor param64(std::vector<double> v) { return tensor<double>(v).requires_grad_(); }

// A small nonlinear problem for round-trip tests.
Tensor problem_loss(const Tensor& W, const Tensor& b) {
  const Tensor x = tensor<float>({0.5f, -1.0f, 2.0f, 0.25f, 1.5f, -0.75f}, {2, 3});
  return tanh(matmul(x, W) + b).pow(2).sum() + (W * W).sum() * 0.1;
}

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("SGD: plain, momentum, nesterov, weight decay by hand") {
    Tensor p = param64({1.0, -2.0});
    optim::SGD plain({p}, optim::SGDOptions(0.1));
    quadratic_backward(p);
    plain.step();
    CHECK(values(p) == std::vector<double>{0.9, -1.8});

    Tensor q = param64({1.0});
    optim::SGD mom({q}, optim::SGDOptions(0.1).momentum(0.9).dampening(0.5));
    quadratic_backward(q);  // g = 1: buf = 1, q = 1 - 0.1 = 0.9
    mom.step();
    CHECK(q.item<double>() == doctest::Approx(0.9));
    mom.zero_grad();
    quadratic_backward(q);  // g = 0.9: buf = 0.9 * 1 + 0.5 * 0.9 = 1.35, q = 0.9 - 0.135
    mom.step();
    CHECK(q.item<double>() == doctest::Approx(0.765));
    CHECK(mom.state(q)->at("momentum_buffer").item<double>() == doctest::Approx(1.35));

    Tensor r = param64({1.0});
    optim::SGD nes({r}, optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(0.5));
    quadratic_backward(r);  // g = 1 + 0.5 = 1.5, buf = 1.5, step = 1.5 + 0.9 * 1.5 = 2.85
    nes.step();
    CHECK(r.item<double>() == doctest::Approx(1 - 0.285));

    Tensor m = param64({1.0});
    optim::SGD maxi({m}, optim::SGDOptions(0.1).maximize(true));
    quadratic_backward(m);
    maxi.step();
    CHECK(m.item<double>() == doctest::Approx(1.1));
  }

  TEST_CASE("Adam and AdamW first steps by hand") {
    // First Adam step: p -= lr * g / (|g| + eps) (bias corrections cancel).
    Tensor p = param64({1.0, -3.0, 0.0});
    optim::Adam adam({p}, optim::AdamOptions(0.1));
    quadratic_backward(p);
    adam.step();
    const double eps = 1e-8;
    CHECK(values(p)[0] == doctest::Approx(1.0 - 0.1 * 1.0 / (1.0 + eps)).epsilon(1e-14));
    CHECK(values(p)[1] == doctest::Approx(-3.0 + 0.1 * 3.0 / (3.0 + eps)).epsilon(1e-14));
    CHECK(values(p)[2] == 0.0);
    const std::optional<TensorDict> st = adam.state(p);
    REQUIRE(st.has_value());
    CHECK(adam.step_count(p) == 1.0);
    CHECK(st->keys() == std::vector<std::string>{"step", "exp_avg", "exp_avg_sq"});
    CHECK(st->at("step").dtype() == kFloat32);
    CHECK(st->at("step").dim() == 0);
    CHECK(st->at("step").item<double>() == 1.0);
    CHECK(values(st->at("exp_avg"))[1] == doctest::Approx(0.1 * -3.0));
    CHECK(values(st->at("exp_avg_sq"))[1] == doctest::Approx(0.001 * 9.0));
    CHECK(st->find("max_exp_avg_sq") == nullptr);

    // Adam's weight decay is L2 in the gradient: g = c p + wd p.
    Tensor q = param64({2.0});
    optim::Adam adam_wd({q}, optim::AdamOptions(0.1).weight_decay(0.5).amsgrad(true));
    quadratic_backward(q, 0.0);  // gradient 0: only the decay term drives the step
    adam_wd.step();
    CHECK(q.item<double>() == doctest::Approx(2.0 - 0.1 * 1.0 / (1.0 + eps)).epsilon(1e-14));
    CHECK(adam_wd.state(q)->contains("max_exp_avg_sq"));

    // AdamW decays the parameter directly: with a zero gradient, p *= 1 - lr * wd.
    Tensor w = param64({2.0, -4.0});
    optim::AdamW adamw({w}, optim::AdamWOptions(0.1).weight_decay(0.2));
    CHECK(adamw.defaults().weight_decay() == 0.2);
    CHECK(optim::AdamWOptions().weight_decay() == 1e-2);
    CHECK(optim::AdamOptions().weight_decay() == 0.0);
    quadratic_backward(w, 0.0);
    adamw.step();
    CHECK(values(w)[0] == doctest::Approx(2.0 * 0.98).epsilon(1e-15));
    CHECK(values(w)[1] == doctest::Approx(-4.0 * 0.98).epsilon(1e-15));
  }

  TEST_CASE("Adam float32 fused kernel matches the composed formula over many elements") {
    // More elements than one thread's grain, odd count for the vector tails.
    const int64_t n = 100003;
    Tensor p = randn({n}).requires_grad_();
    Tensor ref = p.detach().clone();
    Tensor m = zeros({n}), v = zeros({n});
    optim::AdamW opt({p}, optim::AdamWOptions(1e-2).weight_decay(0.1).betas({0.8, 0.9}));
    for (int step = 1; step <= 3; ++step) {
      const Tensor g = sin(ref * 3.0);
      p.set_grad(sin(p.detach() * 3.0));
      opt.step();
      NoGradGuard ng;
      ref.mul_(1 - 1e-2 * 0.1);
      m.mul_(0.8).add_(g, 0.2);
      v.mul_(0.9).add_(g * g * 0.1);
      const double bc1 = 1 - std::pow(0.8, step), bc2 = 1 - std::pow(0.9, step);
      const Tensor denom = v.sqrt() / std::sqrt(bc2) + 1e-8;
      ref.add_(m / denom * (-1e-2 / bc1));
      CHECK(allclose(p.detach(), ref, 1e-5, 1e-6));
    }
  }

  TEST_CASE("param groups: per-group lr and weight decay, lr get/set, add_param_group") {
    Tensor a = param64({1.0}), b = param64({1.0}), c = param64({1.0});
    optim::SGD opt(std::vector<optim::ParamGroup>{optim::ParamGroup({a}), optim::ParamGroup({b}).lr(0.5).weight_decay(1.0)},
                   optim::SGDOptions(0.1));
    REQUIRE(opt.param_groups().size() == 2);
    CHECK(opt.lr(0) == 0.1);
    CHECK(opt.lr(1) == 0.5);
    CHECK(opt.param_groups()[1].weight_decay() == 1.0);
    CHECK(opt.param_groups()[0].weight_decay() == 0.0);
    quadratic_backward(a);
    quadratic_backward(b);
    opt.step();
    CHECK(a.item<double>() == doctest::Approx(0.9));
    CHECK(b.item<double>() == doctest::Approx(1.0 - 0.5 * 2.0));  // g = p + wd * p
    opt.set_lr(1, 0.25);
    CHECK(opt.lr(1) == 0.25);
    opt.set_lr(0.125);
    CHECK(opt.lr(0) == 0.125);
    CHECK(opt.lr(1) == 0.125);
    opt.add_param_group(optim::ParamGroup({c}, optim::SGDOptions(0.3).momentum(0.5)));
    CHECK(opt.num_params() == 3);
    CHECK(static_cast<const optim::SGDOptions&>(opt.param_groups()[2].options()).momentum() == 0.5);
    CHECK_THROWS_WITH_AS(opt.lr(3), doctest::Contains("out of range"), focus::Error);
    CHECK_THROWS_WITH_AS(opt.add_param_group(optim::ParamGroup({a})), doctest::Contains("more than one parameter group"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(opt.add_param_group(optim::ParamGroup({param64({1.0})}, optim::AdamOptions())),
                         doctest::Contains("options type"), focus::Error);
  }

  TEST_CASE("zero_grad sets to none or to zeros") {
    Tensor p = param64({1.0, 2.0});
    optim::SGD opt({p}, optim::SGDOptions(0.1));
    quadratic_backward(p);
    opt.zero_grad(false);
    REQUIRE(p.grad().defined());
    CHECK(values(p.grad()) == std::vector<double>{0.0, 0.0});
    opt.zero_grad();
    CHECK_FALSE(p.grad().defined());
    opt.step();  // no grad: nothing happens
    CHECK(values(p) == std::vector<double>{1.0, 2.0});
  }

  TEST_CASE("step(closure) evaluates the loss with grad mode on") {
    Tensor p = param64({2.0});
    optim::SGD opt({p}, optim::SGDOptions(0.25));
    NoGradGuard ng;
    const Tensor loss = opt.step([&] {
      opt.zero_grad();
      Tensor l = 0.5 * (p * p).sum();
      l.backward();
      return l;
    });
    CHECK(loss.item<double>() == 2.0);
    CHECK(p.item<double>() == 1.5);
  }

  TEST_CASE("construction errors name the optimizer") {
    CHECK_THROWS_WITH_AS(optim::SGD(std::vector<Tensor>{}), doctest::Contains("[SGD] optimizer got an empty parameter list"),
                         focus::Error);
    Tensor p = param64({1.0});
    CHECK_THROWS_WITH_AS(optim::SGD({p}, optim::SGDOptions(-1.0)), doctest::Contains("invalid learning rate"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(optim::SGD({p}, optim::SGDOptions(0.1).nesterov(true)),
                         doctest::Contains("nesterov momentum requires"), focus::Error);
    CHECK_THROWS_WITH_AS(optim::Adam({p}, optim::AdamOptions().betas({1.0, 0.9})),
                         doctest::Contains("invalid beta parameter at index 0"), focus::Error);
    CHECK_THROWS_WITH_AS(optim::Adam({p}, optim::AdamOptions().eps(-1)), doctest::Contains("invalid epsilon"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(optim::AdamW({p, p}), doctest::Contains("appears twice"), focus::Error);
    const Tensor nonleaf = p * 2.0;
    CHECK_THROWS_WITH_AS(optim::Adam({nonleaf}), doctest::Contains("non-leaf"), focus::Error);
    CHECK_THROWS_WITH_AS(optim::Adam({arange(3)}), doctest::Contains("floating"), focus::Error);
    CHECK_THROWS_WITH_AS(optim::Adam({Tensor()}), doctest::Contains("undefined"), focus::Error);
  }

  TEST_CASE("state_dict layout and round trip: save, load into a fresh optimizer, continue identically") {
    auto make_params = [] {
      Tensor W = tensor<float>({0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f}, {3, 2}).requires_grad_();
      Tensor b = tensor<float>({0.05f, -0.05f}).requires_grad_();
      return std::pair{W, b};
    };
    auto make_opt = [](const Tensor& W, const Tensor& b) {
      return optim::AdamW({optim::ParamGroup({W}), optim::ParamGroup({b}).weight_decay(0.0).lr(2e-2)},
                          optim::AdamWOptions(1e-2).weight_decay(0.1).amsgrad(true));
    };
    auto train = [](optim::Optimizer& opt, const Tensor& W, const Tensor& b, int steps) {
      for (int i = 0; i < steps; ++i) {
        opt.zero_grad();
        problem_loss(W, b).backward();
        opt.step();
      }
    };
    auto [W1, b1] = make_params();
    auto opt1 = make_opt(W1, b1);
    train(opt1, W1, b1, 5);

    const TensorDict sd = opt1.state_dict();
    CHECK(sd.contains("state.0.exp_avg"));
    CHECK(sd.contains("state.1.max_exp_avg_sq"));
    CHECK(sd.at("state.0.step").dim() == 0);
    CHECK(sd.at("state.0.step").dtype() == kFloat32);
    CHECK(sd.at("state.0.step").item<double>() == 5.0);
    // PyTorch's order within each parameter's state: step first.
    CHECK(sd.with_prefix_removed("state.").keys() ==
          std::vector<std::string>{"0.step", "0.exp_avg", "0.exp_avg_sq", "0.max_exp_avg_sq", "1.step", "1.exp_avg",
                                   "1.exp_avg_sq", "1.max_exp_avg_sq"});
    CHECK(sd.at("param_groups.0.lr").dtype() == kFloat64);
    CHECK(sd.at("param_groups.1.lr").item<double>() == 2e-2);
    CHECK(sd.at("param_groups.1.weight_decay").item<double>() == 0.0);
    CHECK(sd.at("param_groups.0.betas").to_vector<double>() == std::vector<double>{0.9, 0.999});
    CHECK(sd.at("param_groups.0.amsgrad").dtype() == kBool);
    CHECK(sd.at("param_groups.1.params").to_vector<int64_t>() == std::vector<int64_t>{1});

    // "Save": deep copies, as a file would hold them.
    TensorDict saved;
    for (const auto& [k, v] : sd) saved.insert(k, v.clone());
    auto [W2, b2] = make_params();
    {
      NoGradGuard ng;
      W2.copy_(W1);
      b2.copy_(b1);
    }
    auto opt2 = optim::AdamW({optim::ParamGroup({W2}), optim::ParamGroup({b2})}, optim::AdamWOptions());
    opt2.load_state_dict(saved);
    CHECK(opt2.lr(1) == 2e-2);
    CHECK(opt2.param_groups()[0].weight_decay() == 0.1);
    train(opt1, W1, b1, 5);
    train(opt2, W2, b2, 5);
    CHECK(values(W1) == values(W2));
    CHECK(values(b1) == values(b2));
    // The loaded tensors were copied: training did not write into `saved`.
    CHECK(saved.at("state.0.step").item<double>() == 5.0);
    CHECK(opt2.step_count(W2) == 10.0);
  }

  TEST_CASE("Adam's step count: a host number, exposed as PyTorch's 0-d float32 step") {
    Tensor a = param64({1.0, -2.0}), b = param64({3.0});
    optim::Adam opt({a, b}, optim::AdamOptions(0.1));
    CHECK_FALSE(opt.state(a).has_value());
    CHECK_FALSE(opt.step_count(a).has_value());
    CHECK(opt.state_dict().with_prefix_removed("state.").empty());
    for (int i = 0; i < 3; ++i) {
      opt.zero_grad();
      quadratic_backward(a);
      if (i > 0) quadratic_backward(b);  // b has no gradient on the first step: not counted
      opt.step();
    }
    CHECK(opt.step_count(a) == 3.0);
    CHECK(opt.step_count(b) == 2.0);
    const TensorDict sd = opt.state_dict();
    for (const char* key : {"state.0.step", "state.1.step"}) {
      CAPTURE(key);
      CHECK(sd.at(key).dtype() == kFloat32);
      CHECK(sd.at(key).dim() == 0);
      CHECK(sd.at(key).device() == kCPU);
    }
    CHECK(sd.at("state.0.step").item<double>() == 3.0);
    CHECK(sd.at("state.1.step").item<double>() == 2.0);
    // state_dict's step is a snapshot: stepping again leaves it, and writing it changes nothing.
    sd.at("state.0.step").fill_(100.0);
    opt.step();
    CHECK(opt.step_count(a) == 4.0);
    CHECK(opt.state(a)->at("step").item<double>() == 4.0);

    // Loading takes `step` as one number of any dtype or shape [1] (as a file may hold it),
    // and the next step continues the bias corrections from it.
    Tensor c = param64({1.0, -2.0}), d = param64({3.0});
    optim::Adam loaded({c, d}, optim::AdamOptions(0.1));
    TensorDict in;
    for (const auto& [k, v] : opt.state_dict()) {
      if (k == "state.0.step") in.insert(k, scalar_tensor(4.0, kFloat64));
      else if (k == "state.1.step") in.insert(k, tensor<int64_t>({3}, {1}));
      else in.insert(k, v.clone());
    }
    loaded.load_state_dict(in);
    CHECK(loaded.step_count(c) == 4.0);
    CHECK(loaded.step_count(d) == 3.0);
    CHECK(loaded.state(d)->at("step").dtype() == kFloat32);
    {
      NoGradGuard ng;
      c.copy_(a);
      d.copy_(b);
    }
    for (optim::Adam* o : {&opt, &loaded}) {
      o->zero_grad();
      const auto& ps = o->param_groups()[0].params();
      quadratic_backward(ps[0]);
      quadratic_backward(ps[1]);
      o->step();
    }
    CHECK(values(c) == values(a));
    CHECK(values(d) == values(b));
    CHECK(loaded.step_count(c) == 5.0);
    CHECK_THROWS_WITH_AS(loaded.load_state_dict([&] {
                           TensorDict bad = in;
                           bad.set("state.0.step", zeros({2}));
                           return bad;
                         }()),
                         doctest::Contains("'state.0.step' must hold one number, got shape [2]"), focus::Error);
    CHECK(loaded.step_count(c) == 5.0);  // unchanged by the failed load
  }

  TEST_CASE("load_state_dict rejects mismatched dicts without changing anything") {
    Tensor a = param64({1.0, 2.0}), b = param64({3.0});
    optim::Adam opt({a, b}, optim::AdamOptions(0.1));
    quadratic_backward(a);
    quadratic_backward(b);
    opt.step();
    const TensorDict good = opt.state_dict();

    Tensor c = param64({1.0, 2.0});
    optim::Adam one({c});
    CHECK_THROWS_WITH_AS(one.load_state_dict(good), doctest::Contains("group 0 has 2 parameters, but the optimizer's group has 1"),
                         focus::Error);
    optim::Adam two_groups(std::vector<optim::ParamGroup>{optim::ParamGroup({param64({1.0, 2.0})}),
                                                          optim::ParamGroup({param64({1.0})})});
    CHECK_THROWS_WITH_AS(two_groups.load_state_dict(good), doctest::Contains("has 1 parameter groups, but the optimizer has 2"),
                         focus::Error);
    optim::Adam shapes({param64({1.0, 2.0, 3.0}), param64({1.0})});
    CHECK_THROWS_WITH_AS(shapes.load_state_dict(good),
                         doctest::Contains("'state.0.exp_avg' has shape [2], but its parameter has shape [3]"),
                         focus::Error);
    TensorDict extra = good;
    extra.insert("bogus", zeros({1}));
    CHECK_THROWS_WITH_AS(opt.load_state_dict(extra), doctest::Contains("unexpected key 'bogus'"), focus::Error);
    optim::SGD sgd({param64({1.0, 2.0}), param64({1.0})});
    CHECK_THROWS_WITH_AS(sgd.load_state_dict(good), doctest::Contains("unexpected state 'state.0.step'"), focus::Error);
    TensorDict no_params;
    for (const auto& [k, v] : good)
      if (k != "param_groups.0.params") no_params.insert(k, v);
    CHECK_THROWS_WITH_AS(opt.load_state_dict(no_params), doctest::Contains("missing key 'param_groups.0.params'"),
                         focus::Error);
    // After all the failures the optimizer still has its state.
    CHECK(opt.state(a)->at("step").item<double>() == 1.0);
  }

  TEST_CASE("clip_grad_norm_ and clip_grad_value_") {
    Tensor a = param64({3.0}), b = param64({0.0, 4.0}), none = param64({1.0});
    a.set_grad(tensor<double>({3.0}));
    b.set_grad(tensor<double>({0.0, -4.0}));
    // The total norm comes back as a 0-d tensor in the grads' dtype and device (as PyTorch),
    // never read on the host by clip_grad_norm_ itself.
    const Tensor total = optim::clip_grad_norm_({a, b, none}, 1.0);
    CHECK(total.dim() == 0);
    CHECK(total.dtype() == kFloat64);
    CHECK(total.device() == a.grad().device());
    CHECK_FALSE(total.requires_grad());
    CHECK(total.item<double>() == doctest::Approx(5.0));
    CHECK(a.grad().item<double>() == doctest::Approx(3.0 / (5.0 + 1e-6)));
    CHECK(values(b.grad())[1] == doctest::Approx(-4.0 / (5.0 + 1e-6)));
    // Below the threshold: untouched (coefficient clamped to 1).
    a.set_grad(tensor<double>({0.3}));
    CHECK(optim::clip_grad_norm_({a}, 1.0).item<double>() == doctest::Approx(0.3));
    CHECK(a.grad().item<double>() == 0.3);
    // float32 grads: a float32 norm, and the scaling by the 0-d coefficient in float32.
    Tensor f = tensor<float>({6.0f, 8.0f}).requires_grad_();
    f.set_grad(tensor<float>({6.0f, 8.0f}));
    const Tensor tf = optim::clip_grad_norm_({f}, 5.0);
    CHECK(tf.dtype() == kFloat32);
    CHECK(tf.item<double>() == 10.0);
    CHECK(f.grad().dtype() == kFloat32);
    CHECK(values(f.grad())[0] == doctest::Approx(3.0).epsilon(1e-6));
    CHECK(values(f.grad())[1] == doctest::Approx(4.0).epsilon(1e-6));
    // Infinity norm: the largest |g|.
    b.set_grad(tensor<double>({-7.0, 2.0}));
    CHECK(optim::clip_grad_norm_({b}, 14.0, INFINITY).item<double>() == 7.0);
    // No gradient at all: PyTorch's torch.tensor(0.0), a float32 CPU 0.
    const Tensor zero = optim::clip_grad_norm_({none}, 1.0);
    CHECK(zero.dim() == 0);
    CHECK(zero.dtype() == kFloat32);
    CHECK(zero.item<double>() == 0.0);
    // error_if_nonfinite: NaN and inf totals are errors, and the grads are left as they were;
    // without it they are scaled by the non-finite norm.
    b.set_grad(tensor<double>({NAN, 2.0}));
    CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({b}, 1.0, 2.0, true), doctest::Contains("non-finite"), focus::Error);
    CHECK(values(b.grad())[1] == 2.0);
    b.set_grad(tensor<double>({INFINITY, 2.0}));
    CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({b}, 1.0, 2.0, true),
                         doctest::Contains("[clip_grad_norm_] the total norm of order 2 for gradients from `parameters` "
                                           "is non-finite"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({b}, 1.0, INFINITY, true), doctest::Contains("non-finite"),
                         focus::Error);
    CHECK(values(b.grad())[1] == 2.0);
    CHECK(std::isinf(optim::clip_grad_norm_({b}, 1.0).item<double>()));
    CHECK(values(b.grad())[1] == 0.0);  // 2 * (1 / inf)
    b.set_grad(tensor<double>({-7.0, 2.0}));
    optim::clip_grad_value_({b}, 3.0);
    CHECK(values(b.grad()) == std::vector<double>{-3.0, 2.0});
  }

  TEST_CASE("clip_grad_norm_ and Adam's step on every device: the norm and state stay on the device") {
    FOR_EACH_DEVICE(dev) {
      const TensorOptions o = TensorOptions(kFloat32).device(dev);
      Tensor a = zeros({2}, o).requires_grad_(), b = zeros({1}, o).requires_grad_();
      a.set_grad(tensor<float>({3.0f, 0.0f}).to(dev));
      b.set_grad(tensor<float>({-4.0f}).to(dev));
      const Tensor total = optim::clip_grad_norm_({a, b}, 1.0);
      CHECK(total.device() == dev);
      CHECK(total.dtype() == kFloat32);
      CHECK(total.dim() == 0);
      CHECK(total.item<double>() == doctest::Approx(5.0).epsilon(1e-6));
      CHECK(a.grad().device() == dev);
      CHECK(values(a.grad())[0] == doctest::Approx(0.6).epsilon(1e-5));
      CHECK(values(b.grad())[0] == doctest::Approx(-0.8).epsilon(1e-5));
      a.grad().fill_(INFINITY);
      CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({a, b}, 1.0, 2.0, true), doctest::Contains("non-finite"),
                           focus::Error);

      a.set_grad(tensor<float>({1.0f, -3.0f}).to(dev));
      b.set_grad(Tensor());
      optim::AdamW opt({a, b}, optim::AdamWOptions(0.1));
      opt.step();
      opt.step();
      CHECK(opt.step_count(a) == 2.0);
      CHECK_FALSE(opt.step_count(b).has_value());
      const TensorDict sd = opt.state_dict();
      CHECK(sd.at("state.0.step").device() == kCPU);
      CHECK(sd.at("state.0.step").dtype() == kFloat32);
      CHECK(sd.at("state.0.step").item<double>() == 2.0);
      CHECK(sd.at("state.0.exp_avg").device() == dev);
      CHECK_FALSE(sd.contains("state.1.step"));
      // A CPU state dict (as read from a file) loads onto the device's parameters.
      TensorDict cpu;
      for (const auto& [k, v] : sd) cpu.insert(k, v.to(kCPU));
      Tensor a2 = a.detach().clone().requires_grad_(), b2 = b.detach().clone().requires_grad_();
      optim::AdamW opt2({a2, b2}, optim::AdamWOptions(0.1));
      opt2.load_state_dict(cpu);
      CHECK(opt2.step_count(a2) == 2.0);
      CHECK(opt2.state(a2)->at("exp_avg").device() == dev);
      a2.set_grad(a.grad().clone());
      opt.step();
      opt2.step();
      CHECK(values(a2) == values(a));
    }
  }

  TEST_CASE("schedulers: StepLR, InverseSqrtLR formula, errors, state_dict round trip") {
    Tensor p = param64({1.0});
    optim::SGD opt({p}, optim::SGDOptions(1.0));
    optim::StepLR step_lr(opt, 2, 0.5);
    std::vector<double> lrs{opt.lr()};
    for (int i = 0; i < 5; ++i) {
      opt.step();
      step_lr.step();
      lrs.push_back(opt.lr());
    }
    CHECK(lrs == std::vector<double>{1.0, 1.0, 0.5, 0.5, 0.25, 0.25});
    CHECK(step_lr.last_epoch() == 5);
    CHECK(opt.param_groups()[0].extras().at("initial_lr") == 1.0);

    // InverseSqrtLR: base * sqrt(w) * min(s^-0.5, s w^-1.5), s = step + 1; peak = base at s = w.
    Tensor q = param64({1.0});
    optim::Adam adam({q}, optim::AdamOptions(0.002));
    optim::InverseSqrtLR inv(adam, 4);
    for (int64_t e = 0; e < 12; ++e) {
      const double s = static_cast<double>(e + 1);
      const double expected = 0.002 * 2.0 * std::min(1 / std::sqrt(s), s / 8.0);
      CHECK(adam.lr() == doctest::Approx(expected).epsilon(1e-14));
      if (e == 3) CHECK(adam.lr() == doctest::Approx(0.002).epsilon(1e-14));
      inv.step();
    }
    // NoamLR: the paper's d_model^-0.5 * min(s^-0.5, s * warmup^-1.5) with base lr 1.
    Tensor r = param64({1.0});
    optim::Adam adam1({r}, optim::AdamOptions(1.0));
    optim::NoamLR noam(adam1, 512, 4000);
    CHECK(adam1.lr() == doctest::Approx(std::pow(512.0, -0.5) * std::pow(4000.0, -1.5)).epsilon(1e-14));

    // Errors.
    CHECK_THROWS_WITH_AS(optim::StepLR(opt, 0), doctest::Contains("[StepLR] step_size must be positive"), focus::Error);
    CHECK_THROWS_WITH_AS(optim::LinearLR(opt, 1.5), doctest::Contains("[LinearLR] starting multiplicative factor"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(optim::OneCycleLR(opt, optim::OneCycleLROptions(0.1)),
                         doctest::Contains("either total_steps OR (epochs AND steps_per_epoch)"), focus::Error);
    CHECK_THROWS_WITH_AS(optim::OneCycleLR(opt, optim::OneCycleLROptions(0.1, 10).anneal_strategy("exp")),
                         doctest::Contains("anneal_strategy"), focus::Error);
    CHECK_THROWS_WITH_AS(optim::OneCycleLR(opt, optim::OneCycleLROptions({0.1, 0.2}, 10)),
                         doctest::Contains("expected 1 values for max_lr, got 2"), focus::Error);
    {
      Tensor x = param64({1.0});
      optim::SGD o2({x}, optim::SGDOptions(0.1));
      optim::OneCycleLR one(o2, optim::OneCycleLROptions(0.1, 3));
      for (int i = 0; i < 3; ++i) one.step();
      CHECK_THROWS_WITH_AS(one.step(), doctest::Contains("tried to step 5 times"), focus::Error);
      CHECK(one.last_epoch() == 3);  // the failed step changed nothing
      auto a = std::make_shared<optim::StepLR>(o2, 2);
      CHECK_THROWS_WITH_AS(optim::SequentialLR(o2, {a}, {3}), doctest::Contains("one more than the number of milestone"),
                           focus::Error);
      CHECK_THROWS_WITH_AS(optim::SequentialLR(opt, {a}, {}), doctest::Contains("same optimizer"), focus::Error);
    }

    // Round trip: a scheduler and its optimizer restored mid-schedule continue identically.
    auto run = [](int first, bool reload) {
      Tensor x = param64({1.0});
      auto o = std::make_unique<optim::SGD>(std::vector<Tensor>{x}, optim::SGDOptions(0.5).momentum(0.9));
      auto s = std::make_unique<optim::CosineAnnealingLR>(*o, 7, 0.01);
      for (int i = 0; i < first; ++i) {
        o->step();
        s->step();
      }
      if (reload) {
        const TensorDict osd = o->state_dict(), ssd = s->state_dict();
        o = std::make_unique<optim::SGD>(std::vector<Tensor>{x}, optim::SGDOptions(0.5).momentum(0.9));
        s = std::make_unique<optim::CosineAnnealingLR>(*o, 7, 0.01);
        o->load_state_dict(osd);
        s->load_state_dict(ssd);
      }
      std::vector<double> out;
      for (int i = 0; i < 12; ++i) {
        o->step();
        s->step();
        out.push_back(o->lr());
      }
      return out;
    };
    CHECK(run(4, false) == run(4, true));
    optim::StepLR other(opt, 2);
    TensorDict broken = other.state_dict();
    broken.erase("last_epoch");
    CHECK_THROWS_WITH_AS(other.load_state_dict(broken), doctest::Contains("missing key 'last_epoch'"), focus::Error);
  }

  TEST_CASE("OneCycleLR cycles SGD momentum and Adam beta1; SequentialLR state round trip") {
    Tensor p = param64({1.0});
    optim::Adam adam({p}, optim::AdamOptions(0.1));
    optim::OneCycleLR one(adam, optim::OneCycleLROptions(0.1, 10));
    auto beta1 = [&] { return static_cast<const optim::AdamOptions&>(adam.param_groups()[0].options()).betas().first; };
    CHECK(beta1() == 0.95);
    CHECK(adam.lr() == doctest::Approx(0.1 / 25));
    for (int i = 0; i < 2; ++i) one.step();
    CHECK(adam.lr() == doctest::Approx(0.1));  // end of warmup: step pct_start * 10 - 1 = 2
    CHECK(beta1() == doctest::Approx(0.85));
    const TensorDict osd = adam.state_dict();
    CHECK(osd.at("param_groups.0.max_lr").item<double>() == 0.1);
    CHECK(osd.at("param_groups.0.initial_lr").item<double>() == doctest::Approx(0.004));

    Tensor q = param64({1.0});
    optim::SGD sgd({q}, optim::SGDOptions(1.0));
    auto warm = std::make_shared<optim::LinearLR>(sgd, 0.1, 1.0, 3);
    auto decay = std::make_shared<optim::ExponentialLR>(sgd, 0.5);
    optim::SequentialLR seq(sgd, {warm, decay}, {3});
    for (int i = 0; i < 4; ++i) seq.step();
    const TensorDict sd = seq.state_dict();
    CHECK(sd.contains("_schedulers.0.last_epoch"));
    CHECK(sd.contains("_schedulers.1.gamma"));
    const double lr_before = sgd.lr();
    seq.step();
    const double expected = sgd.lr();
    // Restore and step again: same value.
    seq.load_state_dict(sd);
    sgd.set_lr(lr_before);
    seq.step();
    CHECK(sgd.lr() == expected);
  }

  TEST_CASE("schedulers: load_state_dict refuses step counts that stepping on would overflow (found by "
            "fuzz_checkpoint)") {
    Tensor q = param64({1.0});
    optim::SGD sgd({q}, optim::SGDOptions(1.0));
    auto warm = std::make_shared<optim::LinearLR>(sgd, 0.1, 1.0, 3);
    auto decay = std::make_shared<optim::ExponentialLR>(sgd, 0.5);
    optim::SequentialLR seq(sgd, {warm, decay}, {3});
    seq.step();
    const TensorDict sd = seq.state_dict();
    auto with = [&](const std::string& key, int64_t v) {
      TensorDict d = sd;
      d.set(key, scalar_tensor(v, kInt64));
      return d;
    };
    // last_epoch = 2^63 - 1 loaded, then step(): signed overflow (UBSan) before.
    const int64_t big = std::numeric_limits<int64_t>::max();
    CHECK_THROWS_WITH_AS(seq.load_state_dict(with("last_epoch", big)),
                         doctest::Contains("[SequentialLR.load_state_dict] 'last_epoch' is 9223372036854775807, "
                                           "outside [-1, 2^53]"),
                         Error);
    CHECK_THROWS_WITH_AS(seq.load_state_dict(with("_schedulers.0.last_epoch", big)),
                         doctest::Contains("[LinearLR.load_state_dict] 'last_epoch'"), Error);
    CHECK_THROWS_WITH_AS(seq.load_state_dict(with("_schedulers.1._step_count", big)),
                         doctest::Contains("[ExponentialLR.load_state_dict] '_step_count'"), Error);
    CHECK_THROWS_WITH_AS(warm->load_state_dict(with("_schedulers.0.last_epoch", -2).with_prefix_removed("_schedulers.0.")),
                         doctest::Contains("'last_epoch' is -2, outside [-1, 2^53]"), Error);
    CHECK(seq.last_epoch() == 1);
    seq.load_state_dict(sd);  // the real state still loads
    seq.step();
    CHECK(seq.last_epoch() == 2);
  }
}
