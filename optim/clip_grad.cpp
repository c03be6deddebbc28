#include "optim/clip_grad.h"

#include <cmath>

#include "autograd/functions/elementwise.h"
#include "autograd/functions/indexing.h"
#include "autograd/functions/reduce.h"
#include "autograd/node.h"
#include "core/creation.h"

namespace focus::optim {

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : params) {
    FOCUS_CHECK(p.defined(), "[clip_grad_norm_] got an undefined parameter");
    Tensor g = p.grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) return scalar_tensor(0.0, kFloat32);  // PyTorch: torch.tensor(0.0)
  const DType dtype = grads[0].dtype();
  const Device device = grads[0].device();
  std::vector<Tensor> norms;
  norms.reserve(grads.size());
  const bool inf_norm = std::isinf(norm_type) && norm_type > 0;
  for (const auto& g : grads) {
    Tensor n = inf_norm ? max(abs(g)) : norm(g, norm_type);
    norms.push_back(n.to(device).to(dtype));
  }
  Tensor total;
  if (inf_norm) total = norms.size() == 1 ? norms[0] : max(stack(norms));
  else total = norm(stack(norms), norm_type);
  if (error_if_nonfinite) {
    // The one host read, as PyTorch's `if error_if_nonfinite and (isnan | isinf)`.
    FOCUS_CHECK(std::isfinite(total.item<double>()),
                "[clip_grad_norm_] the total norm of order {} for gradients from `parameters` is non-finite, so it "
                "cannot be clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
                "error_if_nonfinite=false",
                norm_type);
  }
  // clip_coef_clamped = min(max_norm / (total_norm + 1e-6), 1), a 0-d tensor in the grads'
  // dtype on their device: the scaling stays on the device.
  const Tensor coef = clamp(max_norm / (total + 1e-6), std::nullopt, Scalar(1.0));
  for (const auto& g : grads) g.mul_(coef.to(g.device()).to(g.dtype()));  // .to: no-op when alike
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  NoGradGuard no_grad;
  for (const auto& p : params) {
    FOCUS_CHECK(p.defined(), "[clip_grad_value_] got an undefined parameter");
    Tensor g = p.grad();
    if (g.defined()) g.clamp_(Scalar(-clip_value), Scalar(clip_value));
  }
}

}  // namespace focus::optim
