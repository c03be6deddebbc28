#pragma once
/// PNG encoding (libpng), shared by TensorBoard images (training/tensorboard.h) and the zoo's
/// pictures (models/zoo/pictures.h).

#include <cstdint>
#include <string>

namespace focus::training {

/// Encodes an 8-bit PNG in memory and returns its bytes. pixels holds height rows of width
/// pixels, `channels` bytes each: 1 = gray, 2 = gray + alpha, 3 = RGB, 4 = RGBA; rows are
/// contiguous (no padding). A size outside 1..100000, another channel count or a failure of
/// libpng -> focus::Error whose message starts with `prefix` (the caller's "[op] 'path':").
std::string encode_png(const uint8_t* pixels, int width, int height, int channels,
                       const std::string& prefix = "[encode_png]");

}  // namespace focus::training
