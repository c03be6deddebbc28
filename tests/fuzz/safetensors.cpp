// Fuzz target: the safetensors reader (core/safetensors.h), on bytes as a file holds them.
// Accepted files must survive a round trip (serialize, parse again: same names, dtypes,
// shapes, bytes and metadata) and every tensor must be readable (converted to float64).
#include <cstring>

#include "core/safetensors.h"
#include "core/tensor.h"
#include "fuzz.h"

using namespace focus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TensorDict dict;
  SafetensorsMetadata meta;
  if (!focus_fuzz::accepts([&] { dict = safetensors_deserialize(data, size, &meta); })) return 0;
  for (const auto& [name, t] : dict) {
    FUZZ_REQUIRE(t.defined(), name);
    // Every element is read: a value the dtype cannot hold (a bool byte other than 0/1)
    // would be undefined behaviour here.
    Tensor d = t.to(kFloat64);
    FUZZ_REQUIRE(d.numel() == t.numel(), name);
  }
  std::vector<uint8_t> again;
  focus_fuzz::must_succeed([&] { again = safetensors_serialize(dict, meta); },
                           "an accepted file cannot be written back");
  TensorDict dict2;
  SafetensorsMetadata meta2;
  focus_fuzz::must_succeed([&] { dict2 = safetensors_deserialize(again.data(), again.size(), &meta2); },
                           "a file written by safetensors_serialize does not parse");
  FUZZ_REQUIRE(meta == meta2, "metadata changed in the round trip");
  FUZZ_REQUIRE(dict.keys() == dict2.keys(), "names changed in the round trip");
  for (const auto& [name, t] : dict) {
    const Tensor& u = dict2.at(name);
    FUZZ_REQUIRE(t.dtype() == u.dtype() && t.shape() == u.shape(), name);
    const Tensor a = t.contiguous(), b = u.contiguous();
    const size_t n = static_cast<size_t>(a.numel()) * a.element_size();
    FUZZ_REQUIRE(n == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), n) == 0, name + ": bytes changed");
  }
  return 0;
}
