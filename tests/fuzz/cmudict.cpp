// Fuzz target: the CMUdict reader (models/datasets: parse_cmudict), then what G2P does with
// its entries (models/g2p/data.h: grouping, normalizing, stress stripping).
#include "fuzz.h"
#include "models/datasets/datasets.h"
#include "models/g2p/data.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<datasets::CmudictEntry> entries;
  if (!focus_fuzz::accepts([&] { entries = datasets::parse_cmudict(focus_fuzz::as_text(data, size), "fuzz.dict"); }))
    return 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> pairs;
  for (const auto& e : entries) {
    FUZZ_REQUIRE(!e.word.empty() && !e.phonemes.empty(), "an empty word or pronunciation was accepted");
    pairs.emplace_back(e.word, e.phonemes);
  }
  focus_fuzz::accepts([&] {
    int64_t dropped = 0;
    auto words = models::g2p::group_pronunciations(pairs, &dropped);
    FUZZ_REQUIRE(dropped >= 0 && static_cast<size_t>(dropped) <= pairs.size(), "dropped count");
    for (const auto& w : words) (void)models::g2p::word_letters(w.word);
    (void)models::g2p::without_stress(std::move(words));
  });
  return 0;
}
