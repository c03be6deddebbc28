#pragma once
// Helpers shared by the benchmark programs of tools/bench: the command line (CLI11), time,
// running a command, the PyTorch script beside the sources, the CPU's name.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace focus::bench {

/// Parses argv into app's options. Returns std::nullopt to go on, else the status main
/// returns: 0 after --help (printed on stdout), CLI11's non-zero code after an unknown flag or
/// a bad value (its message on stderr).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return std::nullopt;
}

/// The PyTorch half's flags, the same in every benchmark: --no-torch (focus only) and
/// --python PATH (the interpreter that runs the PyTorch script; python keeps its default).
inline void add_torch_flags(CLI::App& app, bool& no_torch, std::string& python) {
  app.add_flag("--no-torch", no_torch, "focus only: skip the PyTorch side");
  app.add_option("--python", python, "Python interpreter for the PyTorch script")->capture_default_str();
}

/// A check that a flag's value is a number no less than lo (greater than lo where strict);
/// --help shows it as POSITIVE, NONNEGATIVE or "MIN lo". (CLI11's own PositiveNumber prints
/// its range, 0 to 1.8e308, in full.)
inline CLI::Validator at_least(double lo, bool strict = false) {
  std::string name =
      lo == 0 ? (strict ? "POSITIVE" : "NONNEGATIVE") : fmt::format("{} {}", strict ? "ABOVE" : "MIN", lo);
  return CLI::Validator(
      [lo, strict](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return fmt::format("'{}' is not a number", s);
        if (strict ? v > lo : v >= lo) return {};
        return fmt::format("{} must be {} {}", s, strict ? "greater than" : "at least", lo);
      },
      name, name);
}

/// A number option no less than lo (greater than lo where strict), its default shown in --help.
template <class T>
CLI::Option* add_number(CLI::App& app, const std::string& name, T& value, const std::string& help, double lo,
                        bool strict = false) {
  return app.add_option(name, value, help)->capture_default_str()->check(at_least(lo, strict));
}

/// A comma-separated list option ("--sizes 4096,8192"); the given values replace the default,
/// which --help shows.
template <class T>
CLI::Option* add_list(CLI::App& app, const std::string& name, std::vector<T>& values, const std::string& help) {
  std::string shown;
  for (const T& v : values) shown += (shown.empty() ? "" : ",") + fmt::format("{}", v);
  return app.add_option(name, values, help)->delimiter(',')->type_name("LIST")->default_str(shown);
}

/// A list of thread counts ("--threads 1,2"), each at least 1; with allow_default, "default"
/// is 0 (no set_num_threads call).
inline CLI::Option* add_thread_list(CLI::App& app, const std::string& name, std::vector<int>& values,
                                    const std::string& help, bool allow_default) {
  std::string shown;
  for (int v : values) shown += (shown.empty() ? "" : ",") + (v == 0 ? std::string("default") : std::to_string(v));
  CLI::Option* opt = app.add_option(name, values, help)->delimiter(',')->type_name("LIST")->default_str(shown);
  if (allow_default) opt->transform(CLI::Transformer({{"default", "0"}}).description(""));
  return opt->check(at_least(allow_default ? 0 : 1).description(""));
}

/// Seconds on the steady clock.
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Best wall time of f in seconds over repeats runs, after one untimed run.
template <typename F> double best_time(int repeats, const F& f) {
  f();
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

/// s as one single-quoted shell word.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// Runs a shell command and returns its stdout; errors "[tool] ..." naming the command (and
/// its output) when it cannot start or exits non-zero.
inline std::string run_command(const std::string& cmd, const char* tool) {
  FILE* p = popen(cmd.c_str(), "r");
  FOCUS_CHECK(p != nullptr, "[{}] cannot run: {}", tool, cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  FOCUS_CHECK(rc == 0, "[{}] command failed ({}): {}\n{}", tool, rc, cmd, out);
  return out;
}

/// The file `name` of tools/bench (a PyTorch script beside the sources). __FILE__ may be
/// relative to the compiler's working directory (ccache's CCACHE_BASEDIR), which for CMake is
/// the executable's directory; the checkout's tools/bench from the working directory last.
inline std::string script_beside(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path rel = fs::path(__FILE__).parent_path() / name;
  std::vector<fs::path> candidates{rel};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && rel.is_relative()) candidates.push_back(exe.parent_path() / rel);
  candidates.push_back(fs::current_path() / "tools/bench" / name);
  for (const auto& c : candidates)
    if (fs::exists(c, ec)) return fs::weakly_canonical(c, ec).string();
  return rel.string();
}

/// The CPU's model name from /proc/cpuinfo ("unknown" when there is none).
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace focus::bench
