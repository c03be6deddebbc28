// LoRA adapters (nn/lora.h): PEFT's injection, freezing, forward, merge/unmerge and adapter
// files, on a Linear and on the zoo's GPT (char-gpt's model).
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "models/gpt/gpt.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

TEST_SUITE("lora") {

namespace {

models::GPTConfig tiny_gpt() { return models::GPTConfig().n_layer(2).n_head(2).n_embd(8).block_size(8).vocab_size(11); }

std::shared_ptr<models::GPT> make_gpt(uint64_t seed = 7) {
  Generator gen(seed);
  auto m = std::make_shared<models::GPT>(tiny_gpt(), &gen);
  m->eval();
  return m;
}

Tensor tokens() {
  Generator gen(3);
  return randint(0, 11, {2, 6}, TensorOptions(kInt64), &gen);
}

double max_abs(const Tensor& t) { return max(t.abs()).item<double>(); }

bool exactly_equal(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && allclose(a, b, 0.0, 0.0); }

// Gives every lora_B nonzero values (a fresh adapter is a no-op, which would hide mistakes).
void randomize_adapters(const nn::LoraModel& lm, uint64_t seed = 11) {
  Generator gen(seed);
  NoGradGuard no_grad;
  for (const auto& l : lm.adapted_layers()) {
    nn::init::normal_(l->lora_A()->weight(), 0.0, 0.5, &gen);
    nn::init::normal_(l->lora_B()->weight(), 0.0, 0.5, &gen);
  }
}

TensorDict cloned_state(const nn::Module& m) {
  TensorDict d;
  for (const auto& [k, v] : m.state_dict()) d.insert(k, v.clone());
  return d;
}

const nn::LoraConfig kAllProjections = nn::LoraConfig().r(2).lora_alpha(4).target_modules({"c_attn", "c_proj", "c_fc"});

}  // namespace

TEST_CASE("lora: targets by name and suffix on GPT; only the adapters are trainable") {
  auto gpt = make_gpt();
  const int64_t base_params = gpt->num_parameters();
  nn::LoraModel lm(gpt, kAllProjections);
  const std::vector<std::string> want = {"h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc", "h.0.mlp.c_proj",
                                         "h.1.attn.c_attn", "h.1.attn.c_proj", "h.1.mlp.c_fc", "h.1.mlp.c_proj"};
  CHECK(lm.targeted_module_names() == want);
  // A full dotted path selects one layer; a suffix must end at a '.' ("proj" matches nothing).
  CHECK(nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules({"h.1.mlp.c_fc"})).targeted_module_names() ==
        std::vector<std::string>{"h.1.mlp.c_fc"});
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules({"proj"})),
                       doctest::Contains("[lora] target_modules ['proj'] matched no module of the model; its Linear "
                                         "layers are ['h.0.attn.c_attn', 'h.0.attn.c_proj'"),
                       focus::Error);
  // Shapes: A [r, in], B [out, r]; adapter elements = r * (in + out) per layer.
  const auto& c_attn = lm.adapted_layers()[0];
  CHECK(c_attn->lora_A()->weight().shape() == Shape{2, 8});
  CHECK(c_attn->lora_B()->weight().shape() == Shape{24, 2});
  CHECK(c_attn->lora_scaling() == 2.0);
  const int64_t adapter_elems = 2 * 2 * ((8 + 24) + (8 + 8) + (8 + 32) + (32 + 8));
  CHECK(lm.get_nb_trainable_parameters() == std::make_pair(adapter_elems, base_params + adapter_elems));
  CHECK(lm.parameters().size() == 16);
  for (const auto& [name, p] : gpt->named_parameters()) {
    CAPTURE(name);
    const bool is_adapter = name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
    CHECK(p.requires_grad() == is_adapter);
  }
  CHECK(lm.trainable_parameters_summary() ==
        fmt::format("trainable params: {} || all params: {} || trainable%: {:.4f}", adapter_elems,
                    fmt::format("{},{:03d}", (base_params + adapter_elems) / 1000, (base_params + adapter_elems) % 1000),
                    100.0 * adapter_elems / static_cast<double>(base_params + adapter_elems)));
  // PEFT's lora.Linear: A is kaiming-uniform with a = sqrt(5) (bound 1/sqrt(in)), B zeros.
  for (const auto& l : lm.adapted_layers()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(l->options().in_features_));
    const Tensor a = l->lora_A()->weight();
    CHECK(max_abs(a) <= bound);
    CHECK(max_abs(a) > 0.5 * bound);
    CHECK(max_abs(l->lora_B()->weight()) == 0.0);
  }
  // The adapter shows in the module tree.
  CHECK(fmt::format("{}", *c_attn).find("(lora_A): Linear(in_features=8, out_features=2, bias=False)") !=
        std::string::npos);
}

TEST_CASE("lora: a regex target (PEFT's single-string form) must match the whole path") {
  auto lm = nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules_regex(R"(h\.\d+\.attn\.c_(attn|proj))"));
  CHECK(lm.targeted_module_names() ==
        std::vector<std::string>{"h.0.attn.c_attn", "h.0.attn.c_proj", "h.1.attn.c_attn", "h.1.attn.c_proj"});
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules_regex("attn")),
                       doctest::Contains("[lora] target_modules 'attn' matched no module"), focus::Error);
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules_regex("h.(")),
                       doctest::Contains("[lora] target_modules regex 'h.(' is invalid"), focus::Error);
}

TEST_CASE("lora: bad configs and targets are errors") {
  const auto with = [](nn::LoraConfig c) { return nn::LoraModel(make_gpt(), c.target_modules({"c_fc"})); };
  CHECK_THROWS_WITH_AS(with(nn::LoraConfig().r(0)), doctest::Contains("[lora] r must be a positive integer, got 0"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(with(nn::LoraConfig().r(-3)), doctest::Contains("[lora] r must be a positive integer, got -3"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(with(nn::LoraConfig().lora_alpha(0)), doctest::Contains("[lora] lora_alpha must be positive"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(with(nn::LoraConfig().lora_alpha(-1)), doctest::Contains("[lora] lora_alpha must be positive"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(with(nn::LoraConfig().lora_dropout(1.0)),
                       doctest::Contains("[lora] lora_dropout must be in [0, 1), got 1"), focus::Error);
  CHECK_THROWS_WITH_AS(with(nn::LoraConfig().lora_dropout(-0.1)),
                       doctest::Contains("[lora] lora_dropout must be in [0, 1)"), focus::Error);
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig()), doctest::Contains("[lora] target_modules is empty"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules({"c_fc"}).target_modules_regex("x")),
                       doctest::Contains("[lora] give target_modules as a list of names or as one regex, not both"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules_regex("all-linear")),
                       doctest::Contains("'all-linear' is not supported"), focus::Error);
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().target_modules({"c_fc", "ln_1"})),
                       doctest::Contains("[lora] target module 'h.0.ln_1' is a LayerNorm, not a Linear"), focus::Error);
  CHECK_THROWS_WITH_AS(nn::LoraModel(nullptr, kAllProjections), doctest::Contains("[lora] the model is null"),
                       focus::Error);
  // Adapting twice.
  auto gpt = make_gpt();
  nn::LoraModel first(gpt, nn::LoraConfig().target_modules({"c_fc"}));
  CHECK_THROWS_WITH_AS(nn::LoraModel(gpt, nn::LoraConfig().target_modules({"c_fc"})),
                       doctest::Contains("[lora] target module 'h.0.mlp.c_fc' has a LoRA adapter already"),
                       focus::Error);
}

TEST_CASE("lora: a fresh adapter changes nothing; a trained one changes the output") {
  const Tensor idx = tokens();
  auto gpt = make_gpt();
  const Tensor before = gpt->forward(idx);
  nn::LoraModel lm(gpt, kAllProjections);  // c_fc goes through forward_gelu's unfused path now
  CHECK(exactly_equal(gpt->forward(idx), before));
  randomize_adapters(lm);
  CHECK_FALSE(allclose(gpt->forward(idx), before, 1e-3, 1e-3));
}

TEST_CASE("lora: forward is base + B A dropout(x) * scaling; gradcheck w.r.t. A, B and x in float64") {
  auto lin = std::make_shared<nn::Linear>(5, 3);
  lin->to(kFloat64);
  lin->add_lora(2, 1.5);
  CHECK(lin->lora_A()->weight().dtype() == kFloat64);
  Generator gen(5);
  {
    NoGradGuard no_grad;
    nn::init::normal_(lin->lora_B()->weight(), 0.0, 1.0, &gen);
  }
  const Tensor x = randn({4, 5}, TensorOptions(kFloat64), &gen);
  const Tensor& W = lin->weight();
  const Tensor& A = lin->lora_A()->weight();
  const Tensor& B = lin->lora_B()->weight();
  const Tensor want = matmul(x, W.t()) + lin->bias() + matmul(matmul(x, A.t()), B.t()) * 1.5;
  CHECK(allclose(lin->forward(x), want, 1e-12, 1e-12));
  CHECK(allclose(lin->forward_gelu(x, "tanh"), gelu(want, "tanh"), 1e-12, 1e-12));
  // gradcheck perturbs the tensors it is given in place: the module's own A and B.
  const Tensor xg = x.clone().requires_grad_();
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return lin->forward(v[2]); }, {A, B, xg}));
  CHECK(gradcheck([&](const std::vector<Tensor>& v) { return lin->forward_gelu(v[2]); }, {A, B, xg}));
}

TEST_CASE("lora: dropout acts on the adapter's input in training only") {
  manual_seed(1);
  auto lin = std::make_shared<nn::Linear>(16, 4);
  lin->add_lora(4, 1.0, 0.5);
  {
    NoGradGuard no_grad;
    nn::init::ones_(lin->lora_B()->weight());
  }
  const Tensor x = randn({8, 16});
  const Tensor base = linear(x, lin->weight(), lin->bias());
  const Tensor full = base + matmul(matmul(x, lin->lora_A()->weight().t()), lin->lora_B()->weight().t());
  lin->eval();
  CHECK(allclose(lin->forward(x), full, 1e-5, 1e-6));
  lin->train();
  const Tensor y = lin->forward(x);
  CHECK_FALSE(allclose(y, full, 1e-3, 1e-3));
  CHECK(lin->extra_repr() == "in_features=16, out_features=4, bias=True, lora_r=4, lora_scaling=1.0, lora_dropout=0.5");
}

TEST_CASE("lora: after backward only the adapters have gradients; a training step changes only A and B") {
  const Tensor idx = tokens();
  auto gpt = make_gpt();
  nn::LoraModel lm(gpt, kAllProjections);
  const TensorDict start = cloned_state(*gpt);
  optim::SGD opt(lm.parameters(), optim::SGDOptions(0.5));
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    const Tensor logits = gpt->forward(idx);
    models::GPT::loss(logits, idx).backward();
    for (const auto& [name, p] : gpt->named_parameters()) {
      CAPTURE(name);
      const bool is_adapter = name.find(".lora_") != std::string::npos;
      CHECK(p.grad().defined() == is_adapter);
      // Step 0: B = 0, so A's gradient is 0 and only B moves; step 1 moves A too.
      if (name.find(".lora_B.") != std::string::npos) CHECK(max_abs(p.grad()) > 0);
      if (step == 1 && name.find(".lora_A.") != std::string::npos) CHECK(max_abs(p.grad()) > 0);
    }
    opt.step();
  }
  for (const auto& [name, v] : gpt->state_dict()) {
    CAPTURE(name);
    const bool is_adapter = name.find(".lora_") != std::string::npos;
    CHECK(exactly_equal(v, start.at(name)) == !is_adapter);
  }
}

TEST_CASE("lora: merged and unmerged outputs agree; unmerge restores the weights") {
  const Tensor idx = tokens();
  auto gpt = make_gpt();
  nn::LoraModel lm(gpt, kAllProjections);
  randomize_adapters(lm);
  const TensorDict weights = cloned_state(*gpt);
  const Tensor unmerged = gpt->forward(idx);
  lm.merge_adapter();
  CHECK(lm.merged());
  const Tensor merged = gpt->forward(idx);
  CHECK(allclose(merged, unmerged, 1e-4, 1e-5));
  const Tensor& w = lm.adapted_layers()[0]->weight();
  CHECK_FALSE(allclose(w, weights.at("h.0.attn.c_attn.weight"), 1e-3, 1e-3));
  CHECK_THROWS_WITH_AS(lm.merge_adapter(), doctest::Contains("[lora] merge_adapter: the adapter is merged already"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(lm.set_adapter_state_dict(lm.adapter_state_dict()),
                       doctest::Contains("while the adapter is merged"), focus::Error);
  lm.unmerge_adapter();
  for (const auto& [name, v] : gpt->state_dict()) {
    CAPTURE(name);
    CHECK(allclose(v, weights.at(name), 0.0, 1e-6));
  }
  CHECK(allclose(gpt->forward(idx), unmerged, 1e-5, 1e-6));
  CHECK_THROWS_WITH_AS(lm.unmerge_adapter(), doctest::Contains("[lora] unmerge_adapter: the adapter is not merged"),
                       focus::Error);
  // merge_and_unload: the plain model, the adapters' effect folded into its weights.
  std::shared_ptr<nn::Module> plain = lm.merge_and_unload();
  CHECK(plain == gpt);
  CHECK(allclose(gpt->forward(idx), unmerged, 1e-4, 1e-5));
  for (const auto& [name, m] : gpt->named_modules()) CHECK(name.find("lora") == std::string::npos);
  CHECK(gpt->state_dict().size() == weights.size() - 16);
  CHECK_THROWS_WITH_AS(lm.save_pretrained("/nonexistent"), doctest::Contains("merged and unloaded"), focus::Error);
}

TEST_CASE("lora: the adapter files have PEFT's key names, shapes and config; they reload bit for bit") {
  focus::testing::TempDir dir("lora");
  const Tensor idx = tokens();
  auto gpt = make_gpt();
  nn::LoraModel lm(gpt, nn::LoraConfig().r(2).lora_alpha(4).lora_dropout(0.05).target_modules({"c_attn", "c_fc"})
                            .task_type("CAUSAL_LM"));
  randomize_adapters(lm);
  const Tensor want = gpt->forward(idx);
  lm.save_pretrained((dir.path / "adapter").string());

  SafetensorsMetadata meta;
  const TensorDict file = load_safetensors((dir.path / "adapter" / "adapter_model.safetensors").string(), &meta);
  CHECK(meta == SafetensorsMetadata{{"format", "pt"}});
  const std::vector<std::pair<std::string, Shape>> keys = {
      {"base_model.model.h.0.attn.c_attn.lora_A.weight", {2, 8}}, {"base_model.model.h.0.attn.c_attn.lora_B.weight", {24, 2}},
      {"base_model.model.h.0.mlp.c_fc.lora_A.weight", {2, 8}},    {"base_model.model.h.0.mlp.c_fc.lora_B.weight", {32, 2}},
      {"base_model.model.h.1.attn.c_attn.lora_A.weight", {2, 8}}, {"base_model.model.h.1.attn.c_attn.lora_B.weight", {24, 2}},
      {"base_model.model.h.1.mlp.c_fc.lora_A.weight", {2, 8}},    {"base_model.model.h.1.mlp.c_fc.lora_B.weight", {32, 2}}};
  REQUIRE(file.size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    CAPTURE(keys[i].first);
    CHECK(file.keys()[i] == keys[i].first);
    CHECK(file.at(keys[i].first).shape() == keys[i].second);
    CHECK(file.at(keys[i].first).dtype() == kFloat32);
  }
  CHECK(exactly_equal(file.at("base_model.model.h.1.mlp.c_fc.lora_B.weight"), lm.adapted_layers()[3]->lora_B()->weight()));

  const std::string config = focus::testing::read_file(dir.path / "adapter" / "adapter_config.json");
  CHECK(config == R"({
  "alora_invocation_tokens": null,
  "alpha_pattern": {},
  "arrow_config": null,
  "auto_mapping": null,
  "base_model_name_or_path": null,
  "bias": "none",
  "corda_config": null,
  "ensure_weight_tying": false,
  "eva_config": null,
  "exclude_modules": null,
  "fan_in_fan_out": false,
  "inference_mode": false,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 4,
  "lora_bias": false,
  "lora_dropout": 0.05,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "qalora_group_size": 16,
  "r": 2,
  "rank_pattern": {},
  "revision": null,
  "target_modules": [
    "c_attn",
    "c_fc"
  ],
  "target_parameters": null,
  "task_type": "CAUSAL_LM",
  "trainable_token_indices": null,
  "use_dora": false,
  "use_qalora": false,
  "use_rslora": false
}
)");

  // A fresh model with the same base weights: PeftModel.from_pretrained.
  auto fresh = make_gpt();
  nn::LoraModel loaded = nn::LoraModel::from_pretrained(fresh, (dir.path / "adapter").string());
  CHECK(exactly_equal(fresh->forward(idx), want));
  CHECK(loaded.config().inference_mode_);
  CHECK(loaded.get_nb_trainable_parameters().first == 0);
  CHECK(loaded.config().lora_dropout_ == 0.05);
  CHECK(loaded.config().task_type_ == "CAUSAL_LM");
  for (const auto& [k, v] : loaded.adapter_state_dict()) CHECK(exactly_equal(v, file.at(k)));
  auto trainable = make_gpt();
  nn::LoraModel t = nn::LoraModel::from_pretrained(trainable, (dir.path / "adapter").string(), /*is_trainable=*/true);
  CHECK(t.get_nb_trainable_parameters().first == 2 * (2 * (8 + 24) + 2 * (8 + 32)));
  CHECK_FALSE(t.config().inference_mode_);

  // load_adapter into a model made with the same config.
  auto other = make_gpt();
  nn::LoraModel same(other, lm.config());
  same.load_adapter((dir.path / "adapter").string());
  CHECK(exactly_equal(other->forward(idx), want));
}

TEST_CASE("lora: loading checks the config, every key, every shape and unknown keys") {
  focus::testing::TempDir dir("lora_bad");
  auto gpt = make_gpt();
  nn::LoraModel lm(gpt, nn::LoraConfig().r(2).lora_alpha(4).target_modules({"c_fc"}));
  const std::string path = (dir.path / "a").string();
  lm.save_pretrained(path);
  nn::LoraModel(make_gpt(), nn::LoraConfig().r(2).lora_alpha(4).target_modules({"h.0.mlp.c_fc", "c_fc"}))
      .save_pretrained((dir.path / "b").string());

  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().r(4).lora_alpha(4).target_modules({"c_fc"}))
                           .load_adapter(path),
                       doctest::Contains("was made with another config: r is 2 in the file, 4 in the model"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(nn::LoraModel(make_gpt(), nn::LoraConfig().r(2).lora_alpha(4).target_modules({"c_attn"}))
                           .load_adapter(path),
                       doctest::Contains("target_modules are ['c_fc'] in the file, ['c_attn'] in the model"),
                       focus::Error);
  // The file's target order is free (PEFT stores a set).
  nn::LoraModel(make_gpt(), nn::LoraConfig().r(2).lora_alpha(4).target_modules({"c_fc", "h.0.mlp.c_fc"}))
      .load_adapter((dir.path / "b").string());
  CHECK_THROWS_WITH_AS(nn::LoraModel::from_pretrained(make_gpt(), (dir.path / "none").string()),
                       doctest::Contains("[lora] cannot read '"), focus::Error);

  nn::LoraModel target(make_gpt(), nn::LoraConfig().r(2).lora_alpha(4).target_modules({"c_fc"}));
  TensorDict good = lm.adapter_state_dict();
  TensorDict missing = good;
  missing.erase("base_model.model.h.1.mlp.c_fc.lora_A.weight");
  CHECK_THROWS_WITH_AS(target.set_adapter_state_dict(missing),
                       doctest::Contains("[lora] the adapter does not fit this model: missing keys "
                                         "['base_model.model.h.1.mlp.c_fc.lora_A.weight']"),
                       focus::Error);
  TensorDict extra = good;
  extra.insert("base_model.model.h.0.mlp.c_fc.lora_A.default.weight", zeros({2, 8}));
  CHECK_THROWS_WITH_AS(target.set_adapter_state_dict(extra),
                       doctest::Contains("unexpected keys ['base_model.model.h.0.mlp.c_fc.lora_A.default.weight']"),
                       focus::Error);
  TensorDict shaped = good;
  shaped.set("base_model.model.h.0.mlp.c_fc.lora_B.weight", zeros({32, 3}));
  const Tensor before = target.adapted_layers()[0]->lora_A()->weight().clone();
  CHECK_THROWS_WITH_AS(target.set_adapter_state_dict(shaped),
                       doctest::Contains("'base_model.model.h.0.mlp.c_fc.lora_B.weight' has shape [32, 3] but the "
                                         "model's adapter has [32, 2]"),
                       focus::Error);
  CHECK(exactly_equal(target.adapted_layers()[0]->lora_A()->weight(), before));  // nothing copied
  target.set_adapter_state_dict(good);
  CHECK(exactly_equal(target.adapted_layers()[0]->lora_A()->weight(), good.at("base_model.model.h.0.mlp.c_fc.lora_A.weight")));

  // adapter_config.json written by hand, as PEFT users do.
  const auto parse = [](const std::string& text) { return nn::LoraConfig::from_json(text, "cfg.json"); };
  const nn::LoraConfig c = parse(R"({"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"],
                                    "bias": "none", "task_type": "CAUSAL_LM", "some_future_field": 1})");
  CHECK(c.r_ == 16);
  CHECK(c.scaling() == 2.0);
  CHECK(c.target_modules_ == std::vector<std::string>{"q_proj", "v_proj"});
  CHECK(parse(R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": true, "target_modules": ".*c_fc"})")
            .scaling() == 4.0);
  CHECK_THROWS_WITH_AS(parse(R"({"peft_type": "IA3", "r": 4, "target_modules": ["x"]})"),
                       doctest::Contains("[lora] cfg.json: peft_type is \"IA3\", but focus loads LoRA adapters only"),
                       focus::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"peft_type": "LORA", "r": 4, "target_modules": ["x"], "bias": "all"})"),
                       doctest::Contains("[lora] cfg.json: bias = \"all\" is not supported by focus"), focus::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"peft_type": "LORA", "r": 4, "target_modules": ["x"], "use_dora": true})"),
                       doctest::Contains("use_dora = true is not supported"), focus::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"peft_type": "LORA", "r": 4, "target_modules": ["x"], "modules_to_save": ["lm_head"]})"),
                       doctest::Contains("modules_to_save = [\"lm_head\"] is not supported"), focus::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"peft_type": "LORA", "r": 4, "target_modules": ["x"], "fan_in_fan_out": true})"),
                       doctest::Contains("fan_in_fan_out = true is not supported"), focus::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"peft_type": "LORA", "r": 0, "target_modules": ["x"]})"),
                       doctest::Contains("[lora] r must be a positive integer, got 0 (in cfg.json)"), focus::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"peft_type": "LORA", "r": 4})"),
                       doctest::Contains("target_modules is missing or null"), focus::Error);
  CHECK_THROWS_WITH_AS(parse("{"), doctest::Contains("[lora] cfg.json is not valid JSON"), focus::Error);
}

TEST_CASE("lora: nn::MultiheadAttention's out_proj is a Linear and adaptable; the packed in_proj is not a module") {
  auto layer = std::make_shared<nn::TransformerEncoderLayer>(nn::TransformerEncoderLayerOptions(8, 2).dim_feedforward(16).dropout(0.0));
  layer->eval();
  const Tensor x = randn({3, 2, 8});
  const Tensor before = layer->forward(x);
  nn::LoraModel lm(layer, nn::LoraConfig().target_modules({"out_proj", "linear1", "linear2"}));
  CHECK(lm.targeted_module_names() == std::vector<std::string>{"self_attn.out_proj", "linear1", "linear2"});
  CHECK(exactly_equal(layer->forward(x), before));
  randomize_adapters(lm);
  const Tensor adapted = layer->forward(x);
  CHECK_FALSE(allclose(adapted, before, 1e-3, 1e-3));
  lm.merge_adapter();
  CHECK(allclose(layer->forward(x), adapted, 1e-4, 1e-5));
  CHECK_THROWS_WITH_AS(nn::LoraModel(layer, nn::LoraConfig().target_modules({"self_attn"})),
                       doctest::Contains("is a MultiheadAttention, not a Linear"), focus::Error);
}

}  // TEST_SUITE
