#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

// A two-level model with a buffer, a non-persistent buffer and a ModuleList.
struct Block : nn::Module {
  Block() : Module("Block") {
    linear1 = register_module("linear1", std::make_shared<nn::Linear>(4, 3));
    norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(3)));
    steps = register_buffer("steps", zeros({1}, kInt64));
    cache = register_buffer("cache", zeros({2}), /*persistent=*/false);
  }
  Tensor forward(const Tensor& x) const { return norm1->forward(linear1->forward(x)); }
  std::shared_ptr<nn::Linear> linear1;
  std::shared_ptr<nn::LayerNorm> norm1;
  Tensor steps, cache;
};

struct Net : nn::Module {
  Net() : Module("Net") {
    layers = register_module("layers", std::make_shared<nn::ModuleList>());
    layers->push_back(std::make_shared<Block>());
    layers->push_back(std::make_shared<Block>());
    head = register_module("head", std::make_shared<nn::Linear>(nn::LinearOptions(3, 2).bias(false)));
    drop = register_module("drop", std::make_shared<nn::Dropout>(0.1));
  }
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::Linear> head;
  std::shared_ptr<nn::Dropout> drop;
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (auto& [n, t] : v) out.push_back(n);
  return out;
}

}  // namespace

TEST_SUITE("nn_module") {

TEST_CASE("dotted names of parameters, buffers and modules") {
  auto net = std::make_shared<Net>();
  CHECK(names_of(net->named_parameters()) ==
        std::vector<std::string>{"layers.0.linear1.weight", "layers.0.linear1.bias", "layers.0.norm1.weight",
                                 "layers.0.norm1.bias", "layers.1.linear1.weight", "layers.1.linear1.bias",
                                 "layers.1.norm1.weight", "layers.1.norm1.bias", "head.weight"});
  CHECK(names_of(net->named_buffers()) ==
        std::vector<std::string>{"layers.0.steps", "layers.0.cache", "layers.1.steps", "layers.1.cache"});
  CHECK(net->named_parameters(false).empty());
  CHECK(net->children().size() == 3);
  auto mods = net->named_modules();
  REQUIRE(mods.size() == 10);
  CHECK(mods[0].first == "");
  CHECK(mods[0].second.get() == net.get());
  CHECK(mods[1].first == "layers");
  CHECK(mods[2].first == "layers.0");
  CHECK(mods[3].first == "layers.0.linear1");
  CHECK(net->num_parameters() == 2 * (12 + 3 + 3 + 3) + 6);
  for (const Tensor& p : net->parameters()) CHECK(p.requires_grad());
}

TEST_CASE("state_dict holds parameters and persistent buffers; round trip") {
  auto a = std::make_shared<Net>();
  auto b = std::make_shared<Net>();
  TensorDict sd = a->state_dict();
  // as PyTorch: a module's own parameters and buffers, then its children's
  CHECK(sd.keys() == std::vector<std::string>{"layers.0.steps", "layers.0.linear1.weight", "layers.0.linear1.bias",
                                              "layers.0.norm1.weight", "layers.0.norm1.bias", "layers.1.steps",
                                              "layers.1.linear1.weight", "layers.1.linear1.bias",
                                              "layers.1.norm1.weight", "layers.1.norm1.bias", "head.weight"});
  CHECK_FALSE(sd.at("head.weight").requires_grad());
  CHECK(sd.at("head.weight").storage() == a->head->weight().storage());  // detached, shared
  CHECK_FALSE(allclose(b->head->weight(), a->head->weight()));
  const Tensor handle = b->head->weight();
  auto r = b->load_state_dict(sd);
  CHECK(r.missing_keys.empty());
  CHECK(r.unexpected_keys.empty());
  CHECK(handle.is_same(b->head->weight()));  // copied in place
  CHECK(b->head->weight().requires_grad());
  for (auto& [k, t] : sd) CHECK(allclose(b->state_dict().at(k), t, 0, 0));
  // loaded values are a copy, not shared
  CHECK(b->head->weight().storage() != a->head->weight().storage());
}

TEST_CASE("load_state_dict: one error lists every missing, unexpected and mis-shaped key") {
  auto net = std::make_shared<Net>();
  TensorDict sd = net->state_dict();
  sd.erase("head.weight");
  sd.erase("layers.1.steps");
  sd.insert("layers.2.linear1.weight", zeros({3, 4}));
  sd.insert("extra", zeros({1}));
  sd.set("layers.0.linear1.weight", zeros({4, 4}));
  const Tensor before = net->layers->at<Block>(0)->linear1->weight().clone();
  try {
    net->load_state_dict(sd);
    FAIL("expected an error");
  } catch (const focus::Error& e) {
    const std::string m = e.what();
    CHECK(m.find("[load_state_dict] Error(s) in loading state_dict for Net") != std::string::npos);
    CHECK(m.find("Missing key(s) in state_dict: \"layers.1.steps\", \"head.weight\".") != std::string::npos);
    CHECK(m.find("Unexpected key(s) in state_dict: \"layers.2.linear1.weight\", \"extra\".") != std::string::npos);
    CHECK(m.find("size mismatch for layers.0.linear1.weight: copying a param with shape [4, 4] from checkpoint, the "
                 "shape in current model is [3, 4].") != std::string::npos);
  }
  // nothing was copied
  CHECK(allclose(net->layers->at<Block>(0)->linear1->weight(), before, 0, 0));

  // not strict: missing/unexpected reported, shape mismatches still an error
  CHECK_THROWS_WITH_AS(net->load_state_dict(sd, false), doctest::Contains("size mismatch for layers.0.linear1.weight"),
                       focus::Error);
  sd.set("layers.0.linear1.weight", ones({3, 4}));
  auto r = net->load_state_dict(sd, false);
  CHECK(r.missing_keys == std::vector<std::string>{"layers.1.steps", "head.weight"});
  CHECK(r.unexpected_keys == std::vector<std::string>{"layers.2.linear1.weight", "extra"});
  CHECK(net->layers->at<Block>(0)->linear1->weight().sum().item<double>() == 12.0);
}

TEST_CASE("train / eval reach every descendant") {
  auto net = std::make_shared<Net>();
  CHECK(net->is_training());
  net->eval();
  for (auto& m : net->modules()) CHECK_FALSE(m->is_training());
  net->train();
  for (auto& m : net->modules()) CHECK(m->is_training());
  int count = 0;
  net->apply([&](nn::Module& m) { ++count; });
  CHECK(count == 10);
}

TEST_CASE("to(dtype) converts in place and keeps the handles") {
  auto net = std::make_shared<Net>();
  auto params = net->parameters();
  const auto before = params[0].to_vector<double>();
  auto blk = net->layers->at<Block>(0);
  Tensor x = randn({5, 4});
  blk->forward(x).sum().backward();
  REQUIRE(params[0].grad().defined());
  net->to(kFloat64);
  for (size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].is_same(net->parameters()[i]));
    CHECK(params[i].dtype() == kFloat64);
    CHECK(params[i].requires_grad());
    CHECK(params[i].is_leaf());
  }
  CHECK(params[0].grad().dtype() == kFloat64);
  CHECK(params[0].to_vector<double>() == before);
  CHECK(blk->steps.dtype() == kInt64);  // integer buffers keep their dtype
  CHECK(blk->cache.dtype() == kFloat64);
  // the converted parameters still train
  net->zero_grad();
  CHECK_FALSE(params[0].grad().defined());
  blk->forward(x.to(kFloat64)).sum().backward();
  CHECK(params[0].grad().dtype() == kFloat64);
  net->zero_grad(false);
  CHECK(params[0].grad().defined());
  CHECK(params[0].grad().abs().sum().item<double>() == 0.0);
  net->to(kCPU);  // same device: no change
  CHECK(params[0].dtype() == kFloat64);
  CHECK_THROWS_WITH_AS(net->to(kInt64), doctest::Contains("expected a floating dtype"), focus::Error);
}

TEST_CASE("tied parameters are listed once and converted once") {
  auto m = std::make_shared<nn::Sequential>();
  auto a = std::make_shared<nn::Linear>(3, 3);
  m->push_back(a);
  m->push_back(a);
  CHECK(m->parameters().size() == 2);
  CHECK(m->named_modules().size() == 2);
  CHECK(m->state_dict().size() == 4);  // as PyTorch: both prefixes
  m->to(kFloat64);
  CHECK(a->weight().dtype() == kFloat64);
}

TEST_CASE("registration errors") {
  nn::Module m("Custom");
  m.register_parameter("w", zeros({2}));
  CHECK_THROWS_WITH_AS(m.register_parameter("w", zeros({2})), doctest::Contains("[Custom] attribute 'w' already exists"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(m.register_buffer("a.b", zeros({2})), doctest::Contains("can't contain '.'"), focus::Error);
  CHECK_THROWS_WITH_AS(m.register_parameter("i", zeros({2}, kInt64)), doctest::Contains("must be floating point"),
                       focus::Error);
  Tensor x = randn({2}).requires_grad_();
  CHECK_THROWS_WITH_AS(m.register_parameter("y", x * 2), doctest::Contains("must be a leaf"), focus::Error);
  CHECK(m.named_modules().size() == 1);  // a stack module lists itself
  CHECK(m.num_parameters() == 2);
}

TEST_CASE("unregister_tensor and replace_with_buffer: a parameter removed, or turned into a buffer") {
  nn::Module m("Custom");
  m.register_parameter("w", ones({2}));
  m.register_parameter("b", zeros({2}));
  m.register_buffer("n", zeros({1}, kInt64));
  const Tensor w8 = tensor<int64_t>({1, -1}).to(kInt8);
  const Tensor r = m.replace_with_buffer("w", w8);
  CHECK(r.unsafe_impl() == w8.unsafe_impl());
  CHECK(names_of(m.named_parameters()) == std::vector<std::string>{"b"});
  CHECK(names_of(m.named_buffers()) == std::vector<std::string>{"n", "w"});
  CHECK(m.state_dict().at("w").dtype() == kInt8);
  m.unregister_tensor("b");
  CHECK(m.parameters().empty());
  CHECK(m.replace_with_buffer("n", ones({1}, kInt64)).item<int64_t>() == 1);  // a buffer replaced
  CHECK_THROWS_WITH_AS(m.unregister_tensor("b"), "[Custom] no parameter or buffer named 'b'", focus::Error);
  CHECK_THROWS_WITH_AS(m.replace_with_buffer("x", zeros({1})), "[Custom] no parameter or buffer named 'x'", focus::Error);
}

TEST_CASE("printing like PyTorch's repr") {
  auto seq = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 2), std::make_shared<nn::ReLU>(),
                                              std::make_shared<nn::Dropout>(0.1),
                                              std::make_shared<nn::LayerNorm>(nn::LayerNormOptions(2)));
  CHECK(fmt::format("{}", seq) ==
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=2, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Dropout(p=0.1, inplace=False)\n"
        "  (3): LayerNorm((2,), eps=1e-05, elementwise_affine=True)\n"
        ")");
  CHECK(fmt::format("{}", *seq->at<nn::Linear>(0)) == "Linear(in_features=4, out_features=2, bias=True)");
  auto net = std::make_shared<Net>();
  CHECK(net->repr() ==
        "Net(\n"
        "  (layers): ModuleList(\n"
        "    (0-1): 2 x Block(\n"
        "      (linear1): Linear(in_features=4, out_features=3, bias=True)\n"
        "      (norm1): LayerNorm((3,), eps=1e-05, elementwise_affine=True)\n"
        "    )\n"
        "  )\n"
        "  (head): Linear(in_features=3, out_features=2, bias=False)\n"
        "  (drop): Dropout(p=0.1, inplace=False)\n"
        ")");
  CHECK(fmt::format("{}", *net->layers) == net->layers->repr());
  CHECK(fmt::format("{}", net->layers).substr(0, 12) == "ModuleList(\n");
  std::shared_ptr<nn::Module> base = net->head;
  CHECK(fmt::format("{}", base) == "Linear(in_features=3, out_features=2, bias=False)");
}

}  // TEST_SUITE
