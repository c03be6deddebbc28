#include "autograd/functions/quantized.h"

#include "autograd/node.h"
#include "core/error.h"
#include "core/ops/quantized.h"

namespace focus {

std::pair<Tensor, Tensor> quantize_per_channel_int8(const Tensor& weight) {
  return raw::quantize_per_channel_int8(weight.detach());
}

Int8PackedWeight pack_int8(const Tensor& q, const Tensor& scale) { return raw::pack_int8(q, scale.detach()); }

Tensor linear_int8(const Tensor& x, const Int8PackedWeight& w, const Tensor& bias, int64_t n_begin,
                   int64_t n_count) {
  FOCUS_CHECK(!(GradMode::is_enabled() && x.defined() && x.requires_grad()),
              "[linear_int8] the input requires grad, but int8 quantized layers have no backward (inference only, as "
              "PyTorch's quantized Linear): run the model under NoGradGuard, or quantize after training");
  return raw::linear_int8(x, w, bias, n_begin, n_count);
}

}  // namespace focus
