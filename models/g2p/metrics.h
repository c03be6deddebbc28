#pragma once
/// Phoneme and word error rates of G2P predictions against CMUdict's (possibly several)
/// pronunciations of each word.
#include <cstdint>
#include <string>
#include <vector>

namespace focus::models::g2p {

/// Levenshtein distance (insertions, deletions and substitutions cost 1) between two token
/// sequences.
int64_t edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b);

/// Accumulates PER and WER over words. A prediction is correct if it equals any listed
/// pronunciation; its phoneme errors are the edit distance to the closest pronunciation
/// (ties: the shorter one, then the first listed), whose length joins the denominator.
struct ErrorRates {
  int64_t words = 0;
  int64_t word_errors = 0;
  int64_t phoneme_errors = 0;
  int64_t reference_phonemes = 0;
  /// Scores one word; references must not be empty. Returns the edit distance to the closest
  /// reference.
  int64_t add(const std::vector<std::string>& prediction, const std::vector<std::vector<std::string>>& references);
  /// Phoneme error rate: phoneme_errors / reference_phonemes (0 when empty).
  double per() const;
  /// Word error rate: word_errors / words (0 when empty).
  double wer() const;
};

}  // namespace focus::models::g2p
