#pragma once
// Shared helpers of the libFuzzer targets (docs/RELIABILITY.md, "Fuzzing").
//
// The rule every target checks: a reader of untrusted bytes either succeeds or throws
// focus::Error. Any other exception, a crash, a sanitizer report, a leak, a timeout or
// an allocation over -malloc_limit_mb is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <typeinfo>

#include "core/error.h"

namespace focus_fuzz {

/// Stops the run with a message; libFuzzer reports the abort and saves the input.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_REQUIRE(cond, msg)                                                   \
  do {                                                                            \
    if (!(cond)) ::focus_fuzz::fail(std::string(#cond " failed: ") + (msg));      \
  } while (0)

/// Runs f; focus::Error is an accepted rejection (returns false), success returns true,
/// anything else thrown is a finding.
template <class F>
bool accepts(F&& f) {
  try {
    f();
    return true;
  } catch (const focus::Error&) {
    return false;
  } catch (const std::exception& e) {
    fail(std::string("an exception other than focus::Error: ") + typeid(e).name() + ": " + e.what());
  } catch (...) {
    fail("a non-std exception");
  }
}

/// Runs f, which must succeed: the second half of a round trip whose first half was
/// accepted. Any exception is a finding, reported with its message.
template <class F>
void must_succeed(F&& f, const std::string& what) {
  try {
    f();
  } catch (const std::exception& e) {
    fail(what + ": " + typeid(e).name() + ": " + e.what());
  } catch (...) {
    fail(what + ": a non-std exception");
  }
}

/// A per-process scratch folder (removed at exit), for readers that take a path.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path d = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                              ("focus-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return dir;
}

/// Writes bytes to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path p = scratch_dir() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) fail("cannot write the scratch file " + p.string());
  return p.string();
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace focus_fuzz
