#pragma once
/// Words and pronunciations for G2P: CMUdict entries grouped by word, the word filter, and a
/// tiny generated letter -> phoneme language for tests and smoke runs.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace focus::models::g2p {

/// A word (upper case) and every pronunciation listed for it (ARPAbet with stress digits).
struct G2PWord {
  std::string word;
  std::vector<std::vector<std::string>> pronunciations;
};

/// The word as the model reads it: upper-cased; std::nullopt unless it is made only of the
/// letters A-Z and apostrophes (and has at least one letter). CMUdict words with dots,
/// hyphens, underscores or digits ("A.", "AD-HOC", "A42128": under 1% of entries) are left
/// out of training and evaluation; `predict` rejects them with an error.
std::optional<std::string> normalize_word(std::string_view word);

/// The letters of a normalized word, one token each ("DON'T" -> D O N ' T).
std::vector<std::string> word_letters(const std::string& word);

/// Groups (word, phonemes) entries by word in first-seen order, dropping words that
/// normalize_word rejects and repeated identical pronunciations; *dropped (if given) counts
/// the entries left out.
std::vector<G2PWord> group_pronunciations(const std::vector<std::pair<std::string, std::vector<std::string>>>& entries,
                                          int64_t* dropped = nullptr);

/// The phoneme without its stress digit: "AH0" -> "AH", "B" -> "B".
std::string strip_stress(std::string_view phoneme);

/// The words with every pronunciation stripped of stress digits and the pronunciations that
/// then coincide merged (CMUdict lists some words once per stress pattern). This is the
/// 39-phoneme setup of the published CMUdict G2P results.
std::vector<G2PWord> without_stress(std::vector<G2PWord> words);

/// The generated language of the `synthetic` dataset: letters A-H; A -> AE1, B -> B, C -> K
/// (C before H: CH, and the H is silent), D -> D, E -> IY0 (E at the end of a word of 3 or
/// more letters: silent), F -> F, G -> G, H -> HH.
std::vector<std::string> synthetic_pronunciation(const std::string& word);

/// n distinct random words of 2..8 letters over A-H with their synthetic pronunciations
/// (one each), deterministic in seed.
std::vector<G2PWord> synthetic_words(int64_t n, uint64_t seed);

}  // namespace focus::models::g2p
