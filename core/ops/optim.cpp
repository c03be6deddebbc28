#include "core/ops/optim.h"

#include "core/ops/common.h"

namespace focus::raw {

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const Backend::AdamStepParams& p) {
  constexpr const char* op = "adam_step";
  check_defined(param, op, "param");
  check_defined(grad, op, "grad");
  check_floating(param, op, "param");
  check_floating(grad, op, "grad");
  FOCUS_CHECK(grad.shape() == param.shape(), "[{}] grad of shape {} does not match param of shape {}", op,
              grad.shape(), param.shape());
  check_same_device(param, grad, op);
  const auto check_state = [&](const Tensor& s, const char* arg) {
    check_defined(s, op, arg);
    FOCUS_CHECK(s.shape() == param.shape() && s.dtype() == param.dtype() && s.device() == param.device() &&
                    s.is_contiguous(),
                "[{}] {} must be a contiguous {} tensor of shape {} on {}, got {} of shape {} on {}", op, arg,
                param.dtype(), param.shape(), param.device(), s.dtype(), s.shape(), s.device());
  };
  check_state(exp_avg, "exp_avg");
  check_state(exp_avg_sq, "exp_avg_sq");
  if (p.amsgrad) check_state(max_exp_avg_sq, "max_exp_avg_sq");
  if (param.numel() == 0) return;
  const Tensor g = to_contiguous(grad, param.dtype(), param.device());
  const Tensor pc = param.is_contiguous() ? param : clone(param);
  const TensorView none;
  backend_of(param).adam_step(make_view(pc), make_view(g), make_view(exp_avg), make_view(exp_avg_sq),
                              p.amsgrad ? make_view(max_exp_avg_sq) : none, p);
  if (!pc.is_same(param)) copy_(param, pc);
  param.bump_version();
  exp_avg.bump_version();
  exp_avg_sq.bump_version();
  if (p.amsgrad) max_exp_avg_sq.bump_version();
}

}  // namespace focus::raw
