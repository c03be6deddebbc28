// models/spam: e-mail preprocessing on small fixtures (incl. malformed ones), the classifier's
// shapes, masks, attention rollout and errors, a few training steps that lower the loss, and
// the metrics on hand-counted examples.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <numeric>
#include <string>
#include <vector>

#include "data/collate.h"
#include "data/vocab.h"
#include "models/spam/email.h"
#include "models/spam/program.h"
#include "models/spam/spam.h"
#include "device_check.h"
#include "resume_check.h"
#include "test_util.h"
#include "tools/focus/cli.h"

using namespace focus;
using namespace focus::models::spam;

namespace {

bool has(const std::vector<std::string>& words, const std::string& w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

struct CliResult {
  int rc;
  std::string out, err;
};

CliResult run_cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int rc = focus::cli::run(args, out, err);
  return {rc, out.str(), err.str()};
}

// Whitespace runs -> one space, trimmed.
std::string squash(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

TEST_SUITE("models_spam") {
  TEST_CASE("headers: only Subject and From are kept, folded lines joined") {
    const std::string raw =
        "From someone@example.com  Thu Aug 22 12:36:23 2002\n"
        "Return-Path: <list-admin@taint.org>\n"
        "Received: from mail.example.com (mail [10.0.0.1])\n"
        "\tby relay.taint.org with ESMTP id ABC123\n"
        "Subject: Cheap\n"
        "  watches today\n"
        "From: \"Jane Roe\" <jane@shop.example>\n"
        "Message-Id: <1234@relay.taint.org>\n"
        "X-Spam-Status: No\n"
        "\n"
        "Hello there.\n";
    const EmailParts parts = split_headers(raw);
    REQUIRE(parts.headers.size() == 6);
    CHECK(parts.headers[0].first == "return-path");
    CHECK(parts.header("RECEIVED") == "from mail.example.com (mail [10.0.0.1]) by relay.taint.org with ESMTP id ABC123");
    CHECK(parts.header("subject") == "Cheap watches today");
    CHECK(parts.header("x-missing").empty());
    CHECK(parts.body == "Hello there.\n");

    const std::vector<std::string> words = email_words(raw);
    CHECK(words == std::vector<std::string>{"subject", "cheap", "watches", "today", "from", "jane", "roe", "jane",
                                            "shop", "example", "hello", "there"});
    // Nothing of the dropped headers reaches the model.
    for (const char* w : {"taint", "relay", "esmtp", "abc123", "received", "status", "1234"}) CHECK_FALSE(has(words, w));
  }

  TEST_CASE("malformed messages: no blank line, no headers, empty, CRLF") {
    // No blank line: the body starts at the first line that is not a header.
    const EmailParts a = split_headers("Subject: hi\nFrom: x@y.z\nthis line is text\nmore text\n");
    CHECK(a.headers.size() == 2);
    CHECK(a.body == "this line is text\nmore text\n");
    CHECK(email_words("Subject: hi\nthis is body\n") ==
          std::vector<std::string>{"subject", "hi", "from", "this", "is", "body"});
    // Only headers, no body at all.
    const EmailParts b = split_headers("Subject: only headers");
    CHECK(b.header("subject") == "only headers");
    CHECK(b.body.empty());
    // Not an e-mail: all body.
    const EmailParts c = split_headers("just some words: here\n\nand more");
    CHECK(c.headers.empty());
    CHECK(c.body == "just some words: here\n\nand more");
    // Empty input.
    const EmailParts d = split_headers("");
    CHECK(d.headers.empty());
    CHECK(d.body.empty());
    CHECK(email_words("").empty());
    CHECK(email_text("").empty());
    // CRLF line ends.
    const EmailParts e = split_headers("Subject: a\r\n b\r\n\r\nline one\r\nline two\r\n");
    CHECK(e.header("subject") == "a b");
    CHECK(e.body == "line one\nline two\n");
    // Invalid UTF-8 bytes (Latin-1) do not throw and become U+FFFD.
    const std::string latin1 = "Subject: caf\xe9\n\nna\xefve\n";
    std::vector<std::string> w;
    CHECK_NOTHROW(w = email_words(latin1));
    CHECK(has(w, "caf\xef\xbf\xbd"));
  }

  TEST_CASE("MIME: quoted-printable, base64, HTML, multipart, attachments") {
    CHECK(decode_quoted_printable("caf=C3=A9 soft=\nbreak =3D ok =ZZ") == "caf\xc3\xa9 softbreak = ok =ZZ");
    CHECK(decode_quoted_printable("end=") == "end");
    CHECK(decode_base64("aGVsbG8g\nd29ybGQ=") == "hello world");
    CHECK(decode_header_value("=?iso-8859-1?Q?Free_=24=24=24?= =?utf-8?B?bW9uZXk=?= now") == "Free $$$money now");
    CHECK(decode_header_value("plain =? not encoded") == "plain =? not encoded");
    CHECK(squash(strip_html("<html><head><style>p {color: red}</style><script>var x = 1;</script></head>"
                     "<body><p>Buy&nbsp;now &amp; save</p><!-- hidden --> 3 &lt; 4 &#65;&#x42; a < b</body></html>")) ==
          "Buy now & save 3 < 4 AB a < b");

    const std::string raw =
        "Subject: offer\n"
        "Content-Type: multipart/mixed; boundary=\"outer\"\n"
        "\n"
        "preamble is ignored\n"
        "--outer\n"
        "Content-Type: multipart/alternative; boundary=inner\n"
        "\n"
        "--inner\n"
        "Content-Type: text/plain\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "plain=20version\n"
        "--inner\n"
        "Content-Type: text/html\n"
        "\n"
        "<p>html version</p>\n"
        "--inner--\n"
        "--outer\n"
        "Content-Type: text/html; charset=us-ascii\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "PGI+Qm9sZCBjbGFpbTwvYj4=\n"
        "--outer\n"
        "Content-Type: image/gif; name=\"x.gif\"\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "R0lGODlhAQABAIAAAP///wAAACwAAAAAAQABAAACAkQBADs=\n"
        "--outer--\n"
        "epilogue is ignored\n";
    const std::vector<std::string> words = email_words(raw);
    CHECK(words == std::vector<std::string>{"subject", "offer", "from", "plain", "version", "bold", "claim",
                                            "attachment", "image", "gif"});
    // An HTML body without Content-Type is recognised; punctuation other than ! and $ is dropped,
    // as are very long words.
    const std::string html = "Subject: x\n\n<html><body>WIN $100 now!!! " + std::string(40, 'a') + "</body></html>";
    CHECK(email_words(html) == std::vector<std::string>{"subject", "x", "from", "win", "$", "100", "now", "!", "!", "!"});
  }

  TEST_CASE("classifier: shapes, padding does not change a sequence's logits, rollout") {
    Generator gen(3);
    for (const std::string pool : {"mean", "cls"}) {
      CAPTURE(pool);
      SpamClassifier model(SpamConfig().vocab_size(30).max_len(12).d_model(16).nhead(2).num_layers(2)
                               .dim_feedforward(32).dropout(0.0).pool(pool),
                           &gen);
      model.eval();
      NoGradGuard no_grad;
      const data::PaddedBatch b = data::pad_sequences({{1, 5, 6, 7}, {1, 8, 9, 10, 11, 12, 13}}, 0);
      Tensor logits = model(b.tokens, b.key_padding_mask);
      CHECK(logits.shape() == Shape{2, 2});
      // The first sequence alone, without padding, gives the same logits.
      Tensor alone = model(tensor<int64_t>({1, 5, 6, 7}, Shape{1, 4}));
      CHECK(focus::testing::allclose(logits.select(0, 0), alone.select(0, 0), 1e-4, 1e-5));

      const std::vector<float> w = model.attention_rollout(tensor<int64_t>({1, 5, 6, 7, 8}));
      REQUIRE(w.size() == 5);
      CHECK(std::accumulate(w.begin(), w.end(), 0.0) == doctest::Approx(1.0).epsilon(1e-5));
      for (float x : w) CHECK(x >= 0.0f);
      CHECK(model.is_training() == false);
    }
    // Keys follow PyTorch's names.
    SpamClassifier model(SpamConfig().vocab_size(30).max_len(12).d_model(16).nhead(2).num_layers(1));
    const TensorDict sd = model.state_dict();
    for (const char* k : {"embed.weight", "pos.weight", "encoder.layers.0.self_attn.in_proj_weight",
                          "encoder.layers.0.linear1.weight", "encoder.norm.weight", "head.weight", "head.bias"})
      CHECK(sd.contains(k));
    CHECK(sd.at("pos.weight").shape() == Shape{12, 16});
    // rollout keeps the training flag.
    model.train();
    (void)model.attention_rollout(tensor<int64_t>({1, 2}));
    CHECK(model.is_training());
  }

  TEST_CASE("classifier: bad configurations and inputs") {
    CHECK_THROWS_WITH_AS(SpamClassifier(SpamConfig().d_model(10).nhead(3)), doctest::Contains("not divisible"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(SpamClassifier(SpamConfig().pool("max")), doctest::Contains("pool"), focus::Error);
    CHECK_THROWS_WITH_AS(SpamClassifier(SpamConfig().vocab_size(0)), doctest::Contains("positive"), focus::Error);
    CHECK_THROWS_WITH_AS(SpamClassifier(SpamConfig().vocab_size(5).pad_id(7)), doctest::Contains("pad_id"),
                         focus::Error);
    SpamClassifier model(SpamConfig().vocab_size(10).max_len(4).d_model(8).nhead(2).num_layers(1));
    CHECK_THROWS_WITH_AS(model(tensor<int64_t>({1, 2, 3, 4, 5}, Shape{1, 5})), doctest::Contains("max_len"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(model(tensor<float>({1, 2}, Shape{1, 2})), doctest::Contains("int64"), focus::Error);
    CHECK_THROWS_WITH_AS(model(tensor<int64_t>({1, 2}, Shape{1, 2}), zeros({1, 3}, kBool)),
                         doctest::Contains("key_padding_mask"), focus::Error);
    CHECK_THROWS_WITH_AS(model.attention_rollout(tensor<int64_t>({1, 2, 3, 4}, Shape{2, 2})),
                         doctest::Contains("one sequence"), focus::Error);
  }

  TEST_CASE("a few training steps on tiny generated data lower the loss") {
    // Vocabulary: 4 specials, "spam" words 4..9, "ham" words 10..15. A message is 3..8 words,
    // mostly from its class; the classifier must learn which words mark spam.
    Generator gen(11);
    manual_seed(11);
    std::vector<std::vector<int64_t>> seqs;
    std::vector<int64_t> labels;
    for (int i = 0; i < 48; ++i) {
      const int64_t label = i % 2;
      const int64_t len = 3 + (i * 7) % 6;
      std::vector<int64_t> s{1};
      for (int64_t k = 0; k < len; ++k) s.push_back((label ? 4 : 10) + (i + 3 * k) % 6);
      seqs.push_back(s);
      labels.push_back(label);
    }
    const data::PaddedBatch b = data::pad_sequences(seqs, 0);
    Tensor y = tensor<int64_t>(labels);
    SpamClassifier model(SpamConfig().vocab_size(16).max_len(16).d_model(16).nhead(2).num_layers(1)
                             .dim_feedforward(32).dropout(0.0),
                         &gen);
    auto [decay, no_decay] = model.decay_groups();
    CHECK(decay.size() + no_decay.size() == model.parameters().size());
    optim::AdamW opt(std::vector<optim::ParamGroup>{optim::ParamGroup(decay), optim::ParamGroup(no_decay).weight_decay(0.0)},
                     optim::AdamWOptions(3e-3));
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 30; ++step) {
      opt.zero_grad();
      Tensor loss = cross_entropy(model(b.tokens, b.key_padding_mask), y);
      loss.backward();
      opt.step();
      if (step == 0) first = loss.item<double>();
      last = loss.item<double>();
    }
    CHECK(first == doctest::Approx(std::log(2.0)).epsilon(0.2));
    CHECK(last < 0.5 * first);
    NoGradGuard no_grad;
    model.eval();
    BinaryMetrics m;
    m.add(model(b.tokens, b.key_padding_mask).argmax(-1), y);
    CHECK(m.accuracy() == 1.0);
  }

  TEST_CASE("metrics on hand-counted examples") {
    BinaryMetrics m;
    // predicted, label: 3 tp, 1 fp, 4 tn, 2 fn.
    const std::vector<std::pair<int, int>> pairs{{1, 1}, {1, 1}, {1, 1}, {1, 0}, {0, 0},
                                                 {0, 0}, {0, 0}, {0, 0}, {0, 1}, {0, 1}};
    for (auto [p, l] : pairs) m.add(p, l);
    CHECK(m.tp == 3);
    CHECK(m.fp == 1);
    CHECK(m.tn == 4);
    CHECK(m.fn == 2);
    CHECK(m.accuracy() == doctest::Approx(0.7));
    CHECK(m.precision() == doctest::Approx(0.75));
    CHECK(m.recall() == doctest::Approx(0.6));
    CHECK(m.f1() == doctest::Approx(2 * 0.75 * 0.6 / 1.35));
    // The tensor overload counts the same.
    BinaryMetrics t;
    t.add(tensor<int64_t>({1, 1, 1, 1, 0, 0, 0, 0, 0, 0}), tensor<int64_t>({1, 1, 1, 0, 0, 0, 0, 0, 1, 1}));
    CHECK(t.tp == 3);
    CHECK(t.fp == 1);
    CHECK(t.tn == 4);
    CHECK(t.fn == 2);
    // Degenerate cases are 0, not NaN.
    BinaryMetrics empty;
    CHECK(empty.accuracy() == 0.0);
    CHECK(empty.precision() == 0.0);
    CHECK(empty.f1() == 0.0);
    BinaryMetrics all_ham;
    all_ham.add(0, 0);
    CHECK(all_ham.accuracy() == 1.0);
    CHECK(all_ham.recall() == 0.0);
    CHECK_THROWS_WITH_AS(m.add(2, 1), doctest::Contains("0 or 1"), focus::Error);
    CHECK_THROWS_WITH_AS(m.add(tensor<int64_t>({1}), tensor<int64_t>({1, 0})), doctest::Contains("one length"),
                         focus::Error);
  }

  TEST_CASE("synthetic data: split without repeated bodies, encoding") {
    std::vector<Message> msgs = synthetic_messages(60, 1);
    REQUIRE(msgs.size() == 60);
    CHECK(msgs[1].spam);
    CHECK_FALSE(msgs[0].spam);
    msgs.push_back({"copy/0", msgs[3].spam, msgs[3].raw});  // a repeated message
    const SplitMessages s = split_messages(msgs);
    CHECK(s.duplicates_dropped == 1);
    CHECK(s.train.size() + s.valid.size() + s.test.size() == 60);
    CHECK(s.train.size() > s.test.size());
    const data::Vocab vocab = data::Vocab::from_tokens({"free", "money"});
    CHECK(encode_words({"free", "cash", "money", "free"}, vocab, 3) == std::vector<int64_t>{1, 4, 3});
    CHECK(encode_words({}, vocab, 3) == std::vector<int64_t>{1});
    CHECK_THROWS_WITH_AS(encode_words({"free"}, vocab, 0), doctest::Contains("max_len"), focus::Error);
    training::Config c = default_config();
    c.set("dataset", "nope");
    CHECK_THROWS_WITH_AS(load_messages(c), doctest::Contains("unknown dataset"), focus::Error);
  }

  TEST_CASE("command line: train, eval and classify on the synthetic dataset") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("focus_spam_test_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const std::string run_dir = (dir / "run").string();
    CliResult r = run_cli({"train", "spam", "--run-dir", run_dir, "-q", "--set", "dataset=synthetic", "--set",
                           "steps=40", "--set", "d_model=16", "--set", "dim_feedforward=32", "--set", "max_len=48",
                           "--set", "eval_every=20", "--set", "dropout=0"});
    INFO(r.out, r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("accuracy") != std::string::npos);
    CHECK(r.out.find("training spam in " + run_dir + ", device cpu\n") == 0);  // the run header names the device
    const std::string ckpt = (fs::path(run_dir) / "checkpoint.safetensors").string();
    REQUIRE(fs::exists(ckpt));
    const std::string report_text = focus::testing::read_file(fs::path(run_dir) / "report.json");
    CHECK(report_text.find("test_f1") != std::string::npos);

    r = run_cli({"eval", "spam", "--checkpoint", ckpt});
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("test split") != std::string::npos);
    CHECK(r.out.find("accuracy  100.00%") != std::string::npos);  // the synthetic classes are easy

    const std::string spam_file = (dir / "spam.eml").string(), ham_file = (dir / "ham.eml").string();
    std::ofstream(spam_file) << "Subject: free cash prize\nFrom: deals@x.example\n\nclick for free money, cheap credit "
                                "offer, urgent winner bonus\n";
    std::ofstream(ham_file) << "Subject: kernel patch review\n\nthanks for the patch, the build and the commit look "
                               "fine; agenda for the meeting tomorrow\n";
    const std::string png = (dir / "att.png").string();
    r = run_cli({"classify", "spam", spam_file, ham_file, "--checkpoint", ckpt, "--attention", png});
    INFO(r.out, r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("spam.eml  spam") != std::string::npos);
    CHECK(r.out.find("ham.eml  ham") != std::string::npos);
    CHECK(fs::file_size(dir / "att-1.png") > 100);
    CHECK(fs::file_size(dir / "att-2.png") > 100);

    CHECK(r.out.find("words)") != std::string::npos);

    // Not text: an executable was classified "spam p=0.905 (255 words)" with status 0.
    const std::string binary = (dir / "program.bin").string();
    {
      std::ofstream f(binary, std::ios::binary);
      f << "\x7f" << "ELF" << std::string(12, '\0') << "free cash prize winner";
    }
    r = run_cli({"classify", "spam", ham_file, binary, "--checkpoint", ckpt});
    CHECK(r.rc == 1);
    CHECK(r.out.empty());  // every input is read before any output
    CHECK(r.err.find("[classify] '" + binary + "' is not a text file (a NUL byte at offset 4)") != std::string::npos);
    // Only part of a message read: the output says so (the model sees max_len - 1 = 47 words).
    const std::string long_file = (dir / "long.eml").string();
    {
      std::ofstream f(long_file);
      f << "Subject: minutes\n\n";
      for (int i = 0; i < 100; ++i) f << "meeting notes ";
    }
    const std::string huge_file = (dir / "huge.eml").string();
    {
      std::ofstream f(huge_file);
      f << "Subject: x\n\n" << std::string((size_t{17} << 20), 'x');  // one overlong word: dropped
    }
    r = run_cli({"classify", "spam", long_file, huge_file, ham_file, "--checkpoint", ckpt});
    INFO(r.out, r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("long.eml") != std::string::npos);
    CHECK(r.out.find("(the first 47 of 203 words)") != std::string::npos);  // 200 + the subject line's
    CHECK(r.out.find(" words; read the first 16 MiB of a 17.0 MiB file)") != std::string::npos);
    CHECK(r.out.find("ham.eml  ham") != std::string::npos);

    r = run_cli({"classify", "spam", (dir / "missing.eml").string(), "--checkpoint", ckpt});
    CHECK(r.rc != 0);
    CHECK(r.err.find("[classify] cannot read") != std::string::npos);
    r = run_cli({"classify", "spam", dir.string(), "--checkpoint", ckpt});
    CHECK(r.rc != 0);
    CHECK(r.err.find("is a directory") != std::string::npos);

    // --device (spam trained on the CPU only before): a device this machine cannot use is
    // refused before any work; --device cpu gives what the commands give without it
    focus::testing::check_device_refused({"eval", "spam", "--checkpoint", ckpt});
    focus::testing::check_device_refused({"classify", "spam", spam_file, "--checkpoint", ckpt});
    focus::testing::check_device_refused(
        {"train", "spam", "--run-dir", (dir / "gpu").string(), "--set", "dataset=synthetic"});
    CHECK_FALSE(fs::exists(dir / "gpu"));
    focus::testing::check_cpu_same({"classify", "spam", spam_file, ham_file, "--checkpoint", ckpt});
    focus::testing::check_cpu_same({"eval", "spam", "--checkpoint", ckpt, "--split", "valid"});
    fs::remove_all(dir);
  }

  TEST_CASE("an interrupted run resumes mid-epoch to the same weights as an uninterrupted one") {
    focus::testing::TempDir tmp("spam_resume");
    training::Config c = default_config();
    c.set("dataset", "synthetic").set("steps", 25).set("d_model", 16).set("dim_feedforward", 32).set("max_len", 48);
    c.set("dropout", 0.1).set("eval_every", 7).set("checkpoint_every", 0).set("log_every", 5).set("threads", 1);
    // interrupted at the validation of step 7, inside the first epoch
    focus::testing::check_exact_resume(model_entry(), c, tmp, 7, 25);
    focus::testing::TempDir amp_dir("spam_resume_amp");
    focus::testing::check_exact_resume(model_entry(), c, amp_dir, 7, 25, "fp16");
  }
}
