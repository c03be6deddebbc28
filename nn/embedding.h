#pragma once
/// nn::Embedding, as torch.nn.Embedding: a lookup table of vectors.
#include <memory>
#include <optional>
#include <string>

#include "nn/module.h"

namespace focus::nn {

struct EmbeddingOptions {
  EmbeddingOptions(int64_t num_embeddings, int64_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  int64_t num_embeddings_;
  int64_t embedding_dim_;
  std::optional<int64_t> padding_idx_;
  /// Row that is zeroed at init and gets no gradient; negative counts from the end.
  EmbeddingOptions& padding_idx(std::optional<int64_t> i) { padding_idx_ = i; return *this; }
};

/// Parameter "weight" [num_embeddings, embedding_dim], N(0, 1) at init (padding row zero).
class Embedding : public Module {
 public:
  explicit Embedding(const EmbeddingOptions& options);
  Embedding(int64_t num_embeddings, int64_t embedding_dim) : Embedding(EmbeddingOptions(num_embeddings, embedding_dim)) {}
  /// An Embedding holding a copy of embeddings [num, dim]; frozen (no grad) when freeze.
  static std::shared_ptr<Embedding> from_pretrained(const Tensor& embeddings, bool freeze = true,
                                                    std::optional<int64_t> padding_idx = std::nullopt);
  /// indices: [...] integer in [0, num_embeddings) -> [..., embedding_dim].
  Tensor forward(const Tensor& indices) const;
  Tensor operator()(const Tensor& indices) const { return forward(indices); }
  /// Re-draws N(0, 1) and zeroes the padding row.
  void reset_parameters();
  std::string extra_repr() const override;
  const Tensor& weight() const { return weight_; }
  /// The padding row, wrapped to [0, num_embeddings).
  std::optional<int64_t> padding_idx() const { return options_.padding_idx_; }
  const EmbeddingOptions& options() const { return options_; }

 private:
  EmbeddingOptions options_;
  Tensor weight_;
};

}  // namespace focus::nn
