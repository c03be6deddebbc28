// Fuzz target: config files and --set values (training/config.h), with the default config
// of each model of the registry. The first byte picks the model and how the rest is read:
// a JSON config file (merge_json, as --config FILE), lines of --set key=value (apply), or a
// stored config.json (from_json). An accepted config must write itself out (to_json, as
// config.json and the checkpoint's metadata) and read back equal.
#include <sstream>

#include "fuzz.h"
#include "training/config.h"
#include "models/zoo/registry.h"

using namespace focus;

namespace {

void round_trip(const training::Config& c) {
  std::string json;
  focus_fuzz::must_succeed([&] { json = c.to_json(); },
                           "an accepted config cannot be written");
  training::Config back;
  focus_fuzz::must_succeed([&] { back = training::Config::from_json(json); },
                           "a written config.json does not read back: " + json);
  // from_json infers types from JSON (a real 1.0 may come back as an integer, a string "1"
  // stays a string), so the round trip that matters is merge_json into the same keys.
  training::Config merged = c;
  focus_fuzz::must_succeed([&] { merged.merge_json(json, "config.json"); },
                           "a written config.json does not merge back: " + json);
  FUZZ_REQUIRE(merged == c, "config.json round trip changed a value: " + json);
  for (const std::string& k : c.keys()) {
    switch (c.type(k)) {
      case training::Config::Type::String: (void)c.str(k); break;
      case training::Config::Type::Integer: (void)c.integer(k); break;
      case training::Config::Type::Real: (void)c.real(k); break;
      case training::Config::Type::Boolean: (void)c.boolean(k); break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto& models = zoo::models();
  const uint8_t sel = data[0];
  const std::string text(focus_fuzz::as_text(data + 1, size - 1));
  training::Config c = models[(sel >> 2) % models.size()].default_config();
  const training::Config before = c;
  switch (sel & 3) {
    case 0:
    case 3: {  // a JSON config file: all or nothing
      if (!focus_fuzz::accepts([&] { c.merge_json(text, "fuzz.json"); })) {
        FUZZ_REQUIRE(c == before, "a rejected config file changed the config");
        return 0;
      }
      break;
    }
    case 1: {  // --set values, one per line
      std::istringstream in(text);
      std::string line;
      while (std::getline(in, line)) {
        training::Config prev = c;
        if (!focus_fuzz::accepts([&] { c.apply(line); })) FUZZ_REQUIRE(c == prev, "a rejected --set changed the config");
      }
      break;
    }
    case 2: {  // a stored config.json
      if (!focus_fuzz::accepts([&] { c = training::Config::from_json(text); })) return 0;
      break;
    }
  }
  round_trip(c);
  return 0;
}
