// Fuzz target: the cached SpamAssassin file emails.dat (models/datasets: parse_spam_assassin);
// what it accepts must be written back byte for byte by format_spam_assassin.
#include "fuzz.h"
#include "models/datasets/datasets.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<datasets::Email> emails;
  const std::string_view text = focus_fuzz::as_text(data, size);
  if (!focus_fuzz::accepts([&] { emails = datasets::parse_spam_assassin(text, "emails.dat"); })) return 0;
  std::string again;
  focus_fuzz::must_succeed([&] { again = datasets::format_spam_assassin(emails); },
                           "accepted messages cannot be written back");
  std::vector<datasets::Email> back;
  focus_fuzz::must_succeed([&] { back = datasets::parse_spam_assassin(again, "emails.dat"); },
                           "a re-written emails.dat does not read back");
  FUZZ_REQUIRE(back.size() == emails.size(), "count");
  for (size_t i = 0; i < back.size(); ++i)
    FUZZ_REQUIRE(back[i].id == emails[i].id && back[i].group == emails[i].group && back[i].spam == emails[i].spam &&
                     back[i].raw == emails[i].raw,
                 "message " + std::to_string(i));
  return 0;
}
