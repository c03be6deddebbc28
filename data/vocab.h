#pragma once
/// Token vocabularies (characters, words, phonemes) with the special tokens a sequence model
/// needs, saved as JSON inside a checkpoint's metadata; plus UTF-8 aware tokenizers.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace focus::data {

/// A bijection between tokens and ids 0..size()-1. With specials, ids 0..3 are "<pad>",
/// "<bos>", "<eos>", "<unk>" (in that order), and unknown tokens map to "<unk>".
class Vocab {
 public:
  static constexpr const char* kPad = "<pad>";
  static constexpr const char* kBos = "<bos>";
  static constexpr const char* kEos = "<eos>";
  static constexpr const char* kUnk = "<unk>";

  /// An empty vocabulary without specials (size 0).
  Vocab() = default;

  /// Counts the tokens of a corpus and keeps those seen >= min_freq times (min_freq >= 1),
  /// ordered by count descending, then by token (byte order); at most max_size entries in
  /// total, specials included (-1 = no limit; otherwise >= 4 with specials, >= 0 without).
  /// Corpus tokens equal to a special token are not counted again.
  static Vocab build(const std::vector<std::string>& tokens_in_corpus, int64_t min_freq = 1,
                     int64_t max_size = -1, bool specials = true);
  /// A vocabulary with exactly these tokens in this order (after the specials, if any).
  /// Duplicates (or a token equal to a special) -> focus::Error.
  static Vocab from_tokens(std::vector<std::string> tokens, bool specials = true);

  /// Number of tokens, specials included.
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  /// True when ids 0..3 are the special tokens.
  bool has_specials() const { return specials_; }
  /// Ids of the special tokens (0, 1, 2, 3); focus::Error for a vocabulary without specials.
  int64_t pad_id() const;
  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t unk_id() const;

  bool contains(const std::string& tok) const { return index_.count(tok) != 0; }
  /// The id of tok; unknown -> unk_id(), or focus::Error if the vocabulary has no specials.
  int64_t id(const std::string& tok) const;
  /// The token of id; out of range -> focus::Error.
  const std::string& token(int64_t id) const;
  /// All tokens in id order.
  const std::vector<std::string>& tokens() const { return tokens_; }

  /// ids of toks (no bos/eos added; unknown tokens as in id()).
  std::vector<int64_t> encode(const std::vector<std::string>& toks) const;
  /// Tokens of ids; skip_specials drops <pad>, <bos> and <eos> (an <unk> stays visible).
  /// An id out of range -> focus::Error.
  std::vector<std::string> decode(const std::vector<int64_t>& ids, bool skip_specials = true) const;

  /// {"format":"focus.vocab","version":1,"specials":true,"tokens":[...]}: tokens in id order.
  std::string to_json() const;
  /// Inverse of to_json; malformed JSON, a wrong format, duplicate tokens or misplaced
  /// specials -> focus::Error.
  static Vocab from_json(const std::string& json);

  bool operator==(const Vocab& o) const { return specials_ == o.specials_ && tokens_ == o.tokens_; }

 private:
  Vocab(std::vector<std::string> tokens, bool specials, const char* op);
  int64_t special(int64_t id, const char* name) const;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> index_;
  bool specials_ = false;
};

/// One string per Unicode code point, each holding that code point's UTF-8 bytes. Invalid
/// UTF-8 (stray continuation, truncated sequence, overlong form, surrogate, > U+10FFFF) ->
/// focus::Error with the byte offset.
std::vector<std::string> split_utf8(std::string_view text);

/// Words: maximal runs of letters and digits (any non-ASCII code point counts as a letter, so
/// "café" is one word), and each other visible ASCII character (punctuation, symbols) on its
/// own; whitespace and control characters separate. lowercase folds ASCII A-Z. Invalid UTF-8
/// -> focus::Error (see sanitize_utf8 for untrusted text).
std::vector<std::string> split_words(std::string_view text, bool lowercase = true);

/// True when text is valid UTF-8.
bool is_valid_utf8(std::string_view text);
/// text with every invalid byte replaced by U+FFFD (the replacement character); valid input
/// is returned unchanged. For untrusted text such as e-mail in unknown encodings.
std::string sanitize_utf8(std::string_view text);

}  // namespace focus::data
