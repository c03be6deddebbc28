#pragma once
/// SHA-256 (FIPS 180-4), used to verify downloads and cached datasets.
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace focus::datasets {

/// Incremental SHA-256: update() any number of times, then hex_digest() once.
class Sha256 {
 public:
  Sha256();
  /// Adds bytes to the message.
  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  /// The digest as 64 lower-case hex digits; the object may not be updated afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_;
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
  bool done_ = false;
};

/// SHA-256 of bytes, as 64 lower-case hex digits.
std::string sha256_hex(std::string_view bytes);

/// SHA-256 of a file's contents; unreadable file -> focus::Error naming it.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace focus::datasets
