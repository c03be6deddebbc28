#pragma once
/// Collation helpers: turn a batch of variable-length token sequences into padded tensors.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace focus::data {

/// A batch of padded sequences.
struct PaddedBatch {
  Tensor tokens;            ///< [B, T] int64, positions past a sequence's end hold pad_id
  Tensor key_padding_mask;  ///< [B, T] bool, true = padding (PyTorch's key_padding_mask convention)
  Tensor lengths;           ///< [B] int64, the length of each sequence before padding
  /// Moves the three tensors to page-locked memory (DataLoaderOptions::pin_memory).
  void pin_memory() {
    tokens = tokens.pin_memory();
    key_padding_mask = key_padding_mask.pin_memory();
    lengths = lengths.pin_memory();
  }
};

/// Pads seqs to a common length T: the longest sequence when pad_to == -1, else pad_to (which
/// must be >= every length). B = seqs.size() >= 1. A sequence may be empty (all padding).
/// seqs: B lists of ids -> tokens [B, T], key_padding_mask [B, T], lengths [B].
PaddedBatch pad_sequences(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id,
                          int64_t pad_to = -1);

}  // namespace focus::data
