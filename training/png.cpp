#include "training/png.h"

#include <png.h>

#include <cstring>

#include "core/error.h"

namespace focus::training {

std::string encode_png(const uint8_t* pixels, int width, int height, int channels, const std::string& op) {
  FOCUS_CHECK(width > 0 && height > 0 && width <= 100000 && height <= 100000, "{} bad picture size {}x{}", op,
              width, height);
  FOCUS_CHECK(channels >= 1 && channels <= 4, "{} a PNG has 1 to 4 channels, got {}", op, channels);
  FOCUS_CHECK(pixels != nullptr, "{} no pixels", op);
  static const png_uint_32 formats[] = {PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB, PNG_FORMAT_RGBA};
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = png_uint_32(width);
  image.height = png_uint_32(height);
  image.format = formats[channels - 1];
  png_alloc_size_t size = 0;
  FOCUS_CHECK(png_image_write_get_memory_size(image, size, 0, pixels, 0, nullptr) && size > 0,
              "{} libpng cannot encode a {}x{} picture: {}", op, width, height, image.message);
  std::string bytes(size, '\0');
  FOCUS_CHECK(png_image_write_to_memory(&image, bytes.data(), &size, 0, pixels, 0, nullptr),
              "{} libpng cannot encode a {}x{} picture: {}", op, width, height, image.message);
  bytes.resize(size);
  return bytes;
}

}  // namespace focus::training
