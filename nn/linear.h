#pragma once
/// nn::Linear, as torch.nn.Linear: y = x W^T + b.
#include <memory>
#include <string>
#include <string_view>

#include "nn/module.h"
#include "nn/quantized.h"

namespace focus::nn {

struct LinearOptions {
  LinearOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  int64_t in_features_;
  int64_t out_features_;
  bool bias_ = true;
  LinearOptions& bias(bool b) { bias_ = b; return *this; }
};

/// Parameters "weight" [out_features, in_features] and "bias" [out_features] (if bias),
/// both U(-1/sqrt(in_features), 1/sqrt(in_features)) as PyTorch (kaiming_uniform_ with
/// a = sqrt(5) for the weight).
///
/// A Linear may carry one LoRA adapter (nn/lora.h, PEFT's lora.Linear folded into the layer
/// so that models holding shared_ptr<Linear> need no change): children "lora_A" =
/// Linear(in_features, r, bias=false) and "lora_B" = Linear(r, out_features, bias=false),
/// a scaling and a dropout probability; forward then returns
/// linear(x, W, b) + lora_B(lora_A(dropout(x))) * scaling, or linear(x, W + scaling B A, b)
/// once merged. Without an adapter the forward is the plain one (one pointer test).
///
/// A Linear may be quantized to int8 for inference (quantize_int8, or nn::quantize_dynamic
/// in nn/quantized.h, as torch.ao.quantization.quantize_dynamic): "weight" becomes an int8
/// buffer [out_features, in_features] and "weight_scale" a float32 buffer [out_features]
/// (one scale per output channel), "bias" a float32 buffer; the forward quantizes its input
/// per row at run time and computes in int8 with int32 sums (focus::linear_int8). CPU only,
/// no backward, float32 inputs.
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Linear(int64_t in_features, int64_t out_features, bool bias = true)
      : Linear(LinearOptions(in_features, out_features).bias(bias)) {}
  /// x: [..., in_features] -> [..., out_features].
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  /// gelu(forward(x), approximate) as one op (focus::linear_gelu): the composition's numbers
  /// on the CPU, one fused GEMM epilogue on CUDA. x: [..., in_features] -> [..., out_features].
  Tensor forward_gelu(const Tensor& x, std::string_view approximate = "none") const;
  /// Re-draws the parameters with PyTorch's default initialization.
  void reset_parameters();
  std::string extra_repr() const override;
  const Tensor& weight() const { return weight_; }
  /// Undefined when built with bias(false).
  const Tensor& bias() const { return bias_; }
  const LinearOptions& options() const { return options_; }

  // ---- LoRA adapter (use nn::LoraModel in nn/lora.h; these are its building blocks) ----
  /// Attaches an adapter of rank r: lora_A kaiming_uniform_(a = sqrt(5)), lora_B zeros (so
  /// the output is unchanged), on the weight's device and dtype; lora_dropout in [0, 1) is
  /// applied to the adapter's input in training. An error if one is attached already.
  void add_lora(int64_t r, double scaling, double lora_dropout = 0.0);
  /// Removes the adapter (its children and state); a merged adapter's update stays in the
  /// weight (PEFT's merge_and_unload). An error without an adapter.
  void remove_lora();
  bool has_lora() const { return lora_A_ != nullptr; }
  /// The adapter's factors: lora_A()->weight() [r, in_features], lora_B()->weight()
  /// [out_features, r]; null without an adapter.
  const std::shared_ptr<Linear>& lora_A() const { return lora_A_; }
  const std::shared_ptr<Linear>& lora_B() const { return lora_B_; }
  double lora_scaling() const { return lora_scaling_; }
  double lora_dropout() const { return lora_dropout_; }
  /// weight += scaling * lora_B.weight @ lora_A.weight (no grad); forward then uses the
  /// weight alone. An error without an adapter or when merged already (PEFT's merge).
  void merge_lora();
  /// weight -= scaling * lora_B.weight @ lora_A.weight, as PEFT's unmerge (restores the
  /// weight up to float rounding). An error without an adapter or when not merged.
  void unmerge_lora();
  bool lora_merged() const { return lora_merged_; }

  // ---- int8 dynamic quantization ----------------------------------------------------------
  /// Quantizes the weight per output channel (max|row| / 127, round to [-127, 127]) and makes
  /// weight, weight_scale and bias buffers: the layer then has no parameters. An error when
  /// quantized already, with an unmerged LoRA adapter (merge it first), off the CPU, or with
  /// in_features above 66000.
  void quantize_int8();
  bool is_quantized() const { return int8_.defined(); }
  /// The per-channel scales [out_features] float32 of a quantized layer (undefined otherwise).
  const Tensor& weight_scale() const { return int8_.scales(); }

 private:
  Tensor lora_delta() const;
  Tensor forward_int8(const Tensor& x) const;

  LinearOptions options_;
  Tensor weight_;
  Tensor bias_;
  std::shared_ptr<Linear> lora_A_, lora_B_;
  double lora_scaling_ = 0.0;
  double lora_dropout_ = 0.0;
  bool lora_merged_ = false;
  Int8Weight int8_;  // once quantized: weight_ and the "weight_scale" buffer (defined only then)
};

/// Identity: returns its input (a placeholder in Sequential, as torch.nn.Identity).
class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) const { return x; }
  Tensor operator()(const Tensor& x) const { return forward(x); }
};

}  // namespace focus::nn
