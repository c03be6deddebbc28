#include "models/datasets/sha256.h"

#include <nettle/base16.h>
#include <nettle/sha2.h>

#include <cstdint>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace focus::datasets {

Sha256::Sha256() : ctx_(std::make_unique<sha256_ctx>()) { sha256_init(ctx_.get()); }
Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) {
  FOCUS_CHECK(!done_, "[sha256] update after hex_digest");
  sha256_update(ctx_.get(), size, static_cast<const uint8_t*>(data));
}

std::string Sha256::hex_digest() {
  FOCUS_CHECK(!done_, "[sha256] hex_digest called twice");
  done_ = true;
  uint8_t digest[SHA256_DIGEST_SIZE];
  sha256_digest(ctx_.get(), SHA256_DIGEST_SIZE, digest);
  std::string out(BASE16_ENCODE_LENGTH(SHA256_DIGEST_SIZE), '0');
  base16_encode_update(out.data(), SHA256_DIGEST_SIZE, digest);  // lower-case digits
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 s;
  s.update(bytes);
  return s.hex_digest();
}

std::string sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  FOCUS_CHECK(in, "[sha256] cannot open {}", path.string());
  Sha256 s;
  std::vector<char> buf(kSha256FileChunk);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = in.gcount();
    if (n > 0) s.update(buf.data(), static_cast<size_t>(n));
  }
  FOCUS_CHECK(in.eof(), "[sha256] error reading {}", path.string());
  return s.hex_digest();
}

}  // namespace focus::datasets
