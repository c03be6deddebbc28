#pragma once
/// Pictures of training runs and of what models attend to, written as PNG files (libpng).
///
/// Every picture has a title, named axes and a legend or colour scale, so that a person can
/// read it without the code. Text is drawn with an embedded bitmap font (ASCII and Latin-1;
/// common typographic characters such as "—" or "“" are drawn as ASCII look-alikes, anything
/// else as a small box). Every file is written atomically (a temporary file in the same
/// folder, then a rename); bad arguments or unwritable paths throw focus::Error.
#include <cstdint>
#include <string>
#include <vector>

namespace focus::zoo {

/// Writes an 8-bit RGB PNG. rgb holds height rows of width pixels, 3 bytes (r, g, b) each,
/// top row first: rgb.size() == width * height * 3. The file appears complete or not at all
/// (temporary file + rename). Errors (sizes, unwritable folder) name the path.
void write_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb);

/// One line of a line chart: the points (x[i], y[i]); x.size() == y.size(). Points whose x or
/// y is NaN or infinite are skipped (the line is broken there).
struct Series {
  std::string name;
  std::vector<double> x, y;
  int color = -1;  ///< 0xRRGGBB, or -1: the next colour of the palette (by series position)
};

/// A line chart (about 900x520): every series in its own colour, with a legend, grid, axes
/// with tick labels at round numbers, the x axis named x_label and the y axis y_label.
/// Series with few points get point markers. Series without finite points are listed in the
/// legend as "(no data)"; if no series has a finite point, or a series' x and y differ in
/// length, or there are no series, it throws focus::Error.
void plot_curves(const std::string& path, const std::string& title, const std::string& x_label,
                 const std::vector<Series>& series, const std::string& y_label = "");

/// A heatmap of a rows x cols matrix (values row-major, values.size() == rows * cols), e.g.
/// g2p's cross-attention with rows = predicted phonemes and cols = input letters. Each cell
/// is shaded from white (lowest) to dark blue (highest) and, when it fits, shows its value.
/// Row labels are drawn on the left, column labels on top (vertical when they are long), the
/// axis names beside them, and a colour bar with values on the right. The scale runs from
/// min(0, min value) to the max value. Empty label vectors mean "number the rows/columns";
/// otherwise each needs exactly rows / cols entries. Non-finite values throw focus::Error.
void plot_heatmap(const std::string& path, const std::string& title, const std::vector<float>& values,
                  int rows, int cols, const std::vector<std::string>& row_labels,
                  const std::vector<std::string>& col_labels, const std::string& row_axis,
                  const std::string& col_axis);

/// A text (e.g. the tokens of an email) flowed into lines, each token's background shaded by
/// its weight (white = 0 or the lowest weight, dark orange = the highest), with a colour bar
/// and the ten highest-weighted tokens listed below. tokens.size() == weights.size() >= 1.
/// A token that contains a newline (and nothing but whitespace) breaks the line; other
/// whitespace-only tokens are drawn as a gap. Texts that do not fit in the picture are cut,
/// with a note saying how many tokens were left out. Non-finite weights throw focus::Error.
void plot_token_weights(const std::string& path, const std::string& title,
                        const std::vector<std::string>& tokens, const std::vector<float>& weights);

/// A grayscale image (gray: height x width bytes, row-major, 0 = black) scaled up (e.g.
/// 28x28 -> 224x224), shown twice side by side: plain, and with the attention over its
/// grid_h x grid_w patches (patch_weights row-major, e.g. the class token's attention in a
/// ViT) as a translucent heat colour with the patch grid drawn; a colour bar gives the
/// weights. Patches cover the image proportionally (grid_h <= height, grid_w <= width).
void plot_image_attention(const std::string& path, const std::string& title, const std::vector<uint8_t>& gray,
                          int height, int width, const std::vector<float>& patch_weights, int grid_h,
                          int grid_w);

/// `focus plot RUN_DIR`: reads RUN_DIR/metrics.jsonl (one JSON object per line:
/// {"split": "train", "step": 100, "time": ..., "loss": 2.3, ...}) and writes RUN_DIR/loss.png
/// (the loss of every split against the step) and one PNG per other numeric metric (e.g.
/// per.png, accuracy.png; keys other than split, step, time and epoch), one line per split.
/// Returns the paths written, loss.png first. A last line without its newline (a run still
/// writing it, or torn by a crash) is skipped. A missing folder or file, a malformed line
/// (named by its number and column), or a file without any metric throws focus::Error.
std::vector<std::string> plot_run(const std::string& run_dir);

}  // namespace focus::zoo
