#pragma once
/// Deterministic train/valid/test splits by a stable hash of a key (a word, a message id):
/// the same key lands in the same split on every machine and in every run.
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace focus::data {

enum class Split { Train, Valid, Test };

/// "train", "valid" or "test".
std::string_view split_name(Split s);
/// Inverse of split_name; also accepts "validation", "val", "dev". Unknown -> focus::Error.
Split parse_split(std::string_view name);

/// FNV-1a 64-bit hash of the key's bytes: the same on every machine and compiler.
uint64_t stable_hash(std::string_view key);

/// bucket = stable_hash(key) % 10000; Train if bucket < round(train_frac * 10000), else Valid
/// if bucket < round((train_frac + valid_frac) * 10000), else Test. Fractions must lie in
/// [0, 1] with train_frac + valid_frac <= 1, else focus::Error.
Split hash_split(std::string_view key, double train_frac, double valid_frac);

}  // namespace focus::data

template <> struct fmt::formatter<focus::data::Split> : fmt::formatter<std::string_view> {
  template <typename Ctx> auto format(focus::data::Split s, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(focus::data::split_name(s), ctx);
  }
};
