// models/zoo/pictures: PNG output, read back with libpng, and checked for the parts a reader
// needs (title and labels are drawn, colours follow the values), plus every error path.
// Set FOCUS_PICTURES_DIR to keep the pictures (e.g. to look at them); otherwise they go to a
// temporary folder that is removed.
#include <doctest/doctest.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/zoo/pictures.h"

namespace fs = std::filesystem;
using focus::zoo::Series;

namespace {

struct PictureDir {
  fs::path path;
  bool keep = false;
  PictureDir() {
    if (const char* d = std::getenv("FOCUS_PICTURES_DIR"); d && *d) {
      path = d;
      keep = true;
      fs::create_directories(path);
    } else {
      std::string tmpl = (fs::temp_directory_path() / "focus_pictures_XXXXXX").string();
      REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
      path = tmpl;
    }
  }
  ~PictureDir() {
    if (!keep) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

struct Picture {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  std::array<int, 3> at(int x, int y) const {
    const size_t i = (size_t(y) * size_t(width) + size_t(x)) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
  /// Pixels in [x0, x1) x [y0, y1) that are clearly not background (text, lines).
  int ink(int x0, int y0, int x1, int y1) const {
    int n = 0;
    for (int y = std::max(0, y0); y < std::min(height, y1); ++y)
      for (int x = std::max(0, x0); x < std::min(width, x1); ++x) {
        auto p = at(x, y);
        if (p[0] + p[1] + p[2] < 3 * 160) ++n;
      }
    return n;
  }
  int count_near(int r, int g, int b, int tol) const {
    int n = 0;
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        auto p = at(x, y);
        if (std::abs(p[0] - r) <= tol && std::abs(p[1] - g) <= tol && std::abs(p[2] - b) <= tol) ++n;
      }
    return n;
  }
};

Picture read_png(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  REQUIRE_MESSAGE(png_image_begin_read_from_file(&image, path.c_str()), "cannot read " << path << ": " << image.message);
  image.format = PNG_FORMAT_RGB;
  Picture p;
  p.width = int(image.width);
  p.height = int(image.height);
  p.rgb.resize(PNG_IMAGE_SIZE(image));
  REQUIRE_MESSAGE(png_image_finish_read(&image, nullptr, p.rgb.data(), 0, nullptr), image.message);
  return p;
}

double saturation(std::array<int, 3> p) {
  const int mx = std::max({p[0], p[1], p[2]}), mn = std::min({p[0], p[1], p[2]});
  return mx == 0 ? 0.0 : double(mx - mn) / mx;
}

bool bluish(std::array<int, 3> p) { return p[2] - p[0] > 30; }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

}  // namespace

TEST_SUITE("pictures") {
  TEST_CASE("write_png writes the pixels and reads back the same") {
    PictureDir dir;
    std::vector<uint8_t> rgb;
    for (int i = 0; i < 3 * 2; ++i) rgb.insert(rgb.end(), {uint8_t(40 * i), uint8_t(255 - 40 * i), uint8_t(7 * i)});
    focus::zoo::write_png(dir / "tiny.png", 3, 2, rgb);
    const Picture p = read_png(dir / "tiny.png");
    CHECK(p.width == 3);
    CHECK(p.height == 2);
    CHECK(p.rgb == rgb);
    // No temporary file is left next to it.
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) files += e.path().filename().string().find(".tmp") != std::string::npos;
    CHECK(files == 0);
  }

  TEST_CASE("write_png errors name the path") {
    PictureDir dir;
    const std::vector<uint8_t> rgb(4 * 4 * 3, 128);
    const std::string missing = dir / "no/such/folder/x.png";
    CHECK_THROWS_WITH_AS(focus::zoo::write_png(missing, 4, 4, rgb), doctest::Contains(missing.c_str()), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::write_png(dir / "a.png", 4, 5, rgb), doctest::Contains("needs 60 bytes, got 48"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::write_png(dir / "a.png", 0, 4, rgb), doctest::Contains("bad picture size"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::write_png("", 4, 4, rgb), doctest::Contains("empty path"), focus::Error);
    // The target is a folder: the rename fails, the error names it, and no temporary is left.
    fs::create_directories(dir.path / "taken.png");
    CHECK_THROWS_WITH_AS(focus::zoo::write_png(dir / "taken.png", 4, 4, rgb), doctest::Contains("taken.png"),
                         focus::Error);
    for (const auto& e : fs::directory_iterator(dir.path))
      CHECK_MESSAGE(e.path().filename().string().find(".tmp") == std::string::npos, e.path());
  }

  TEST_CASE("plot_curves draws title, axes, labels, legend and every series' colour") {
    PictureDir dir;
    Series train{"train", {}, {}}, valid{"valid", {}, {}};
    for (int i = 0; i <= 200; ++i) {
      train.x.push_back(i * 10);
      train.y.push_back(3.5 * std::exp(-i / 40.0) + 0.4 + 0.05 * std::sin(i));
    }
    for (int i = 0; i <= 10; ++i) {
      valid.x.push_back(i * 200);
      valid.y.push_back(i == 5 ? std::numeric_limits<double>::quiet_NaN() : 3.6 * std::exp(-i / 2.0) + 0.6);
    }
    const std::string path = dir / "curves.png";
    focus::zoo::plot_curves(path, "g2p: loss by step", "step", {train, valid}, "loss (nats)");
    const Picture p = read_png(path);
    CHECK(p.width == 900);
    CHECK(p.height == 520);
    CHECK(p.ink(300, 8, 600, 30) > 40);           // title
    CHECK(p.ink(300, p.height - 35, 600, p.height - 10) > 20);  // x axis name
    CHECK(p.ink(0, 150, 40, 400) > 20);           // y axis name (vertical)
    CHECK(p.ink(0, 0, p.width, 8) == 0);          // a clean margin at the top
    // Both series' colours (tab:blue, tab:orange) appear, as lines and in the legend.
    CHECK(p.count_near(0x1f, 0x77, 0xb4, 10) > 300);
    CHECK(p.count_near(0xff, 0x7f, 0x0e, 10) > 100);
  }

  TEST_CASE("plot_curves: NaN points are skipped, empty input is an error") {
    PictureDir dir;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // A single point and a series with no finite point still give a picture.
    focus::zoo::plot_curves(dir / "one.png", "one point", "step", {Series{"test", {5}, {0.9}}, Series{"x", {1}, {nan}}});
    CHECK(read_png(dir / "one.png").count_near(0x1f, 0x77, 0xb4, 10) > 10);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_curves(dir / "e.png", "t", "step", {}), doctest::Contains("no series"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_curves(dir / "e.png", "t", "step", {Series{"a", {}, {}}}),
                         doctest::Contains("nothing to plot"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_curves(dir / "e.png", "t", "step", {Series{"a", {1, 2}, {nan, nan}}}),
                         doctest::Contains("nothing to plot"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_curves(dir / "e.png", "t", "step", {Series{"a", {1, 2}, {1}}}),
                         doctest::Contains("series 'a' has 2 x values but 1 y values"), focus::Error);
    CHECK_FALSE(fs::exists(dir.path / "e.png"));
  }

  TEST_CASE("plot_heatmap: a high weight is a more saturated cell; labels are drawn") {
    PictureDir dir;
    // rows = predicted phonemes, cols = input letters; cell (0, 1) is the highest.
    const std::vector<float> values = {0.3f, 1.0f, 0.5f, 0.4f};
    const std::string path = dir / "heat.png";
    focus::zoo::plot_heatmap(path, "attention", values, 2, 2, {"K", "AE1"}, {"c", "a"}, "predicted phoneme",
                             "input letter");
    const Picture p = read_png(path);
    // The grid is the leftmost bluish region (the colour bar is to its right).
    int gx = p.width;
    for (int y = 0; y < p.height; ++y)
      for (int x = 0; x < p.width; ++x)
        if (bluish(p.at(x, y))) gx = std::min(gx, x);
    REQUIRE(gx < p.width);
    int gy0 = -1, gy1 = -1;
    for (int y = 0; y < p.height; ++y)
      if (bluish(p.at(gx + 1, y))) gy1 = y, gy0 = gy0 < 0 ? y : gy0;
    const int cell = (gy1 - gy0 + 1) / 2;
    REQUIRE(cell >= 10);
    const double low = saturation(p.at(gx + 2, gy0 + 2));            // cell (0, 0): 0.3
    const double high = saturation(p.at(gx + cell + 2, gy0 + 2));    // cell (0, 1): 1.0
    const double mid = saturation(p.at(gx + 2, gy0 + cell + 2));     // cell (1, 0): 0.5
    CHECK(high > mid);
    CHECK(mid > low);
    CHECK(p.ink(0, gy0, gx - 4, gy1) > 20);                          // row labels + axis name
    CHECK(p.ink(gx, 30, gx + 2 * cell, gy0 - 4) > 20);                // column labels + axis name
    CHECK(p.ink(0, 8, p.width, 30) > 30);                            // title
  }

  TEST_CASE("plot_heatmap: many cells, long labels, numbered labels") {
    PictureDir dir;
    {  // What g2p draws: phonemes (+ </s>) over letters (+ </s>), each row a distribution.
      const std::vector<std::string> letters = {"p", "h", "o", "t", "o", "g", "r", "a", "p", "h", "</s>"};
      const std::vector<std::string> phones = {"F", "OW1", "T", "AH0", "G", "R", "AE2", "F", "</s>"};
      const std::vector<int> focus_col = {0, 2, 3, 4, 5, 6, 7, 8, 10};
      std::vector<float> att;
      for (size_t r = 0; r < phones.size(); ++r) {
        std::vector<float> row(letters.size());
        float sum = 0;
        for (size_t k = 0; k < letters.size(); ++k) {
          const double d = double(k) - focus_col[r] - (r == 0 || r == 7 ? 0.5 : 0.0);
          row[k] = float(std::exp(-d * d * 1.5)) + 0.01f;
          sum += row[k];
        }
        for (float v : row) att.push_back(v / sum);
      }
      const std::string path = dir / "g2p_attention.png";
      focus::zoo::plot_heatmap(path, "g2p cross-attention: photograph -> F OW1 T AH0 G R AE2 F", att, int(phones.size()),
                               int(letters.size()), phones, letters, "predicted phoneme", "input letter");
      const Picture p = read_png(path);
      CHECK(p.width > 300);
    }
    std::vector<float> values(40 * 60);
    for (size_t i = 0; i < values.size(); ++i) values[i] = float(std::sin(double(i) * 0.01));
    std::vector<std::string> cols;
    for (int k = 0; k < 60; ++k) cols.push_back("token number " + std::to_string(k));
    focus::zoo::plot_heatmap(dir / "big.png", "a large matrix with negative values", values, 40, 60, {}, cols, "row",
                             "column");
    const Picture p = read_png(dir / "big.png");
    CHECK(p.width < 2000);
    CHECK(p.height < 2000);
  }

  TEST_CASE("plot_heatmap errors") {
    PictureDir dir;
    const std::string path = dir / "h.png";
    CHECK_THROWS_WITH_AS(focus::zoo::plot_heatmap(path, "t", {1, 2, 3}, 2, 2, {}, {}, "r", "c"),
                         doctest::Contains("2x2 needs 4 values, got 3"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_heatmap(path, "t", {1, 2, 3, 4}, 2, 2, {"a"}, {}, "r", "c"),
                         doctest::Contains("2 rows but 1 row labels"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_heatmap(path, "t", {1, 2, 3, 4}, 2, 2, {}, {"a", "b", "c"}, "r", "c"),
                         doctest::Contains("2 columns but 3 column labels"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_heatmap(path, "t", {1, NAN, 3, 4}, 2, 2, {}, {}, "r", "c"),
                         doctest::Contains("row 0, column 1 is nan"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_heatmap(path, "t", {}, 0, 2, {}, {}, "r", "c"),
                         doctest::Contains("must be positive"), focus::Error);
  }

  TEST_CASE("plot_token_weights shades the heavy token and cuts long texts with a note") {
    PictureDir dir;
    std::vector<std::string> tokens = {"subject", ":", "win", "free", "money", "\n", "click", "here", "\u2014", "now",
                                       "\xff", "!"};
    std::vector<float> weights(tokens.size(), 0.02f);
    weights[3] = 0.6f;  // "free"
    focus::zoo::plot_token_weights(dir / "tokens.png", "spam: what the classifier attended to", tokens, weights);
    const Picture p = read_png(dir / "tokens.png");
    CHECK(p.width == 900);
    CHECK(p.ink(200, 8, 700, 30) > 40);           // title
    CHECK(p.count_near(0x7f, 0x27, 0x04, 12) > 50);  // the darkest orange behind "free"

    {  // An email as the spam classifier sees it: words, punctuation and line breaks.
      const std::string email =
          "subject : make money fast \u2014 limited offer !\n\nDear friend ,\n\nYou have been selected to receive a "
          "FREE gift card worth $ 500 . Click here now to claim your prize before it expires . No purchase "
          "necessary . This is not spam : you are receiving this message because you signed up at one of our "
          "partner sites .\n\nTo unsubscribe , reply with REMOVE in the subject line .\n";
      std::vector<std::string> toks;
      std::string cur;
      for (char ch : email) {
        if (ch == ' ' || ch == '\n') {
          if (!cur.empty()) toks.push_back(cur), cur.clear();
          if (ch == '\n') toks.push_back("\n");
        } else {
          cur += ch;
        }
      }
      std::vector<float> ww;
      for (const std::string& t : toks) {
        float v = 0.005f;
        for (const char* hot : {"money", "FREE", "$", "500", "Click", "prize", "claim", "unsubscribe", "offer"})
          if (t == hot) v = 0.04f + 0.01f * float(t.size());
        ww.push_back(v);
      }
      focus::zoo::plot_token_weights(dir / "spam_tokens.png", "spam classifier: attention of [CLS] (predicted: spam, p=0.99)",
                                     toks, ww);
      CHECK(read_png(dir / "spam_tokens.png").width == 900);
    }

    std::vector<std::string> many;
    std::vector<float> w;
    for (int i = 0; i < 5000; ++i) {
      many.push_back(i % 17 == 0 ? "\n" : "word" + std::to_string(i));
      w.push_back(float(i % 7));
    }
    focus::zoo::plot_token_weights(dir / "long.png", "a long email", many, w);
    const Picture q = read_png(dir / "long.png");
    CHECK(q.height < 1100);

    CHECK_THROWS_WITH_AS(focus::zoo::plot_token_weights(dir / "e.png", "t", {"a", "b"}, {1.f}),
                         doctest::Contains("2 tokens but 1 weights"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_token_weights(dir / "e.png", "t", {}, {}), doctest::Contains("no tokens"),
                         focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_token_weights(dir / "e.png", "t", {"a"}, {INFINITY}),
                         doctest::Contains("weight of token 0 ('a') is inf"), focus::Error);
  }

  TEST_CASE("plot_image_attention shows the plain image and the attended patch brighter") {
    PictureDir dir;
    const std::vector<uint8_t> gray(28 * 28, 128);
    std::vector<float> w(16, 0.01f);
    w[0] = 0.85f;  // top-left patch
    focus::zoo::plot_image_attention(dir / "patches.png", "vit: attention of the class token", gray, 28, 28, w, 4, 4);
    const Picture p = read_png(dir / "patches.png");
    CHECK(p.count_near(128, 128, 128, 0) == 224 * 224);  // the plain image, scaled 8x
    // The attended patch (56x56 pixels less the grid line) is bright yellow, the rest dark.
    const int bright = p.count_near(202, 204, 150, 6);
    CHECK(bright > 50 * 50);
    CHECK(bright < 60 * 60);
    CHECK(p.ink(0, 8, p.width, 30) > 30);  // title

    {  // A Fashion-MNIST-like picture (a pair of trousers) with 7x7 patches of 4x4 pixels.
      std::vector<uint8_t> img(28 * 28, 0);
      for (int y = 2; y < 27; ++y)
        for (int x = 8; x < 20; ++x) {
          const bool leg_gap = y > 8 && x >= 13 && x <= 14;
          if (!leg_gap) img[size_t(y) * 28 + size_t(x)] = uint8_t(150 + (x * 7 + y * 3) % 80);
        }
      std::vector<float> pw(49);
      float sum = 0;
      for (int gy = 0; gy < 7; ++gy)
        for (int gx = 0; gx < 7; ++gx) {
          const double d2 = (gx - 3.0) * (gx - 3.0) + (gy - 2.5) * (gy - 2.5) * 0.5;
          pw[size_t(gy * 7 + gx)] = float(std::exp(-d2 / 2.0));
          sum += pw[size_t(gy * 7 + gx)];
        }
      for (float& v : pw) v /= sum;
      focus::zoo::plot_image_attention(dir / "vit_trouser.png", "vit: class token attention (true: Trouser, predicted: Trouser)", img, 28, 28, pw, 7, 7);
      CHECK(read_png(dir / "vit_trouser.png").count_near(0, 0, 0, 0) > 100);
    }

    CHECK_THROWS_WITH_AS(focus::zoo::plot_image_attention(dir / "e.png", "t", gray, 28, 28, {1.f}, 4, 4),
                         doctest::Contains("4x4 patch grid needs 16 weights, got 1"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_image_attention(dir / "e.png", "t", gray, 28, 27, w, 4, 4),
                         doctest::Contains("28x27 image needs 756 bytes, got 784"), focus::Error);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_image_attention(dir / "e.png", "t", gray, 28, 28, w, 0, 4),
                         doctest::Contains("does not fit"), focus::Error);
  }

  TEST_CASE("plot_run writes loss.png and one picture per metric") {
    PictureDir dir;
    const fs::path run = dir.path / "run";
    fs::create_directories(run);
    std::string lines;
    for (int s = 10; s <= 500; s += 10) {
      lines += "{\"split\":\"train\",\"step\":" + std::to_string(s) + ",\"time\":1.5,\"loss\":" +
               std::to_string(4.0 / (1 + s / 100.0)) + ",\"lr\":0.001,\"epoch\":1}\n";
      if (s % 100 == 0)
        lines += "{\"split\":\"valid\",\"step\":" + std::to_string(s) + ",\"time\":2,\"loss\":" +
                 std::to_string(4.2 / (1 + s / 120.0)) + ",\"per\":" + std::to_string(0.5 / (1 + s / 100.0)) +
                 ",\"note\":\"text is ignored\",\"wer\":null}\n";
    }
    lines += "\n{\"split\":\"test\",\"step\":500,\"accuracy\":0.91,\"per\":0.08}\n";
    write_text((run / "metrics.jsonl").string(), lines);
    const std::vector<std::string> written = focus::zoo::plot_run(run.string());
    REQUIRE(written.size() == 4);  // loss, lr, per, accuracy (wer is only ever null)
    CHECK(written[0] == (run / "loss.png").string());
    for (const char* name : {"loss.png", "lr.png", "per.png", "accuracy.png"}) CHECK_MESSAGE(fs::exists(run / name), name);
    CHECK_FALSE(fs::exists(run / "wer.png"));
    const Picture loss = read_png((run / "loss.png").string());
    CHECK(loss.width == 900);
    CHECK(loss.count_near(0x1f, 0x77, 0xb4, 10) > 300);  // train
    CHECK(loss.count_near(0xff, 0x7f, 0x0e, 10) > 100);  // valid
    // per.png has no train series: valid keeps its colour (orange), test is green.
    const Picture per = read_png((run / "per.png").string());
    CHECK(per.count_near(0x1f, 0x77, 0xb4, 10) < 20);
    CHECK(per.count_near(0xff, 0x7f, 0x0e, 10) > 50);
    CHECK(per.count_near(0x2c, 0xa0, 0x2c, 10) > 20);
  }

  TEST_CASE("plot_run errors: missing folder or file, malformed lines with their number") {
    PictureDir dir;
    const fs::path run = dir.path / "bad";
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("is not a run directory"),
                         focus::Error);
    fs::create_directories(run);
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("has no metrics.jsonl"), focus::Error);
    const std::string file = (run / "metrics.jsonl").string();
    write_text(file, "{\"split\":\"train\",\"step\":1,\"loss\":2}\n{\"split\":\"train\",\"step\":2,\"loss\":1.5}\n{bad\n");
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("line 3, column 2: not valid JSON: syntax error"),
                         focus::Error);
    // A last line without its newline is one being written (or torn by a crash): skipped.
    write_text(file, "{\"split\":\"train\",\"step\":1,\"loss\":2}\n{\"split\":\"train\",\"step\":2,\"loss\":1.5}\n{\"split\":\"tr");
    CHECK(focus::zoo::plot_run(run.string()).size() == 1);
    // ... but with its newline it is malformed.
    write_text(file, "{\"split\":\"train\",\"step\":1,\"loss\":2}\n{\"split\":\"tr\n");
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("line 2, column"), focus::Error);
    write_text(file, "{\"split\":\"train\",\"step\":1,\"loss\":2}\n[1, 2]\n");
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("line 2: expected a JSON object"),
                         focus::Error);
    write_text(file, "{\"split\":\"train\",\"loss\":2}\n");
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("line 1: missing \"step\""),
                         focus::Error);
    write_text(file, "{\"step\":1,\"loss\":2}\n");
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("line 1: missing \"split\""),
                         focus::Error);
    write_text(file, "");
    CHECK_THROWS_WITH_AS(focus::zoo::plot_run(run.string()), doctest::Contains("no metrics to plot"), focus::Error);
  }

  TEST_CASE("text outside ASCII and Latin-1 is drawn, not rejected") {
    PictureDir dir;
    focus::zoo::plot_curves(dir / "unicode.png", "caf\u00e9 \u2014 \u201cquoted\u201d \u65e5\u672c \xc3", "\u00e9tape",
                            {Series{"s\u00e9rie \u2192 1", {0, 1}, {0, 1}}});
    CHECK(read_png(dir / "unicode.png").ink(300, 8, 600, 30) > 40);
  }
}
