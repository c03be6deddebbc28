#include "models/g2p/metrics.h"

#include <algorithm>

#include <focus/focus.h>

namespace focus::models::g2p {

int64_t edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  // one row of the dynamic-programming table at a time
  std::vector<int64_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diag = row[0];
    row[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

int64_t ErrorRates::add(const std::vector<std::string>& prediction, const std::vector<std::vector<std::string>>& references) {
  FOCUS_CHECK(!references.empty(), "[g2p::ErrorRates] a word needs at least one reference pronunciation");
  int64_t best = -1;
  size_t best_len = 0;
  for (const auto& ref : references) {
    const int64_t d = edit_distance(prediction, ref);
    if (best < 0 || d < best || (d == best && ref.size() < best_len)) {
      best = d;
      best_len = ref.size();
    }
  }
  ++words;
  if (best != 0) ++word_errors;
  phoneme_errors += best;
  reference_phonemes += static_cast<int64_t>(best_len);
  return best;
}

double ErrorRates::per() const {
  return reference_phonemes ? static_cast<double>(phoneme_errors) / static_cast<double>(reference_phonemes) : 0.0;
}

double ErrorRates::wer() const { return words ? static_cast<double>(word_errors) / static_cast<double>(words) : 0.0; }

}  // namespace focus::models::g2p
