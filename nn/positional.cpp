#include "nn/positional.h"

#include <cmath>
#include <vector>

#include "autograd/functions/elementwise.h"
#include "core/creation.h"
#include "nn/init.h"

namespace focus::nn {

namespace {
void check_options(const PositionalOptions& o, const char* op) {
  FOCUS_CHECK(o.embedding_dim_ > 0, "[{}] embedding_dim must be positive, got {}", op, o.embedding_dim_);
  FOCUS_CHECK(o.max_len_ > 0, "[{}] max_len must be positive, got {}", op, o.max_len_);
}

void check_range(int64_t T, int64_t offset, int64_t max_len, const char* op) {
  FOCUS_CHECK(T >= 0 && offset >= 0 && offset + T <= max_len,
              "[{}] positions {}..{} are out of range for max_len {}", op, offset, offset + T - 1, max_len);
}

// x + table [T, E], broadcast over the batch dim.
Tensor add_positions(const Tensor& x, const Tensor& table_fn_rows, const PositionalOptions& o) {
  return o.batch_first_ ? x + table_fn_rows : x + table_fn_rows.unsqueeze(1);
}

// Rows offset .. offset + T - 1 of the table, computed in float64 and stored as dtype.
Tensor sinusoid_table(int64_t T, int64_t E, int64_t offset, DType dtype) {
  std::vector<double> pe(static_cast<size_t>(T * E));
  for (int64_t p = 0; p < T; ++p)
    for (int64_t i = 0; i < E; i += 2) {
      const double angle =
          static_cast<double>(p + offset) * std::exp(static_cast<double>(i) * (-std::log(10000.0) / static_cast<double>(E)));
      pe[static_cast<size_t>(p * E + i)] = std::sin(angle);
      if (i + 1 < E) pe[static_cast<size_t>(p * E + i + 1)] = std::cos(angle);
    }
  return tensor(pe, {T, E}, TensorOptions(dtype));
}

void check_input(const Tensor& x, const PositionalOptions& o, const char* op) {
  FOCUS_CHECK(x.defined(), "[{}] the input is undefined", op);
  FOCUS_CHECK(x.dim() == 3 && x.size(2) == o.embedding_dim_,
              "[{}] expected input [{}, E={}], got shape {}", op, o.batch_first_ ? "B, T" : "T, B", o.embedding_dim_,
              x.shape());
}
}  // namespace

SinusoidalPositionalEncoding::SinusoidalPositionalEncoding(const PositionalOptions& options)
    : Module("SinusoidalPositionalEncoding"), options_(options) {
  check_options(options_, "SinusoidalPositionalEncoding");
  pe_ = register_buffer("pe", sinusoid_table(options_.max_len_, options_.embedding_dim_, 0, kFloat32), /*persistent=*/false);
  dropout_ = register_module("dropout", std::make_shared<Dropout>(options_.dropout_));
}

Tensor SinusoidalPositionalEncoding::encoding(int64_t T, int64_t offset) const {
  check_range(T, offset, options_.max_len_, "SinusoidalPositionalEncoding");
  return pe_.narrow(0, offset, T);
}

Tensor SinusoidalPositionalEncoding::forward(const Tensor& x, int64_t offset) const {
  check_input(x, options_, "SinusoidalPositionalEncoding");
  const int64_t T = x.size(options_.batch_first_ ? 1 : 0);
  Tensor rows = encoding(T, offset);
  // The buffer is float32 unless converted; float64 inputs get float64-exact rows.
  if (x.dtype() == kFloat64) rows = sinusoid_table(T, options_.embedding_dim_, offset, kFloat64).to(x.device());
  else if (rows.dtype() != x.dtype()) rows = rows.to(x.dtype());
  return dropout_->forward(add_positions(x, rows, options_));
}

std::string SinusoidalPositionalEncoding::extra_repr() const {
  return fmt::format("embedding_dim={}, max_len={}", options_.embedding_dim_, options_.max_len_);
}

LearnedPositionalEmbedding::LearnedPositionalEmbedding(const PositionalOptions& options)
    : Module("LearnedPositionalEmbedding"), options_(options) {
  check_options(options_, "LearnedPositionalEmbedding");
  weight_ = register_parameter("weight", empty({options_.max_len_, options_.embedding_dim_}));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(options_.dropout_));
  reset_parameters();
}

void LearnedPositionalEmbedding::reset_parameters() { init::normal_(weight_); }

Tensor LearnedPositionalEmbedding::encoding(int64_t T, int64_t offset) const {
  check_range(T, offset, options_.max_len_, "LearnedPositionalEmbedding");
  return weight_.narrow(0, offset, T);
}

Tensor LearnedPositionalEmbedding::forward(const Tensor& x, int64_t offset) const {
  check_input(x, options_, "LearnedPositionalEmbedding");
  const int64_t T = x.size(options_.batch_first_ ? 1 : 0);
  return dropout_->forward(add_positions(x, encoding(T, offset), options_));
}

std::string LearnedPositionalEmbedding::extra_repr() const {
  return fmt::format("{}, {}", options_.max_len_, options_.embedding_dim_);
}

}  // namespace focus::nn
