#pragma once
/// SHA-256 (FIPS 180-4) on nettle, used to verify downloads and cached datasets.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

struct sha256_ctx;  // nettle's state (<nettle/sha2.h>), kept out of this header

namespace focus::datasets {

/// sha256_file reads a file in pieces of this many bytes.
inline constexpr size_t kSha256FileChunk = size_t{1} << 16;

/// Incremental SHA-256: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  /// Adds bytes to the message; after hex_digest() -> focus::Error.
  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  /// The digest as 64 lower-case hex digits; a second call, or an update() afterwards,
  /// -> focus::Error.
  std::string hex_digest();

 private:
  std::unique_ptr<sha256_ctx> ctx_;
  bool done_ = false;
};

/// SHA-256 of bytes, as 64 lower-case hex digits.
std::string sha256_hex(std::string_view bytes);

/// SHA-256 of a file's contents, read in pieces of kSha256FileChunk bytes; unreadable file
/// -> focus::Error naming it.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace focus::datasets
