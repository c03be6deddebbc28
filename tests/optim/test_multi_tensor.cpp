// Multi-tensor optimizer steps (raw::adam_step_multi / raw::sgd_step_multi, the optimizers
// that use them): bit for bit the per-parameter steps, on every device, for mixed shapes,
// dtypes and layouts, chunk boundaries included; argument errors change nothing.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/ops/common.h"
#include "core/ops/optim.h"
#include "test_util.h"

using namespace focus;
using focus::testing::values;

namespace {

// Bytes of one chunk of the CUDA multi-tensor kernels, in elements (backends/cuda/optim.cu).
constexpr int64_t kChunk = 65536;

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) {
    MESSAGE("dtype/shape differ: " << fmt::format("{} {} vs {} {}", a.dtype(), a.shape(), b.dtype(), b.shape()));
    return false;
  }
  const Tensor x = a.to(kCPU).contiguous(), y = b.to(kCPU).contiguous();
  if (std::memcmp(x.data_ptr(), y.data_ptr(), static_cast<size_t>(x.numel()) * x.element_size()) == 0) return true;
  const auto vx = x.to_vector<double>(), vy = y.to_vector<double>();
  for (size_t i = 0; i < vx.size(); ++i)
    if (std::memcmp(&vx[i], &vy[i], sizeof(double)) != 0) {
      MESSAGE("first difference at flat index " << i << ": " << fmt::format("{} vs {}", vx[i], vy[i]));
      break;
    }
  return false;
}

// One parameter of the test set.
struct Spec {
  Shape shape;
  DType dtype;
  bool transposed_param = false;  // param a non-contiguous (transposed) view
  DType grad_dtype;               // converted by the raw op when it differs
  bool transposed_grad = false;
};

// Mixed shapes and dtypes: 0-d, one element, empty, odd sizes, one full chunk exactly, several
// chunks with a tail, non-contiguous params and grads, grads of another dtype, 16-bit
// parameters (the CPU widens them to float32: backends/cpu/half_adapter.h).
std::vector<Spec> specs(Device dev) {
  std::vector<Spec> s{
      {{7}, kFloat32, false, kFloat32},
      {{3, 5}, kFloat64, false, kFloat64},
      {{}, kFloat32, false, kFloat32},
      {{0, 3}, kFloat64, false, kFloat64},
      {{1}, kFloat64, false, kFloat64},
      {{2 * kChunk + 17}, kFloat32, false, kFloat32},
      {{kChunk}, kFloat64, false, kFloat64},
      {{40, 33}, kFloat32, true, kFloat32},
      {{5, 4}, kFloat64, false, kFloat32, true},
      {{1000}, kFloat32, false, kFloat64},
  };
  (void)dev;
  s.push_back({{300}, kFloat16, false, kFloat16});
  s.push_back({{kChunk + 3}, kBFloat16, false, kBFloat16});
  s.push_back({{9, 11}, kFloat16, true, kFloat32});
  return s;
}

// A deterministic tensor of spec's shape: normal(0, scale), |.| when positive.
Tensor draw(const Spec& spec, DType dtype, bool transposed, uint64_t seed, double scale, bool positive, Device dev) {
  Generator gen(seed);
  Shape shape = spec.shape;
  if (transposed) std::swap(shape[0], shape[1]);
  Tensor t = randn(shape, TensorOptions(kFloat64), &gen) * scale;
  if (positive) t = t.abs();
  t = t.to(dtype).to(dev);
  return transposed ? t.t() : t;
}

Tensor state_of(const Spec& spec, uint64_t seed, double scale, bool positive, Device dev) {
  return draw(spec, spec.dtype, false, seed, scale, positive, dev);
}

// ---- Adam ----------------------------------------------------------------------------------

Backend::AdamStepParams adam_params(int combo) {
  Backend::AdamStepParams s;
  s.beta1 = 0.8;
  s.beta2 = 0.95;
  s.eps = 1e-6;
  s.weight_decay = (combo & 1) ? 0.03 : 0;            // Adam's L2
  s.param_scale = (combo & 2) ? 1 - 1e-2 * 0.1 : 1;  // AdamW's decoupled decay
  s.amsgrad = (combo & 4) != 0;
  s.maximize = (combo & 8) != 0;
  return s;
}

// Three steps of every spec's parameter, each with its own step count (1 + index % 3 at the
// first step), per parameter (raw::adam_step) or all at once (raw::adam_step_multi). Returns
// every parameter and state tensor after the last step.
std::vector<Tensor> run_adam(Device dev, int combo, bool multi) {
  const std::vector<Spec> sp = specs(dev);
  const Backend::AdamStepParams s = adam_params(combo);
  const double lr = 1e-2;
  std::vector<raw::AdamStepTensors> entries;
  for (size_t i = 0; i < sp.size(); ++i) {
    raw::AdamStepTensors e;
    e.param = draw(sp[i], sp[i].dtype, sp[i].transposed_param, 100 + i, 1.0, false, dev);
    e.exp_avg = state_of(sp[i], 200 + i, 0.1, false, dev);
    e.exp_avg_sq = state_of(sp[i], 300 + i, 0.01, true, dev);
    e.max_exp_avg_sq = s.amsgrad ? state_of(sp[i], 400 + i, 0.01, true, dev) : Tensor();
    entries.push_back(e);
  }
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < sp.size(); ++i) {
      raw::AdamStepTensors& e = entries[i];
      e.grad = draw(sp[i], sp[i].grad_dtype, sp[i].transposed_grad, 1000 * step + i, 0.5, false, dev);
      const double t = 1.0 + static_cast<double>(i % 3) + step;
      e.step_size = lr / (1 - std::pow(s.beta1, t));
      e.bias_correction2_sqrt = std::sqrt(1 - std::pow(s.beta2, t));
    }
    if (multi) {
      raw::adam_step_multi(entries, s);
    } else {
      for (const raw::AdamStepTensors& e : entries) {
        Backend::AdamStepParams q = s;
        q.step_size = e.step_size;
        q.bias_correction2_sqrt = e.bias_correction2_sqrt;
        raw::adam_step(e.param, e.grad, e.exp_avg, e.exp_avg_sq, e.max_exp_avg_sq, q);
      }
    }
  }
  std::vector<Tensor> out;
  for (const raw::AdamStepTensors& e : entries) {
    out.push_back(e.param);
    out.push_back(e.exp_avg);
    out.push_back(e.exp_avg_sq);
    if (s.amsgrad) out.push_back(e.max_exp_avg_sq);
  }
  return out;
}

// ---- SGD -----------------------------------------------------------------------------------

Backend::SgdStepParams sgd_params(int combo) {
  Backend::SgdStepParams s;
  s.lr = 0.05;
  s.weight_decay = (combo & 1) ? 0.01 : 0;
  s.momentum = (combo & 2) ? 0.9 : 0;
  s.nesterov = (combo & 4) && (combo & 2);
  s.maximize = (combo & 8) != 0;
  s.dampening = ((combo & 16) && !s.nesterov) ? 0.1 : 0;
  return s;
}

// Three steps; the even-numbered parameters start with an uninitialized buffer (first_step at
// the first step), the others with a random one.
std::vector<Tensor> run_sgd(Device dev, int combo, bool multi) {
  const std::vector<Spec> sp = specs(dev);
  const Backend::SgdStepParams s = sgd_params(combo);
  std::vector<raw::SgdStepTensors> entries;
  for (size_t i = 0; i < sp.size(); ++i) {
    raw::SgdStepTensors e;
    e.param = draw(sp[i], sp[i].dtype, sp[i].transposed_param, 500 + i, 1.0, false, dev);
    if (s.momentum != 0) {
      e.momentum_buffer = state_of(sp[i], 600 + i, 0.1, false, dev);
      // A first step must not read the buffer: NaN there would show.
      if (i % 2 == 0) e.momentum_buffer.fill_(NAN);
    }
    entries.push_back(e);
  }
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < sp.size(); ++i) {
      raw::SgdStepTensors& e = entries[i];
      e.grad = draw(sp[i], sp[i].grad_dtype, sp[i].transposed_grad, 2000 * step + i, 0.5, false, dev);
      e.first_step = s.momentum != 0 && step == 0 && i % 2 == 0;
    }
    if (multi) {
      raw::sgd_step_multi(entries, s);
    } else {
      for (const raw::SgdStepTensors& e : entries) {
        Backend::SgdStepParams q = s;
        q.first_step = e.first_step;
        raw::sgd_step(e.param, e.grad, e.momentum_buffer, q);
      }
    }
  }
  std::vector<Tensor> out;
  for (const raw::SgdStepTensors& e : entries) {
    out.push_back(e.param);
    if (s.momentum != 0) out.push_back(e.momentum_buffer);
  }
  return out;
}

void check_all_same(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    CAPTURE(k);
    CHECK(same_bits(got[k], want[k]));
  }
}

// float32/float64 results of a GPU run against the CPU's (the shared per-element math gives
// the same bits on both devices).
template <typename Run> void check_against_cpu(Device dev, int combo, Run run) {
  if (dev.is_cpu()) return;
  const std::vector<Tensor> gpu = run(dev, combo, true), cpu = run(kCPU, combo, true);
  for (size_t k = 0; k < cpu.size(); ++k) {
    CAPTURE(k);
    CHECK(same_bits(gpu[k], cpu[k]));
  }
}

// The optimizer's parameters for the optimizer-level tests: two param groups, float32 and
// float64, one parameter over a chunk, one without a gradient at some steps.
struct Model {
  std::vector<Tensor> params;
  Model(Device dev) {
    const std::vector<Spec> sp = {{{3, 4}, kFloat32, false, kFloat32},
                                  {{kChunk + 5}, kFloat32, false, kFloat32},
                                  {{6}, kFloat64, false, kFloat64},
                                  {{2, 3}, kFloat64, false, kFloat64},
                                  {{}, kFloat32, false, kFloat32}};
    for (size_t i = 0; i < sp.size(); ++i)
      params.push_back(draw(sp[i], sp[i].dtype, false, 700 + i, 1.0, false, dev).requires_grad_());
  }
  // Gradients of step `step`; parameter 2 has none at step 1, parameter 4 none before step 2.
  void set_grads(int step) {
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& p = params[i];
      const bool none = (i == 2 && step == 1) || (i == 4 && step < 2);
      Generator gen(3000 * step + i);
      p.set_grad(none ? Tensor() : (randn(p.shape(), TensorOptions(kFloat64), &gen) * 0.5).to(p.dtype()).to(p.device()));
    }
  }
  std::vector<optim::ParamGroup> groups() const {
    return {optim::ParamGroup({params[0], params[2], params[4]}), optim::ParamGroup({params[1], params[3]}).lr(0.03)};
  }
};

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("adam_step_multi equals adam_step per parameter, bit for bit, on every device") {
    FOR_EACH_DEVICE(dev) {
      for (int combo = 0; combo < 16; ++combo) {
        CAPTURE(combo);
        check_all_same(run_adam(dev, combo, true), run_adam(dev, combo, false));
        check_against_cpu(dev, combo, run_adam);
      }
    }
  }

  TEST_CASE("sgd_step_multi equals sgd_step per parameter, bit for bit, on every device") {
    FOR_EACH_DEVICE(dev) {
      for (int combo = 0; combo < 32; ++combo) {
        CAPTURE(combo);
        check_all_same(run_sgd(dev, combo, true), run_sgd(dev, combo, false));
        check_against_cpu(dev, combo, run_sgd);
      }
    }
  }

  TEST_CASE("Adam, AdamW and SGD steps equal per-parameter raw steps over groups, dtypes and missing grads") {
    FOR_EACH_DEVICE(dev) {
      for (int kind = 0; kind < 4; ++kind) {
        CAPTURE(kind);
        Model model(dev), ref(dev);
        std::unique_ptr<optim::Optimizer> opt;
        if (kind == 0) opt = std::make_unique<optim::Adam>(model.groups(), optim::AdamOptions(0.01).weight_decay(0.1).amsgrad(true));
        if (kind == 1) opt = std::make_unique<optim::AdamW>(model.groups(), optim::AdamWOptions(0.01).weight_decay(0.1).maximize(true));
        if (kind == 2) opt = std::make_unique<optim::SGD>(model.groups(), optim::SGDOptions(0.01).momentum(0.9).nesterov(true).weight_decay(0.1));
        if (kind == 3) opt = std::make_unique<optim::SGD>(model.groups(), optim::SGDOptions(0.01).momentum(0.9).dampening(0.2));
        // The reference: the per-parameter algorithm the optimizers ran before the multi-tensor
        // steps, written out with the single-tensor raw ops.
        std::vector<Tensor> m, v, vmax, buf;
        std::vector<double> count(ref.params.size(), 0);
        for (const Tensor& p : ref.params) {
          const TensorOptions o = TensorOptions(p.dtype()).device(p.device());
          m.push_back(zeros(p.shape(), o));
          v.push_back(zeros(p.shape(), o));
          vmax.push_back(zeros(p.shape(), o));
          buf.push_back(Tensor());
        }
        const std::vector<double> lrs = {0.01, 0.03, 0.01, 0.03, 0.01};
        for (int step = 0; step < 4; ++step) {
          model.set_grads(step);
          ref.set_grads(step);
          opt->step();
          for (size_t i = 0; i < ref.params.size(); ++i) {
            const Tensor& p = ref.params[i];
            if (!p.grad().defined()) continue;
            const double lr = lrs[i];
            if (kind < 2) {
              Backend::AdamStepParams s;
              s.beta1 = 0.9;
              s.beta2 = 0.999;
              s.eps = 1e-8;
              s.weight_decay = kind == 0 ? 0.1 : 0.0;
              s.param_scale = kind == 1 ? 1 - lr * 0.1 : 1.0;
              s.amsgrad = kind == 0;
              s.maximize = kind == 1;
              const double t = ++count[i];
              s.step_size = lr / (1 - std::pow(0.9, t));
              s.bias_correction2_sqrt = std::sqrt(1 - std::pow(0.999, t));
              raw::adam_step(p, p.grad(), m[i], v[i], vmax[i], s);
            } else {
              Backend::SgdStepParams s;
              s.lr = lr;
              s.momentum = 0.9;
              s.dampening = kind == 3 ? 0.2 : 0.0;
              s.weight_decay = kind == 2 ? 0.1 : 0.0;
              s.nesterov = kind == 2;
              s.first_step = !buf[i].defined();
              if (s.first_step) buf[i] = zeros(p.shape(), TensorOptions(p.dtype()).device(p.device()));
              raw::sgd_step(p, p.grad(), buf[i], s);
            }
          }
          for (size_t i = 0; i < ref.params.size(); ++i) {
            CAPTURE(step);
            CAPTURE(i);
            CHECK(same_bits(model.params[i], ref.params[i]));
            const std::optional<TensorDict> st = opt->state(model.params[i]);
            if (count[i] == 0 && buf[i].defined() == false) {
              CHECK_FALSE(st.has_value());
              continue;
            }
            REQUIRE(st.has_value());
            if (kind < 2) {
              CHECK(opt->step_count(model.params[i]) == count[i]);
              CHECK(same_bits(st->at("exp_avg"), m[i]));
              CHECK(same_bits(st->at("exp_avg_sq"), v[i]));
              if (kind == 0) CHECK(same_bits(st->at("max_exp_avg_sq"), vmax[i]));
              CHECK(st->keys().front() == "step");
            } else {
              CHECK(same_bits(st->at("momentum_buffer"), buf[i]));
            }
          }
        }
      }
    }
  }

  TEST_CASE("multi-tensor steps: errors name the entry and change nothing") {
    Tensor a = randn({3}), b = randn({4}), c = randn({2, 2}, TensorOptions(kFloat64));
    const Tensor a0 = a.clone(), b0 = b.clone();
    auto adam = [&](std::vector<raw::AdamStepTensors> e, bool amsgrad = false) {
      Backend::AdamStepParams s;
      s.amsgrad = amsgrad;
      s.step_size = 0.1;
      raw::adam_step_multi(e, s);
    };
    auto entry = [](const Tensor& p, const Tensor& g) {
      return raw::AdamStepTensors{p, g, zeros_like(p), zeros_like(p), Tensor(), 0.1, 1.0};
    };
    // A bad grad shape in the last entry: the first entry is not stepped either.
    CHECK_THROWS_WITH_AS(adam({entry(a, ones({3})), entry(b, ones({5}))}),
                         "[adam_step_multi] entries[1].grad of shape [5] does not match entries[1].param of shape [4]",
                         focus::Error);
    CHECK(same_bits(a, a0));
    CHECK_THROWS_WITH_AS(adam({entry(a, ones({3})), entry(b, ones({4}))}, true),
                         "[adam_step_multi] argument 'entries[0].max_exp_avg_sq' is an undefined tensor", focus::Error);
    raw::AdamStepTensors wrong = entry(c, ones({2, 2}, TensorOptions(kFloat64)));
    wrong.exp_avg = zeros({2, 2});
    CHECK_THROWS_WITH_AS(adam({entry(a, ones({3})), wrong}),
                         doctest::Contains("[adam_step_multi] entries[1].exp_avg must be a contiguous float64 tensor"),
                         focus::Error);
    CHECK(same_bits(a, a0));

    // Memory written twice: the same param, or a state inside another entry's param.
    CHECK_THROWS_WITH_AS(adam({entry(a, ones({3})), entry(b, ones({4})), entry(a, ones({3}))}),
                         "[adam_step_multi] entries[0].param and entries[2].param share memory", focus::Error);
    Tensor big = zeros({10});
    raw::AdamStepTensors overlapping = entry(b, ones({4}));
    overlapping.exp_avg_sq = big.narrow(0, 6, 4);
    CHECK_THROWS_WITH_AS(adam({entry(big.narrow(0, 0, 7), ones({7})), overlapping}),
                         "[adam_step_multi] entries[0].param and entries[1].exp_avg_sq share memory", focus::Error);
    // Disjoint views of one storage are fine.
    Tensor halves = zeros({8});
    adam({entry(halves.narrow(0, 0, 4), ones({4})), entry(halves.narrow(0, 4, 4), ones({4}))});
    Tensor solo = zeros({4});
    adam({entry(solo, ones({4}))});
    CHECK(values(solo)[0] < 0);
    CHECK(same_bits(halves.narrow(0, 0, 4), solo));
    CHECK(same_bits(halves.narrow(0, 4, 4), solo));
    CHECK(same_bits(b, b0));

    Backend::SgdStepParams s;
    s.lr = 0.1;
    s.momentum = 0.9;
    const std::vector<raw::SgdStepTensors> sgd = {{a, ones({3}), zeros({3}), true}, {b, ones({4}), Tensor(), true}};
    CHECK_THROWS_WITH_AS(raw::sgd_step_multi(sgd, s),
                         "[sgd_step_multi] argument 'entries[1].momentum_buffer' is an undefined tensor", focus::Error);
    CHECK(same_bits(a, a0));
    // Without momentum no buffer is needed.
    s.momentum = 0;
    raw::sgd_step_multi(sgd, s);
    CHECK(values(a) == values(a0 - 0.1));
  }

  TEST_CASE("multi-tensor steps on the CPU: a dtype without CPU kernels throws before anything is written") {
    // Every floating dtype has CPU kernels now (16-bit through float32) and the raw ops reject
    // other dtypes first, so the kernel table is called directly with an int64 entry: the
    // float32 and bfloat16 entries before it must not move.
    Tensor a = randn({3});
    const Tensor a0 = a.clone();
    Tensor hb = randn({2}).to(kBFloat16);
    const Tensor hb0 = hb.clone();
    Tensor h = zeros({2}, TensorOptions(kInt64));
    auto ref = [](const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v) {
      Backend::AdamTensorRef r;
      r.param = raw::make_view(p);
      r.grad = raw::make_view(g);
      r.exp_avg = raw::make_view(m);
      r.exp_avg_sq = raw::make_view(v);
      r.step_size = 0.1;
      return r;
    };
    const Tensor hz = zeros({2}, TensorOptions(kBFloat16));
    const Backend::AdamTensorRef refs[] = {ref(a, ones({3}), zeros({3}), zeros({3})),
                                           ref(hb, ones({2}, TensorOptions(kBFloat16)), hz.clone(), hz.clone()),
                                           ref(h, h.clone(), h.clone(), h.clone())};
    CHECK_THROWS_WITH_AS(backend_for(kCPU).adam_step_multi(refs, 3, Backend::AdamStepParams{}),
                         doctest::Contains("[adam_step]"), focus::Error);
    CHECK(same_bits(a, a0));
    CHECK(same_bits(hb.to(kFloat32), hb0.to(kFloat32)));

    // float16 parameters step with the optimizers on the CPU, keeping their dtype.
    Tensor p = randn({3}).requires_grad_(), q = randn({2}).to(kFloat16).requires_grad_();
    const Tensor q0 = q.detach().clone();
    p.set_grad(ones({3}));
    q.set_grad(ones({2}, TensorOptions(kFloat16)));
    optim::Adam opt({p, q}, optim::AdamOptions(0.1));
    opt.step();
    CHECK(q.dtype() == kFloat16);
    CHECK(opt.state(q).has_value());
    CHECK(values(q.detach()) != values(q0));
    optim::SGD sgd({p, q}, optim::SGDOptions(0.1).momentum(0.9));
    sgd.step();
    CHECK(sgd.state(q).has_value());
  }

}
