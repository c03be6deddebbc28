// Fuzz target: `focus plot RUN_DIR` (models/zoo/pictures.h: plot_run), which reads
// RUN_DIR/metrics.jsonl and draws PNG files. The input is metrics.jsonl; the run directory is
// a per-process scratch folder.
#include <filesystem>

#include "fuzz.h"
#include "models/zoo/pictures.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path run = focus_fuzz::scratch_dir() / "run";
  std::error_code ec;
  std::filesystem::remove_all(run, ec);
  std::filesystem::create_directories(run);
  (void)focus_fuzz::write_scratch("run/metrics.jsonl", data, size);
  std::vector<std::string> written;
  if (focus_fuzz::accepts([&] { written = zoo::plot_run(run.string()); })) {
    FUZZ_REQUIRE(!written.empty(), "plot_run accepted a file and wrote nothing");
    for (const auto& p : written) FUZZ_REQUIRE(std::filesystem::is_regular_file(p), p + " missing");
  }
  return 0;
}
