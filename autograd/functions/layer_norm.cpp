// Differentiable layer_norm and add_layer_norm: fused forward/backward kernel pairs
// (core/ops/layer_norm.h, backends/cpu/layer_norm.cpp). The forward saves what the backward
// kernel needs (the mean and rstd of each row; add_layer_norm also the sum it normalized).
#include "autograd/functions/layer_norm.h"

#include "autograd/autocast.h"
#include "autograd/functions/elementwise.h"
#include "autograd/functions/no_double_backward.h"
#include "autograd/node.h"
#include "core/ops/layer_norm.h"

namespace focus {

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  if (autocast::active())
    return autocast::run(autocast::Policy::Float32, [](auto&&... t) { return layer_norm(t...); }, x, normalized_shape,
                         weight, bias, eps);
  auto [y, mean, rstd] = raw::layer_norm(x, normalized_shape, weight, bias, eps);
  if (needs_grad(x, weight, bias)) {
    const bool has_w = weight.defined(), has_b = bias.defined();
    // Recomputable: a Linear after the norm (pre-norm blocks) saves y by reference and gets
    // it back from x, weight and bias in its backward, instead of keeping it.
    record_recomputable(
        "NativeLayerNormBackward0", {x, weight, bias}, {y},
        {save(x), save(mean), save(rstd), has_w ? save(weight) : SavedTensor(), has_b ? save(bias) : SavedTensor()},
        [normalized_shape, has_w, has_b](BackwardContext& c) {
          detail::no_double_backward("NativeLayerNormBackward0");
          // x [..., N], grad [..., N] -> dx [..., N], dweight [N], dbias [N] (N = normalized_shape)
          auto [dx, dw, db] = raw::layer_norm_backward(c.grad(0), c.saved(0), c.saved(1), c.saved(2), c.saved(3),
                                                       normalized_shape, has_w && c.needs_input_grad(1),
                                                       has_b && c.needs_input_grad(2));
          return grads(c.needs_input_grad(0) ? dx : Tensor(), dw, db);
        },
        [normalized_shape, eps](BackwardContext& c) {
          return std::get<0>(raw::layer_norm(c.saved(0), normalized_shape, c.saved(3), c.saved(4), eps));
        });
  }
  return y;
}

namespace {

// add_layer_norm's node. Outputs: 0 = out (recomputable from sum, weight and bias, as
// layer_norm's output, so a Linear after it saves it by reference), 1 = sum. Written by
// hand rather than with record(): an output that got no gradient stays undefined here
// (FunctionNode would fill it with zeros), so the backward kernel adds grad_sum only when
// one arrived, and skips the norm when only sum was used.
class AddLayerNormBackward final : public Node {
 public:
  AddLayerNormBackward(std::vector<SavedTensor> saved, Shape normalized_shape, double eps, bool has_w, bool has_b)
      : saved_(std::move(saved)), normalized_shape_(std::move(normalized_shape)), eps_(eps), has_w_(has_w),
        has_b_(has_b) {}
  std::string_view name() const override { return "AddLayerNormBackward0"; }
  void release_saved() override {
    for (auto& s : saved_) s.release();
  }
  bool can_recompute() const override { return true; }
  Tensor recompute_output() override {
    std::vector<Tensor> none;
    BackwardContext c(name(), none, saved_, next_edges);
    return std::get<0>(raw::layer_norm(c.saved(0), normalized_shape_, c.saved(3), c.saved(4), eps_));
  }
  void bind(const std::shared_ptr<Node>& self, TensorList outputs) {
    for (auto& s : saved_) s.bind_output(self, outputs);
  }

  std::vector<Tensor> apply(std::vector<Tensor>&& in) override {
    in.resize(2);
    detail::no_double_backward("AddLayerNormBackward0");
    BackwardContext c(name(), in, saved_, next_edges);
    const bool need_x = c.needs_input_grad(0) || c.needs_input_grad(1);
    Tensor d, dw, db;
    if (!c.has_grad(0)) {
      d = c.grad(1);  // only sum was used: its gradient goes to x and residual as it is
    } else {
      // sum [..., N], grad_out [..., N], grad_sum [..., N] -> d = grad_sum + d layer_norm /
      // d sum [..., N], dweight [N], dbias [N] (N = normalized_shape)
      const bool nw = has_w_ && c.needs_input_grad(2), nb = has_b_ && c.needs_input_grad(3);
      if (need_x || nw || nb)
        std::tie(d, dw, db) = raw::add_layer_norm_backward(c.grad(0), c.grad(1), c.saved(0), c.saved(1),
                                                           c.saved(2), c.saved(3), normalized_shape_, nw, nb);
    }
    // dx = dresidual = d : [..., N] (the same tensor for both, as the add's backward gives)
    return grads(c.needs_input_grad(0) ? d : Tensor(), c.needs_input_grad(1) ? d : Tensor(), dw, db);
  }

 private:
  std::vector<SavedTensor> saved_;  // sum (an output), mean, rstd, weight, bias
  Shape normalized_shape_;
  double eps_;
  bool has_w_, has_b_;
};

}  // namespace

std::tuple<Tensor, Tensor> add_layer_norm(const Tensor& x, const Tensor& residual, const Shape& normalized_shape,
                                          const Tensor& weight, const Tensor& bias, double eps) {
  if (autocast::active() && x.defined() && is_autocast_enabled(x.device().type)) {
    // PyTorch's meaning under autocast: the add in its inputs' dtype, the norm in float32.
    // Fused when the add is float32 anyway; with 16-bit inputs the add stays 16-bit.
    if (x.dtype() == kFloat32 && residual.defined() && residual.dtype() == kFloat32) {
      const Tensor w = autocast::cast(weight, autocast::Policy::Float32), b = autocast::cast(bias, autocast::Policy::Float32);
      autocast::Suspend s;
      return add_layer_norm(x, residual, normalized_shape, w, b, eps);
    }
    if (is_floating(x.dtype()) && x.dtype() != kFloat64) {
      Tensor sum = x + residual;
      return {sum, layer_norm(sum, normalized_shape, weight, bias, eps)};
    }
  }
  auto [sum, y, mean, rstd] = raw::add_layer_norm(x, residual, normalized_shape, weight, bias, eps);
  if (needs_grad(x, residual) || needs_grad(weight, bias)) {
    const bool has_w = weight.defined(), has_b = bias.defined();
    auto node = std::make_shared<AddLayerNormBackward>(
        std::vector<SavedTensor>{save(sum, true), save(mean), save(rstd), has_w ? save(weight) : SavedTensor(),
                                 has_b ? save(bias) : SavedTensor()},
        normalized_shape, eps, has_w, has_b);
    node->bind(node, {y, sum});
    autograd_detail::init_node(std::move(node), {x, residual, weight, bias}, {y, sum});
  }
  return {sum, y};
}

}  // namespace focus
