// `--int8` on the zoo's inference commands and `focus eval`, through the command line
// in-process: tiny char-gpt and g2p models trained on synthetic data, run quantized.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "device_check.h"
#include "models/g2p/g2p.h"
#include "test_util.h"

namespace fs = std::filesystem;
using focus::testing::run_focus;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The number after `key` in text ("loss 1.2345 nats": key "loss ").
double number_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  REQUIRE(at != std::string::npos);
  return std::stod(text.substr(at + key.size()));
}

}  // namespace

TEST_SUITE("int8_commands") {
  TEST_CASE("char-gpt: generate --int8 and eval --int8") {
    const fs::path dir = fs::temp_directory_path() / fmt::format("focus_int8_char_gpt_{}", ::getpid());
    fs::remove_all(dir);
    std::vector<std::string> train{"train", "char-gpt", "--run-dir", dir.string(), "-q"};
    for (const char* kv : {"dataset=synthetic", "num_layers=1", "nhead=2", "d_model=32", "block_size=16", "batch_size=8",
                           "steps=40", "warmup_steps=4", "lr=0.01", "min_lr=0.001", "eval_every=20", "eval_batches=2",
                           "checkpoint_every=40", "sample_length=10", "threads=1"})
      train.insert(train.end(), {"--set", kv});
    REQUIRE(run_focus(train).rc == 0);
    const std::string ckpt = (dir / "checkpoint.safetensors").string();

    const std::vector<std::string> gen{"generate", "char-gpt", "--checkpoint", ckpt, "--prompt", "ab", "--length", "30"};
    auto with = [](std::vector<std::string> a, std::initializer_list<std::string> more) {
      a.insert(a.end(), more);
      return a;
    };
    const auto r1 = run_focus(with(gen, {"--int8"})), r2 = run_focus(with(gen, {"--int8"}));
    INFO(r1.err);
    CHECK(r1.rc == 0);
    CHECK(r1.out == r2.out);  // the same seed, the same text
    CHECK(r1.out.rfind("ab", 0) == 0);
    const auto plain = run_focus(gen);
    CHECK(plain.rc == 0);

    // eval --int8: the validation loss stays close to the float model's.
    const auto ev = run_focus({"eval", "char-gpt", "--checkpoint", ckpt, "--split", "valid"});
    const auto ev8 = run_focus({"eval", "char-gpt", "--checkpoint", ckpt, "--split", "valid", "--int8"});
    REQUIRE(ev.rc == 0);
    REQUIRE(ev8.rc == 0);
    CHECK(has(ev8.out, "int8: 5 layers quantized"));  // c_attn, c_proj, c_fc, mlp c_proj, lm_head
    CHECK(!has(ev.out, "int8"));
    CHECK(std::abs(number_after(ev8.out, "loss ") - number_after(ev.out, "loss ")) < 0.05);

    // A device other than the CPU is refused before any work (no GPU: the device check; with
    // one, the int8 check).
    for (const auto& spec : focus::testing::unusable_devices()) {
      const auto r = run_focus(with(gen, {"--int8", "--device", spec}));
      CHECK(r.rc == 1);
      CHECK(r.out.empty());
    }
    if (focus::cuda::is_available()) {
      const auto r = run_focus(with(gen, {"--int8", "--device", "cuda"}));
      CHECK(r.rc == 1);
      CHECK(has(r.err, "--int8 runs on the CPU only"));
    } else {
      MESSAGE("no GPU: --int8 --device cuda is refused by the device check (the int8 check is not reached)");
    }
    fs::remove_all(dir);
  }

  TEST_CASE("g2p: predict --int8 and eval --int8 quantize the attention projections too") {
    const fs::path dir = fs::temp_directory_path() / fmt::format("focus_int8_g2p_{}", ::getpid());
    fs::remove_all(dir);
    std::vector<std::string> train{"train", "g2p", "--run-dir", dir.string(), "-q"};
    for (const char* kv : {"dataset=synthetic", "synthetic_words=600", "d_model=32", "nhead=4", "num_encoder_layers=1",
                           "num_decoder_layers=1", "dim_feedforward=64", "dropout=0.0", "batch_size=32", "steps=120",
                           "warmup_steps=10", "lr=0.003", "eval_every=120", "checkpoint_every=120", "log_every=20",
                           "threads=1", "beam=3", "examples=3"})
      train.insert(train.end(), {"--set", kv});
    REQUIRE(run_focus(train).rc == 0);
    const std::string ckpt = (dir / "checkpoint.safetensors").string();
    const auto p = run_focus({"predict", "g2p", "CAB", "HEAD", "--checkpoint", ckpt, "--beam", "3"});
    const auto p8 = run_focus({"predict", "g2p", "CAB", "HEAD", "--checkpoint", ckpt, "--beam", "3", "--int8"});
    INFO(p8.err);
    REQUIRE(p.rc == 0);
    REQUIRE(p8.rc == 0);
    CHECK(has(p8.out, "CAB"));
    CHECK(has(p8.out, "HEAD"));
    const auto ev = run_focus({"eval", "g2p", "--checkpoint", ckpt, "--split", "valid"});
    const auto ev8 = run_focus({"eval", "g2p", "--checkpoint", ckpt, "--split", "valid", "--int8"});
    REQUIRE(ev.rc == 0);
    REQUIRE(ev8.rc == 0);
    MESSAGE("float:\n" << ev.out << "int8:\n" << ev8.out);
    // encoder: self-attention, out_proj, linear1, linear2; decoder: two attentions, two
    // out_proj, linear1, linear2; the generator
    CHECK(has(ev8.out, "int8: 11 layers quantized"));
    // A small model on synthetic words: the beam PER moves by at most a few points.
    CHECK(std::abs(number_after(ev8.out, "PER ") - number_after(ev.out, "PER ")) < 5.0);
    fs::remove_all(dir);
  }
}
