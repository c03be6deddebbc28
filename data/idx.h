#pragma once
/// Reader for the IDX format of MNIST / Fashion-MNIST (uncompressed): two zero bytes, a type
/// byte, the number of dims, each dim as a big-endian uint32, then the big-endian data.
#include <string>
#include <string_view>

#include "core/tensor.h"

namespace focus::data {

/// Reads an uncompressed IDX file into a CPU tensor with the header's shape. Element types:
/// 0x08 ubyte -> uint8; 0x09 sbyte, 0x0B int16, 0x0C int32 -> int32 (focus has no int8/int16);
/// 0x0D float32 -> float32; 0x0E float64 -> float64. A missing file, a gzip file, a bad magic,
/// an unknown type byte, a truncated file or trailing bytes -> focus::Error naming the file.
Tensor read_idx(const std::string& path);

/// The same, from the bytes of an IDX file in memory; `source` names it in errors.
Tensor parse_idx(std::string_view bytes, const std::string& source = "<memory>");

}  // namespace focus::data
