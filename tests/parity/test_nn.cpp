// Parity of the nn layers with PyTorch: weights copied by name from files written by
// tests/parity/gen_nn.py; outputs and all input and parameter gradients compared.
#include "test_util.h"

#include "parity/parity.h"

using namespace focus;

namespace {

// The Python side's Composite: names through ModuleList, Sequential and ModuleDict.
struct Composite : nn::Module {
  Composite() : Module("Composite") {
    embed = register_module("embed", std::make_shared<nn::Embedding>(nn::EmbeddingOptions(11, 8).padding_idx(0)));
    layers = register_module("layers", std::make_shared<nn::ModuleList>());
    for (int i = 0; i < 2; ++i)
      layers->push_back(std::make_shared<nn::Sequential>(std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(8)),
                                                         std::make_shared<nn::Linear>(8, 8),
                                                         std::make_shared<nn::SiLU>()));
    heads = register_module("heads", std::make_shared<nn::ModuleDict>());
    heads->insert("a", std::make_shared<nn::Linear>(8, 3));
    heads->insert("b", std::make_shared<nn::Linear>(8, 3, false));
  }
  Tensor forward(const Tensor& idx) const {
    Tensor h = embed->forward(idx);
    for (const auto& layer : *layers) h = h + std::static_pointer_cast<nn::Sequential>(layer)->forward(h);
    return heads->at<nn::Linear>("a")->forward(h) + tanh(heads->at<nn::Linear>("b")->forward(h));
  }
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::ModuleDict> heads;
};

// Loads nn_<name>_<f32|f64>, runs make()'s module on x, backpropagates sum(y * gy) and
// compares y, grad x and every parameter gradient.
template <class M>
void check_case(const std::string& name, const std::function<std::shared_ptr<M>()>& make) {
  for (const char* tag : {"f32", "f64"}) {
    CAPTURE(name);
    CAPTURE(tag);
    const bool f64 = std::string(tag) == "f64";
    const double rtol = f64 ? 1e-10 : 1e-5, atol = f64 ? 1e-12 : 1e-6;
    TensorDict d = parity::load("nn_" + name + "_" + tag);
    auto m = make();
    m->to(f64 ? kFloat64 : kFloat32);
    m->eval();
    m->load_state_dict(d.with_prefix_removed("model."));  // strict: the names match PyTorch's
    Tensor x = d.at("x").clone();
    if (x.is_floating_point()) x.requires_grad_();
    Tensor y = m->forward(x);
    CHECK(focus::testing::allclose(y, d.at("y"), rtol, atol));
    (y * d.at("gy")).sum().backward();
    if (x.is_floating_point()) CHECK(focus::testing::allclose(x.grad(), d.at("grad.x"), rtol, atol));
    for (const auto& [pname, p] : m->named_parameters()) {
      CAPTURE(pname);
      const Tensor* ref = d.find("grad.model." + pname);
      REQUIRE(ref != nullptr);
      REQUIRE(p.grad().defined());
      CHECK(focus::testing::allclose(p.grad(), *ref, rtol, atol));
    }
  }
}

}  // namespace

TEST_SUITE("parity_nn") {

TEST_CASE("Linear") {
  check_case<nn::Linear>("linear", [] { return std::make_shared<nn::Linear>(5, 4); });
  check_case<nn::Linear>("linear_nobias", [] { return std::make_shared<nn::Linear>(6, 3, false); });
  check_case<nn::Linear>("linear_1d", [] { return std::make_shared<nn::Linear>(4, 2); });
}

TEST_CASE("Embedding") {
  check_case<nn::Embedding>("embedding", [] { return std::make_shared<nn::Embedding>(10, 4); });
  check_case<nn::Embedding>("embedding_pad", [] {
    return std::make_shared<nn::Embedding>(nn::EmbeddingOptions(10, 4).padding_idx(2));
  });
}

TEST_CASE("LayerNorm") {
  check_case<nn::LayerNorm>("layernorm", [] { return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(8)); });
  check_case<nn::LayerNorm>("layernorm_2d", [] {
    return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(Shape{3, 4}).eps(1e-3));
  });
  check_case<nn::LayerNorm>("layernorm_nobias", [] {
    return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(6).bias(false));
  });
  check_case<nn::LayerNorm>("layernorm_noaffine", [] {
    return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(6).elementwise_affine(false));
  });
}

TEST_CASE("RMSNorm (against PyTorch 2.x's formula)") {
  check_case<nn::RMSNorm>("rmsnorm", [] { return std::make_shared<nn::RMSNorm>(nn::RMSNormOptions(8)); });
  check_case<nn::RMSNorm>("rmsnorm_eps", [] {
    return std::make_shared<nn::RMSNorm>(nn::RMSNormOptions(Shape{2, 4}).eps(1e-2));
  });
}

TEST_CASE("activations and Dropout(0)") {
  check_case<nn::ReLU>("relu", [] { return std::make_shared<nn::ReLU>(); });
  check_case<nn::GELU>("gelu", [] { return std::make_shared<nn::GELU>(); });
  check_case<nn::GELU>("gelu_tanh", [] { return std::make_shared<nn::GELU>("tanh"); });
  check_case<nn::SiLU>("silu", [] { return std::make_shared<nn::SiLU>(); });
  check_case<nn::Tanh>("tanh", [] { return std::make_shared<nn::Tanh>(); });
  check_case<nn::Softmax>("softmax", [] { return std::make_shared<nn::Softmax>(1); });
  check_case<nn::Dropout>("dropout0", [] { return std::make_shared<nn::Dropout>(0.0); });
}

TEST_CASE("Sequential") {
  check_case<nn::Sequential>("sequential", [] {
    return std::make_shared<nn::Sequential>(
        std::make_shared<nn::Linear>(6, 16), std::make_shared<nn::GELU>(), std::make_shared<nn::Dropout>(0.0),
        std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(16)), std::make_shared<nn::Linear>(16, 3),
        std::make_shared<nn::Tanh>());
  });
}

TEST_CASE("ModuleList, Sequential and ModuleDict names in one model") {
  check_case<Composite>("composite", [] { return std::make_shared<Composite>(); });
}

TEST_CASE("positional encodings") {
  check_case<nn::SinusoidalPositionalEncoding>("sinusoidal", [] {
    return std::make_shared<nn::SinusoidalPositionalEncoding>(nn::PositionalOptions(12, 40));
  });
  check_case<nn::LearnedPositionalEmbedding>("learned_pos", [] {
    return std::make_shared<nn::LearnedPositionalEmbedding>(nn::PositionalOptions(6, 16));
  });
}

}  // TEST_SUITE

