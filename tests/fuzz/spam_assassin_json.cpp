// Fuzz target: the SpamAssassin package's message files (models/datasets:
// parse_spam_assassin_json), the message check, and the cache format written from them.
#include "fuzz.h"
#include "models/datasets/datasets.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  datasets::Email e;
  if (!focus_fuzz::accepts([&] { e = datasets::parse_spam_assassin_json(focus_fuzz::as_text(data, size), "fuzz.json"); }))
    return 0;
  if (!focus_fuzz::accepts([&] { datasets::check_email(e.raw, "fuzz.json"); })) return 0;
  // What `focus data fetch` does with an accepted message: write it to emails.dat, which must
  // read back the same.
  std::string dat;
  focus_fuzz::must_succeed([&] { dat = datasets::format_spam_assassin({e}); },
                           "an accepted message cannot be written to emails.dat");
  std::vector<datasets::Email> back;
  focus_fuzz::must_succeed([&] { back = datasets::parse_spam_assassin(dat, "emails.dat"); },
                           "emails.dat written from an accepted message does not read back");
  FUZZ_REQUIRE(back.size() == 1 && back[0].id == e.id && back[0].group == e.group && back[0].spam == e.spam &&
                   back[0].raw == e.raw,
               "emails.dat round trip");
  return 0;
}
