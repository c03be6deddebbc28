#pragma once
/// Positional encodings every sequence model needs: the fixed sinusoidal table of
/// "Attention Is All You Need" and a learned table of positions.
#include <memory>
#include <string>

#include "nn/dropout.h"
#include "nn/module.h"

namespace focus::nn {

struct PositionalOptions {
  PositionalOptions(int64_t embedding_dim, int64_t max_len = 5000) : embedding_dim_(embedding_dim), max_len_(max_len) {}
  int64_t embedding_dim_;
  int64_t max_len_;
  double dropout_ = 0.0;
  bool batch_first_ = true;
  /// Dropout applied after adding the positions (training mode only).
  PositionalOptions& dropout(double p) { dropout_ = p; return *this; }
  /// true: inputs are [B, T, E]; false: [T, B, E].
  PositionalOptions& batch_first(bool b) { batch_first_ = b; return *this; }
};

/// pe[pos, 2i] = sin(pos / 10000^(2i/E)), pe[pos, 2i+1] = cos(pos / 10000^(2i/E)), held as
/// the non-persistent buffer "pe" [max_len, E] (not in state_dict; float32 unless converted;
/// float64 inputs get rows computed in float64); child "dropout".
class SinusoidalPositionalEncoding : public Module {
 public:
  explicit SinusoidalPositionalEncoding(const PositionalOptions& options);
  /// x: [B, T, E] (or [T, B, E] when !batch_first) -> dropout(x + pe[offset : offset + T]).
  Tensor forward(const Tensor& x, int64_t offset = 0) const;
  Tensor operator()(const Tensor& x, int64_t offset = 0) const { return forward(x, offset); }
  /// The table rows offset .. offset + T - 1: [T, E].
  Tensor encoding(int64_t T, int64_t offset = 0) const;
  std::string extra_repr() const override;
  const PositionalOptions& options() const { return options_; }

 private:
  PositionalOptions options_;
  Tensor pe_;
  std::shared_ptr<Dropout> dropout_;
};

/// A learned table: parameter "weight" [max_len, E], N(0, 1) at init (as nn::Embedding over
/// positions 0 .. max_len - 1); child "dropout".
class LearnedPositionalEmbedding : public Module {
 public:
  explicit LearnedPositionalEmbedding(const PositionalOptions& options);
  /// x: [B, T, E] (or [T, B, E] when !batch_first) -> dropout(x + weight[offset : offset + T]).
  Tensor forward(const Tensor& x, int64_t offset = 0) const;
  Tensor operator()(const Tensor& x, int64_t offset = 0) const { return forward(x, offset); }
  /// The embeddings of positions offset .. offset + T - 1: [T, E] (differentiable).
  Tensor encoding(int64_t T, int64_t offset = 0) const;
  void reset_parameters();
  std::string extra_repr() const override;
  const Tensor& weight() const { return weight_; }
  const PositionalOptions& options() const { return options_; }

 private:
  PositionalOptions options_;
  Tensor weight_;
  std::shared_ptr<Dropout> dropout_;
};

}  // namespace focus::nn
