#include "core/ops/optim.h"

#include "core/ops/common.h"

namespace focus::raw {

namespace {

void check_param_grad(const Tensor& param, const Tensor& grad, const char* op) {
  check_defined(param, op, "param");
  check_defined(grad, op, "grad");
  check_floating(param, op, "param");
  check_floating(grad, op, "grad");
  FOCUS_CHECK(grad.shape() == param.shape(), "[{}] grad of shape {} does not match param of shape {}", op,
              grad.shape(), param.shape());
  check_same_device(param, grad, op);
}

void check_state(const Tensor& param, const Tensor& s, const char* op, const char* arg) {
  check_defined(s, op, arg);
  FOCUS_CHECK(s.shape() == param.shape() && s.dtype() == param.dtype() && s.device() == param.device() &&
                  s.is_contiguous(),
              "[{}] {} must be a contiguous {} tensor of shape {} on {}, got {} of shape {} on {}", op, arg,
              param.dtype(), param.shape(), param.device(), s.dtype(), s.shape(), s.device());
}

}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const Backend::SgdStepParams& p) {
  constexpr const char* op = "sgd_step";
  check_param_grad(param, grad, op);
  const bool momentum = p.momentum != 0;
  if (momentum) check_state(param, momentum_buffer, op, "momentum_buffer");
  if (param.numel() == 0) return;
  const Tensor g = to_contiguous(grad, param.dtype(), param.device());
  const Tensor pc = param.is_contiguous() ? param : clone(param);
  const TensorView none;
  backend_of(param).sgd_step(make_view(pc), make_view(g), momentum ? make_view(momentum_buffer) : none, p);
  if (!pc.is_same(param)) copy_(param, pc);
  param.bump_version();
  if (momentum) momentum_buffer.bump_version();
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const Tensor& max_exp_avg_sq, const Backend::AdamStepParams& p) {
  constexpr const char* op = "adam_step";
  check_param_grad(param, grad, op);
  check_state(param, exp_avg, op, "exp_avg");
  check_state(param, exp_avg_sq, op, "exp_avg_sq");
  if (p.amsgrad) check_state(param, max_exp_avg_sq, op, "max_exp_avg_sq");
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
