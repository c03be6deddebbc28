#pragma once
/// Loss modules, as torch.nn's: each holds its options (class weights as buffers, like
/// PyTorch's `weight` / `pos_weight`, so they follow to() and appear in state_dict()) and
/// calls the matching function of autograd/functions/loss.h.
///
///   auto criterion = std::make_shared<nn::CrossEntropyLoss>(
///       nn::CrossEntropyLossOptions().ignore_index(0).label_smoothing(0.1));
///   Tensor loss = (*criterion)(logits, targets);
#include <string>
#include <string_view>

#include "autograd/functions/loss.h"
#include "nn/module.h"

namespace focus::nn {

/// Options of CrossEntropyLoss: weight [C], ignore_index (-100), reduction ("mean"),
/// label_smoothing (0.0); the same struct as the function's.
using CrossEntropyLossOptions = CrossEntropyOptions;
/// Options of NLLLoss: weight [C], ignore_index (-100), reduction ("mean").
using NLLLossOptions = focus::NLLLossOptions;
/// Options of BCEWithLogitsLoss: weight, pos_weight, reduction ("mean").
using BCEWithLogitsLossOptions = BCEWithLogitsOptions;

/// Options of the losses that take only a reduction (MSELoss, L1Loss).
struct ReductionOptions {
  ReductionOptions(Reduction r = Reduction::Mean) : reduction_(r) {}
  ReductionOptions(const char* r) : reduction_(reduction_from_string(r)) {}
  Reduction reduction_;
  ReductionOptions& reduction(Reduction r) { reduction_ = r; return *this; }
  ReductionOptions& reduction(std::string_view r) { reduction_ = reduction_from_string(r); return *this; }
};
using MSELossOptions = ReductionOptions;
using L1LossOptions = ReductionOptions;

/// Options of BCELoss: weight (broadcast to the input), reduction ("mean").
struct BCELossOptions {
  Tensor weight_;
  Reduction reduction_ = Reduction::Mean;
  BCELossOptions& weight(const Tensor& w) { weight_ = w; return *this; }
  BCELossOptions& reduction(Reduction r) { reduction_ = r; return *this; }
  BCELossOptions& reduction(std::string_view r) { reduction_ = reduction_from_string(r, "BCELoss"); return *this; }
};

/// Options of SmoothL1Loss (beta, 1.0) and HuberLoss (delta, 1.0).
struct SmoothL1LossOptions {
  Reduction reduction_ = Reduction::Mean;
  double beta_ = 1.0;
  SmoothL1LossOptions& reduction(Reduction r) { reduction_ = r; return *this; }
  SmoothL1LossOptions& reduction(std::string_view r) { reduction_ = reduction_from_string(r, "SmoothL1Loss"); return *this; }
  SmoothL1LossOptions& beta(double b) { beta_ = b; return *this; }
};
struct HuberLossOptions {
  Reduction reduction_ = Reduction::Mean;
  double delta_ = 1.0;
  HuberLossOptions& reduction(Reduction r) { reduction_ = r; return *this; }
  HuberLossOptions& reduction(std::string_view r) { reduction_ = reduction_from_string(r, "HuberLoss"); return *this; }
  HuberLossOptions& delta(double d) { delta_ = d; return *this; }
};

/// torch.nn.CrossEntropyLoss: input [N, C, d...] / [C] logits; target class indices
/// [N, d...] / 0-d (int64) or class probabilities of the input's shape. See
/// focus::cross_entropy. Buffer: weight (when given).
class CrossEntropyLoss : public Module {
 public:
  explicit CrossEntropyLoss(const CrossEntropyLossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const CrossEntropyLossOptions& options() const { return options_; }
  /// The class weights (the buffer; undefined when none).
  const Tensor& weight() const { return weight_; }

 private:
  CrossEntropyLossOptions options_;
  Tensor weight_;
};

/// torch.nn.NLLLoss: input log-probabilities [N, C, d...] / [C]; target class indices. See
/// focus::nll_loss. Buffer: weight (when given).
class NLLLoss : public Module {
 public:
  explicit NLLLoss(const NLLLossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const NLLLossOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }

 private:
  NLLLossOptions options_;
  Tensor weight_;
};

/// torch.nn.MSELoss: (input - target)^2, broadcast, reduced.
class MSELoss : public Module {
 public:
  explicit MSELoss(const MSELossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const MSELossOptions& options() const { return options_; }

 private:
  MSELossOptions options_;
};

/// torch.nn.L1Loss: |input - target|, broadcast, reduced.
class L1Loss : public Module {
 public:
  explicit L1Loss(const L1LossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const L1LossOptions& options() const { return options_; }

 private:
  L1LossOptions options_;
};

/// torch.nn.SmoothL1Loss (beta).
class SmoothL1Loss : public Module {
 public:
  explicit SmoothL1Loss(const SmoothL1LossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const SmoothL1LossOptions& options() const { return options_; }

 private:
  SmoothL1LossOptions options_;
};

/// torch.nn.HuberLoss (delta).
class HuberLoss : public Module {
 public:
  explicit HuberLoss(const HuberLossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const HuberLossOptions& options() const { return options_; }

 private:
  HuberLossOptions options_;
};

/// torch.nn.BCEWithLogitsLoss: logits and targets of one shape; see
/// focus::binary_cross_entropy_with_logits. Buffers: weight, pos_weight (when given).
class BCEWithLogitsLoss : public Module {
 public:
  explicit BCEWithLogitsLoss(const BCEWithLogitsLossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const BCEWithLogitsLossOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }
  const Tensor& pos_weight() const { return pos_weight_; }

 private:
  BCEWithLogitsLossOptions options_;
  Tensor weight_, pos_weight_;
};

/// torch.nn.BCELoss: probabilities and targets of one shape; see focus::binary_cross_entropy.
/// Buffer: weight (when given).
class BCELoss : public Module {
 public:
  explicit BCELoss(const BCELossOptions& options = {});
  Tensor forward(const Tensor& input, const Tensor& target) const;
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  const BCELossOptions& options() const { return options_; }
  const Tensor& weight() const { return weight_; }

 private:
  BCELossOptions options_;
  Tensor weight_;
};

}  // namespace focus::nn
