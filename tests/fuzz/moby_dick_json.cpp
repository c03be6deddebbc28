// Fuzz target: the Moby Dick package's section files (models/datasets:
// parse_moby_dick_section, moby_dick_section_text).
#include "fuzz.h"
#include "models/datasets/datasets.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  datasets::MobyDickSection s;
  if (!focus_fuzz::accepts([&] { s = datasets::parse_moby_dick_section(focus_fuzz::as_text(data, size), "fuzz.json"); }))
    return 0;
  std::string text;
  if (focus_fuzz::accepts([&] { text = datasets::moby_dick_section_text(s); }))
    FUZZ_REQUIRE(!text.empty() && text.back() == '\n', "a section's text ends with one newline");
  return 0;
}
