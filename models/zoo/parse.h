#pragma once
/// Number parsing for the zoo's command options (CommandArgs::integer / real, finetune's
/// --lora): the whole text must be the number (std::stoll / std::stod rules otherwise).
#include <cmath>
#include <cstdint>
#include <string>

namespace focus::zoo {

/// *out = convert(s, &pos) when that reads all of s; false when s is empty, convert throws
/// (not a number, out of range) or something follows the number.
template <typename T, typename Convert> bool parse_whole(const std::string& s, T* out, Convert convert) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    *out = convert(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size();
}

/// s as an integer; false when empty, not a number, out of range or followed by anything.
inline bool parse_int(const std::string& s, int64_t* out) {
  return parse_whole(s, out, [](const std::string& t, size_t* pos) { return std::stoll(t, pos); });
}

/// s as a finite number; false when empty, not a number, not finite or followed by anything.
inline bool parse_real(const std::string& s, double* out) {
  return parse_whole(s, out, [](const std::string& t, size_t* pos) { return std::stod(t, pos); }) &&
         std::isfinite(*out);
}

}  // namespace focus::zoo
