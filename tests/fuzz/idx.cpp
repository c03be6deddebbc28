// Fuzz target: the IDX reader (data/idx.h) and Fashion-MNIST's IDX header check
// (models/datasets), on the bytes of a file.
#include "core/tensor.h"
#include "data/idx.h"
#include "fuzz.h"
#include "models/datasets/datasets.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = focus_fuzz::as_text(data, size);
  Tensor t;
  if (focus_fuzz::accepts([&] { t = data::parse_idx(bytes, "fuzz.idx"); })) {
    FUZZ_REQUIRE(t.defined() && t.is_contiguous(), "parse_idx");
    // The header's size must be what the file holds: no element comes from outside it.
    FUZZ_REQUIRE(static_cast<size_t>(t.numel()) <= size, "more elements than bytes");
    Tensor d = t.to(kFloat64);
    FUZZ_REQUIRE(d.numel() == t.numel(), "to(float64)");
  }
  for (bool images : {true, false}) {
    int64_t n = -1;
    if (focus_fuzz::accepts([&] { n = datasets::check_fashion_mnist_idx(bytes, images, "fuzz.idx"); }))
      FUZZ_REQUIRE(n >= 0 && static_cast<size_t>(n) <= size, "check_fashion_mnist_idx count");
  }
  return 0;
}
