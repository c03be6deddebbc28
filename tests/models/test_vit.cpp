// models/vit: patchify layout, the model's shapes and state_dict, attention maps, errors,
// and a tiny ViT that learns to tell bright-top from bright-bottom images.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <cmath>

#include "models/vit/vit.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::values;
using models::vit::patchify;
using models::vit::ViTConfig;
using models::vit::VisionTransformer;

namespace {

ViTConfig tiny() { return ViTConfig().image_size(8).patch_size(4).dim(16).depth(2).heads(2).mlp_dim(32).num_classes(2); }

// n images [n, 1, 8, 8]: class 0 has a bright top half, class 1 a bright bottom half, plus noise.
std::pair<Tensor, Tensor> top_bottom(int64_t n, Generator& gen) {
  const Tensor labels = randint(0, 2, {n}, kInt64, &gen);
  const auto lab = labels.to_vector<int64_t>();
  std::vector<float> pix(static_cast<size_t>(n * 64));
  const auto noise = randn({n * 64}, {}, &gen).to_vector<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < 8; ++y)
      for (int64_t x = 0; x < 8; ++x) {
        const bool top = y < 4;
        const bool bright = lab[static_cast<size_t>(i)] == 0 ? top : !top;
        const size_t k = static_cast<size_t>(i * 64 + y * 8 + x);
        pix[k] = (bright ? 1.0f : -1.0f) + 0.3f * noise[k];
      }
  return {tensor(pix, {n, 1, 8, 8}), labels};
}

}  // namespace

TEST_SUITE("models_vit") {
  TEST_CASE("patchify orders patches row-major and pixels (channel, row, column)") {
    // One 4x4 single-channel image with pixel value = its flat index, 2x2 patches.
    const Tensor img = arange(16, kFloat32).reshape({1, 1, 4, 4});
    const Tensor p = patchify(img, 2);
    REQUIRE(p.shape() == Shape{1, 4, 4});
    CHECK(values(p) == std::vector<double>{0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15});

    // Two images, two channels, 4x6 (non-square), 2x2 patches: patch (i, j) is index i*3 + j,
    // features c*4 + dy*2 + dx.
    const Tensor img2 = arange(2 * 2 * 4 * 6, kFloat32).reshape({2, 2, 4, 6});
    const Tensor q = patchify(img2, 2);
    REQUIRE(q.shape() == Shape{2, 6, 8});
    const auto iv = values(img2), qv = values(q);
    bool all_match = true;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 3; ++j)
          for (int64_t c = 0; c < 2; ++c)
            for (int64_t dy = 0; dy < 2; ++dy)
              for (int64_t dx = 0; dx < 2; ++dx) {
                const double want = iv[static_cast<size_t>(((b * 2 + c) * 4 + i * 2 + dy) * 6 + j * 2 + dx)];
                const double got = qv[static_cast<size_t>((b * 6 + i * 3 + j) * 8 + c * 4 + dy * 2 + dx)];
                all_match = all_match && want == got;
              }
    CHECK(all_match);
  }

  TEST_CASE("patch embedding equals a strided convolution with the reshaped weight") {
    Generator gen(3);
    const Tensor img = randn({2, 3, 6, 6}, {}, &gen);
    const Tensor w = randn({5, 3, 3, 3}, {}, &gen);  // Conv2d weight [D, C, p, p], stride p
    const Tensor out = matmul(patchify(img, 3), w.reshape({5, 27}).t());  // [2, 4, 5]
    const auto x = values(img), wv = values(w), o = values(out);
    double max_err = 0;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          for (int64_t d = 0; d < 5; ++d) {
            double acc = 0;
            for (int64_t c = 0; c < 3; ++c)
              for (int64_t ky = 0; ky < 3; ++ky)
                for (int64_t kx = 0; kx < 3; ++kx)
                  acc += wv[static_cast<size_t>(((d * 3 + c) * 3 + ky) * 3 + kx)] *
                         x[static_cast<size_t>(((b * 3 + c) * 6 + i * 3 + ky) * 6 + j * 3 + kx)];
            max_err = std::max(max_err, std::abs(acc - o[static_cast<size_t>((b * 4 + i * 2 + j) * 5 + d)]));
          }
    CHECK(max_err < 1e-4);
  }

  TEST_CASE("state_dict names, shapes and the forward shape") {
    Generator gen(0);
    VisionTransformer model(tiny(), &gen);
    const TensorDict sd = model.state_dict();
    CHECK(sd.at("cls_token").shape() == Shape{1, 1, 16});
    CHECK(sd.at("pos_embed").shape() == Shape{1, 5, 16});
    CHECK(sd.at("patch_embed.weight").shape() == Shape{16, 16});
    CHECK(sd.at("encoder.layers.1.self_attn.in_proj_weight").shape() == Shape{48, 16});
    CHECK(sd.at("encoder.layers.0.linear1.weight").shape() == Shape{32, 16});
    CHECK(sd.at("encoder.norm.weight").shape() == Shape{16});
    CHECK(sd.at("head.weight").shape() == Shape{2, 16});
    CHECK_FALSE(sd.contains("encoder.layers.2.linear1.weight"));
    // The two encoder layers start different (timm init draws each separately).
    CHECK_FALSE(allclose(sd.at("encoder.layers.0.linear1.weight"), sd.at("encoder.layers.1.linear1.weight")));
    auto [decay, no_decay] = model.decay_groups();
    CHECK(decay.size() == 1 + 2 * 4 + 1);  // patch_embed, (in_proj, out_proj, linear1, linear2) x 2, head
    int64_t n = 0;
    for (const auto& t : decay) n += t.numel();
    for (const auto& t : no_decay) n += t.numel();
    CHECK(n == model.num_parameters());

    const Tensor x = randn({3, 1, 8, 8}, {}, &gen);
    CHECK(model.forward(x).shape() == Shape{3, 2});
    CHECK(allclose(model.forward(x.reshape({3, 8, 8})), model.forward(x)));  // [B, H, W] for one channel
  }

  TEST_CASE("attention maps are row-stochastic; class attention and rollout cover the patches") {
    Generator gen(1);
    VisionTransformer model(tiny(), &gen);
    model.eval();
    const Tensor x = randn({2, 1, 8, 8}, {}, &gen);
    const auto maps = model.attention_maps(x);
    REQUIRE(maps.size() == 2);
    CHECK(maps[0].shape() == Shape{2, 5, 5});
    CHECK(allclose(maps[1].sum({2}), ones({2, 5}), 1e-5, 1e-5));
    // The layer-by-layer walk reproduces forward's logits path (same final tokens).
    const Tensor ca = model.class_attention(x);
    CHECK(ca.shape() == Shape{2, 4});
    CHECK(allclose(ca.sum({1}), ones({2}), 1e-5, 1e-5));
    for (double v : values(ca)) CHECK(v >= 0.0);
    const Tensor ro = model.attention_rollout(x);
    CHECK(ro.shape() == Shape{2, 4});
    CHECK(allclose(ro.sum({1}), ones({2}), 1e-5, 1e-5));
    // class_attention is the renormalized class-token row of the last map.
    const auto row = values(maps[1].select(1, 0));
    double s = 0;
    for (int k = 1; k < 5; ++k) s += row[static_cast<size_t>(k)];
    CHECK(std::abs(values(ca)[0] - row[1] / s) < 1e-5);
  }

  TEST_CASE("bad configurations and inputs are clear errors") {
    CHECK_THROWS_WITH_AS(VisionTransformer(ViTConfig().image_size(30).patch_size(4)),
                         doctest::Contains("image_size (30) is not divisible by patch_size (4)"), focus::Error);
    CHECK_THROWS_WITH_AS(VisionTransformer(ViTConfig().dim(30).heads(4)),
                         doctest::Contains("dim (30) is not divisible by heads (4)"), focus::Error);
    CHECK_THROWS_WITH_AS(VisionTransformer(ViTConfig().depth(0)), doctest::Contains("must be positive"), focus::Error);
    CHECK_THROWS_WITH_AS(VisionTransformer(ViTConfig().dropout(1.0)), doctest::Contains("dropout must be in [0, 1)"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(patchify(zeros({1, 1, 28, 28}), 5), doctest::Contains("28x28 is not divisible by patch_size 5"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(patchify(zeros({28, 28}), 4), doctest::Contains("[patchify] expected images of shape [B, C, H, W]"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(patchify(zeros({1, 1, 4, 4}), 0), doctest::Contains("patch_size must be positive"),
                         focus::Error);
    Generator gen(2);
    VisionTransformer model(tiny(), &gen);
    CHECK_THROWS_WITH_AS(model.forward(zeros({2, 1, 12, 12})), doctest::Contains("[ViT] expected images of shape [B, 1, 8, 8]"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(model.forward(zeros({2, 1, 8, 8}, kInt64)), doctest::Contains("expected floating-point images"),
                         focus::Error);
  }

  TEST_CASE("a tiny ViT learns bright-top vs bright-bottom") {
    manual_seed(0);
    Generator gen(7);
    VisionTransformer model(tiny(), &gen);
    auto [decay, no_decay] = model.decay_groups();
    optim::AdamW opt({optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                     optim::AdamWOptions().lr(3e-3).weight_decay(0.05));
    auto [test_x, test_y] = top_bottom(64, gen);
    auto eval_loss = [&] {
      NoGradGuard ng;
      model.eval();
      const Tensor logits = model.forward(test_x);
      const double acc = eq(logits.argmax(-1), test_y).to(kFloat32).mean().item<double>();
      model.train();
      return std::make_pair(cross_entropy(logits, test_y).item<double>(), acc);
    };
    const auto [loss0, acc0] = eval_loss();
    model.train();
    for (int step = 0; step < 150; ++step) {
      auto [x, y] = top_bottom(32, gen);
      opt.zero_grad();
      Tensor loss = cross_entropy(model.forward(x), y, CrossEntropyOptions().label_smoothing(0.1));
      loss.backward();
      optim::clip_grad_norm_(model.parameters(), 1.0);
      opt.step();
    }
    const auto [loss1, acc1] = eval_loss();
    MESSAGE("held-out loss " << loss0 << " -> " << loss1 << ", accuracy " << acc0 << " -> " << acc1);
    CHECK(loss1 < 0.5 * loss0);
    CHECK(acc1 >= 0.95);
  }
}

// ---- the program: data pipeline, training through training::Run, eval and classify ---------------

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/vit/program.h"
#include "training/run.h"
#include "device_check.h"
#include "resume_check.h"

namespace {

namespace fs = std::filesystem;
namespace vitp = focus::models::vit;

struct VitTempDir : focus::testing::TempDir {
  VitTempDir() : focus::testing::TempDir("vit_test") {}
};

using focus::testing::read_file;

// The program sets the library's thread count from the config ("threads"); put it back.
struct ThreadsGuard {
  int n = get_num_threads();
  ~ThreadsGuard() { set_num_threads(n); }
};

// A tiny model on the synthetic task: trains in about a second.
training::Config tiny_program_config() {
  training::Config c = vitp::default_config();
  c.set("dataset", "synthetic").set("d_model", 32).set("num_layers", 2).set("nhead", 2).set("dim_feedforward", 64);
  c.set("epochs", 5).set("batch_size", 50).set("lr", 3e-3).set("warmup_steps", 10).set("attention_images", 2);
  c.set("log_every", 5).set("eval_batch_size", 64).set("threads", 1);
  return c;
}

}  // namespace

TEST_SUITE("models_vit") {
  TEST_CASE("augment_image shifts, flips, pads with zeros and normalizes") {
    // 3x3 image 1..9; normalization (p/255 - 0) / (1/255) gives the raw values back.
    const std::vector<uint8_t> img{1, 2, 3, 4, 5, 6, 7, 8, 9};
    const vitp::Normalize id{0.0, 1.0 / 255.0};
    std::vector<float> out(9);
    vitp::augment_image(img.data(), 3, 3, 0, 0, false, id, out.data());
    CHECK(std::vector<double>(out.begin(), out.end()) == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    vitp::augment_image(img.data(), 3, 3, 1, -1, false, id, out.data());  // out[y][x] = img[y+1][x-1]
    CHECK(std::vector<double>(out.begin(), out.end()) == std::vector<double>{0, 4, 5, 0, 7, 8, 0, 0, 0});
    vitp::augment_image(img.data(), 3, 3, 0, 0, true, id, out.data());
    CHECK(std::vector<double>(out.begin(), out.end()) == std::vector<double>{3, 2, 1, 6, 5, 4, 9, 8, 7});
    vitp::augment_image(img.data(), 3, 3, -1, 1, true, id, out.data());  // flipped, then shifted
    CHECK(std::vector<double>(out.begin(), out.end()) == std::vector<double>{0, 0, 0, 2, 1, 0, 5, 4, 0});
    const vitp::Normalize fm{0.5, 0.25};
    vitp::augment_image(img.data(), 3, 3, 0, 0, false, fm, out.data());
    CHECK(out[0] == doctest::Approx((1 / 255.0 - 0.5) / 0.25));

    const Tensor px = tensor(std::vector<int64_t>{0, 255, 0, 255}).to(kUInt8).reshape({1, 2, 2});
    const vitp::Normalize st = vitp::pixel_stats(px);
    CHECK(st.mean == doctest::Approx(0.5));
    CHECK(st.std == doctest::Approx(0.5));
  }

  TEST_CASE("collate: deterministic per (seed, epoch, index), different across epochs") {
    auto [images, labels] = vitp::synthetic_images(64, 5);
    auto set = std::make_shared<vitp::ImageSet>(images, labels, 10);
    std::vector<vitp::ImageExample> ex;
    for (int64_t i = 0; i < 64; ++i) ex.push_back(set->get(i));
    const vitp::Normalize norm = vitp::pixel_stats(images);
    const vitp::Augment aug{2, true, 11};
    const vitp::ImageBatch a = vitp::collate_images(ex, 28, 28, norm, &aug, 3);
    const vitp::ImageBatch b = vitp::collate_images(ex, 28, 28, norm, &aug, 3);
    const vitp::ImageBatch c = vitp::collate_images(ex, 28, 28, norm, &aug, 4);
    const vitp::ImageBatch plain = vitp::collate_images(ex, 28, 28, norm);
    CHECK(a.images.shape() == Shape{64, 1, 28, 28});
    CHECK(a.labels.shape() == Shape{64});
    CHECK(allclose(a.labels, labels));
    CHECK(allclose(a.images, b.images, 0, 0));
    CHECK_FALSE(allclose(a.images, c.images, 0, 0));
    CHECK_FALSE(allclose(a.images, plain.images, 0, 0));
    // Without augmentation: normalized pixels, mean ~0 and std ~1 over the set.
    CHECK(std::abs(plain.images.mean().item<double>()) < 1e-4);
    // An example's draw does not depend on its batch mates.
    const vitp::ImageBatch one = vitp::collate_images({ex[7]}, 28, 28, norm, &aug, 3);
    CHECK(allclose(one.images.select(0, 0), a.images.select(0, 7), 0, 0));
  }

  TEST_CASE("ImageSet checks shapes and labels") {
    CHECK_THROWS_WITH_AS(vitp::ImageSet(zeros({4, 28, 28}), zeros({4}, kInt64), 10),
                         doctest::Contains("expected images [N, H, W] uint8"), focus::Error);
    CHECK_THROWS_WITH_AS(vitp::ImageSet(zeros({4, 28, 28}, kUInt8), zeros({3}, kInt64), 10),
                         doctest::Contains("expected labels [4] int64"), focus::Error);
    CHECK_THROWS_WITH_AS(vitp::ImageSet(zeros({2, 28, 28}, kUInt8), tensor(std::vector<int64_t>{0, 10}), 10),
                         doctest::Contains("label 10 of image 1 is outside 0..9"), focus::Error);
    const vitp::ImageSet s(zeros({2, 28, 28}, kUInt8), zeros({2}, kInt64), 10);
    CHECK_THROWS_WITH_AS(s.get(2), doctest::Contains("image index 2 out of range"), focus::Error);
    training::Config c = vitp::default_config();
    c.set("dataset", "mnist");
    CHECK_THROWS_WITH_AS(vitp::load_data(c), doctest::Contains("unknown dataset 'mnist'"), focus::Error);
  }

  TEST_CASE("train on the synthetic task through training::Run, then eval and classify") {
    ThreadsGuard threads;
    VitTempDir tmp;
    const std::string dir = (tmp.path / "run").string();
    std::ostringstream log;
    training::RunOptions opts;
    opts.set_dir(dir).set_quiet().set_streams(&log, &log);
    const zoo::ModelEntry entry = vitp::model_entry();
    {
      training::Run run("vit", tiny_program_config(), opts);
      entry.train(run);
    }
    const std::string report = read_file(fs::path(dir) / "report.json");
    const auto j = nlohmann::json::parse(report);
    const double acc = j["metrics"]["test_accuracy"].get<double>();
    MESSAGE("synthetic test accuracy " << acc);
    CHECK(acc >= 0.7);  // chance: 0.1
    CHECK(j["metrics"].contains("test_accuracy_class_9"));
    CHECK(read_file(fs::path(dir) / "report.txt").find("per-class test accuracy") != std::string::npos);
    CHECK(fs::exists(fs::path(dir) / "checkpoint.safetensors"));
    int pngs = 0;
    for (const auto& e : fs::directory_iterator(dir)) pngs += e.path().extension() == ".png";
    CHECK(pngs == 2);
    // Training loss fell: first vs last train log line of metrics.jsonl.
    std::istringstream metrics(read_file(fs::path(dir) / "metrics.jsonl"));
    std::string line;
    std::vector<double> train_losses;
    while (std::getline(metrics, line)) {
      const auto m = nlohmann::json::parse(line);
      if (m["split"] == "train") train_losses.push_back(m["loss"].get<double>());
    }
    REQUIRE(train_losses.size() >= 2);
    CHECK(train_losses.back() < 0.5 * train_losses.front());

    // eval from the checkpoint alone.
    zoo::EvalArgs ea;
    ea.checkpoint = (fs::path(dir) / "checkpoint.safetensors").string();
    std::ostringstream eval_out;
    entry.evaluate(ea, eval_out);
    CHECK(eval_out.str().find(fmt::format("accuracy {:.2f}%", 100.0 * acc)) != std::string::npos);
    ea.split = "nope";
    CHECK_THROWS_WITH_AS(entry.evaluate(ea, eval_out), doctest::Contains("unknown split 'nope'"), focus::Error);

    // classify: test indices and a PGM file, with pictures; bad inputs are errors.
    zoo::CommandArgs ca;
    ca.command = "classify";
    ca.checkpoint = ea.checkpoint;
    const fs::path pgm = tmp.path / "img.pgm";
    {
      auto [im, lab] = vitp::synthetic_images(1, 99);
      std::ofstream f(pgm, std::ios::binary);
      f << "P5\n# a comment\n28 28\n255\n";
      f.write(reinterpret_cast<const char*>(im.data_ptr<uint8_t>()), 784);
    }
    ca.inputs = {"0", "3", pgm.string()};
    ca.options = {{"attention", "rollout"}, {"out", (tmp.path / "pics").string()}};
    std::ostringstream cl;
    entry.commands.at("classify").run(ca, cl);
    CHECK(cl.str().find("0: predicted square") != std::string::npos);
    CHECK(cl.str().find("img.pgm: predicted square") != std::string::npos);
    CHECK(fs::exists(tmp.path / "pics" / "attention_img.png"));
    ca.inputs = {"100000"};
    CHECK_THROWS_WITH_AS(entry.commands.at("classify").run(ca, cl), doctest::Contains("image index 100000 is out of range"),
                         focus::Error);
    ca.inputs = {(tmp.path / "missing.pgm").string()};
    CHECK_THROWS_WITH_AS(entry.commands.at("classify").run(ca, cl), doctest::Contains("cannot open"), focus::Error);
    {
      std::ofstream f(tmp.path / "bad.pgm");
      f << "P2\n28 28\n255\n";
    }
    ca.inputs = {(tmp.path / "bad.pgm").string()};
    CHECK_THROWS_WITH_AS(entry.commands.at("classify").run(ca, cl), doctest::Contains("not a binary PGM"), focus::Error);
    ca.inputs = {"1"};
    ca.options["attention"] = "mean";
    CHECK_THROWS_WITH_AS(entry.commands.at("classify").run(ca, cl), doctest::Contains("expected last or rollout"),
                         focus::Error);

    // --device: a device this machine cannot use is refused before any work (train touches no
    // directory); --device cpu gives what the commands give without it
    focus::testing::check_device_refused({"eval", "vit", "--checkpoint", ea.checkpoint});
    focus::testing::check_device_refused({"classify", "vit", "0", "--checkpoint", ea.checkpoint, "--out", ""});
    focus::testing::check_device_refused(
        {"train", "vit", "--run-dir", (tmp.path / "gpu").string(), "--set", "dataset=synthetic"});
    CHECK_FALSE(fs::exists(tmp.path / "gpu"));
    focus::testing::check_cpu_same(
        {"classify", "vit", "0", "3", pgm.string(), "--checkpoint", ea.checkpoint, "--out", "", "--attention", "rollout"});
    focus::testing::check_cpu_same({"eval", "vit", "--checkpoint", ea.checkpoint, "--split", "valid"});
  }

  TEST_CASE("an interrupted run resumes to the same weights as an uninterrupted one") {
    VitTempDir tmp;
    training::Config c = tiny_program_config();
    c.set("epochs", 2).set("attention_images", 0).set("eval_every", 7);  // 20 batches per epoch
    c.set("dropout", 0.1).set("augment", true);
    // interrupted at the first validation (step 7, mid-epoch): dropout and the augmenting
    // prefetch thread must both pick up where they stopped
    focus::testing::check_exact_resume(vitp::model_entry(), c, tmp, 7, 40);
    VitTempDir amp_dir;
    focus::testing::check_exact_resume(vitp::model_entry(), c, amp_dir, 7, 40, "bf16");
  }
}
