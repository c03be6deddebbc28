#include "test_util.h"

#include <cmath>
#include <limits>

using namespace focus;
using focus::testing::allclose;

namespace {
double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

double mean_of(const Tensor& t) {
  double s = 0;
  auto v = t.to_vector<double>();
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double std_of(const Tensor& t) {
  const double m = mean_of(t);
  double s = 0;
  auto v = t.to_vector<double>();
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}
}  // namespace

TEST_SUITE("nn_layers") {

TEST_CASE("Linear: shapes, values, PyTorch's init bounds, gradcheck, errors") {
  manual_seed(1);
  nn::Linear lin(64, 32);
  CHECK(lin.weight().shape() == Shape{32, 64});
  CHECK(lin.bias().shape() == Shape{32});
  const double bound = 1.0 / std::sqrt(64.0);
  CHECK(max_abs(lin.weight()) <= bound);
  CHECK(max_abs(lin.weight()) > 0.95 * bound);
  CHECK(max_abs(lin.bias()) <= bound);
  // U(-b, b) has std b / sqrt(3)
  CHECK(std::abs(std_of(lin.weight()) - bound / std::sqrt(3.0)) < 0.05 * bound);

  Tensor x = randn({2, 5, 64});
  Tensor y = lin(x);
  CHECK(y.shape() == Shape{2, 5, 32});
  CHECK(allclose(y, matmul(x, lin.weight().t()) + lin.bias(), 1e-5, 1e-6));

  nn::Linear nob(nn::LinearOptions(3, 2).bias(false));
  CHECK_FALSE(nob.bias().defined());
  CHECK(nob.parameters().size() == 1);
  CHECK(nob.state_dict().keys() == std::vector<std::string>{"weight"});

  CHECK_THROWS_WITH_AS(lin(randn({3, 5})),
                       doctest::Contains("[Linear] expected input with last dimension 64 (in_features), got shape [3, 5]"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(lin(randn({3, 64}, kFloat64)), doctest::Contains("[Linear] input dtype float64"), focus::Error);

  auto l64 = std::make_shared<nn::Linear>(3, 2);
  l64->to(kFloat64);
  Tensor xi = randn({4, 3}, kFloat64).requires_grad_();
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return l64->forward(in[0]); },
                  {xi, l64->weight(), l64->bias()}));
}

TEST_CASE("Embedding: N(0,1) init, padding row zero and without gradient, from_pretrained") {
  manual_seed(2);
  nn::Embedding e(nn::EmbeddingOptions(100, 50).padding_idx(-1));
  CHECK(e.padding_idx() == 99);
  CHECK(e.weight()[99].abs().sum().item<double>() == 0.0);
  CHECK(std::abs(std_of(e.weight().narrow(0, 0, 99)) - 1.0) < 0.05);
  CHECK(e.repr() == "Embedding(100, 50, padding_idx=99)");
  Tensor idx = tensor<int64_t>({1, 99, 1, 3}, {2, 2});
  Tensor y = e(idx);
  CHECK(y.shape() == Shape{2, 2, 50});
  CHECK(allclose(y[0][0], e.weight()[1], 0, 0));
  y.sum().backward();
  Tensor g = e.weight().grad();
  CHECK(g[99].abs().sum().item<double>() == 0.0);
  CHECK(g[1].sum().item<double>() == 100.0);
  CHECK(g[3].sum().item<double>() == 50.0);
  CHECK_THROWS_WITH_AS(e(randn({2})), doctest::Contains("[Embedding] expected int64 or int32 indices"), focus::Error);
  CHECK_THROWS_WITH_AS(nn::Embedding(nn::EmbeddingOptions(5, 2).padding_idx(5)),
                       doctest::Contains("[Embedding] padding_idx must be within num_embeddings"), focus::Error);

  Tensor w = arange(6, kFloat64).reshape({3, 2});
  auto pre = nn::Embedding::from_pretrained(w);
  CHECK(pre->weight().dtype() == kFloat64);
  CHECK_FALSE(pre->weight().requires_grad());
  CHECK(allclose(pre->weight(), w, 0, 0));
  CHECK(nn::Embedding::from_pretrained(w, false)->weight().requires_grad());
}

TEST_CASE("LayerNorm: formula, options, gradcheck, errors") {
  nn::LayerNorm ln(nn::LayerNormOptions(Shape{2, 3}).eps(1e-3));
  CHECK(ln.weight().shape() == Shape{2, 3});
  CHECK(ln.weight().sum().item<double>() == 6.0);
  CHECK(ln.bias().abs().sum().item<double>() == 0.0);
  CHECK(ln.repr() == "LayerNorm((2, 3), eps=0.001, elementwise_affine=True)");
  ln.to(kFloat64);
  Tensor x = randn({4, 2, 3}, kFloat64).requires_grad_();
  Tensor m = x.mean({-1, -2}, true);
  Tensor v = ((x - m) * (x - m)).mean({-1, -2}, true);
  CHECK(allclose(ln(x), (x - m) / (v + 1e-3).sqrt(), 1e-10, 1e-12));
  {
    NoGradGuard g;
    ln.weight().copy_(randn({2, 3}, kFloat64));
    ln.bias().copy_(randn({2, 3}, kFloat64));
  }
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return ln(in[0]); }, {x, ln.weight(), ln.bias()}));

  nn::LayerNorm nobias(nn::LayerNormOptions(4).bias(false));
  CHECK(nobias.state_dict().keys() == std::vector<std::string>{"weight"});
  nn::LayerNorm noaffine(nn::LayerNormOptions(4).elementwise_affine(false));
  CHECK(noaffine.parameters().empty());
  CHECK(noaffine.repr() == "LayerNorm((4,), eps=1e-05, elementwise_affine=False)");
  CHECK_THROWS_WITH_AS(nobias(randn({2, 3})),
                       doctest::Contains("[LayerNorm] expected input with trailing shape [4] (normalized_shape), got shape [2, 3]"),
                       focus::Error);
}

TEST_CASE("LayerNorm::forward_add: {x + residual, forward(x + residual)}, the same bits, fused or broadcast") {
  manual_seed(41);
  nn::LayerNorm ln(nn::LayerNormOptions(8).eps(1e-4));
  {
    NoGradGuard g;
    ln.weight().copy_(randn({8}));
    ln.bias().copy_(randn({8}));
  }
  const Tensor x = randn({3, 4, 8}), r = randn({3, 4, 8});
  auto [s, y] = ln.forward_add(x, r);
  CHECK(s.to_vector<float>() == (x + r).to_vector<float>());
  CHECK(y.to_vector<float>() == ln(x + r).to_vector<float>());
  CHECK(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->name()) == "AddLayerNormBackward0");
  // A residual that broadcasts takes the composed path: the same values as the two steps.
  const Tensor rb = randn({4, 8});
  auto [sb, yb] = ln.forward_add(x, rb);
  CHECK(sb.to_vector<float>() == (x + rb).to_vector<float>());
  CHECK(yb.to_vector<float>() == ln(x + rb).to_vector<float>());
  nn::LayerNorm noaffine(nn::LayerNormOptions(8).elementwise_affine(false));
  CHECK(std::get<1>(noaffine.forward_add(x, r)).to_vector<float>() == noaffine(x + r).to_vector<float>());
  CHECK_THROWS_WITH_AS(ln.forward_add(randn({2, 3}), randn({2, 3})),
                       doctest::Contains("[LayerNorm] expected input with trailing shape [8] (normalized_shape), got shape [2, 3]"),
                       focus::Error);
}

TEST_CASE("RMSNorm: 2.x formula, default eps is the dtype's epsilon, gradcheck") {
  nn::RMSNorm rms(nn::RMSNormOptions(5));
  CHECK(rms.repr() == "RMSNorm((5,), eps=None, elementwise_affine=True)");
  CHECK(rms.state_dict().keys() == std::vector<std::string>{"weight"});
  Tensor x = randn({3, 5});
  Tensor ref = x / ((x * x).mean({-1}, true) + std::numeric_limits<float>::epsilon()).sqrt();
  CHECK(allclose(rms(x), ref, 1e-5, 1e-6));
  rms.to(kFloat64);
  {
    NoGradGuard g;
    rms.weight().copy_(randn({5}, kFloat64));
  }
  Tensor xd = randn({3, 5}, kFloat64).requires_grad_();
  Tensor refd = xd / ((xd * xd).mean({-1}, true) + std::numeric_limits<double>::epsilon()).sqrt() * rms.weight();
  CHECK(allclose(rms(xd), refd, 1e-12, 1e-14));
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return rms(in[0]); }, {xd, rms.weight()}));
  nn::RMSNorm r2(nn::RMSNormOptions(Shape{2, 5}).eps(0.5).elementwise_affine(false));
  CHECK(r2.parameters().empty());
  Tensor x2 = randn({3, 2, 5});
  CHECK(allclose(r2(x2), x2 / ((x2 * x2).mean({-1, -2}, true) + 0.5).sqrt(), 1e-5, 1e-6));
  CHECK_THROWS_WITH_AS(r2(randn({2, 4})), doctest::Contains("[RMSNorm] expected input with trailing shape"),
                       focus::Error);
}

TEST_CASE("Dropout: train drops and scales, eval is the identity") {
  manual_seed(3);
  nn::Dropout d(0.25);
  Tensor x = ones({20000});
  Tensor y = d(x);
  const auto v = y.to_vector<double>();
  int64_t zeros_n = 0;
  for (double e : v) {
    if (e == 0) ++zeros_n;
    else CHECK(std::abs(e - 1.0 / 0.75) < 1e-6);
  }
  CHECK(std::abs(static_cast<double>(zeros_n) / 20000 - 0.25) < 0.02);
  d.eval();
  CHECK(d(x).is_same(x));
  CHECK_THROWS_WITH_AS(nn::Dropout(1.5), doctest::Contains("[Dropout] dropout probability has to be between 0 and 1, but got 1.5"),
                       focus::Error);
  CHECK(nn::Dropout().repr() == "Dropout(p=0.5, inplace=False)");
  CHECK(nn::Dropout(0.0).repr() == "Dropout(p=0.0, inplace=False)");
}

TEST_CASE("activations match the functions") {
  Tensor x = randn({4, 6}, kFloat64);
  CHECK(allclose(nn::ReLU()(x), relu(x), 0, 0));
  CHECK(allclose(nn::GELU()(x), gelu(x), 0, 0));
  CHECK(allclose(nn::GELU("tanh")(x), gelu(x, "tanh"), 0, 0));
  CHECK(allclose(nn::SiLU()(x), x * sigmoid(x), 1e-12, 1e-14));
  CHECK(allclose(nn::Tanh()(x), tanh(x), 0, 0));
  CHECK(allclose(nn::Sigmoid()(x), sigmoid(x), 0, 0));
  CHECK(allclose(nn::Softmax(0)(x), softmax(x, 0), 0, 0));
  CHECK(allclose(nn::LogSoftmax(-1)(x), log_softmax(x, -1), 0, 0));
  CHECK(nn::GELU().repr() == "GELU(approximate='none')");
  CHECK(nn::Softmax(1).repr() == "Softmax(dim=1)");
  CHECK(nn::SiLU().repr() == "SiLU()");
  CHECK_THROWS_WITH_AS(nn::GELU("fast"), doctest::Contains("[GELU] approximate must be 'none' or 'tanh', got 'fast'"),
                       focus::Error);
}

TEST_CASE("Sequential, ModuleList, ModuleDict") {
  auto l1 = std::make_shared<nn::Linear>(4, 8);
  auto l2 = std::make_shared<nn::Linear>(8, 2);
  nn::Sequential seq(l1, std::make_shared<nn::Tanh>(), l2);
  Tensor x = randn({3, 4});
  CHECK(allclose(seq(x), l2->forward(tanh(l1->forward(x))), 0, 0));
  CHECK(seq.size() == 3);
  CHECK(seq[-1].get() == l2.get());
  CHECK(seq.at<nn::Linear>(0) == l1);
  CHECK_THROWS_WITH_AS(seq.at<nn::Linear>(1), doctest::Contains("[Sequential] the module is a Tanh"), focus::Error);
  CHECK_THROWS_WITH_AS(seq[3], doctest::Contains("[Sequential] index 3 is out of range for 3 modules"), focus::Error);
  seq.push_back("act", std::make_shared<nn::Functional>([](const Tensor& t) { return t * 2; }));
  CHECK(allclose(seq(x), l2->forward(tanh(l1->forward(x))) * 2, 0, 0));
  CHECK(seq.state_dict().keys() == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK(nn::Sequential()(x).is_same(x));

  nn::ModuleList list(std::make_shared<nn::ReLU>(), l1);
  CHECK(list.size() == 2);
  int n = 0;
  for (const auto& m : list) n += m != nullptr;
  CHECK(n == 2);
  CHECK(list.state_dict().keys() == std::vector<std::string>{"1.weight", "1.bias"});

  nn::ModuleDict dict;
  dict.insert("enc", l1);
  dict.insert("dec", l2);
  CHECK(dict.contains("dec"));
  CHECK(dict.at<nn::Linear>("dec") == l2);
  CHECK(dict.keys() == std::vector<std::string>{"enc", "dec"});
  CHECK(dict.state_dict().keys() == std::vector<std::string>{"enc.weight", "enc.bias", "dec.weight", "dec.bias"});
  CHECK_THROWS_WITH_AS(dict["x"], doctest::Contains("[ModuleDict] no module under key 'x'"), focus::Error);
  CHECK(dict.repr() ==
        "ModuleDict(\n  (enc): Linear(in_features=4, out_features=8, bias=True)\n  (dec): Linear(in_features=8, "
        "out_features=2, bias=True)\n)");
}

TEST_CASE("SinusoidalPositionalEncoding: the table, a non-persistent buffer, added to [B, T, E]") {
  nn::SinusoidalPositionalEncoding pe(nn::PositionalOptions(6, 50));
  CHECK(pe.state_dict().empty());
  CHECK(pe.named_buffers().size() == 1);
  Tensor t = pe.encoding(10, 3);
  CHECK(t.shape() == Shape{10, 6});
  const auto v = t.to_vector<double>();
  for (int64_t p = 0; p < 10; ++p)
    for (int64_t i = 0; i < 6; ++i) {
      const double angle = static_cast<double>(p + 3) / std::pow(10000.0, static_cast<double>(i - i % 2) / 6);
      const double want = i % 2 == 0 ? std::sin(angle) : std::cos(angle);
      CHECK(std::abs(v[static_cast<size_t>(p * 6 + i)] - want) < 1e-6);
    }
  Tensor x = randn({2, 10, 6});
  CHECK(allclose(pe(x, 3), x + t, 0, 0));
  nn::SinusoidalPositionalEncoding tb(nn::PositionalOptions(6, 50).batch_first(false));
  Tensor xt = randn({10, 2, 6});
  CHECK(allclose(tb(xt), xt + tb.encoding(10).unsqueeze(1), 0, 0));
  CHECK(pe(x.to(kFloat64)).dtype() == kFloat64);
  CHECK_THROWS_WITH_AS(pe(randn({2, 49, 6}), 3), doctest::Contains("[SinusoidalPositionalEncoding] positions 3..51 are out of range for max_len 50"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(pe(randn({2, 10, 5})), doctest::Contains("[SinusoidalPositionalEncoding] expected input [B, T, E=6]"),
                       focus::Error);
  nn::SinusoidalPositionalEncoding odd(nn::PositionalOptions(5, 4));
  CHECK(odd.encoding(4).shape() == Shape{4, 5});
}

TEST_CASE("LearnedPositionalEmbedding: a trained table of positions") {
  nn::LearnedPositionalEmbedding pos(nn::PositionalOptions(4, 16));
  CHECK(pos.state_dict().keys() == std::vector<std::string>{"weight"});
  Tensor x = randn({3, 5, 4});
  Tensor y = pos(x, 2);
  CHECK(allclose(y, x + pos.weight().narrow(0, 2, 5), 0, 0));
  y.sum().backward();
  Tensor g = pos.weight().grad();
  CHECK(g[0].abs().sum().item<double>() == 0.0);
  CHECK(g[2].sum().item<double>() == 12.0);
  CHECK_THROWS_WITH_AS(pos(randn({1, 17, 4})), doctest::Contains("[LearnedPositionalEmbedding] positions 0..16 are out of range for max_len 16"),
                       focus::Error);
}

TEST_CASE("init: fans, gains and the statistics of each fill") {
  manual_seed(4);
  Tensor w = empty({200, 100, 3});
  auto [fi, fo] = nn::init::calculate_fan_in_and_fan_out(w);
  CHECK(fi == 300);
  CHECK(fo == 600);
  CHECK_THROWS_WITH_AS(nn::init::xavier_uniform_(empty({5})), doctest::Contains("fewer than 2 dimensions"), focus::Error);
  CHECK(nn::init::calculate_gain("relu") == doctest::Approx(std::sqrt(2.0)));
  CHECK(nn::init::calculate_gain("tanh") == doctest::Approx(5.0 / 3));
  CHECK(nn::init::calculate_gain("leaky_relu", 0.2) == doctest::Approx(std::sqrt(2.0 / 1.04)));
  CHECK_THROWS_WITH_AS(nn::init::calculate_gain("swish"), doctest::Contains("unsupported nonlinearity swish"), focus::Error);

  Tensor a = empty({300, 200});
  const double xb = std::sqrt(6.0 / 500);
  nn::init::xavier_uniform_(a);
  CHECK(max_abs(a) <= xb);
  CHECK(max_abs(a) > 0.99 * xb);
  nn::init::xavier_normal_(a, 2.0);
  CHECK(std::abs(std_of(a) - 2.0 * std::sqrt(2.0 / 500)) < 0.02 * 2.0 * std::sqrt(2.0 / 500));
  nn::init::kaiming_uniform_(a, 0.0, "fan_in", "relu");
  const double kb = std::sqrt(2.0) * std::sqrt(3.0 / 200);
  CHECK(max_abs(a) <= kb);
  CHECK(max_abs(a) > 0.99 * kb);
  nn::init::kaiming_normal_(a, 0.0, "fan_out", "relu");
  CHECK(std::abs(std_of(a) - std::sqrt(2.0 / 300)) < 0.02 * std::sqrt(2.0 / 300));
  CHECK_THROWS_WITH_AS(nn::init::kaiming_normal_(a, 0.0, "fan_avg"), doctest::Contains("mode fan_avg not supported"),
                       focus::Error);
  nn::init::trunc_normal_(a, 1.0, 2.0, -1.0, 2.0);
  const auto v = a.to_vector<double>();
  for (double e : v) REQUIRE((e >= -1.0 && e <= 2.0));
  // mean of N(1, 2^2) truncated to [-1, 2]: mu + sigma (phi(alpha) - phi(beta)) / Z
  auto phi = [](double z) { return std::exp(-z * z / 2) / std::sqrt(2 * M_PI); };
  auto Phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  const double al = -1.0, be = 0.5;
  const double want = 1.0 + 2.0 * (phi(al) - phi(be)) / (Phi(be) - Phi(al));
  CHECK(std::abs(mean_of(a) - want) < 0.01);
  // The values are the inverse CDF of the truncated normal at the generator's float64
  // uniform draws, in order (computed on the host for every device): mapping them back
  // through the normal CDF gives the draws.
  {
    Generator g1(11), g2(11);
    Tensor d = empty({7, 5}, kFloat64);
    nn::init::trunc_normal_(d, 0.5, 1.5, -1.0, 2.5, &g1);
    const std::vector<double> u = rand({7, 5}, kFloat64, &g2).to_vector<double>();
    const auto dv = d.to_vector<double>();
    const double lo = Phi((-1.0 - 0.5) / 1.5), hi = Phi((2.5 - 0.5) / 1.5);
    for (size_t i = 0; i < u.size(); ++i) CHECK(Phi((dv[i] - 0.5) / 1.5) == doctest::Approx(lo + u[i] * (hi - lo)).epsilon(1e-9));
  }
  // The same generator state gives the same numbers on every device, in every dtype and
  // layout (float32 values are the float64 ones rounded).
  {
    Generator g0(5);
    Tensor ref = empty({6, 4}, kFloat64);
    nn::init::trunc_normal_(ref, 0.0, 1.0, -2.0, 2.0, &g0);
    FOR_EACH_DEVICE(dev) {
      Generator g(5);
      Tensor f = empty({4, 6}, TensorOptions(kFloat32).device(dev)).t();  // non-contiguous [6, 4]
      nn::init::trunc_normal_(f, 0.0, 1.0, -2.0, 2.0, &g);
      CHECK(f.device() == dev);
      CHECK(f.to(kCPU).to_vector<float>() == ref.to(kFloat32).to_vector<float>());
      CHECK(g.get_state().offset == g0.get_state().offset);
    }
  }
  nn::init::constant_(a, 0.5);
  CHECK(mean_of(a) == 0.5);
  nn::init::ones_(a);
  nn::init::zeros_(a);
  CHECK(max_abs(a) == 0.0);
  // a parameter can be re-initialized (no autograd error on the leaf)
  nn::Linear lin(3, 3);
  nn::init::xavier_uniform_(lin.weight());
  nn::init::zeros_(lin.bias());
  CHECK(lin.bias().abs().sum().item<double>() == 0.0);
  // the same generator state gives the same numbers
  Generator g1(7), g2(7);
  Tensor b1 = empty({10}), b2 = empty({10});
  nn::init::normal_(b1, 0, 1, &g1);
  nn::init::normal_(b2, 0, 1, &g2);
  CHECK(allclose(b1, b2, 0, 0));
}

}  // TEST_SUITE
