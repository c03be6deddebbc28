#include "models/g2p/data.h"

#include <algorithm>
#include <random>
#include <set>
#include <unordered_map>

#include <focus/focus.h>

namespace focus::models::g2p {

std::optional<std::string> normalize_word(std::string_view word) {
  std::string out;
  out.reserve(word.size());
  bool letter = false;
  for (char c : word) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c >= 'A' && c <= 'Z') {
      letter = true;
    } else if (c != '\'') {
      return std::nullopt;
    }
    out.push_back(c);
  }
  if (!letter) return std::nullopt;
  return out;
}

std::vector<std::string> word_letters(const std::string& word) {
  std::vector<std::string> out;
  out.reserve(word.size());
  for (char c : word) out.emplace_back(1, c);
  return out;
}

std::vector<G2PWord> group_pronunciations(const std::vector<std::pair<std::string, std::vector<std::string>>>& entries,
                                          int64_t* dropped) {
  std::vector<G2PWord> words;
  std::unordered_map<std::string, size_t> index;
  int64_t left_out = 0;
  for (const auto& [raw, phonemes] : entries) {
    const auto word = normalize_word(raw);
    if (!word || phonemes.empty()) {
      ++left_out;
      continue;
    }
    auto [it, fresh] = index.emplace(*word, words.size());
    if (fresh) words.push_back({*word, {}});
    auto& prons = words[it->second].pronunciations;
    if (std::find(prons.begin(), prons.end(), phonemes) == prons.end()) prons.push_back(phonemes);
  }
  if (dropped) *dropped = left_out;
  return words;
}

std::string strip_stress(std::string_view phoneme) {
  while (!phoneme.empty() && phoneme.back() >= '0' && phoneme.back() <= '9') phoneme.remove_suffix(1);
  return std::string(phoneme);
}

std::vector<G2PWord> without_stress(std::vector<G2PWord> words) {
  for (auto& w : words) {
    std::vector<std::vector<std::string>> merged;
    for (const auto& pron : w.pronunciations) {
      std::vector<std::string> plain;
      plain.reserve(pron.size());
      for (const auto& ph : pron) plain.push_back(strip_stress(ph));
      if (std::find(merged.begin(), merged.end(), plain) == merged.end()) merged.push_back(std::move(plain));
    }
    w.pronunciations = std::move(merged);
  }
  return words;
}

std::vector<std::string> synthetic_pronunciation(const std::string& word) {
  std::vector<std::string> out;
  for (size_t i = 0; i < word.size(); ++i) {
    const char c = word[i];
    const bool last = i + 1 == word.size();
    switch (c) {
      case 'A': out.push_back("AE1"); break;
      case 'B': out.push_back("B"); break;
      case 'C':
        if (!last && word[i + 1] == 'H') {
          out.push_back("CH");
          ++i;
        } else {
          out.push_back("K");
        }
        break;
      case 'D': out.push_back("D"); break;
      case 'E':
        if (!(last && word.size() >= 3)) out.push_back("IY0");
        break;
      case 'F': out.push_back("F"); break;
      case 'G': out.push_back("G"); break;
      case 'H': out.push_back("HH"); break;
      default: FOCUS_CHECK(false, "[g2p::synthetic_pronunciation] letter '{}' is not in A-H (word {})", c, word);
    }
  }
  return out;
}

std::vector<G2PWord> synthetic_words(int64_t n, uint64_t seed) {
  FOCUS_CHECK(n >= 1 && n <= 100000, "[g2p::synthetic_words] n must be in 1 .. 100000, got {}", n);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> length(2, 8), letter(0, 7);
  std::set<std::string> seen;
  std::vector<G2PWord> out;
  while (static_cast<int64_t>(out.size()) < n) {
    std::string w(static_cast<size_t>(length(rng)), 'A');
    for (char& c : w) c = static_cast<char>('A' + letter(rng));
    if (!seen.insert(w).second) continue;
    out.push_back({w, {synthetic_pronunciation(w)}});
  }
  return out;
}

}  // namespace focus::models::g2p
