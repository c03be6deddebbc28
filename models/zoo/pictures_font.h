#pragma once
/// The bitmap fonts models/zoo/pictures.cpp draws text with (internal to focus_models).
/// Glyph tables for code points 32..126 and 160..255 (ASCII and Latin-1), taken from the
/// public-domain X11 misc-fixed fonts by tools/fonts/emit_pictures_font.py.
#include <cstdint>

namespace focus::zoo::detail {

/// A fixed-width bitmap font: every glyph is a width x height cell; rows[(glyph * height) + y]
/// holds row y of a glyph with bit 15 the leftmost pixel. glyph = cp - 32 for cp in 32..126,
/// 95 + cp - 160 for cp in 160..255.
struct BitmapFont {
  int width;
  int height;
  int ascent;
  const uint16_t* rows;
};

const BitmapFont& regular_font();  ///< misc-fixed 7x13: labels and tick values
const BitmapFont& bold_font();     ///< misc-fixed 7x13B: axis names, legends
const BitmapFont& title_font();    ///< misc-fixed 9x15B: titles

}  // namespace focus::zoo::detail
