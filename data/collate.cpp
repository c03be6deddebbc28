#include "data/collate.h"

#include <algorithm>

#include "core/creation.h"
#include "core/error.h"

namespace focus::data {

PaddedBatch pad_sequences(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id, int64_t pad_to) {
  FOCUS_CHECK(!seqs.empty(), "[pad_sequences] needs at least one sequence, got none");
  FOCUS_CHECK(pad_to >= -1, "[pad_sequences] pad_to must be -1 (longest) or >= 0, got {}", pad_to);
  int64_t longest = 0;
  size_t longest_at = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (static_cast<int64_t>(seqs[i].size()) > longest) {
      longest = static_cast<int64_t>(seqs[i].size());
      longest_at = i;
    }
  }
  FOCUS_CHECK(pad_to == -1 || pad_to >= longest,
              "[pad_sequences] pad_to {} is shorter than sequence {} (length {})", pad_to, longest_at, longest);
  const int64_t B = static_cast<int64_t>(seqs.size());
  const int64_t T = pad_to == -1 ? longest : pad_to;
  std::vector<int64_t> tokens(static_cast<size_t>(B * T), pad_id);
  std::vector<bool> mask_bits(static_cast<size_t>(B * T), true);
  std::vector<int64_t> lengths(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[static_cast<size_t>(b)];
    std::copy(s.begin(), s.end(), tokens.begin() + b * T);
    std::fill_n(mask_bits.begin() + b * T, s.size(), false);
    lengths[static_cast<size_t>(b)] = static_cast<int64_t>(s.size());
  }
  PaddedBatch out;
  out.tokens = tensor<int64_t>(tokens, {B, T});
  out.key_padding_mask = empty({B, T}, kBool);
  bool* m = out.key_padding_mask.data_ptr<bool>();
  for (size_t i = 0; i < mask_bits.size(); ++i) m[i] = mask_bits[i];
  out.lengths = tensor<int64_t>(lengths, {B});
  return out;
}

}  // namespace focus::data
