#pragma once
/// safetensors files (https-free summary): 8-byte little-endian header length N, N bytes of
/// JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {"k": "v"}} padded with spaces to a multiple of 8, then the tensors'
/// contiguous little-endian bytes. Readers treat files as untrusted input.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor_dict.h"

namespace focus {

/// String-to-string metadata stored under "__metadata__".
using SafetensorsMetadata = std::map<std::string, std::string>;

/// Writes tensors (any layout/device; stored contiguous, on the CPU) to bytes.
std::vector<uint8_t> safetensors_serialize(const TensorDict& tensors, const SafetensorsMetadata& metadata = {});
/// Parses bytes; every malformed input raises focus::Error starting with "[safetensors]".
TensorDict safetensors_deserialize(const uint8_t* data, size_t size, SafetensorsMetadata* metadata = nullptr);

/// Writes a file atomically: temporary file in the same directory, fsync, rename, fsync
/// of the directory, so a crash never leaves a half-written file under path.
void save_safetensors(const TensorDict& tensors, const std::string& path, const SafetensorsMetadata& metadata = {});
/// Reads a file written by focus, PyTorch (safetensors package) or any conforming writer.
TensorDict load_safetensors(const std::string& path, SafetensorsMetadata* metadata = nullptr);

namespace detail {
/// Testing hook: when >= 0, save_safetensors fails (throws) after writing this many bytes
/// of the temporary file, as a crash mid-write would; -1 (the default) turns it off.
void set_safetensors_write_fault(int64_t fail_after_bytes);
/// Testing hook: when >= 0, the next save_safetensors stops this process (SIGSTOP) once it
/// has written this many bytes of its temporary file (fewer than the file holds), so that a
/// test can kill it in mid-write; after a SIGCONT the write completes. One-shot; -1 (the
/// default) turns it off. `focus train` arms it from FOCUS_TEST_STOP_IN_CHECKPOINT.
void set_safetensors_write_stop(int64_t stop_after_bytes);
}  // namespace detail

}  // namespace focus
