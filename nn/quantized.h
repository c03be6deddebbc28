#pragma once
/// Dynamic int8 quantization of a model, as torch.ao.quantization.quantize_dynamic(model,
/// {nn.Linear}, dtype=torch.qint8) with per_channel_dynamic_qconfig: int8 weights with one
/// scale per output channel, activations quantized per row at run time (uint8 with a zero
/// point), int32 sums, float32 outputs (backends/common/int8_math.h has the arithmetic).
/// For inference on the CPU: quantized layers have no backward.
///
///   auto model = std::make_shared<GPT>(config);
///   model->load_state_dict(load_safetensors("model.safetensors"));
///   nn::quantize_dynamic(*model);                      // every nn::Linear
///   save_safetensors("model-int8.safetensors", model->state_dict());  // int8 + scales
///
/// A quantized checkpoint loads into a model quantized the same way: build the float model,
/// quantize_dynamic it, then load_state_dict (as in PyTorch).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/module.h"

namespace focus::nn {

/// An int8 weight a module keeps: the int8 values [N, K] and the per-channel scales [N] (the
/// module registers both as buffers, so state_dict, load_state_dict and to() reach them) and
/// their packed form for the int8 GEMM, rebuilt when either buffer is written (the storage
/// version) or replaced. Copies share one packed form. Used by Linear and MultiheadAttention.
class Int8Weight {
 public:
  Int8Weight() = default;
  /// Quantizes weight [N, K] per output channel (quantize_per_channel_int8) and packs it.
  static Int8Weight quantize(const Tensor& weight, const char* op);
  /// The bias buffer an int8 layer keeps in place of its bias parameter: a float32 copy
  /// that records no autograd history.
  static Tensor bias_buffer(const Tensor& bias);
  bool defined() const { return q_.defined(); }
  /// The int8 values [N, K] and the scales [N]: register these as the module's buffers.
  const Tensor& values() const { return q_; }
  const Tensor& scales() const { return scale_; }
  /// x [..., K] float32 -> rows rows_begin .. rows_begin + rows - 1 of x W^T + bias (bias [N]
  /// float32 or undefined; rows -1: to the end), computed in int8 (focus::linear_int8).
  Tensor linear(const Tensor& x, const Tensor& bias, int64_t rows_begin = 0, int64_t rows = -1) const;

 private:
  struct Cache;
  Tensor q_, scale_;
  std::shared_ptr<Cache> cache_;
};

/// Quantizes every nn::Linear and the input projections of every nn::MultiheadAttention in
/// module (module itself included), or only the layers whose dotted names (as named_modules
/// gives them) are in names when it is not empty; layers quantized already are left as they
/// are. Returns how many layers it quantized. PyTorch's quantize_dynamic leaves an attention's
/// packed in_proj_weight float (it is not a Linear); focus quantizes it too, since the q, k, v
/// products are a large share of a decoder's work (name only the Linears to keep it float).
/// Errors, before any layer changes: a name that is not a Linear or MultiheadAttention of
/// module; a Linear with a LoRA adapter (merge and unload it first,
/// nn::LoraModel::merge_and_unload); a layer off the CPU.
int64_t quantize_dynamic(Module& module, const std::vector<std::string>& names = {});

/// The int8 Linear layers in state_dict (a "<name>.weight_scale" next to an int8
/// "<name>.weight"), by name, in the dict's order.
std::vector<std::string> quantized_layer_names(const TensorDict& state_dict);

}  // namespace focus::nn
