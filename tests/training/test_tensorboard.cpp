// focus::training::SummaryWriter: CRC-32C and TFRecord framing against published vectors; event
// files read back by an independent reader (tests/training/read_tfevents.py: Python's protobuf
// with message classes built from the published field numbers, both CRCs of every record
// checked, PNGs decoded); histograms against PyTorch's algorithm on numpy
// (tests/training/torch_histogram.py); buffering; every error path.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "focus/focus.h"
#include "test_util.h"
#include "training/png.h"
#include "training/tensorboard.h"
#include "models/zoo/pictures.h"

using namespace focus;
using namespace focus::training;
using focus::testing::TempDir;
using nlohmann::json;
namespace tb = focus::training::detail;
namespace fs = std::filesystem;

namespace {

// Runs a command, returns (exit status, stdout).
std::pair<int, std::string> run(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE_MESSAGE(p != nullptr, "cannot run " << cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The events of one file, as the independent reader sees them. A missing python3-protobuf
// fails the test (tools/test installs it).
json read_events(const std::string& path) {
  const std::string cmd = "/usr/bin/python3 " FOCUS_SOURCE_DIR "/tests/training/read_tfevents.py '" + path + "'";
  const auto [rc, out] = run(cmd);
  REQUIRE_MESSAGE(rc == 0, "the reader failed (status " << rc << "; exit 2 = python3-protobuf missing: "
                                                          "apt-get install python3-protobuf): " << cmd);
  return json::parse(out).at("events");
}

json torch_histogram(const json& spec) {
  const std::string cmd =
      "/usr/bin/python3 " FOCUS_SOURCE_DIR "/tests/training/torch_histogram.py '" + spec.dump() + "'";
  const auto [rc, out] = run(cmd);
  REQUIRE_MESSAGE(rc == 0, "the histogram oracle failed (status " << rc << "): " << cmd);
  return json::parse(out);
}

// The event files directly in dir.
std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

uintmax_t file_size(const std::string& path) { return fs::file_size(path); }

}  // namespace

TEST_SUITE("tensorboard") {

TEST_CASE("CRC-32C: the test vectors of RFC 3720 and the masked form") {
  const std::vector<uint8_t> zeros(32, 0), ones(32, 0xff);
  std::vector<uint8_t> inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[size_t(i)] = uint8_t(i);
    dec[size_t(i)] = uint8_t(31 - i);
  }
  CHECK(tb::crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
  CHECK(tb::crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  CHECK(tb::crc32c(inc.data(), inc.size()) == 0x46DD794Eu);
  CHECK(tb::crc32c(dec.data(), dec.size()) == 0x113FDB5Cu);
  CHECK(tb::crc32c("123456789", 9) == 0xE3069283u);
  CHECK(tb::crc32c("", 0) == 0u);
  // Continuing a CRC over a split buffer gives the CRC of the whole.
  CHECK(tb::crc32c("6789", 4, tb::crc32c("12345", 5)) == 0xE3069283u);
  const uint32_t c = 0xE3069283u;
  CHECK(tb::masked_crc32c("123456789", 9) == uint32_t(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

TEST_CASE("TFRecord framing: length, its masked CRC, data, the data's masked CRC") {
  const std::string data = "hello, tensorboard";
  const std::string r = tb::tfrecord(data);
  REQUIRE(r.size() == 8 + 4 + data.size() + 4);
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= uint64_t(uint8_t(r[size_t(i)])) << (8 * i);
  CHECK(len == data.size());
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(r[at + size_t(i)])) << (8 * i);
    return v;
  };
  CHECK(u32(8) == tb::masked_crc32c(r.data(), 8));
  CHECK(r.substr(12, data.size()) == data);
  CHECK(u32(12 + data.size()) == tb::masked_crc32c(data.data(), data.size()));
  // The empty record: the CRC of zero data bytes masks to the constant.
  const std::string e = tb::tfrecord("");
  REQUIRE(e.size() == 16);
  CHECK(e.substr(0, 8) == std::string(8, '\0'));
}

TEST_CASE("scalars, text and the file's name and first event, read back independently") {
  TempDir tmp("tb");
  const std::string dir = tmp / "run1";
  std::string path;
  {
    SummaryWriter w(SummaryWriterOptions(dir).filename_suffix(".v2"));
    CHECK(w.log_dir() == dir);
    path = w.file_path();
    // The file exists, with its first event, as soon as the writer is made.
    REQUIRE(fs::exists(path));
    CHECK(file_size(path) > 0);
    w.add_scalar("loss/train", 2.5, 1, 1000.25);
    w.add_scalar("loss/train", 1.25, 2);
    w.add_scalar("neg", -3.0, -7, 1.0);  // negative steps are allowed, as in PyTorch
    w.add_scalar("t", tensor<float>({0.75f}, {1, 1}), 3, 2.0);
    w.add_scalar("nan", std::nan(""), 4, 3.0);
    w.add_text("notes", "hello **world** \xc3\xa9", 5, 4.0);
  }
  const std::string name = fs::path(path).filename().string();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::regex pattern("events\\.out\\.tfevents\\.[0-9]{10}\\." + std::string(host) + "\\." +
                           std::to_string(::getpid()) + "\\.[0-9]+\\.v2");
  CHECK_MESSAGE(std::regex_match(name, pattern), name);
  CHECK(event_files(dir) == std::vector<std::string>{path});

  const json ev = read_events(path);
  REQUIRE(ev.size() == 7);
  CHECK(ev[0]["file_version"] == "brain.Event:2");
  const double now = double(std::time(nullptr));
  CHECK(ev[0]["wall_time"].get<double>() > now - 600);
  CHECK(ev[0]["wall_time"].get<double>() <= now + 1);

  CHECK(ev[1]["wall_time"] == 1000.25);
  CHECK(ev[1]["step"] == 1);
  REQUIRE(ev[1]["values"].size() == 1);
  CHECK(ev[1]["values"][0]["tag"] == "loss/train");
  CHECK(ev[1]["values"][0]["kind"] == "simple_value");
  CHECK(ev[1]["values"][0]["value"] == 2.5);
  CHECK(ev[2]["step"] == 2);
  CHECK(ev[2]["values"][0]["value"] == 1.25);
  CHECK(ev[2]["wall_time"].get<double>() > now - 600);
  CHECK(ev[3]["step"] == -7);
  CHECK(ev[3]["values"][0]["value"] == -3.0);
  CHECK(ev[4]["values"][0]["tag"] == "t");
  CHECK(ev[4]["values"][0]["value"] == 0.75);
  CHECK(ev[5]["values"][0]["tag"] == "nan");
  CHECK(ev[5]["values"][0]["value"] == "nan");  // the reader's spelling of NaN

  const json& text = ev[6]["values"][0];
  CHECK(ev[6]["step"] == 5);
  CHECK(text["tag"] == "notes/text_summary");
  CHECK(text["kind"] == "tensor");
  CHECK(text["dtype"] == 7);  // DT_STRING
  CHECK(text["shape"] == json::array({1}));
  CHECK(text["strings"] == json::array({"hello **world** \xc3\xa9"}));
  CHECK(text["plugin_name"] == "text");
  CHECK(text["plugin_content"] == "");
}

TEST_CASE("add_scalars: one writer per sub-directory, tagged with the main tag") {
  TempDir tmp("tb");
  const std::string dir = tmp / "run";
  {
    SummaryWriter w(dir);
    w.add_scalars("run/loss", {{"train", 1.5}, {"val", 2.0}}, 10, 5.0);
    w.add_scalars("run/loss", {{"train", 0.5}}, 11, 6.0);
  }
  CHECK(event_files(dir).size() == 1);  // the main writer's file
  const auto train = event_files(dir + "/run_loss_train");
  const auto val = event_files(dir + "/run_loss_val");
  REQUIRE(train.size() == 1);
  REQUIRE(val.size() == 1);
  const json t = read_events(train[0]);
  REQUIRE(t.size() == 3);
  CHECK(t[0]["file_version"] == "brain.Event:2");
  CHECK(t[1]["values"][0]["tag"] == "run/loss");
  CHECK(t[1]["values"][0]["value"] == 1.5);
  CHECK(t[1]["step"] == 10);
  CHECK(t[1]["wall_time"] == 5.0);
  CHECK(t[2]["values"][0]["value"] == 0.5);
  CHECK(t[2]["step"] == 11);
  const json v = read_events(val[0]);
  REQUIRE(v.size() == 2);
  CHECK(v[1]["values"][0]["tag"] == "run/loss");
  CHECK(v[1]["values"][0]["value"] == 2.0);
}

TEST_CASE("histograms: as PyTorch's make_histogram on numpy, on every device") {
  struct Case {
    std::vector<double> values;
    HistogramBins bins;
    json bins_json;
    int64_t max_bins;
  };
  std::vector<double> spread;
  for (int i = 0; i < 200; ++i) spread.push_back(std::sin(i * 0.37) * std::pow(10.0, (i % 7) - 3));
  const std::vector<Case> cases = {
      {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 5, 5, 0},
      {{0.5, 1.0, -2.0, 0.0, 1e-13, -1e-13}, {}, "tensorflow", 0},
      {spread, {}, "tensorflow", 0},
      {spread, 30, 30, 0},
      {spread, 30, 30, 7},
      {{3.0, 3.0, 3.0}, 4, 4, 0},  // one distinct value: +-0.5 around it
      {{0.5, 1.0, -2.0, 0.0, 3, 3, 3}, std::vector<double>{-1, 0, 0.5, 2, 3}, json::array({-1, 0, 0.5, 2, 3}), 0},
  };
  FOR_EACH_DEVICE(dev) {
    TempDir tmp("tb");
    std::string path;
    {
      SummaryWriter w(tmp / "h");
      path = w.file_path();
      for (size_t i = 0; i < cases.size(); ++i)
        w.add_histogram("h" + std::to_string(i), tensor<double>(cases[i].values).to(dev), int64_t(i),
                        cases[i].bins, 1.0, cases[i].max_bins);
      // float32 values are read as they are, then widened
      w.add_histogram("f32", tensor<float>({0.1f, 0.2f, 0.3f}, {3}).to(dev), 99, 3);
    }
    const json ev = read_events(path);
    REQUIRE(ev.size() == cases.size() + 2);
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO("case " << i);
      json spec = {{"values", cases[i].values}, {"bins", cases[i].bins_json}};
      if (cases[i].max_bins) spec["max_bins"] = cases[i].max_bins;
      const json want = torch_histogram(spec);
      const json& got = ev[i + 1]["values"][0];
      CHECK(got["tag"] == "h" + std::to_string(i));
      CHECK(got["kind"] == "histo");
      CHECK(got["min"] == want["min"]);
      CHECK(got["max"] == want["max"]);
      CHECK(got["num"].get<double>() == want["num"].get<double>());
      CHECK(got["sum"].get<double>() == doctest::Approx(want["sum"].get<double>()).epsilon(1e-12));
      CHECK(got["sum_squares"].get<double>() == doctest::Approx(want["sum_squares"].get<double>()).epsilon(1e-12));
      CHECK(got["bucket"] == want["bucket"]);
      REQUIRE(got["bucket_limit"].size() == want["bucket_limit"].size());
      for (size_t k = 0; k < want["bucket_limit"].size(); ++k)
        CHECK(got["bucket_limit"][k].get<double>() ==
              doctest::Approx(want["bucket_limit"][k].get<double>()).epsilon(1e-12));
    }
    const json& f = ev.back()["values"][0];
    CHECK(f["min"] == double(0.1f));
    CHECK(f["bucket"] == json::array({0.0, 1.0, 1.0, 1.0}));
  }
  // make_histogram is the same computation, without a file.
  const Histogram h = make_histogram(tensor<double>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}), 5);
  CHECK(h.bucket == std::vector<double>{0, 2, 2, 2, 2, 2});
  CHECK(h.bucket_limit.front() == 0.0);
  CHECK(h.bucket_limit.back() == 9.0);
  CHECK(h.num == 10);
  CHECK(h.sum_squares == 285);
}

TEST_CASE("images: PNG pixels decoded back, CHW/HWC/HW, uint8 and float, gray/RGB/RGBA") {
  TempDir tmp("tb");
  std::string path;
  // 2 high, 3 wide.
  const std::vector<uint8_t> rgb_hwc = {10, 20, 30,  40, 50, 60,  70, 80, 90,  //
                                        100, 110, 120, 130, 140, 150, 160, 170, 180};
  const Tensor hwc = tensor<uint8_t>(rgb_hwc, {2, 3, 3});
  {
    SummaryWriter w(tmp / "img");
    path = w.file_path();
    w.add_image("hwc", hwc, 1, 1.0, "HWC");
    w.add_image("chw", hwc.permute({2, 0, 1}), 2, 1.0);  // a non-contiguous view, default CHW
    // float in [0, 1]: x * 255 truncated; outside values clamped.
    w.add_image("gray", tensor<float>({0.0f, 0.5f, 1.0f, 2.0f, -1.0f, 0.25f}, {1, 2, 3}), 3, 1.0);
    w.add_image("hw", tensor<double>({0.0, 1.0, 0.5, 0.5, 1.0, 0.0}, {2, 3}), 4, 1.0, "HW");
    std::vector<uint8_t> rgba(2 * 3 * 4);
    for (size_t i = 0; i < rgba.size(); ++i) rgba[i] = uint8_t(i * 10);
    w.add_image("rgba", tensor<uint8_t>(rgba, {2, 3, 4}), 5, 1.0, "hwc");
  }
  const json ev = read_events(path);
  REQUIRE(ev.size() == 6);
  auto check_image = [&](const json& v, const std::string& tag, int channels, const std::vector<int>& pixels) {
    INFO("image " << tag);
    CHECK(v["tag"] == tag);
    CHECK(v["kind"] == "image");
    CHECK(v["height"] == 2);
    CHECK(v["width"] == 3);
    CHECK(v["colorspace"] == channels);
    CHECK(v["png_signature"] == true);
    CHECK(v["png_height"] == 2);
    CHECK(v["png_width"] == 3);
    CHECK(v["png_channels"] == channels);
    CHECK(v["pixels"] == json(pixels));
  };
  const std::vector<int> rgb(rgb_hwc.begin(), rgb_hwc.end());
  check_image(ev[1]["values"][0], "hwc", 3, rgb);
  check_image(ev[2]["values"][0], "chw", 3, rgb);
  // 0.5 * 255 = 127.5 -> 127; 0.25 * 255 = 63.75 -> 63.
  check_image(ev[3]["values"][0], "gray", 3,
              {0, 0, 0, 127, 127, 127, 255, 255, 255, 255, 255, 255, 0, 0, 0, 63, 63, 63});
  check_image(ev[4]["values"][0], "hw", 3,
              {0, 0, 0, 255, 255, 255, 127, 127, 127, 127, 127, 127, 255, 255, 255, 0, 0, 0});
  std::vector<int> rgba;
  for (int i = 0; i < 24; ++i) rgba.push_back(i * 10);
  check_image(ev[5]["values"][0], "rgba", 4, rgba);
  CHECK(ev[5]["step"] == 5);
}

TEST_CASE("buffering: max_queue events, flush(), the background flush every flush_secs") {
  TempDir tmp("tb");
  {
    SummaryWriter w(SummaryWriterOptions(tmp / "q").max_queue(3));
    const auto start = file_size(w.file_path());
    w.add_scalar("a", 1.0, 1);
    w.add_scalar("a", 2.0, 2);
    CHECK(file_size(w.file_path()) == start);  // two events pending
    w.add_scalar("a", 3.0, 3);
    const auto after3 = file_size(w.file_path());
    CHECK(after3 > start);  // the third filled the queue
    w.add_scalar("a", 4.0, 4);
    CHECK(file_size(w.file_path()) == after3);
    w.flush();
    CHECK(file_size(w.file_path()) > after3);
    w.flush();  // nothing pending: nothing written
    const auto flushed = file_size(w.file_path());
    w.add_scalar("a", 5.0, 5);
    w.close();
    CHECK(file_size(w.file_path()) > flushed);  // close() flushes
    CHECK(read_events(w.file_path()).size() == 6);
    w.close();  // a second close does nothing
    w.flush();  // nor does a flush after close
  }
  {
    SummaryWriter w(SummaryWriterOptions(tmp / "t").flush_secs(0.05));
    const auto start = file_size(w.file_path());
    w.add_scalar("a", 1.0, 1);
    bool written = false;
    for (int i = 0; i < 200 && !written; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      written = file_size(w.file_path()) > start;
    }
    CHECK_MESSAGE(written, "the background thread did not write the pending event within 2 s");
  }
  {
    // A huge flush_secs: the background thread waits (no overflow of the clock) and close()
    // still ends it at once.
    const auto t0 = std::chrono::steady_clock::now();
    SummaryWriter w(SummaryWriterOptions(tmp / "huge").flush_secs(1e300));
    w.add_scalar("a", 1.0, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    w.close();
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    CHECK(read_events(w.file_path()).size() == 2);
  }
  {
    // The destructor closes, and so writes what is pending.
    std::string path;
    {
      SummaryWriter w(tmp / "d");
      path = w.file_path();
      w.add_text("x", "y", 1);
    }
    CHECK(read_events(path).size() == 2);
  }
}

TEST_CASE("threads may share one writer") {
  TempDir tmp("tb");
  std::string path;
  {
    SummaryWriter w(SummaryWriterOptions(tmp / "mt").max_queue(4));
    path = w.file_path();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&w, t] {
        for (int i = 0; i < 50; ++i) w.add_scalar("t" + std::to_string(t), double(i), i);
      });
    for (auto& th : threads) th.join();
  }
  CHECK(read_events(path).size() == 201);
}

TEST_CASE("the default log_dir: runs/<MonDD_HH-MM-SS>_<hostname><comment>") {
  TempDir tmp("tb");
  const fs::path cwd = fs::current_path();
  fs::current_path(tmp.path);
  std::string dir;
  try {
    SummaryWriter w(SummaryWriterOptions().comment("_lr0.1"));
    dir = w.log_dir();
    // log_dir given: the comment is ignored
    SummaryWriter w2(SummaryWriterOptions("named").comment("_x"));
    CHECK(w2.log_dir() == "named");
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path(cwd);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::regex pattern("runs/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[0-9]{2}_[0-9]{2}-[0-9]{2}-[0-9]{2}_" +
                           std::string(host) + "_lr0\\.1");
  CHECK_MESSAGE(std::regex_match(dir, pattern), dir);
  CHECK(event_files((tmp.path / dir).string()).size() == 1);
}

TEST_CASE("errors name the method and what was wrong") {
  TempDir tmp("tb");
  SummaryWriter w(tmp / "e");
  const Tensor img = zeros({3, 2, 2});
  CHECK_THROWS_WITH_AS(w.add_image("i", img, 0, std::nullopt, "NCHW"),
                       doctest::Contains("[SummaryWriter] add_image: 'i': unknown dataformats 'NCHW'"), Error);
  CHECK_THROWS_WITH_AS(w.add_image("i", zeros({2, 2}), 0),
                       doctest::Contains("[SummaryWriter] add_image: 'i': dataformats 'CHW' needs a 3-D tensor, got shape [2, 2]"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_image("i", zeros({2, 4, 4}), 0),
                       doctest::Contains("[SummaryWriter] add_image: 'i': an image has 1, 3 or 4 channels, got 2"), Error);
  CHECK_THROWS_WITH_AS(w.add_image("i", zeros({3, 0, 4}), 0),
                       doctest::Contains("[SummaryWriter] add_image: 'i': the image must be 1..100000 pixels high and wide, got 0x4"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_image("i", zeros({3, 2, 2}, kInt64), 0),
                       doctest::Contains("[SummaryWriter] add_image: 'i': the image must be uint8 (0..255) or floating point"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_image("i", full({3, 2, 2}, std::nan("")), 0),
                       doctest::Contains("[SummaryWriter] add_image: 'i': the image holds NaN"), Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", zeros({0}), 0),
                       doctest::Contains("[SummaryWriter] add_histogram: 'h': the values are empty (shape [0])"), Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", tensor<float>({1.0f, INFINITY}), 0),
                       doctest::Contains("[SummaryWriter] add_histogram: 'h': the values hold a non-finite number (inf)"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", ones({3}), 0, "auto"),
                       doctest::Contains("[SummaryWriter] add_histogram: 'h': unknown bins 'auto'"), Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", ones({3}), 0, 0),
                       doctest::Contains("[SummaryWriter] add_histogram: 'h': the number of bins must be in 1..10000000, got 0"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", ones({3}), 0, std::vector<double>{0, 2, 1}),
                       doctest::Contains("[SummaryWriter] add_histogram: 'h': bin edges must increase: edge 2 is 1 after 2"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", ones({3}), 0, std::vector<double>{1}),
                       doctest::Contains("explicit bins need at least 2 edges, got 1"), Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", ones({3}), 0, std::vector<double>{5, 6}),
                       doctest::Contains("[SummaryWriter] add_histogram: 'h': no value lies within the bins (5 .. 6)"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", full({2}, 1e30), 0),
                       doctest::Contains("no value lies within the bins"), Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("h", ones({3}), 0, {}, std::nullopt, -1),
                       doctest::Contains("max_bins must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(make_histogram(Tensor(), 3), doctest::Contains("[make_histogram] the values tensor is undefined"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_scalar("s", ones({2}), 0),
                       doctest::Contains("[SummaryWriter] add_scalar: 's': a scalar needs a one-element tensor, got shape [2]"),
                       Error);
  CHECK_THROWS_WITH_AS(w.add_scalar("", 1.0), doctest::Contains("[SummaryWriter] add_scalar: empty tag"), Error);
  CHECK_THROWS_WITH_AS(w.add_scalar("s", 1.0, 0, INFINITY),
                       doctest::Contains("[SummaryWriter] add_scalar: walltime must be finite, got inf"), Error);
  CHECK_THROWS_WITH_AS(w.add_scalars("m", {{"a/b", 1.0}}),
                       doctest::Contains("[SummaryWriter] add_scalars: 'm': the tag 'a/b' must be a non-empty directory name"),
                       Error);
  CHECK_THROWS_WITH_AS(SummaryWriter(SummaryWriterOptions(tmp / "x").max_queue(0)),
                       doctest::Contains("[SummaryWriter] max_queue must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(SummaryWriter(SummaryWriterOptions(tmp / "x").flush_secs(0)),
                       doctest::Contains("[SummaryWriter] flush_secs must be a positive number of seconds, got 0"), Error);
  CHECK_THROWS_WITH_AS(SummaryWriter(SummaryWriterOptions(tmp / "x").filename_suffix("a/b")),
                       doctest::Contains("[SummaryWriter] filename_suffix 'a/b' holds a '/'"), Error);
  // A log_dir below a regular file cannot be made.
  { std::FILE* f = std::fopen((tmp / "file").c_str(), "w"); REQUIRE(f); std::fclose(f); }
  CHECK_THROWS_WITH_AS(SummaryWriter(tmp / "file/sub"),
                       doctest::Contains(doctest::String(("[SummaryWriter] cannot create the directory '" + (tmp / "file/sub") + "'").c_str())),
                       Error);

  // Nothing that failed above reached the file.
  w.close();
  CHECK(read_events(w.file_path()).size() == 1);
  CHECK_THROWS_WITH_AS(w.add_scalar("s", 1.0), doctest::Contains("[SummaryWriter] add_scalar: the writer of '"), Error);
  CHECK_THROWS_WITH_AS(w.add_text("s", "t"), doctest::Contains("[SummaryWriter] add_text: the writer of '"), Error);
  CHECK_THROWS_WITH_AS(w.add_image("s", img), doctest::Contains("[SummaryWriter] add_image: the writer of '"), Error);
  CHECK_THROWS_WITH_AS(w.add_histogram("s", img), doctest::Contains("' is closed"), Error);
  CHECK_THROWS_WITH_AS(w.add_scalars("s", {{"a", 1.0}}), doctest::Contains("[SummaryWriter] add_scalars: the writer of '"),
                       Error);
}

TEST_CASE("encode_png: the shared encoder's errors") {
  const std::vector<uint8_t> px(12, 7);
  CHECK_THROWS_WITH_AS(encode_png(px.data(), 0, 2, 3), doctest::Contains("[encode_png] bad picture size 0x2"), Error);
  CHECK_THROWS_WITH_AS(encode_png(px.data(), 2, 2, 5), doctest::Contains("[encode_png] a PNG has 1 to 4 channels, got 5"),
                       Error);
  const std::string png = encode_png(px.data(), 2, 2, 3);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_CASE("purge_step: a SessionLog START event at the step, as PyTorch writes it") {
  TempDir tmp("tb_purge");
  {
    SummaryWriter w(SummaryWriterOptions(tmp / "p").purge_step(41));
    w.add_scalar("x", 1.0, 41);
  }
  const json ev = read_events(event_files(tmp / "p").at(0));
  REQUIRE(ev.size() == 4);
  CHECK(ev[1]["step"] == 41);
  CHECK(ev[1]["file_version"] == "brain.Event:2");
  CHECK(ev[2]["step"] == 41);
  CHECK(ev[2]["session_log"] == 1);  // SessionLog.START
  CHECK(ev[3]["values"][0]["tag"] == "x");
}

TEST_CASE("a Run with --tensorboard: metrics as scalars, histograms every N steps, report and pictures") {
  TempDir tmp("tb_run");
  const std::string dir = tmp / "run";
  std::ostringstream out;
  auto train = [&](bool resume, int64_t stop_at) {
    nn::Linear model(3, 1);
    optim::SGD opt(model.parameters(), optim::SGDOptions(0.1));
    training::Config c;
    c.set("steps", 6);
    training::RunOptions o;
    o.set_dir(dir).set_quiet().set_resume(resume).set_overwrite(!resume).set_tensorboard(true, 2);
    o.set_streams(&out, &out);
    training::Run run("tiny", c, o);
    training::Trainer trainer(run, model, opt, nullptr, training::TrainerOptions(6).log_every(1));
    trainer.on_validate([&](int64_t s) { run.log("valid", s, {{"loss", 0.5}}); });
    Generator gen(3);
    trainer.generator(&gen);
    const bool done = trainer.fit([&](int64_t step) {
      if (step + 1 == stop_at) run.request_interrupt();
      const Tensor x = randn({4, 3}, kFloat32, &gen);
      return training::StepOutput(model.forward(x).pow(2).mean(), 4);
    });
    if (done) {
      zoo::write_png(dir + "/attention.png", 2, 1, {255, 0, 0, 0, 0, 255});
      run.report({{"final", 1.0}}, "done\n");
    }
    return done;
  };
  CHECK_FALSE(train(false, 3));  // Ctrl-C in step 3: checkpoint at step 3
  CHECK(train(true, -1));        // resumed: steps 4..6
  const auto files = event_files(dir + "/tensorboard");
  REQUIRE(files.size() == 2);
  std::map<std::string, std::vector<int64_t>> steps_of;  // tag -> steps, over both files
  int purges = 0;
  for (const auto& f : files) {
    for (const auto& e : read_events(f)) {
      if (e.contains("session_log")) {
        ++purges;
        CHECK(e["step"] == 4);  // the resumed run's events replace those from step 4 on
      }
      if (!e.contains("values")) continue;
      for (const auto& v : e["values"]) steps_of[v["tag"].get<std::string>()].push_back(e["step"].get<int64_t>());
    }
  }
  CHECK(purges == 1);
  CHECK(steps_of["train/loss"] == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
  CHECK(steps_of["train/lr"].size() == 6);
  CHECK(steps_of["valid/loss"] == std::vector<int64_t>{6});
  CHECK(steps_of["parameters/weight"] == std::vector<int64_t>{2, 4, 6});
  CHECK(steps_of["gradients/bias"] == std::vector<int64_t>{2, 4, 6});
  CHECK(steps_of["report/text_summary"] == std::vector<int64_t>{6});
  CHECK(steps_of["pictures/attention"] == std::vector<int64_t>{6});
  // A fresh run in the same directory starts the event files afresh.
  CHECK(train(false, -1));
  CHECK(event_files(dir + "/tensorboard").size() == 1);
  CHECK_THROWS_WITH_AS(
      training::Run("tiny", training::Config().set("steps", 1),
                    training::RunOptions().set_dir(tmp / "bad").set_tensorboard(true, 0)),
      doctest::Contains("--tensorboard-every must be >= 1, got 0"), Error);
}

TEST_CASE("add_png: an encoded PNG as it is; anything else is refused") {
  TempDir tmp("tb_png");
  const std::vector<uint8_t> px{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::string png = encode_png(px.data(), 2, 2, 3);
  {
    SummaryWriter w(tmp / "p");
    w.add_png("pic", png, 5);
    CHECK_THROWS_WITH_AS(w.add_png("pic", "GIF89a", 5), doctest::Contains("add_png: 'pic': not a PNG file"), Error);
  }
  const json ev = read_events(event_files(tmp / "p").at(0));
  REQUIRE(ev.size() == 2);
  const json& v = ev[1]["values"][0];
  CHECK(v["kind"] == "image");
  CHECK(v["width"] == 2);
  CHECK(v["height"] == 2);
  CHECK(v["colorspace"] == 3);
  CHECK(v["png_bytes"] == png.size());
}

}  // TEST_SUITE
