#pragma once
/// Number parsing for the zoo's command options (CommandArgs::integer / real, finetune's
/// --lora): the whole text must be the number (std::stoll / std::stod rules otherwise).
#include <cmath>
#include <cstdint>
#include <string>

namespace focus::zoo {

/// s as an integer; false when empty, not a number, out of range or followed by anything.
inline bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    *out = std::stoll(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size();
}

/// s as a finite number; false when empty, not a number, not finite or followed by anything.
inline bool parse_real(const std::string& s, double* out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    *out = std::stod(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size() && std::isfinite(*out);
}

}  // namespace focus::zoo
