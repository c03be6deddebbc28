#pragma once
// The zoo programs' shared --device checks, run through the `focus` command line in-process:
// a device the build or machine cannot use is refused with the clear error of
// training::usable_device before any work (for train: before the run directory is touched), and
// --device cpu is what the commands do without the flag.
#include <doctest/doctest.h>

#include <focus/focus.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tools/focus/cli.h"

namespace focus::testing {

struct FocusResult {
  int rc;
  std::string out, err;
};

inline FocusResult run_focus(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int rc = focus::cli::run(args, out, err);
  return {rc, out.str(), err.str()};
}

/// The device specs this machine cannot use: cuda:99 always; plain cuda too when there is no
/// GPU (a build without CUDA, or none visible). Says so when a GPU exists.
inline std::vector<std::string> unusable_devices() {
  if (cuda::is_available()) {
    MESSAGE("a GPU is visible (" << cuda::device_count() << "): only --device cuda:99 is checked to be refused");
    return {"cuda:99"};
  }
  return {"cuda", "cuda:99"};
}

/// `focus <args> --device SPEC` fails (exit status 1) with "[command] --device SPEC: this
/// device cannot be used (...); use --device cpu" for every unusable SPEC, and prints nothing
/// on stdout (the error comes before any work). command: the tag of the error ("train",
/// "eval", "predict", ...), which is args[0].
inline void check_device_refused(const std::vector<std::string>& args) {
  REQUIRE(!args.empty());
  for (const std::string& spec : unusable_devices()) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--device", spec});
    const FocusResult r = run_focus(a);
    INFO("focus " << args[0] << " ... --device " << spec << ": " << r.err);
    CHECK(r.rc == 1);
    CHECK(r.err.find("focus: error: [" + args[0] + "] --device " + spec + ": this device cannot be used") !=
          std::string::npos);
    CHECK(r.err.find("; use --device cpu") != std::string::npos);
    CHECK(r.out.empty());
  }
}

/// The output of a command with its speed figures ("(41234 images/s)", "(0.3 s)") masked.
inline std::string without_speeds(const std::string& text) {
  static const std::regex speed(R"(\(\d+(\.\d+)? (images/s|s)\))");
  return std::regex_replace(text, speed, "(...)");
}

/// `focus <args> --device cpu` succeeds with the same output as `focus <args>` (speeds aside).
inline void check_cpu_same(const std::vector<std::string>& args) {
  const FocusResult plain = run_focus(args);
  std::vector<std::string> a = args;
  a.insert(a.end(), {"--device", "cpu"});
  const FocusResult cpu = run_focus(a);
  INFO(plain.err, cpu.err);
  CHECK(plain.rc == 0);
  CHECK(cpu.rc == 0);
  CHECK(!plain.out.empty());
  CHECK(without_speeds(cpu.out) == without_speeds(plain.out));
}

}  // namespace focus::testing
