// pad_sequences, Vocab, UTF-8 tokenizers, hash splits.
#include <map>

#include "test_util.h"

using namespace focus;
using namespace focus::data;

TEST_SUITE("data") {

TEST_CASE("pad_sequences pads to the longest or to pad_to and marks padding true") {
  auto b = pad_sequences({{5, 6, 7}, {8}, {}}, 0);
  CHECK(b.tokens.shape() == Shape{3, 3});
  CHECK(b.tokens.dtype() == kInt64);
  CHECK(b.tokens.to_vector<int64_t>() == std::vector<int64_t>{5, 6, 7, 8, 0, 0, 0, 0, 0});
  CHECK(b.key_padding_mask.dtype() == kBool);
  CHECK(b.key_padding_mask.shape() == Shape{3, 3});
  CHECK(b.key_padding_mask.to_vector<bool>() ==
        std::vector<bool>{false, false, false, false, true, true, true, true, true});
  CHECK(b.lengths.to_vector<int64_t>() == std::vector<int64_t>{3, 1, 0});
  auto p = pad_sequences({{1, 2}}, 9, 4);
  CHECK(p.tokens.shape() == Shape{1, 4});
  CHECK(p.tokens.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 9, 9});
  CHECK(p.key_padding_mask.to_vector<bool>() == std::vector<bool>{false, false, true, true});
  auto e = pad_sequences({{}, {}}, 0);
  CHECK(e.tokens.shape() == Shape{2, 0});
  CHECK_THROWS_WITH_AS(pad_sequences({{1, 2, 3}, {1}}, 0, 2),
                       doctest::Contains("[pad_sequences] pad_to 2 is shorter than sequence 0 (length 3)"), Error);
  CHECK_THROWS_WITH_AS(pad_sequences({}, 0), doctest::Contains("needs at least one sequence"), Error);
  CHECK_THROWS_WITH_AS(pad_sequences({{1}}, 0, -2), doctest::Contains("pad_to must be -1"), Error);
}

TEST_CASE("Vocab::build orders by frequency then token, with specials first") {
  std::vector<std::string> corpus = {"b", "a", "c", "a", "b", "a", "d", "<unk>", "e", "e"};
  auto v = Vocab::build(corpus);
  CHECK(v.tokens() == std::vector<std::string>{"<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "e", "c", "d"});
  CHECK(v.pad_id() == 0);
  CHECK(v.bos_id() == 1);
  CHECK(v.eos_id() == 2);
  CHECK(v.unk_id() == 3);
  CHECK(v.size() == 9);
  CHECK(v.id("a") == 4);
  CHECK(v.id("zzz") == v.unk_id());
  CHECK(v.contains("c"));
  CHECK(!v.contains("zzz"));
  CHECK(v.token(5) == "b");
  // The vocabulary depends on the counts only, not on the order of the corpus.
  std::vector<std::string> reversed(corpus.rbegin(), corpus.rend());
  CHECK(Vocab::build(reversed) == v);
  auto min2 = Vocab::build(corpus, 2);
  CHECK(min2.tokens() == std::vector<std::string>{"<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "e"});
  auto top = Vocab::build(corpus, 1, 6);
  CHECK(top.tokens() == std::vector<std::string>{"<pad>", "<bos>", "<eos>", "<unk>", "a", "b"});
  auto plain = Vocab::build(corpus, 1, 2, false);
  CHECK(plain.tokens() == std::vector<std::string>{"a", "b"});
  CHECK(!plain.has_specials());
  CHECK_THROWS_WITH_AS(Vocab::build(corpus, 0), doctest::Contains("min_freq must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(Vocab::build(corpus, 1, 3), doctest::Contains("max_size must be -1 (no limit) or >= 4"), Error);
}

TEST_CASE("Vocab encode/decode roundtrip, unknown tokens, and errors") {
  auto v = Vocab::from_tokens({"AA", "B", "K"});
  CHECK(v.size() == 7);
  auto ids = v.encode({"K", "AA", "ZH", "B"});
  CHECK(ids == std::vector<int64_t>{6, 4, 3, 5});
  CHECK(v.decode(ids) == std::vector<std::string>{"K", "AA", "<unk>", "B"});
  std::vector<int64_t> framed = {v.bos_id(), 6, 4, v.eos_id(), v.pad_id(), v.pad_id()};
  CHECK(v.decode(framed) == std::vector<std::string>{"K", "AA"});
  CHECK(v.decode(framed, false) == std::vector<std::string>{"<bos>", "K", "AA", "<eos>", "<pad>", "<pad>"});
  CHECK_THROWS_WITH_AS(v.token(7), doctest::Contains("[Vocab] id 7 out of range [0, 7)"), Error);
  CHECK_THROWS_WITH_AS(v.decode({4, -1}), doctest::Contains("id -1 out of range"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_tokens({"a", "b", "a"}), doctest::Contains("duplicate token 'a' (ids 4 and 6)"),
                       Error);
  CHECK_THROWS_WITH_AS(Vocab::from_tokens({"<pad>"}), doctest::Contains("duplicate token '<pad>'"), Error);
  auto plain = Vocab::from_tokens({"x", "y"}, false);
  CHECK(plain.id("y") == 1);
  CHECK_THROWS_WITH_AS(plain.id("z"), doctest::Contains("unknown token 'z' (this vocabulary has no <unk>"), Error);
  CHECK_THROWS_WITH_AS(plain.pad_id(), doctest::Contains("no special tokens"), Error);
  CHECK(plain.decode({0, 1}) == std::vector<std::string>{"x", "y"});  // ids 0..2 are not specials here
}

TEST_CASE("Vocab JSON roundtrip and malformed JSON") {
  auto v = Vocab::build(split_utf8("héllo wörld, ünïcode «quotes» \"x\" \\ 日本"));
  auto back = Vocab::from_json(v.to_json());
  CHECK(back == v);
  CHECK(back.id("ö") == v.id("ö"));
  auto plain = Vocab::from_tokens({"a", "<pad>"}, false);
  CHECK(Vocab::from_json(plain.to_json()) == plain);
  CHECK(Vocab::from_json(Vocab().to_json()).size() == 0);
  CHECK_THROWS_WITH_AS(Vocab::from_json("{not json"), doctest::Contains("[Vocab::from_json] not valid JSON"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json("[1,2]"), doctest::Contains("expected a JSON object, got array"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(R"({"format":"other","version":1,"specials":false,"tokens":[]})"),
                       doctest::Contains("wrong \"format\""), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(R"({"format":"focus.vocab","version":2,"specials":false,"tokens":[]})"),
                       doctest::Contains("unsupported \"version\""), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(R"({"format":"focus.vocab","version":1,"specials":false,"tokens":["a",3]})"),
                       doctest::Contains("token 1 is not a string: 3"), Error);
  CHECK_THROWS_WITH_AS(
      Vocab::from_json(R"({"format":"focus.vocab","version":1,"specials":true,"tokens":["<pad>","<eos>","<bos>","<unk>"]})"),
      doctest::Contains("token 1 is '<eos>', expected the special '<bos>'"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(R"({"format":"focus.vocab","version":1,"specials":true,"tokens":["<pad>"]})"),
                       doctest::Contains("\"specials\" is true but only 1 tokens"), Error);
  CHECK_THROWS_WITH_AS(Vocab::from_json(R"({"format":"focus.vocab","version":1,"specials":false,"tokens":["a","a"]})"),
                       doctest::Contains("duplicate token 'a'"), Error);
}

TEST_CASE("split_utf8: one string per code point; invalid UTF-8 is an error") {
  CHECK(split_utf8("").empty());
  CHECK(split_utf8("ab") == std::vector<std::string>{"a", "b"});
  // 2-, 3- and 4-byte sequences: é (C3 A9), € (E2 82 AC), 😀 (F0 9F 98 80)
  auto cps = split_utf8("é€😀x");
  REQUIRE(cps.size() == 4);
  CHECK(cps[0] == "\xC3\xA9");
  CHECK(cps[1] == "\xE2\x82\xAC");
  CHECK(cps[2] == "\xF0\x9F\x98\x80");
  CHECK(cps[3] == "x");
  CHECK_THROWS_WITH_AS(split_utf8("ab\x80"), doctest::Contains("[split_utf8] invalid UTF-8 at byte 2 (0x80): stray continuation byte"), Error);
  CHECK_THROWS_WITH_AS(split_utf8("a\xC3"), doctest::Contains("at byte 1 (0xc3): sequence truncated"), Error);
  CHECK_THROWS_WITH_AS(split_utf8("\xE2\x82x"), doctest::Contains("cut short by a non-continuation byte"), Error);
  CHECK_THROWS_WITH_AS(split_utf8("\xC0\xAF"), doctest::Contains("never occurs in UTF-8"), Error);    // overlong '/'
  CHECK_THROWS_WITH_AS(split_utf8("\xE0\x80\xAF"), doctest::Contains("overlong form"), Error);       // overlong '/'
  CHECK_THROWS_WITH_AS(split_utf8("\xED\xA0\x80"), doctest::Contains("surrogate"), Error);           // U+D800
  CHECK_THROWS_WITH_AS(split_utf8("\xF4\x90\x80\x80"), doctest::Contains("beyond U+10FFFF"), Error);  // U+110000
  CHECK(is_valid_utf8("é€😀"));
  CHECK(!is_valid_utf8("\xFF"));
  CHECK(sanitize_utf8("a\xFF" "b\xC3") == "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  CHECK(sanitize_utf8("é€") == "é€");
}

TEST_CASE("split_words: runs of letters and digits, punctuation on its own") {
  CHECK(split_words("Call me Ishmael. Some years ago--never mind how long") ==
        std::vector<std::string>{"call", "me", "ishmael", ".", "some", "years", "ago", "-", "-", "never", "mind",
                                 "how", "long"});
  CHECK(split_words("Don't WIN $1,000!!", false) ==
        std::vector<std::string>{"Don", "'", "t", "WIN", "$", "1", ",", "000", "!", "!"});
  CHECK(split_words("Café\tnaïve\r\n日本語 x2") == std::vector<std::string>{"café", "naïve", "日本語", "x2"});
  CHECK(split_words(" \n\t ").empty());
  CHECK_THROWS_WITH_AS(split_words("ok \xFE"), doctest::Contains("[split_words] invalid UTF-8 at byte 3"), Error);
}

TEST_CASE("stable_hash is FNV-1a 64 and hash_split keeps the fractions") {
  // Published FNV-1a 64-bit test vectors.
  CHECK(stable_hash("") == 0xcbf29ce484222325ull);
  CHECK(stable_hash("a") == 0xaf63dc4c8601ec8cull);
  CHECK(stable_hash("foobar") == 0x85944171f73967e8ull);
  std::map<Split, int> counts;
  const int n = 100000;
  for (int i = 0; i < n; ++i) ++counts[hash_split(fmt::format("word{}", i), 0.9, 0.05)];
  CHECK(counts[Split::Train] == doctest::Approx(0.90 * n).epsilon(0.01));
  CHECK(counts[Split::Valid] == doctest::Approx(0.05 * n).epsilon(0.05));
  CHECK(counts[Split::Test] == doctest::Approx(0.05 * n).epsilon(0.05));
  // Same key, same split; the extremes put everything in one split.
  CHECK(hash_split("ABACUS", 0.8, 0.1) == hash_split("ABACUS", 0.8, 0.1));
  CHECK(hash_split("x", 1.0, 0.0) == Split::Train);
  CHECK(hash_split("x", 0.0, 1.0) == Split::Valid);
  CHECK(hash_split("x", 0.0, 0.0) == Split::Test);
  CHECK(fmt::format("{}", Split::Valid) == "valid");
  CHECK(parse_split("test") == Split::Test);
  CHECK(parse_split("validation") == Split::Valid);
  CHECK_THROWS_WITH_AS(parse_split("trian"), doctest::Contains("[split] unknown split 'trian'"), Error);
  CHECK_THROWS_WITH_AS(hash_split("x", 0.9, 0.2), doctest::Contains("train_frac + valid_frac must be <= 1"), Error);
  CHECK_THROWS_WITH_AS(hash_split("x", -0.1, 0.2), doctest::Contains("train_frac must be in [0, 1]"), Error);
}

}  // TEST_SUITE
