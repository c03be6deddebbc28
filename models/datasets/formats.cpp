// Parsers of the original dataset files and of the cache formats, and the loaders.
#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/idx.h"
#include "models/datasets/datasets.h"
#include "models/datasets/io.h"

namespace focus::datasets {

namespace {

using json = nlohmann::json;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_space(s.front()) || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_space(s.back()) || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

/// Calls f(line, 1-based line number) for each '\n'-separated line of text (without the
/// newline; a last line without one too).
template <class F>
void for_each_line(std::string_view text, F&& f) {
  int64_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    f(text.substr(pos, end - pos), ++line_no);
    pos = end + 1;
  }
}

/// 1-based line of byte offset `pos` in text.
int64_t line_of(std::string_view text, size_t pos) {
  pos = std::min(pos, text.size());
  return 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n');
}

/// Parses JSON, turning errors into focus::Error "[what] source line N: bad JSON (...)".
json parse_json(std::string_view text, const std::string& what, const std::string& source) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    FOCUS_FAIL("[{}] {} line {}: bad JSON ({})", what, source, line_of(text, e.byte > 0 ? e.byte - 1 : 0),
               e.what());
  } catch (const json::exception& e) {
    // Not a syntax error but still bad input: a number too large for a double (out_of_range.406).
    FOCUS_FAIL("[{}] {}: bad JSON ({})", what, source, e.what());
  }
}

const std::string& string_field(const json& j, const char* key, const std::string& what, const std::string& source) {
  FOCUS_CHECK(j.is_object(), "[{}] {}: expected a JSON object", what, source);
  auto it = j.find(key);
  FOCUS_CHECK(it != j.end(), "[{}] {}: missing field \"{}\"", what, source, key);
  FOCUS_CHECK(it->is_string(), "[{}] {}: field \"{}\" is not a string", what, source, key);
  return it->get_ref<const std::string&>();
}

const std::set<std::string>& vowels() {
  static const std::set<std::string> v = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER",
                                          "EY", "IH", "IY", "OW", "OY", "UH", "UW"};
  return v;
}

bool valid_phoneme(std::string_view p) {
  static const std::set<std::string, std::less<>> symbols(arpabet_symbols().begin(), arpabet_symbols().end());
  if (p.empty()) return false;
  if (p.back() >= '0' && p.back() <= '2') {
    const std::string base(p.substr(0, p.size() - 1));
    return vowels().count(base) > 0;
  }
  return symbols.find(p) != symbols.end();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// UTF-8

namespace {
/// Length of the valid UTF-8 sequence at s[i], or 0 if invalid.
size_t utf8_seq_len(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) { n = 2; cp = b0 & 0x1F; }
  else if (b0 >= 0xE0 && b0 <= 0xEF) { n = 3; cp = b0 & 0x0F; }
  else if (b0 >= 0xF0 && b0 <= 0xF4) { n = 4; cp = b0 & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}
}  // namespace

namespace detail {
int64_t first_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = utf8_seq_len(text, i);
    if (n == 0) return static_cast<int64_t>(i);
    i += n;
  }
  return -1;
}
}  // namespace detail

// ---------------------------------------------------------------------------------------
// cmudict

const std::vector<std::string>& arpabet_symbols() {
  static const std::vector<std::string> s = {"AA", "AE", "AH", "AO", "AW", "AY", "B",  "CH", "D",  "DH",
                                             "EH", "ER", "EY", "F",  "G",  "HH", "IH", "IY", "JH", "K",
                                             "L",  "M",  "N",  "NG", "OW", "OY", "P",  "R",  "S",  "SH",
                                             "T",  "TH", "UH", "UW", "V",  "W",  "Y",  "Z",  "ZH"};
  return s;
}

std::vector<CmudictEntry> parse_cmudict(std::string_view text, const std::string& source) {
  std::vector<CmudictEntry> out;
  for_each_line(text, [&](std::string_view line, int64_t line_no) {
    line = trim(line);
    if (line.empty() || line.substr(0, 3) == ";;;") return;
    auto fields = split_fields(line);
    // A trailing comment ("word  W ER1 D # note", cmudict.dict style) after the first field.
    for (size_t k = 1; k < fields.size(); ++k) {
      if (fields[k].front() == '#') {
        fields.resize(k);
        break;
      }
    }
    std::string word(fields[0]);
    FOCUS_CHECK(fields.size() >= 2, "[cmudict] {} line {}: no phonemes after the word '{}'", source, line_no, word);
    // Variant marker "(n)" at the end of the word.
    if (word.size() >= 3 && word.back() == ')') {
      const size_t open = word.rfind('(');
      if (open != std::string::npos && open > 0 && open + 2 < word.size()) {
        const std::string_view inner(word.data() + open + 1, word.size() - open - 2);
        const bool digits = std::all_of(inner.begin(), inner.end(), [](char c) { return c >= '0' && c <= '9'; });
        FOCUS_CHECK(digits, "[cmudict] {} line {}: bad variant marker in '{}' (expected WORD(n))", source, line_no,
                    word);
        word.resize(open);
      }
    }
    for (char& c : word) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    CmudictEntry e;
    e.word = std::move(word);
    e.phonemes.reserve(fields.size() - 1);
    for (size_t k = 1; k < fields.size(); ++k) {
      FOCUS_CHECK(valid_phoneme(fields[k]),
                  "[cmudict] {} line {}: '{}' is not an ARPAbet phoneme (word '{}'; expected one of {} with "
                  "stress 0/1/2 on vowels)",
                  source, line_no, fields[k], e.word, fmt::join(arpabet_symbols(), " "));
      e.phonemes.emplace_back(fields[k]);
    }
    out.push_back(std::move(e));
  });
  FOCUS_CHECK(!out.empty(), "[cmudict] {}: no entries (empty dictionary)", source);
  return out;
}

std::vector<CmudictEntry> load_cmudict(const std::filesystem::path& dir) {
  const auto path = dir / "dict.txt";
  return parse_cmudict(detail::read_file(path, "cmudict"), path.string());
}

std::vector<CmudictEntry> load_cmudict() { return load_cmudict(dataset_dir("cmudict")); }

// ---------------------------------------------------------------------------------------
// moby-dick

MobyDickSection parse_moby_dick_section(std::string_view text, const std::string& source) {
  const json j = parse_json(text, "moby-dick", source);
  MobyDickSection s;
  s.chapter = string_field(j, "chapter", "moby-dick", source);
  s.title = string_field(j, "title", "moby-dick", source);
  s.text = string_field(j, "text", "moby-dick", source);
  FOCUS_CHECK(!s.chapter.empty(), "[moby-dick] {}: empty \"chapter\"", source);
  FOCUS_CHECK(!trim(s.text).empty(), "[moby-dick] {}: empty \"text\"", source);
  return s;
}

std::string moby_dick_section_text(const MobyDickSection& section) {
  const bool numbered = std::all_of(section.chapter.begin(), section.chapter.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
  std::string out;
  if (numbered) {
    out = "CHAPTER " + section.chapter + ".";
    if (!section.title.empty()) out += " " + section.title;
    out += "\n\n";
  }
  std::string_view body = section.text;
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  out.append(body);
  out += '\n';
  return out;
}

std::string load_moby_dick(const std::filesystem::path& dir) {
  const auto path = dir / "moby-dick.txt";
  std::string text = detail::read_file(path, "moby-dick");
  FOCUS_CHECK(!text.empty(), "[moby-dick] {} is empty", path.string());
  const int64_t bad = detail::first_invalid_utf8(text);
  FOCUS_CHECK(bad < 0, "[moby-dick] {} line {}: not valid UTF-8", path.string(), line_of(text, bad));
  return text;
}

std::string load_moby_dick() { return load_moby_dick(dataset_dir("moby-dick")); }

// ---------------------------------------------------------------------------------------
// sotu

namespace {
Speech speech_of(const json& j, const std::string& source) {
  Speech s;
  auto year = j.find("year");
  FOCUS_CHECK(year != j.end() && year->is_number_integer(), "[sotu] {}: missing integer field \"year\"", source);
  s.year = year->get<int64_t>();
  FOCUS_CHECK(s.year >= 1790 && s.year <= 2100, "[sotu] {}: year {} is outside 1790..2100", source, s.year);
  s.name = string_field(j, "name", "sotu", source);
  s.party = string_field(j, "party", "sotu", source);
  s.text = string_field(j, "text", "sotu", source);
  FOCUS_CHECK(!trim(s.name).empty(), "[sotu] {}: empty \"name\"", source);
  FOCUS_CHECK(!trim(s.text).empty(), "[sotu] {}: empty \"text\"", source);
  return s;
}
}  // namespace

Speech parse_sotu_speech(std::string_view text, const std::string& source) {
  return speech_of(parse_json(text, "sotu", source), source);
}

std::string format_sotu(const std::vector<Speech>& speeches) {
  std::string out;
  for (const auto& s : speeches)
    out += json{{"year", s.year}, {"name", s.name}, {"party", s.party}, {"text", s.text}}.dump() + "\n";
  return out;
}

std::vector<Speech> parse_sotu(std::string_view text, const std::string& source) {
  std::vector<Speech> out;
  for_each_line(text, [&](std::string_view line, int64_t line_no) {
    if (trim(line).empty()) return;
    const std::string where = fmt::format("{} line {}", source, line_no);
    out.push_back(speech_of(parse_json(line, "sotu", where), where));
  });
  FOCUS_CHECK(!out.empty(), "[sotu] {}: no speeches", source);
  return out;
}

std::vector<Speech> load_sotu(const std::filesystem::path& dir) {
  const auto path = dir / "speeches.jsonl";
  return parse_sotu(detail::read_file(path, "sotu"), path.string());
}

std::vector<Speech> load_sotu() { return load_sotu(dataset_dir("sotu")); }

// ---------------------------------------------------------------------------------------
// spam-assassin

namespace {
/// An id, group or checksum field of emails.dat: one field of its message line, which
/// parse_spam_assassin splits at any whitespace (is_space), so no space or control byte.
bool is_spam_field(std::string_view s) {
  return !s.empty() && std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}
}  // namespace

Email parse_spam_assassin_json(std::string_view text, const std::string& source) {
  const json j = parse_json(text, "spam-assassin", source);
  Email e;
  const std::string& id = string_field(j, "id", "spam-assassin", source);
  e.group = string_field(j, "group", "spam-assassin", source);
  e.raw = string_field(j, "text", "spam-assassin", source);
  auto ck = j.find("checksum");
  FOCUS_CHECK(ck != j.end() && ck->is_object(), "[spam-assassin] {}: missing object field \"checksum\"", source);
  const std::string& md5 = string_field(*ck, "value", "spam-assassin", source);
  FOCUS_CHECK(!id.empty() && !e.group.empty() && !md5.empty(), "[spam-assassin] {}: empty id, group or checksum",
              source);
  FOCUS_CHECK(is_spam_field(e.group) && is_spam_field(id) && is_spam_field(md5) &&
                  (e.group + id + md5).find('/') == std::string::npos,
              "[spam-assassin] {}: id, group and checksum must not contain spaces, control characters or '/'",
              source);
  e.id = e.group + "/" + id + "." + md5;
  e.spam = e.group.rfind("spam", 0) == 0;
  check_email(e.raw, source);
  return e;
}

void check_email(std::string_view raw, const std::string& source) {
  FOCUS_CHECK(!raw.empty(), "[spam-assassin] {} line 1: empty message", source);
  std::string_view first = raw.substr(0, raw.find('\n'));
  if (first.substr(0, 5) == "From ") return;
  const size_t colon = first.find(':');
  bool ok = colon != std::string_view::npos && colon > 0;
  for (size_t i = 0; ok && i < colon; ++i) {
    const auto c = static_cast<unsigned char>(first[i]);
    ok = c > 32 && c < 127;
  }
  FOCUS_CHECK(ok, "[spam-assassin] {} line 1: not an email message (expected a header line \"Name: value\" "
              "or an mbox \"From \" line, got '{}')",
              source, std::string(first.substr(0, 60)));
}

std::string format_spam_assassin(const std::vector<Email>& emails) {
  size_t total = 64;
  for (const auto& e : emails) total += e.raw.size() + e.id.size() + e.group.size() + 32;
  std::string out;
  out.reserve(total);
  out += fmt::format("focus-spam-assassin 1 {}\n", emails.size());
  for (const auto& e : emails) {
    FOCUS_CHECK(is_spam_field(e.id) && is_spam_field(e.group),
                "[spam-assassin] id '{}' / group '{}' must be non-empty without spaces or control characters", e.id,
                e.group);
    out += fmt::format("{} {} {} {}\n", e.id, e.group, e.spam ? "spam" : "ham", e.raw.size());
    out += e.raw;
    out += '\n';
  }
  return out;
}

std::vector<Email> parse_spam_assassin(std::string_view data, const std::string& source) {
  size_t pos = 0;
  int64_t line_no = 1;
  auto next_line = [&](const char* what) {
    const size_t end = data.find('\n', pos);
    FOCUS_CHECK(end != std::string_view::npos, "[spam-assassin] {} line {}: truncated (expected {})", source, line_no,
                what);
    std::string_view line = data.substr(pos, end - pos);
    pos = end + 1;
    return line;
  };
  auto to_int = [&](std::string_view s, const char* what) {
    int64_t v = -1;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    FOCUS_CHECK(ec == std::errc() && p == s.data() + s.size() && v >= 0,
                "[spam-assassin] {} line {}: bad {} '{}'", source, line_no, what, std::string(s));
    return v;
  };
  const auto header = split_fields(next_line("the header line"));
  FOCUS_CHECK(header.size() == 3 && header[0] == "focus-spam-assassin",
              "[spam-assassin] {} line 1: not an emails.dat file (expected \"focus-spam-assassin 1 COUNT\")", source);
  FOCUS_CHECK(header[1] == "1", "[spam-assassin] {} line 1: unsupported version {}", source, std::string(header[1]));
  const int64_t count = to_int(header[2], "message count");
  std::vector<Email> out;
  out.reserve(static_cast<size_t>(std::min<int64_t>(count, 1 << 20)));
  for (int64_t k = 0; k < count; ++k) {
    ++line_no;
    const auto f = split_fields(next_line("a message line \"ID GROUP spam|ham BYTES\""));
    FOCUS_CHECK(f.size() == 4 && (f[2] == "spam" || f[2] == "ham"),
                "[spam-assassin] {} line {}: expected \"ID GROUP spam|ham BYTES\" (message {} of {})", source,
                line_no, k + 1, count);
    FOCUS_CHECK(is_spam_field(f[0]) && is_spam_field(f[1]),
                "[spam-assassin] {} line {}: id and group must not contain control characters (message {} of {})",
                source, line_no, k + 1, count);
    const int64_t n = to_int(f[3], "byte count");
    FOCUS_CHECK(static_cast<uint64_t>(n) + 1 <= data.size() - pos,
                "[spam-assassin] {} line {}: truncated: message {} needs {} bytes, {} left", source, line_no,
                std::string(f[0]), n + 1, data.size() - pos);
    Email e;
    e.id = std::string(f[0]);
    e.group = std::string(f[1]);
    e.spam = f[2] == "spam";
    e.raw = std::string(data.substr(pos, static_cast<size_t>(n)));
    pos += static_cast<size_t>(n);
    line_no += std::count(e.raw.begin(), e.raw.end(), '\n');
    FOCUS_CHECK(data[pos] == '\n', "[spam-assassin] {} line {}: message {} is not followed by a newline", source,
                line_no, e.id);
    ++pos;
    ++line_no;  // the line the separator ends (the message's last line, or an empty one)
    out.push_back(std::move(e));
  }
  FOCUS_CHECK(pos == data.size(), "[spam-assassin] {} line {}: unexpected data after the {} messages", source,
              line_no + 1, count);
  return out;
}

std::vector<Email> load_spam_assassin(const std::filesystem::path& dir) {
  const auto path = dir / "emails.dat";
  return parse_spam_assassin(detail::read_file(path, "spam-assassin"), path.string());
}

std::vector<Email> load_spam_assassin() { return load_spam_assassin(dataset_dir("spam-assassin")); }

// ---------------------------------------------------------------------------------------
// fashion-mnist

std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

int64_t check_fashion_mnist_idx(std::string_view b, bool images, const std::string& source) {
  const int ndim = images ? 3 : 1;
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  FOCUS_CHECK(b.size() >= header, "[fashion-mnist] {}: truncated IDX file ({} bytes)", source, b.size());
  auto u8 = [&](size_t i) { return static_cast<unsigned char>(b[i]); };
  FOCUS_CHECK(u8(0) == 0 && u8(1) == 0 && u8(2) == 0x08 && u8(3) == ndim,
              "[fashion-mnist] {}: bad IDX magic {:02x}{:02x}{:02x}{:02x} (expected 000008{:02x}: {})", source, u8(0),
              u8(1), u8(2), u8(3), ndim, images ? "uint8 images [N, 28, 28]" : "uint8 labels [N]");
  std::array<int64_t, 3> dims{};
  for (int d = 0; d < ndim; ++d) {
    const size_t o = 4 + 4 * static_cast<size_t>(d);
    dims[d] = (int64_t(u8(o)) << 24) | (int64_t(u8(o + 1)) << 16) | (int64_t(u8(o + 2)) << 8) | int64_t(u8(o + 3));
  }
  const int64_t n = dims[0];
  FOCUS_CHECK(n > 0, "[fashion-mnist] {}: no examples", source);
  if (images) {
    FOCUS_CHECK(dims[1] == 28 && dims[2] == 28, "[fashion-mnist] {}: images are {}x{}, expected 28x28", source,
                dims[1], dims[2]);
  }
  const uint64_t expect = header + static_cast<uint64_t>(n) * (images ? 28 * 28 : 1);
  FOCUS_CHECK(b.size() == expect, "[fashion-mnist] {}: {} bytes, the header ({} {}) needs {}", source, b.size(), n,
              images ? "images" : "labels", expect);
  if (!images) {
    for (size_t i = header; i < b.size(); ++i) {
      FOCUS_CHECK(u8(i) <= 9, "[fashion-mnist] {}: label {} of example {} is not in 0..9", source, int(u8(i)),
                  i - header);
    }
  }
  return n;
}

FashionMnist load_fashion_mnist(const std::filesystem::path& dir) {
  auto images = [&](const char* file) {
    const auto path = dir / file;
    FOCUS_CHECK(std::filesystem::exists(path), "[fashion-mnist] {} is missing: run `focus data fetch fashion-mnist`",
                path.string());
    Tensor t = data::read_idx(path.string());
    FOCUS_CHECK(t.dim() == 3 && t.size(1) == 28 && t.size(2) == 28 && t.dtype() == kUInt8,
                "[fashion-mnist] {}: expected uint8 images [N, 28, 28], got {} {}", path.string(), t.dtype(),
                t.shape());
    return t;
  };
  auto labels = [&](const char* file, int64_t n) {
    const auto path = dir / file;
    FOCUS_CHECK(std::filesystem::exists(path), "[fashion-mnist] {} is missing: run `focus data fetch fashion-mnist`",
                path.string());
    Tensor t = data::read_idx(path.string());
    FOCUS_CHECK(t.dim() == 1 && t.size(0) == n, "[fashion-mnist] {}: expected {} labels, got shape {}",
                path.string(), n, t.shape());
    t = t.to(kInt64);
    for (int64_t v : t.to_vector<int64_t>()) {
      FOCUS_CHECK(v >= 0 && v <= 9, "[fashion-mnist] {}: label {} is not in 0..9", path.string(), v);
    }
    return t;
  };
  FashionMnist f;
  f.train_images = images("train-images-idx3-ubyte");
  f.train_labels = labels("train-labels-idx1-ubyte", f.train_images.size(0));
  f.test_images = images("t10k-images-idx3-ubyte");
  f.test_labels = labels("t10k-labels-idx1-ubyte", f.test_images.size(0));
  return f;
}

FashionMnist load_fashion_mnist() { return load_fashion_mnist(dataset_dir("fashion-mnist")); }

}  // namespace focus::datasets
