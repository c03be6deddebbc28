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
#include <string>
#include <vector>

#include "nn/module.h"

namespace focus::nn {

/// Quantizes every nn::Linear in module (module itself included), or only those whose dotted
/// names (as named_modules gives them) are in names when it is not empty; layers quantized
/// already are left as they are. Returns how many layers it quantized. Errors, before any
/// layer changes: a name that is not a Linear of module; a layer with a LoRA adapter (merge
/// and unload it first, nn::LoraModel::merge_and_unload); a layer off the CPU.
int64_t quantize_dynamic(Module& module, const std::vector<std::string>& names = {});

/// Whether state_dict holds int8 layers (a "<name>.weight_scale" next to an int8
/// "<name>.weight"), and the names of those layers, in the dict's order.
std::vector<std::string> quantized_layer_names(const TensorDict& state_dict);

}  // namespace focus::nn
