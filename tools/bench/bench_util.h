#pragma once
// Helpers shared by the benchmark programs of tools/bench: time, running a command, the
// PyTorch script beside the sources, the CPU's name.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace focus::bench {

/// Seconds on the steady clock.
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
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
