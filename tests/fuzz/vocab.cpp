// Fuzz target: vocabularies as stored in a checkpoint's metadata (data/vocab.h:
// Vocab::from_json), and the UTF-8 tokenizers that build them from text (split_utf8,
// split_words, sanitize_utf8). The first byte picks which.
#include "data/vocab.h"
#include "fuzz.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string text(focus_fuzz::as_text(data + 1, size - 1));
  if (data[0] & 1) {
    data::Vocab v;
    if (!focus_fuzz::accepts([&] { v = data::Vocab::from_json(text); })) return 0;
    // An accepted vocabulary is a bijection that survives its own round trip.
    for (int64_t i = 0; i < v.size(); ++i) FUZZ_REQUIRE(v.id(v.token(i)) == i, "id(token(i)) != i");
    data::Vocab back;
    focus_fuzz::must_succeed([&] { back = data::Vocab::from_json(v.to_json()); },
                           "a vocabulary's own JSON does not read back");
    FUZZ_REQUIRE(back == v, "vocabulary round trip");
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < v.size(); ++i) ids.push_back(i);
    FUZZ_REQUIRE(v.encode(v.decode(ids, /*skip_specials=*/false)) == ids, "encode(decode(ids))");
    return 0;
  }
  const bool valid = data::is_valid_utf8(text);
  const std::string clean = data::sanitize_utf8(text);
  FUZZ_REQUIRE(data::is_valid_utf8(clean), "sanitize_utf8 left invalid UTF-8");
  FUZZ_REQUIRE(!valid || clean == text, "sanitize_utf8 changed valid text");
  std::vector<std::string> chars, words;
  const bool split_ok = focus_fuzz::accepts([&] { chars = data::split_utf8(text); });
  FUZZ_REQUIRE(split_ok == valid, "split_utf8 and is_valid_utf8 disagree");
  if (split_ok) {
    std::string joined;
    for (const auto& c : chars) joined += c;
    FUZZ_REQUIRE(joined == text, "split_utf8 pieces do not join to the text");
  }
  const bool words_ok = focus_fuzz::accepts([&] { words = data::split_words(text, data[0] & 2); });
  FUZZ_REQUIRE(words_ok == valid, "split_words and is_valid_utf8 disagree");
  // A vocabulary built from those words (as the models do) must hold each of them.
  if (words_ok && !words.empty()) {
    data::Vocab v;
    if (focus_fuzz::accepts([&] { v = data::Vocab::build(words, 1, -1, true); })) {
      for (const auto& w : words) FUZZ_REQUIRE(v.contains(w) || w == data::Vocab::kPad || w == data::Vocab::kBos ||
                                                   w == data::Vocab::kEos || w == data::Vocab::kUnk,
                                               "a built vocabulary misses a word");
      data::Vocab back;
      focus_fuzz::must_succeed([&] { back = data::Vocab::from_json(v.to_json()); },
                           "a built vocabulary's JSON does not read back");
      FUZZ_REQUIRE(back == v, "built vocabulary round trip");
    }
  }
  return 0;
}
