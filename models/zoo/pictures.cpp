#include "models/zoo/pictures.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "core/error.h"
#include "core/file_io.h"
#include "models/zoo/pictures_font.h"
#include "training/png.h"

namespace focus::zoo {
namespace {

using detail::BitmapFont;

using io::errno_text;

// ---------------------------------------------------------------------------------------
// Colours

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kText{30, 30, 30};
constexpr Rgb kAxis{90, 90, 90};
constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kNote{110, 110, 110};

Rgb hex(uint32_t v) { return Rgb{uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }

// Tableau-10, the palette matplotlib draws lines with.
constexpr std::array<uint32_t, 10> kPalette = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                               0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};

Rgb mix(Rgb a, Rgb b, double t) {
  auto m = [t](uint8_t x, uint8_t y) { return uint8_t(std::lround(x + (double(y) - x) * t)); };
  return Rgb{m(a.r, b.r), m(a.g, b.g), m(a.b, b.b)};
}

/// A colour map given by evenly spaced stops; t in [0, 1].
Rgb colormap(const std::vector<uint32_t>& stops, double t) {
  if (!(t >= 0)) t = 0;  // also NaN
  if (t > 1) t = 1;
  const double pos = t * double(stops.size() - 1);
  const size_t i = std::min(stops.size() - 2, size_t(pos));
  return mix(hex(stops[i]), hex(stops[i + 1]), pos - double(i));
}

// matplotlib's "Blues", "Oranges" and "inferno" colour maps (sampled).
const std::vector<uint32_t> kBlues = {0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6,
                                      0x4292c6, 0x2171b5, 0x08519c, 0x08306b};
const std::vector<uint32_t> kOranges = {0xfff5eb, 0xfee6ce, 0xfdd0a2, 0xfdae6b, 0xfd8d3c,
                                        0xf16913, 0xd94801, 0xa63603, 0x7f2704};
const std::vector<uint32_t> kInferno = {0x000004, 0x160b39, 0x420a68, 0x6a176e, 0x932667, 0xbc3754,
                                        0xdd513a, 0xf37819, 0xfca50a, 0xf6d746, 0xfcffa4};

double luminance(Rgb c) { return (0.299 * c.r + 0.587 * c.g + 0.114 * c.b) / 255.0; }

// ---------------------------------------------------------------------------------------
// Text: UTF-8 -> glyphs of the embedded fonts

constexpr int kBoxGlyph = -1;

int glyph_index(uint32_t cp) {
  if (cp >= 32 && cp <= 126) return int(cp - 32);
  if (cp >= 160 && cp <= 255) return int(95 + cp - 160);
  return kBoxGlyph;
}

/// Glyph indices for a UTF-8 string: ASCII and Latin-1 as themselves, common typographic
/// characters as ASCII look-alikes, zero-width characters dropped, control characters as
/// spaces, everything else (and bytes that are not UTF-8) as a box.
std::vector<int> glyphs_of(std::string_view s) {
  std::vector<int> out;
  out.reserve(s.size());
  auto ascii = [&out](const char* text) {
    for (const char* p = text; *p; ++p) out.push_back(glyph_index(uint8_t(*p)));
  };
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = uint8_t(s[i]);
    uint32_t cp = 0;
    int len = 0;
    if (c < 0x80) {
      cp = c, len = 1;
    } else if ((c & 0xe0) == 0xc0) {
      cp = c & 0x1f, len = 2;
    } else if ((c & 0xf0) == 0xe0) {
      cp = c & 0x0f, len = 3;
    } else if ((c & 0xf8) == 0xf0) {
      cp = c & 0x07, len = 4;
    }
    bool ok = len > 0 && i + size_t(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const uint8_t cc = uint8_t(s[i + size_t(k)]);
      if ((cc & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (!ok) {
      out.push_back(kBoxGlyph);
      ++i;
      continue;
    }
    i += size_t(len);
    if (cp < 32 || cp == 127 || (cp >= 0x80 && cp < 0xa0)) {
      ascii(" ");
    } else if (cp < 256) {
      out.push_back(glyph_index(cp));
    } else if ((cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212) {
      ascii("-");
    } else if (cp == 0x2018 || cp == 0x2019 || cp == 0x201a || cp == 0x201b || cp == 0x2032) {
      ascii("'");
    } else if (cp == 0x201c || cp == 0x201d || cp == 0x201e || cp == 0x2033) {
      ascii("\"");
    } else if (cp == 0x2026) {
      ascii("...");
    } else if (cp == 0x2022 || cp == 0x2219 || cp == 0x25cf) {
      ascii("*");
    } else if (cp == 0x2190) {
      ascii("<-");
    } else if (cp == 0x2192) {
      ascii("->");
    } else if (cp == 0x2264) {
      ascii("<=");
    } else if (cp == 0x2265) {
      ascii(">=");
    } else if (cp == 0x2260) {
      ascii("!=");
    } else if (cp == 0x2248) {
      ascii("~");
    } else if (cp == 0x20ac) {
      ascii("EUR");
    } else if (cp == 0x2122) {
      ascii("TM");
    } else if ((cp >= 0x2000 && cp <= 0x200a) || cp == 0x202f || cp == 0x205f || cp == 0x3000) {
      ascii(" ");
    } else if ((cp >= 0x200b && cp <= 0x200f) || cp == 0xfeff || cp == 0x2060) {
      // zero-width: nothing
    } else {
      out.push_back(kBoxGlyph);
    }
  }
  return out;
}

int text_width(std::string_view s, const BitmapFont& f, int scale = 1) {
  return int(glyphs_of(s).size()) * f.width * scale;
}

/// s cut to at most max_width pixels, ending in "..." when cut.
std::string fit_text(const std::string& s, const BitmapFont& f, int max_width) {
  if (text_width(s, f) <= max_width) return s;
  const int max_glyphs = std::max(0, max_width / f.width - 3);
  // Cut at a UTF-8 boundary after max_glyphs code points (an approximation of glyphs).
  size_t i = 0;
  int n = 0;
  while (i < s.size() && n < max_glyphs) {
    ++i;
    while (i < s.size() && (uint8_t(s[i]) & 0xc0) == 0x80) ++i;
    ++n;
  }
  return s.substr(0, i) + "...";
}

// ---------------------------------------------------------------------------------------
// Canvas

class Canvas {
 public:
  Canvas(int width, int height, Rgb background = kWhite)
      : w_(width), h_(height), rgb_(size_t(width) * size_t(height) * 3) {
    for (size_t i = 0; i < rgb_.size(); i += 3) {
      rgb_[i] = background.r, rgb_[i + 1] = background.g, rgb_[i + 2] = background.b;
    }
  }
  int width() const { return w_; }
  int height() const { return h_; }
  const std::vector<uint8_t>& rgb() const { return rgb_; }

  Rgb get(int x, int y) const {
    const size_t i = (size_t(y) * size_t(w_) + size_t(x)) * 3;
    return Rgb{rgb_[i], rgb_[i + 1], rgb_[i + 2]};
  }
  void blend(int x, int y, Rgb c, double alpha = 1.0) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_ || alpha <= 0) return;
    const size_t i = (size_t(y) * size_t(w_) + size_t(x)) * 3;
    if (alpha >= 1) {
      rgb_[i] = c.r, rgb_[i + 1] = c.g, rgb_[i + 2] = c.b;
      return;
    }
    auto m = [alpha](uint8_t dst, uint8_t src) { return uint8_t(std::lround(dst + (double(src) - dst) * alpha)); };
    rgb_[i] = m(rgb_[i], c.r), rgb_[i + 1] = m(rgb_[i + 1], c.g), rgb_[i + 2] = m(rgb_[i + 2], c.b);
  }
  /// Fills [x0, x1) x [y0, y1).
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c, double alpha = 1.0) {
    x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, w_), y1 = std::min(y1, h_);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) blend(x, y, c, alpha);
  }
  /// The 1-pixel outline of [x0, x1) x [y0, y1).
  void rect(int x0, int y0, int x1, int y1, Rgb c) {
    fill_rect(x0, y0, x1, y0 + 1, c);
    fill_rect(x0, y1 - 1, x1, y1, c);
    fill_rect(x0, y0, x0 + 1, y1, c);
    fill_rect(x1 - 1, y0, x1, y1, c);
  }

  /// Text with its top-left corner at (x, y). Returns the width drawn.
  int text(int x, int y, std::string_view s, const BitmapFont& f, Rgb c, int scale = 1) {
    int cx = x;
    for (int g : glyphs_of(s)) {
      glyph(cx, y, g, f, c, scale, false);
      cx += f.width * scale;
    }
    return cx - x;
  }
  enum class Align { Left, Center, Right };
  void text_aligned(int x, int y, std::string_view s, const BitmapFont& f, Rgb c, Align a, int scale = 1) {
    const int w = text_width(s, f, scale);
    if (a == Align::Center) x -= w / 2;
    if (a == Align::Right) x -= w;
    text(x, y, s, f, c, scale);
  }
  /// Text turned 90 degrees counter-clockwise (read from bottom to top), its glyph cells'
  /// top edge at column x and the start of the text at row y_bottom.
  void text_vertical(int x, int y_bottom, std::string_view s, const BitmapFont& f, Rgb c) {
    int cy = y_bottom;
    for (int g : glyphs_of(s)) {
      glyph(x, cy, g, f, c, 1, true);
      cy -= f.width;
    }
  }

  /// Anti-aliased wide polyline segments are accumulated into a coverage mask (max, so joints
  /// do not darken) and composited once, clipped to a rectangle.
  struct Mask {
    int x0, y0, x1, y1;
    std::vector<float> cover;
  };
  Mask mask(int x0, int y0, int x1, int y1) const {
    return Mask{x0, y0, x1, y1, std::vector<float>(size_t(std::max(0, x1 - x0)) * size_t(std::max(0, y1 - y0)), 0.f)};
  }
  static void segment(Mask& m, double ax, double ay, double bx, double by, double width) {
    const double r = width / 2 + 1;
    const int xa = std::max(m.x0, int(std::floor(std::min(ax, bx) - r)));
    const int xb = std::min(m.x1 - 1, int(std::ceil(std::max(ax, bx) + r)));
    const int ya = std::max(m.y0, int(std::floor(std::min(ay, by) - r)));
    const int yb = std::min(m.y1 - 1, int(std::ceil(std::max(ay, by) + r)));
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = ya; y <= yb; ++y) {
      for (int x = xa; x <= xb; ++x) {
        const double px = x + 0.5, py = y + 0.5;
        double t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
        t = std::clamp(t, 0.0, 1.0);
        const double ex = ax + t * dx - px, ey = ay + t * dy - py;
        const double d = std::sqrt(ex * ex + ey * ey);
        const float cov = float(std::clamp(width / 2 + 0.5 - d, 0.0, 1.0));
        float& dst = m.cover[size_t(y - m.y0) * size_t(m.x1 - m.x0) + size_t(x - m.x0)];
        dst = std::max(dst, cov);
      }
    }
  }
  static void disc(Mask& m, double cx, double cy, double radius) { segment(m, cx, cy, cx, cy, 2 * radius); }
  void composite(const Mask& m, Rgb c) {
    for (int y = m.y0; y < m.y1; ++y)
      for (int x = m.x0; x < m.x1; ++x) {
        const float a = m.cover[size_t(y - m.y0) * size_t(m.x1 - m.x0) + size_t(x - m.x0)];
        if (a > 0) blend(x, y, c, a);
      }
  }

 private:
  void glyph(int x, int y, int g, const BitmapFont& f, Rgb c, int scale, bool vertical) {
    for (int gy = 0; gy < f.height; ++gy) {
      uint16_t bits = 0;
      if (g == kBoxGlyph) {
        // A hollow box in the space of a capital letter: "this character cannot be shown".
        const int top = f.ascent - (f.ascent * 3) / 4, bottom = f.ascent - 1, l = 1, r = f.width - 2;
        for (int gx = l; gx <= r; ++gx) {
          const bool on = gy == top || gy == bottom || (gy > top && gy < bottom && (gx == l || gx == r));
          if (on) bits = uint16_t(bits | (1u << (15 - gx)));
        }
      } else {
        bits = f.rows[size_t(g) * size_t(f.height) + size_t(gy)];
      }
      for (int gx = 0; gx < f.width; ++gx) {
        if (!(bits & (1u << (15 - gx)))) continue;
        if (vertical) {
          blend(x + gy, y - gx, c);
        } else {
          for (int sy = 0; sy < scale; ++sy)
            for (int sx = 0; sx < scale; ++sx) blend(x + gx * scale + sx, y + gy * scale + sy, c);
        }
      }
    }
  }

  int w_, h_;
  std::vector<uint8_t> rgb_;
};

// ---------------------------------------------------------------------------------------
// Numbers on axes

/// About `target` round tick values (1, 2 or 5 times a power of ten) inside [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target, double* step_out = nullptr) {
  std::vector<double> ticks;
  if (!(hi > lo)) {
    if (step_out) *step_out = 1;
    return {lo};
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (raw <= step * (1 + 1e-9)) break;
  }
  if (step_out) *step_out = step;
  const double first = std::ceil(lo / step - 1e-9) * step;
  for (double v = first; v <= hi + step * 1e-9; v += step) ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

/// A tick value written with as many decimals as the tick step needs.
std::string format_tick(double v, double step) {
  const double a = std::max(std::abs(v), step);
  if (a >= 1e6 || (a > 0 && a < 1e-4)) return fmt::format("{:.3g}", v);
  int decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
  if (std::abs(std::round(step * std::pow(10.0, decimals)) - step * std::pow(10.0, decimals)) > 1e-6) ++decimals;  // 2.5
  return fmt::format("{:.{}f}", v, decimals);
}

/// A value for a legend: about 3 significant digits. compact (heatmap cells) writes numbers
/// below 1 with two decimals and no leading zero (".42"), which keeps cells narrow and tidy.
std::string format_value(double v, bool compact = false) {
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (compact && a < 1) {  // cells: two decimals, no leading zero (".42", ".00")
    std::string s = fmt::format("{:.2f}", v);
    if (s.rfind("0.", 0) == 0) s.erase(0, 1);
    else if (s.rfind("-0.", 0) == 0) s.erase(1, 1);
    return s == "-.00" ? ".00" : s;
  }
  if (a >= 1e5 || a < 1e-3) return fmt::format("{:.2g}", v);
  if (a >= 100) return fmt::format("{:.0f}", v);
  if (a >= 10) return fmt::format("{:.1f}", v);
  if (a >= 1) return fmt::format("{:.2f}", v);
  std::string s = fmt::format("{:.{}f}", v, a < 0.01 ? 3 : 2);
  if (s == "0.00" || s == "-0.00") s = fmt::format("{:.1g}", v);
  return s;
}

/// A vertical colour bar at (x, y0..y1) for values lo..hi, with tick labels to its right.
/// Returns the x after the labels.
int color_bar(Canvas& c, int x, int y0, int y1, double lo, double hi, const std::function<Rgb(double)>& color,
              const std::string& label) {
  const BitmapFont& f = detail::regular_font();
  constexpr int kBarWidth = 16;
  for (int y = y0; y < y1; ++y) {
    const double t = 1.0 - double(y - y0) / std::max(1, y1 - y0 - 1);
    c.fill_rect(x, y, x + kBarWidth, y + 1, color(t));
  }
  c.rect(x - 1, y0 - 1, x + kBarWidth + 1, y1 + 1, kAxis);
  double step = 1;
  std::vector<double> ticks = nice_ticks(lo, hi, std::max(2, (y1 - y0) / 40), &step);
  int right = x + kBarWidth + 6;
  for (double v : ticks) {
    const double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    const int y = int(std::lround(y1 - 1 - t * (y1 - y0 - 1)));
    c.fill_rect(x + kBarWidth, y, x + kBarWidth + 4, y + 1, kAxis);
    const std::string s = format_tick(v, step);
    c.text(x + kBarWidth + 6, y - f.height / 2, s, f, kText);
    right = std::max(right, x + kBarWidth + 6 + text_width(s, f));
  }
  if (!label.empty()) {
    const BitmapFont& b = detail::bold_font();
    const int lx = right + 6;
    c.text_vertical(lx, (y0 + y1) / 2 + text_width(label, b) / 2, label, b, kText);
    right = lx + b.height;
  }
  return right;
}

void check_path(const std::string& op, const std::string& path) {
  FOCUS_CHECK(!path.empty(), "[{}] empty output path", op);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// PNG

void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb) {
  namespace fs = std::filesystem;
  FOCUS_CHECK(!path.empty(), "[write_png] empty path");
  FOCUS_CHECK(width > 0 && height > 0 && width <= 100000 && height <= 100000,
              "[write_png] '{}': bad picture size {}x{}", path, width, height);
  FOCUS_CHECK(rgb.size() == size_t(width) * size_t(height) * 3,
              "[write_png] '{}': {}x{} RGB needs {} bytes, got {}", path, width, height,
              size_t(width) * size_t(height) * 3, rgb.size());
  const fs::path target(path);
  FOCUS_CHECK(target.has_filename(), "[write_png] '{}' names a directory, not a file", path);

  const std::string bytes = training::encode_png(rgb.data(), width, height, 3, fmt::format("[write_png] '{}':", path));
  io::write_file_atomic(path, "write_png", bytes);
}

// ---------------------------------------------------------------------------------------
// Line charts

void plot_curves(const std::string& path, const std::string& title, const std::string& x_label,
                 const std::vector<Series>& series, const std::string& y_label) {
  check_path("plot_curves", path);
  FOCUS_CHECK(!series.empty(), "[plot_curves] '{}': no series to plot", path);
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  std::vector<size_t> finite_points(series.size(), 0);
  for (size_t s = 0; s < series.size(); ++s) {
    const Series& se = series[s];
    FOCUS_CHECK(se.x.size() == se.y.size(), "[plot_curves] '{}': series '{}' has {} x values but {} y values",
                path, se.name, se.x.size(), se.y.size());
    for (size_t i = 0; i < se.x.size(); ++i) {
      if (!std::isfinite(se.x[i]) || !std::isfinite(se.y[i])) continue;
      ++finite_points[s];
      xmin = std::min(xmin, se.x[i]), xmax = std::max(xmax, se.x[i]);
      ymin = std::min(ymin, se.y[i]), ymax = std::max(ymax, se.y[i]);
    }
  }
  FOCUS_CHECK(std::isfinite(xmin), "[plot_curves] '{}': nothing to plot: every series is empty or has only NaN/"
              "infinite values", path);
  if (xmax == xmin) {
    const double d = std::max(1.0, std::abs(xmin) * 0.05);
    xmin -= d, xmax += d;
  }
  if (ymax == ymin) {
    const double d = ymin == 0 ? 1 : std::abs(ymin) * 0.1;
    ymin -= d, ymax += d;
  }
  const double xpad = (xmax - xmin) * 0.02, ypad = (ymax - ymin) * 0.05;
  xmin -= xpad, xmax += xpad, ymin -= ypad, ymax += ypad;

  const BitmapFont& f = detail::regular_font();
  const BitmapFont& bold = detail::bold_font();
  const BitmapFont& tf = detail::title_font();
  constexpr int W = 900, H = 520;

  double xstep = 1, ystep = 1;
  const std::vector<double> xt = nice_ticks(xmin, xmax, 8, &xstep);
  const std::vector<double> yt = nice_ticks(ymin, ymax, 7, &ystep);
  int ylab_w = 0;
  for (double v : yt) ylab_w = std::max(ylab_w, text_width(format_tick(v, ystep), f));

  // Legend to the right of the plot: colour swatch + name.
  std::vector<std::string> names;
  int legend_w = 0;
  for (size_t s = 0; s < series.size(); ++s) {
    std::string n = series[s].name.empty() ? fmt::format("series {}", s + 1) : series[s].name;
    if (finite_points[s] == 0) n += " (no data)";
    n = fit_text(n, f, 180);
    legend_w = std::max(legend_w, 34 + text_width(n, f));
    names.push_back(std::move(n));
  }
  const int left = 16 + (y_label.empty() ? 0 : bold.height + 10) + ylab_w + 8;
  const int top = 44, bottom = H - 58;
  const int right = W - legend_w - 36;

  Canvas c(W, H);
  c.text_aligned(W / 2, 12, fit_text(title, tf, W - 20), tf, kText, Canvas::Align::Center);
  auto series_color = [&](size_t s) {
    return series[s].color >= 0 ? hex(uint32_t(series[s].color)) : hex(kPalette[s % kPalette.size()]);
  };

  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * (right - left); };
  auto py = [&](double y) { return bottom - (y - ymin) / (ymax - ymin) * (bottom - top); };

  // Grid and ticks.
  for (double v : xt) {
    const int x = int(std::lround(px(v)));
    c.fill_rect(x, top, x + 1, bottom, kGrid);
    c.fill_rect(x, bottom, x + 1, bottom + 5, kAxis);
    c.text_aligned(x, bottom + 8, format_tick(v, xstep), f, kText, Canvas::Align::Center);
  }
  for (double v : yt) {
    const int y = int(std::lround(py(v)));
    c.fill_rect(left, y, right, y + 1, kGrid);
    c.fill_rect(left - 5, y, left, y + 1, kAxis);
    c.text_aligned(left - 8, y - f.height / 2, format_tick(v, ystep), f, kText, Canvas::Align::Right);
  }
  c.rect(left, top, right + 1, bottom + 1, kAxis);
  if (!x_label.empty())
    c.text_aligned((left + right) / 2, bottom + 30, fit_text(x_label, bold, right - left), bold, kText,
                   Canvas::Align::Center);
  if (!y_label.empty()) {
    const std::string yl = fit_text(y_label, bold, bottom - top);
    c.text_vertical(16, (top + bottom) / 2 + text_width(yl, bold) / 2, yl, bold, kText);
  }

  // Lines (and markers when there are few points).
  for (size_t s = 0; s < series.size(); ++s) {
    const Series& se = series[s];
    const Rgb color = series_color(s);
    Canvas::Mask m = c.mask(left + 1, top + 1, right, bottom);
    bool have_prev = false;
    double prev_x = 0, prev_y = 0;
    for (size_t i = 0; i < se.x.size(); ++i) {
      if (!std::isfinite(se.x[i]) || !std::isfinite(se.y[i])) {
        have_prev = false;
        continue;
      }
      const double x = px(se.x[i]), y = py(se.y[i]);
      if (have_prev) Canvas::segment(m, prev_x, prev_y, x, y, 2.0);
      if (finite_points[s] <= 60 || finite_points[s] == 1) Canvas::disc(m, x, y, 3.0);
      prev_x = x, prev_y = y, have_prev = true;
    }
    c.composite(m, color);
    if (finite_points[s] == 1) {  // a lone point (e.g. a test figure): write its value beside it
      for (size_t i = 0; i < se.x.size(); ++i)
        if (std::isfinite(se.x[i]) && std::isfinite(se.y[i])) {
          const std::string v = format_value(se.y[i]);
          const int tx = int(px(se.x[i])), ty = int(py(se.y[i])) - f.height - 4;
          const bool room_right = tx + 8 + text_width(v, f) < right;
          c.text_aligned(room_right ? tx + 6 : tx - 6, std::max(top + 2, ty), v, f, color,
                         room_right ? Canvas::Align::Left : Canvas::Align::Right);
        }
    }
  }

  // Legend box.
  const int lx = right + 16, ly = top;
  const int lh = int(series.size()) * 20 + 10;
  c.fill_rect(lx, ly, lx + legend_w + 10, ly + lh, kWhite);
  c.rect(lx, ly, lx + legend_w + 10, ly + lh, kGrid);
  for (size_t s = 0; s < series.size(); ++s) {
    const int y = ly + 8 + int(s) * 20;
    const Rgb color = series_color(s);
    Canvas::Mask m = c.mask(lx + 4, y, lx + 34, y + 14);
    Canvas::segment(m, lx + 8, y + 7, lx + 30, y + 7, 2.0);
    Canvas::disc(m, lx + 19, y + 7, 3.0);
    c.composite(m, color);
    c.text(lx + 38, y, names[s], f, kText);
  }
  write_png(path, W, H, c.rgb());
}

// ---------------------------------------------------------------------------------------
// Heatmaps

void plot_heatmap(const std::string& path, const std::string& title, const std::vector<float>& values, int rows,
                  int cols, const std::vector<std::string>& row_labels, const std::vector<std::string>& col_labels,
                  const std::string& row_axis, const std::string& col_axis) {
  check_path("plot_heatmap", path);
  FOCUS_CHECK(rows > 0 && cols > 0, "[plot_heatmap] '{}': rows and cols must be positive, got {}x{}", path, rows,
              cols);
  FOCUS_CHECK(rows <= 1000 && cols <= 1000, "[plot_heatmap] '{}': {}x{} is too large to draw (at most 1000x1000)",
              path, rows, cols);
  FOCUS_CHECK(values.size() == size_t(rows) * size_t(cols), "[plot_heatmap] '{}': {}x{} needs {} values, got {}",
              path, rows, cols, size_t(rows) * size_t(cols), values.size());
  FOCUS_CHECK(row_labels.empty() || row_labels.size() == size_t(rows),
              "[plot_heatmap] '{}': {} rows but {} row labels", path, rows, row_labels.size());
  FOCUS_CHECK(col_labels.empty() || col_labels.size() == size_t(cols),
              "[plot_heatmap] '{}': {} columns but {} column labels", path, cols, col_labels.size());
  double lo = 0, hi = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < values.size(); ++i) {
    FOCUS_CHECK(std::isfinite(values[i]), "[plot_heatmap] '{}': value at row {}, column {} is {}", path,
                i / size_t(cols), i % size_t(cols), values[i]);
    lo = std::min(lo, double(values[i]));
    hi = std::max(hi, double(values[i]));
  }
  if (hi <= lo) hi = lo + 1;

  const BitmapFont& f = detail::regular_font();
  const BitmapFont& bold = detail::bold_font();
  const BitmapFont& tf = detail::title_font();
  auto row_label = [&](int r) { return row_labels.empty() ? std::to_string(r) : row_labels[size_t(r)]; };
  auto col_label = [&](int k) { return col_labels.empty() ? std::to_string(k) : col_labels[size_t(k)]; };

  const int cell = std::clamp(std::min(900 / cols, 700 / rows), 1, 44);
  int row_lab_w = 0, col_lab_w = 0;
  for (int r = 0; r < rows; ++r) row_lab_w = std::max(row_lab_w, text_width(fit_text(row_label(r), f, 160), f));
  for (int k = 0; k < cols; ++k) col_lab_w = std::max(col_lab_w, text_width(fit_text(col_label(k), f, 120), f));
  const bool col_vertical = col_lab_w > cell - 2;
  // Thin out labels when cells are smaller than a line of text.
  const int row_every = (f.height + cell - 1) / cell;
  const int col_every = col_vertical ? (f.height + cell - 1) / cell : 1;
  const int col_lab_h = col_vertical ? col_lab_w : f.height;

  // Cell values are written when they fit.
  bool show_values = rows * cols <= 900;
  for (size_t i = 0; show_values && i < values.size(); ++i)
    if (text_width(format_value(values[i], true), f) > cell - 4 || f.height > cell - 4) show_values = false;

  constexpr int kMargin = 16;
  const int title_h = 38;
  const int axis_name_w = row_axis.empty() ? 0 : bold.height + 10;
  const int grid_x = kMargin + axis_name_w + row_lab_w + 8;
  const int grid_y = title_h + (col_axis.empty() ? 0 : bold.height + 8) + col_lab_h + 8;
  const int grid_w = cols * cell, grid_h = rows * cell;
  const int bar_x = grid_x + grid_w + 24;
  const int bar_h = std::max(grid_h, 120);
  const int W0 = bar_x + 16 + 6 + 60 + kMargin;
  const int W = std::max(W0, std::min(text_width(title, tf) + 2 * kMargin, 1000));
  const int H = grid_y + bar_h + kMargin + 8;
  Canvas c(W, H);
  c.text_aligned(W / 2, 12, fit_text(title, tf, W - 2 * kMargin), tf, kText, Canvas::Align::Center);
  if (!col_axis.empty())
    c.text_aligned(grid_x + grid_w / 2, title_h, fit_text(col_axis, bold, std::max(grid_w, 200)), bold, kText,
                   Canvas::Align::Center);
  if (!row_axis.empty()) {
    const std::string ra = fit_text(row_axis, bold, std::max(grid_h, 120));
    c.text_vertical(kMargin, grid_y + grid_h / 2 + text_width(ra, bold) / 2, ra, bold, kText);
  }

  auto color = [&](double t) { return colormap(kBlues, t); };
  for (int r = 0; r < rows; ++r) {
    for (int k = 0; k < cols; ++k) {
      const double v = values[size_t(r) * size_t(cols) + size_t(k)];
      const Rgb cc = color((v - lo) / (hi - lo));
      const int x = grid_x + k * cell, y = grid_y + r * cell;
      c.fill_rect(x, y, x + cell, y + cell, cc);
      if (show_values)
        c.text_aligned(x + cell / 2 + 1, y + (cell - f.height) / 2, format_value(v, true), f,
                       luminance(cc) < 0.5 ? kWhite : kText, Canvas::Align::Center);
    }
  }
  if (cell >= 12) {  // thin white lines between cells keep them apart
    for (int r = 1; r < rows; ++r) c.fill_rect(grid_x, grid_y + r * cell, grid_x + grid_w, grid_y + r * cell + 1, kWhite, 0.6);
    for (int k = 1; k < cols; ++k) c.fill_rect(grid_x + k * cell, grid_y, grid_x + k * cell + 1, grid_y + grid_h, kWhite, 0.6);
  }
  c.rect(grid_x - 1, grid_y - 1, grid_x + grid_w + 1, grid_y + grid_h + 1, kAxis);

  for (int r = 0; r < rows; r += row_every) {
    const std::string s = fit_text(row_label(r), f, 160);
    c.text_aligned(grid_x - 6, grid_y + r * cell + (cell - f.height) / 2, s, f, kText, Canvas::Align::Right);
  }
  for (int k = 0; k < cols; k += col_every) {
    const std::string s = fit_text(col_label(k), f, 120);
    const int cx = grid_x + k * cell + cell / 2;
    if (col_vertical) c.text_vertical(cx - f.height / 2, grid_y - 6, s, f, kText);
    else c.text_aligned(cx + 1, grid_y - 6 - f.height, s, f, kText, Canvas::Align::Center);
  }
  color_bar(c, bar_x, grid_y, grid_y + bar_h, lo, hi, color, "");
  write_png(path, W, H, c.rgb());
}

// ---------------------------------------------------------------------------------------
// Token weights

void plot_token_weights(const std::string& path, const std::string& title, const std::vector<std::string>& tokens,
                        const std::vector<float>& weights) {
  check_path("plot_token_weights", path);
  FOCUS_CHECK(!tokens.empty(), "[plot_token_weights] '{}': no tokens", path);
  FOCUS_CHECK(tokens.size() == weights.size(), "[plot_token_weights] '{}': {} tokens but {} weights", path,
              tokens.size(), weights.size());
  double lo = 0, hi = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < weights.size(); ++i) {
    FOCUS_CHECK(std::isfinite(weights[i]), "[plot_token_weights] '{}': weight of token {} ('{}') is {}", path, i,
                tokens[i], weights[i]);
    lo = std::min(lo, double(weights[i]));
    hi = std::max(hi, double(weights[i]));
  }
  if (hi <= lo) hi = lo + 1;
  auto color = [&](double t) { return colormap(kOranges, t); };

  const BitmapFont& f = detail::regular_font();
  const BitmapFont& bold = detail::bold_font();
  const BitmapFont& tf = detail::title_font();
  constexpr int W = 900, kMargin = 20, kLine = 19, kMaxLines = 36, kGap = 4;
  const int text_left = kMargin, text_right = W - kMargin;

  // Lay the tokens out first: (token, x, line).
  struct Placed {
    size_t index;
    std::string text;
    int x, line;
  };
  std::vector<Placed> placed;
  int x = text_left, line = 0;
  size_t shown = 0;
  bool blank_line = false;  // at most one empty line in a row
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& tok = tokens[i];
    const bool space_only = std::all_of(tok.begin(), tok.end(), [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; });
    if (space_only && tok.find('\n') != std::string::npos) {
      if (x == text_left) {
        if (blank_line || line == 0) {
          shown = i + 1;
          continue;
        }
        blank_line = true;
      }
      x = text_left, ++line;
      if (line >= kMaxLines) break;
      shown = i + 1;
      continue;
    }
    if (space_only && !tok.empty()) {
      // A visible gap; shaded too, since the model gave it a weight.
      if (x != text_left) x += 3;
    }
    const std::string text = tok.empty() ? std::string(" ") : fit_text(tok, f, text_right - text_left - 4);
    const int w = text_width(text, f) + 4;
    if (x + w > text_right && x != text_left) {
      x = text_left, ++line;
      if (line >= kMaxLines) break;
    }
    blank_line = false;
    placed.push_back({i, text, x, line});
    x += w + kGap;
    shown = i + 1;
  }
  const int lines = placed.empty() ? 1 : placed.back().line + 1;
  const size_t left_out = tokens.size() - shown;

  // The highest-weighted distinct tokens.
  std::map<std::string, double> best;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& tok = tokens[i];
    if (std::all_of(tok.begin(), tok.end(), [](char ch) { return std::isspace(uint8_t(ch)); })) continue;
    auto [it, fresh] = best.emplace(tok, weights[i]);
    if (!fresh) it->second = std::max(it->second, double(weights[i]));
  }
  std::vector<std::pair<double, std::string>> top;
  for (auto& [tok, w] : best) top.emplace_back(w, tok);
  std::stable_sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  if (top.size() > 10) top.resize(10);
  std::vector<std::string> top_items;
  for (auto& [w, tok] : top) top_items.push_back(fmt::format("\"{}\" {}", fit_text(tok, f, 140), format_value(w)));

  const int text_top = 44;
  const int note_y = text_top + lines * kLine + 6;
  const int legend_y = note_y + (left_out > 0 ? 22 : 4) + 8;
  // The top list flows over as many lines as it needs.
  int top_lines = 1, tx = text_left + text_width("highest weights: ", bold);
  for (const std::string& s : top_items) {
    const int w = text_width(s, f) + 18;
    if (tx + w > text_right) ++top_lines, tx = text_left + 16;
    tx += w;
  }
  const int H = legend_y + 40 + top_lines * 18 + kMargin;
  Canvas c(W, H);
  c.text_aligned(W / 2, 12, fit_text(title, tf, W - 2 * kMargin), tf, kText, Canvas::Align::Center);

  for (const Placed& p : placed) {
    const double t = (weights[p.index] - lo) / (hi - lo);
    const Rgb bg = color(t);
    const int y = text_top + p.line * kLine;
    const int w = text_width(p.text, f) + 4;
    c.fill_rect(p.x, y, p.x + w, y + kLine - 2, bg);
    c.text(p.x + 2, y + 2, p.text, f, luminance(bg) < 0.45 ? kWhite : kBlack);
  }
  if (left_out > 0)
    c.text(text_left, note_y, fmt::format("... {} more tokens not shown (of {}; the scale covers all {})", left_out,
                                          tokens.size(), tokens.size()),
           f, kNote);

  // Legend: a horizontal colour bar from the lowest to the highest weight.
  int lx = text_left;
  lx += c.text(lx, legend_y + 3, "token weight:  ", bold, kText);
  const std::string lo_s = format_value(lo), hi_s = format_value(hi);
  lx += c.text(lx, legend_y + 3, lo_s, f, kText) + 6;
  constexpr int kBarW = 240;
  for (int i = 0; i < kBarW; ++i) c.fill_rect(lx + i, legend_y, lx + i + 1, legend_y + 18, color(double(i) / (kBarW - 1)));
  c.rect(lx - 1, legend_y - 1, lx + kBarW + 1, legend_y + 19, kAxis);
  lx += kBarW + 6;
  lx += c.text(lx, legend_y + 3, hi_s, f, kText);
  c.text(lx + 16, legend_y + 3, "(darker background = more weight)", f, kNote);

  int ty = legend_y + 32;
  tx = text_left + c.text(text_left, ty, "highest weights: ", bold, kText);
  for (size_t i = 0; i < top_items.size(); ++i) {
    const std::string s = top_items[i] + (i + 1 < top_items.size() ? "," : "");
    const int w = text_width(s, f) + 18;
    if (tx + w > text_right) ty += 18, tx = text_left + 16;
    c.text(tx, ty, s, f, kText);
    tx += w;
  }
  write_png(path, W, H, c.rgb());
}

// ---------------------------------------------------------------------------------------
// Attention over image patches

void plot_image_attention(const std::string& path, const std::string& title, const std::vector<uint8_t>& gray,
                          int height, int width, const std::vector<float>& patch_weights, int grid_h, int grid_w) {
  check_path("plot_image_attention", path);
  FOCUS_CHECK(height > 0 && width > 0 && height <= 4096 && width <= 4096,
              "[plot_image_attention] '{}': bad image size {}x{}", path, height, width);
  FOCUS_CHECK(gray.size() == size_t(height) * size_t(width),
              "[plot_image_attention] '{}': a {}x{} image needs {} bytes, got {}", path, height, width,
              size_t(height) * size_t(width), gray.size());
  FOCUS_CHECK(grid_h > 0 && grid_w > 0 && grid_h <= height && grid_w <= width,
              "[plot_image_attention] '{}': a {}x{} patch grid does not fit a {}x{} image", path, grid_h, grid_w,
              height, width);
  FOCUS_CHECK(patch_weights.size() == size_t(grid_h) * size_t(grid_w),
              "[plot_image_attention] '{}': a {}x{} patch grid needs {} weights, got {}", path, grid_h, grid_w,
              size_t(grid_h) * size_t(grid_w), patch_weights.size());
  double lo = 0, hi = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < patch_weights.size(); ++i) {
    FOCUS_CHECK(std::isfinite(patch_weights[i]), "[plot_image_attention] '{}': weight of patch {} is {}", path, i,
                patch_weights[i]);
    lo = std::min(lo, double(patch_weights[i]));
    hi = std::max(hi, double(patch_weights[i]));
  }
  if (hi <= lo) hi = lo + 1;

  const BitmapFont& f = detail::regular_font();
  const BitmapFont& bold = detail::bold_font();
  const BitmapFont& tf = detail::title_font();
  const int scale = std::max(1, 224 / std::max(height, width));
  const int pw = width * scale, ph = height * scale;
  constexpr int kMargin = 20, kGapX = 30;
  const int top = 44 + bold.height + 6;
  const int x1 = kMargin, x2 = x1 + pw + kGapX;
  const int bar_x = x2 + pw + 20;
  const int W = std::max(bar_x + 16 + 60 + bold.height + kMargin, std::min(text_width(title, tf) + 2 * kMargin, 1000));
  const int H = top + ph + 36 + kMargin;
  Canvas c(W, H);
  c.text_aligned(W / 2, 12, fit_text(title, tf, W - 2 * kMargin), tf, kText, Canvas::Align::Center);
  c.text_aligned(x1 + pw / 2, 44, "image", bold, kText, Canvas::Align::Center);
  c.text_aligned(x2 + pw / 2, 44, fit_text(fmt::format("attention over {}x{} patches", grid_h, grid_w), bold, pw + kGapX),
                 bold, kText, Canvas::Align::Center);

  auto heat = [&](double t) { return colormap(kInferno, t); };
  constexpr double kAlpha = 0.6;
  for (int y = 0; y < ph; ++y) {
    const int iy = y / scale;
    const int gy = std::min(grid_h - 1, iy * grid_h / height);
    for (int x = 0; x < pw; ++x) {
      const int ix = x / scale;
      const uint8_t v = gray[size_t(iy) * size_t(width) + size_t(ix)];
      const Rgb g{v, v, v};
      c.blend(x1 + x, top + y, g);
      const int gx = std::min(grid_w - 1, ix * grid_w / width);
      const double t = (patch_weights[size_t(gy) * size_t(grid_w) + size_t(gx)] - lo) / (hi - lo);
      c.blend(x2 + x, top + y, mix(g, heat(t), kAlpha));
    }
  }
  // Patch grid on the attention panel.
  for (int k = 1; k < grid_w; ++k) {
    const int x = x2 + (k * width / grid_w) * scale;
    c.fill_rect(x, top, x + 1, top + ph, kWhite, 0.5);
  }
  for (int k = 1; k < grid_h; ++k) {
    const int y = top + (k * height / grid_h) * scale;
    c.fill_rect(x2, y, x2 + pw, y + 1, kWhite, 0.5);
  }
  c.rect(x1 - 1, top - 1, x1 + pw + 1, top + ph + 1, kAxis);
  c.rect(x2 - 1, top - 1, x2 + pw + 1, top + ph + 1, kAxis);
  c.text_aligned(x1 + pw / 2, top + ph + 8, fmt::format("{}x{} pixels, shown {}x", height, width, scale), f, kNote,
                 Canvas::Align::Center);
  c.text_aligned(x2 + pw / 2, top + ph + 8, "brighter = more attention", f, kNote, Canvas::Align::Center);
  color_bar(c, bar_x, top, top + ph, lo, hi, heat, "attention weight");
  write_png(path, W, H, c.rgb());
}

// ---------------------------------------------------------------------------------------
// focus plot RUN_DIR

std::vector<std::string> plot_run(const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  FOCUS_CHECK(!run_dir.empty(), "[plot] empty run directory");
  FOCUS_CHECK(fs::is_directory(run_dir, ec), "[plot] '{}' is not a run directory (it does not exist or is not a "
              "folder)", run_dir);
  const fs::path file = fs::path(run_dir) / "metrics.jsonl";
  FOCUS_CHECK(fs::is_regular_file(file, ec), "[plot] '{}' has no metrics.jsonl: is it a run directory written by "
              "`focus train`?", run_dir);
  std::ifstream in(file, std::ios::binary);
  FOCUS_CHECK(in.good(), "[plot] cannot read '{}': {}", file.string(), errno_text());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FOCUS_CHECK(!in.bad(), "[plot] cannot read '{}': {}", file.string(), errno_text());

  // metric -> split -> (step, value) points, in the order metrics first appear.
  std::vector<std::string> metric_order;
  std::map<std::string, std::map<std::string, std::vector<std::pair<double, double>>>> data;
  std::vector<std::string> split_order;
  int64_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string line = text.substr(pos, end - pos);
    const bool last_unfinished = end == text.size();  // no newline yet: a run may be writing it
    pos = end + 1;
    ++line_no;
    if (std::all_of(line.begin(), line.end(), [](char ch) { return std::isspace(uint8_t(ch)); })) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      if (last_unfinished) break;  // a line being appended (or torn by a crash): plot what is complete
      // nlohmann says "parse error at line 1, column N: why"; keep the column and the why.
      std::string why = e.what();
      if (const size_t c = why.find(": ", why.find("column ")); c != std::string::npos) why = why.substr(c + 2);
      FOCUS_FAIL("[plot] '{}' line {}, column {}: not valid JSON: {}", file.string(), line_no, e.byte, why);
    } catch (const nlohmann::json::exception& e) {
      FOCUS_FAIL("[plot] '{}' line {}: not valid JSON: {}", file.string(), line_no, e.what());
    }
    FOCUS_CHECK(j.is_object(), "[plot] '{}' line {}: expected a JSON object, got {}", file.string(), line_no,
                j.type_name());
    FOCUS_CHECK(j.contains("split") && j["split"].is_string(), "[plot] '{}' line {}: missing \"split\" (a string)",
                file.string(), line_no);
    FOCUS_CHECK(j.contains("step") && j["step"].is_number(), "[plot] '{}' line {}: missing \"step\" (a number)",
                file.string(), line_no);
    const std::string split = j["split"].get<std::string>();
    const double step = j["step"].get<double>();
    if (std::find(split_order.begin(), split_order.end(), split) == split_order.end()) split_order.push_back(split);
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      if (key == "split" || key == "step" || key == "time" || key == "epoch") continue;
      double v;
      if (it->is_number()) v = it->get<double>();
      else if (it->is_null()) v = std::numeric_limits<double>::quiet_NaN();  // NaN is written as null
      else continue;                                                           // text, flags: not a curve
      if (!data.count(key)) metric_order.push_back(key);
      data[key][split].emplace_back(step, v);
    }
  }
  FOCUS_CHECK(!metric_order.empty(), "[plot] '{}' has no metrics to plot (no numeric values besides step/time)",
              file.string());

  // Splits in a fixed order (train, valid, test, then the rest as they appear) and colour.
  std::vector<std::string> splits;
  for (const char* s : {"train", "valid", "test"})
    if (std::find(split_order.begin(), split_order.end(), s) != split_order.end()) splits.push_back(s);
  for (const std::string& s : split_order)
    if (std::find(splits.begin(), splits.end(), s) == splits.end()) splits.push_back(s);

  std::string run_name = fs::path(run_dir).lexically_normal().filename().string();
  if (run_name.empty() || run_name == ".") run_name = fs::absolute(run_dir, ec).lexically_normal().parent_path().filename().string();
  if (run_name.empty()) run_name = run_dir;

  if (auto it = std::find(metric_order.begin(), metric_order.end(), "loss"); it != metric_order.end()) {
    metric_order.erase(it);
    metric_order.insert(metric_order.begin(), "loss");
  }
  std::vector<std::string> written;
  std::set<std::string> used_names;
  for (const std::string& metric : metric_order) {
    std::vector<Series> series;
    for (const std::string& split : splits) {
      auto it = data[metric].find(split);
      if (it == data[metric].end()) continue;
      std::vector<std::pair<double, double>> pts = it->second;
      std::stable_sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      Series s;
      s.name = split;
      const size_t split_index = size_t(std::find(splits.begin(), splits.end(), split) - splits.begin());
      s.color = int(kPalette[split_index % kPalette.size()]);
      for (auto& [x, y] : pts) s.x.push_back(x), s.y.push_back(y);
      series.push_back(std::move(s));
    }
    std::string name;
    for (char ch : metric) name += (std::isalnum(uint8_t(ch)) || ch == '-' || ch == '_' || ch == '.') ? ch : '_';
    if (name.empty() || name[0] == '.') name = "metric_" + name;
    while (used_names.count(name)) name += "_";
    used_names.insert(name);
    const std::string out = (fs::path(run_dir) / (name + ".png")).string();
    bool any = false;
    for (const Series& s : series)
      for (size_t i = 0; i < s.x.size(); ++i) any = any || (std::isfinite(s.x[i]) && std::isfinite(s.y[i]));
    if (!any) continue;  // e.g. a metric that was only ever NaN
    plot_curves(out, fmt::format("{}: {} by step", run_name, metric), "step", series, metric);
    written.push_back(out);
  }
  FOCUS_CHECK(!written.empty(), "[plot] '{}': every metric is NaN; nothing to plot", file.string());
  return written;
}

}  // namespace focus::zoo
