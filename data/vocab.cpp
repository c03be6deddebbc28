#include "data/vocab.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace focus::data {

namespace {

const std::vector<std::string>& special_tokens() {
  static const std::vector<std::string> s = {Vocab::kPad, Vocab::kBos, Vocab::kEos, Vocab::kUnk};
  return s;
}

// Length of the UTF-8 sequence starting at text[i] and its validity; 0 = invalid.
size_t utf8_sequence(std::string_view text, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const unsigned char c = p[i];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2; cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3; cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4; cp = c & 0x07;
  } else {
    return 0;  // continuation byte, overlong lead (C0, C1) or > F4
  }
  if (i + len > n) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((p[i + k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i + k] & 0x3F);
  }
  if (len == 3 && cp < 0x800) return 0;                     // overlong
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;  // overlong or beyond Unicode
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;               // UTF-16 surrogate
  return len;
}

// Why the sequence at i is invalid, for the error message.
std::string utf8_problem(std::string_view text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c >= 0x80 && c <= 0xBF) return "stray continuation byte";
  if (c == 0xC0 || c == 0xC1 || c > 0xF4) return "byte that never occurs in UTF-8";
  const size_t len = c <= 0xDF ? 2 : c <= 0xEF ? 3 : 4;
  if (i + len > text.size()) return "sequence truncated by the end of the text";
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return "sequence cut short by a non-continuation byte";
  return "overlong form, surrogate or code point beyond U+10FFFF";
}

[[noreturn]] void check_utf8(std::string_view text, size_t i, const char* op) {
  FOCUS_FAIL("[{}] invalid UTF-8 at byte {} (0x{:02x}): {}", op, i, static_cast<unsigned char>(text[i]),
              utf8_problem(text, i));
}

}  // namespace

Vocab::Vocab(std::vector<std::string> tokens, bool specials, const char* op) : specials_(specials) {
  if (specials) {
    tokens_ = special_tokens();
    tokens_.reserve(tokens_.size() + tokens.size());
  }
  for (auto& t : tokens) tokens_.push_back(std::move(t));
  index_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    auto [it, inserted] = index_.emplace(tokens_[i], static_cast<int64_t>(i));
    FOCUS_CHECK(inserted, "[{}] duplicate token '{}' (ids {} and {})", op, tokens_[i], it->second, i);
  }
}

Vocab Vocab::build(const std::vector<std::string>& tokens_in_corpus, int64_t min_freq, int64_t max_size,
                   bool specials) {
  FOCUS_CHECK(min_freq >= 1, "[Vocab::build] min_freq must be >= 1, got {}", min_freq);
  const int64_t n_special = specials ? 4 : 0;
  FOCUS_CHECK(max_size == -1 || max_size >= n_special,
              "[Vocab::build] max_size must be -1 (no limit) or >= {} (the special tokens), got {}", n_special,
              max_size);
  std::unordered_map<std::string_view, int64_t> counts;  // views into tokens_in_corpus
  for (const auto& t : tokens_in_corpus) ++counts[t];
  if (specials)
    for (const auto& s : special_tokens()) counts.erase(s);
  std::vector<std::pair<std::string_view, int64_t>> kept;
  for (const auto& [tok, c] : counts)
    if (c >= min_freq) kept.emplace_back(tok, c);
  // Count descending, then token in byte order: a total order, so the result does not depend
  // on the hash map's iteration order.
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (max_size != -1 && static_cast<int64_t>(kept.size()) > max_size - n_special)
    kept.resize(static_cast<size_t>(max_size - n_special));
  std::vector<std::string> toks;
  toks.reserve(kept.size());
  for (const auto& kv : kept) toks.emplace_back(kv.first);
  return Vocab(std::move(toks), specials, "Vocab::build");
}

Vocab Vocab::from_tokens(std::vector<std::string> tokens, bool specials) {
  return Vocab(std::move(tokens), specials, "Vocab::from_tokens");
}

int64_t Vocab::special(int64_t id, const char* name) const {
  FOCUS_CHECK(specials_, "[Vocab] {}: this vocabulary has no special tokens", name);
  return id;
}
int64_t Vocab::pad_id() const { return special(0, "pad_id"); }
int64_t Vocab::bos_id() const { return special(1, "bos_id"); }
int64_t Vocab::eos_id() const { return special(2, "eos_id"); }
int64_t Vocab::unk_id() const { return special(3, "unk_id"); }

int64_t Vocab::id(const std::string& tok) const {
  auto it = index_.find(tok);
  if (it != index_.end()) return it->second;
  FOCUS_CHECK(specials_, "[Vocab] unknown token '{}' (this vocabulary has no <unk>; {} tokens)", tok, size());
  return 3;
}

const std::string& Vocab::token(int64_t id) const {
  FOCUS_CHECK(id >= 0 && id < size(), "[Vocab] id {} out of range [0, {})", id, size());
  return tokens_[static_cast<size_t>(id)];
}

std::vector<int64_t> Vocab::encode(const std::vector<std::string>& toks) const {
  std::vector<int64_t> ids;
  ids.reserve(toks.size());
  for (const auto& t : toks) ids.push_back(id(t));
  return ids;
}

std::vector<std::string> Vocab::decode(const std::vector<int64_t>& ids, bool skip_specials) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int64_t i : ids) {
    const std::string& t = token(i);
    if (skip_specials && specials_ && i <= 2) continue;
    out.push_back(t);
  }
  return out;
}

std::string Vocab::to_json() const {
  nlohmann::json j;
  j["format"] = "focus.vocab";
  j["version"] = 1;
  j["specials"] = specials_;
  j["tokens"] = tokens_;
  // Tokens may hold any bytes (a character vocabulary of odd text); replace invalid UTF-8 so
  // the JSON is always valid rather than throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Vocab Vocab::from_json(const std::string& json) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    FOCUS_FAIL("[Vocab::from_json] not valid JSON: {}", e.what());
  }
  FOCUS_CHECK(j.is_object(), "[Vocab::from_json] expected a JSON object, got {}", j.type_name());
  FOCUS_CHECK(j.contains("format") && j["format"] == "focus.vocab",
              "[Vocab::from_json] missing or wrong \"format\" (expected \"focus.vocab\")");
  FOCUS_CHECK(j.contains("version") && j["version"].is_number_integer() && j["version"] == 1,
              "[Vocab::from_json] unsupported \"version\" (expected 1)");
  FOCUS_CHECK(j.contains("specials") && j["specials"].is_boolean(),
              "[Vocab::from_json] \"specials\" must be true or false");
  FOCUS_CHECK(j.contains("tokens") && j["tokens"].is_array(), "[Vocab::from_json] \"tokens\" must be an array");
  const bool specials = j["specials"].get<bool>();
  std::vector<std::string> tokens;
  for (size_t i = 0; i < j["tokens"].size(); ++i) {
    const auto& t = j["tokens"][i];
    FOCUS_CHECK(t.is_string(), "[Vocab::from_json] token {} is not a string: {}", i, t.dump());
    tokens.push_back(t.get<std::string>());
  }
  if (specials) {
    const auto& s = special_tokens();
    FOCUS_CHECK(tokens.size() >= s.size(), "[Vocab::from_json] \"specials\" is true but only {} tokens",
                tokens.size());
    for (size_t i = 0; i < s.size(); ++i)
      FOCUS_CHECK(tokens[i] == s[i], "[Vocab::from_json] token {} is '{}', expected the special '{}'", i, tokens[i],
                  s[i]);
    tokens.erase(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(s.size()));
  }
  return Vocab(std::move(tokens), specials, "Vocab::from_json");
}

// ---- UTF-8 -------------------------------------------------------------------------------

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence(text, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence(text, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::vector<std::string> split_utf8(std::string_view text) {
  std::vector<std::string> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence(text, i);
    if (len == 0) check_utf8(text, i, "split_utf8");
    out.emplace_back(text.substr(i, len));
    i += len;
  }
  return out;
}

std::vector<std::string> split_words(std::string_view text, bool lowercase) {
  std::vector<std::string> out;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) out.push_back(std::move(word));
    word.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence(text, i);
    if (len == 0) check_utf8(text, i, "split_words");
    const auto c = static_cast<unsigned char>(text[i]);
    if (len > 1) {
      word.append(text.substr(i, len));  // non-ASCII: part of a word
    } else if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) {
      word += static_cast<char>(c);
    } else if (c >= 'A' && c <= 'Z') {
      word += static_cast<char>(lowercase ? c - 'A' + 'a' : c);
    } else if (c <= 0x20 || c == 0x7F) {
      flush();  // whitespace and control characters
    } else {
      flush();
      out.emplace_back(1, static_cast<char>(c));  // punctuation or symbol
    }
    i += len;
  }
  flush();
  return out;
}

}  // namespace focus::data
