#pragma once
/// Loading the PyTorch reference files the gen_*.py scripts write (see tests/parity/st.py).
/// CTest runs tests/parity/generate.py once (fixture `parity_generate`) and sets
/// FOCUS_PARITY_DIR for every suite whose name starts with "parity".
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/safetensors.h"

namespace parity {

/// The folder holding the reference files ($FOCUS_PARITY_DIR); fails the test when unset.
inline std::string dir() {
  const char* d = std::getenv("FOCUS_PARITY_DIR");
  if (d == nullptr || *d == '\0')
    FAIL("FOCUS_PARITY_DIR is not set: run through ctest, or by hand: /usr/bin/python3 tests/parity/generate.py "
         "/tmp/parity && FOCUS_PARITY_DIR=/tmp/parity build/release/tests/focus_tests --test-suite=parity_...");
  return d == nullptr ? std::string() : std::string(d);
}

/// $FOCUS_PARITY_DIR/name.safetensors as a TensorDict; fails the test with a clear message
/// when the file is missing or unreadable.
inline focus::TensorDict load(const std::string& name, focus::SafetensorsMetadata* metadata = nullptr) {
  const std::string path = dir() + "/" + name + ".safetensors";
  if (!std::filesystem::exists(path))
    FAIL("parity file missing: " << path << " (did tests/parity/generate.py run, and does its gen_*.py write '"
                                 << name << "'?)");
  try {
    return focus::load_safetensors(path, metadata);
  } catch (const std::exception& e) {
    FAIL("parity file unreadable: " << path << ": " << e.what());
  }
  return {};
}

}  // namespace parity
