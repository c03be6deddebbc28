#include "data/split.h"

#include <cmath>

#include "core/error.h"

namespace focus::data {

std::string_view split_name(Split s) {
  switch (s) {
    case Split::Train: return "train";
    case Split::Valid: return "valid";
    case Split::Test: return "test";
  }
  return "?";
}

Split parse_split(std::string_view name) {
  if (name == "train") return Split::Train;
  if (name == "valid" || name == "validation" || name == "val" || name == "dev") return Split::Valid;
  if (name == "test") return Split::Test;
  FOCUS_FAIL("[split] unknown split '{}': expected train, valid or test", name);
}

uint64_t stable_hash(std::string_view key) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64-bit offset basis
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;  // FNV prime
  }
  return h;
}

Split hash_split(std::string_view key, double train_frac, double valid_frac) {
  FOCUS_CHECK(train_frac >= 0 && train_frac <= 1, "[hash_split] train_frac must be in [0, 1], got {}", train_frac);
  FOCUS_CHECK(valid_frac >= 0 && valid_frac <= 1, "[hash_split] valid_frac must be in [0, 1], got {}", valid_frac);
  FOCUS_CHECK(train_frac + valid_frac <= 1 + 1e-9,
              "[hash_split] train_frac + valid_frac must be <= 1, got {} + {}", train_frac, valid_frac);
  const int64_t bucket = static_cast<int64_t>(stable_hash(key) % 10000);
  const int64_t train_end = std::llround(train_frac * 10000);
  const int64_t valid_end = std::llround((train_frac + valid_frac) * 10000);
  if (bucket < train_end) return Split::Train;
  if (bucket < valid_end) return Split::Valid;
  return Split::Test;
}

}  // namespace focus::data
