#pragma once
/// Mixed precision by op, as torch.autocast: inside an AutocastGuard for a device type, the
/// ops PyTorch runs in lower precision (matmul, mm, bmm, linear, linear_gelu,
/// scaled_dot_product_attention) cast their floating inputs of that device type to the
/// guard's dtype, and the ops PyTorch runs in float32 (softmax, log_softmax, layer_norm,
/// add_layer_norm, the losses, sum, prod, logsumexp, norm, exp, log, log1p, pow, rsqrt,
/// softplus) cast them to float32; cat and stack run in the widest floating dtype of their
/// inputs. Other ops run in their inputs' dtypes, and ops of mixed dtypes promote as usual
/// (bfloat16 + float32 -> float32). float64 tensors are never cast; the casts are
/// differentiable, so gradients come back in each leaf's own dtype (float32 master weights
/// get float32 gradients). A leaf that requires grad is cast once per outermost guard and
/// the cast reused (PyTorch's autocast cache). The backward pass runs with autocast off,
/// in the dtypes the forward chose. Both device types use CUDA's op lists; the default
/// dtype is float16 on CUDA and bfloat16 on the CPU, as in PyTorch.
///
///   {
///     AutocastGuard guard(Device::cuda(), kBFloat16);
///     Tensor loss = cross_entropy(model->forward(x), y);  // matmuls in bf16, loss in float32
///   }
///   loss.backward();
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace focus {

/// Turns autocast on (or off, enabled = false) for the device's type on this thread while
/// alive, restoring the previous state after; guards nest. dtype: float16 or bfloat16
/// (default: float16 on CUDA, bfloat16 on the CPU); anything else -> focus::Error.
class AutocastGuard {
 public:
  explicit AutocastGuard(Device device, std::optional<DType> dtype = std::nullopt, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DeviceType type_;
  bool prev_enabled_;
  DType prev_dtype_;
};

/// Whether autocast is on for the device type on this thread (torch.is_autocast_enabled).
bool is_autocast_enabled(DeviceType type);
/// The dtype autocast casts to for the device type (torch.get_autocast_dtype).
DType get_autocast_dtype(DeviceType type);
/// Drops the cached casts of leaves (done when the outermost guard ends).
void clear_autocast_cache();

namespace autocast {

/// How an op treats its inputs under autocast.
enum class Policy {
  Lower,    ///< floating inputs of the autocast device type -> the autocast dtype
  Float32,  ///< floating inputs of the autocast device type -> float32
};

/// True when some device type has autocast on and this thread is not inside the backward
/// pass (one thread-local load: the ops call it first).
bool active();
/// t cast as the policy says when autocast is on for t's device type and t is a floating
/// tensor other than float64; t itself otherwise (and for undefined t).
Tensor cast(const Tensor& t, Policy p);
/// The tensors cast to the widest floating dtype among those that autocast would touch
/// (cat, stack); unchanged when autocast is off for their device or they agree.
std::vector<Tensor> promote(const std::vector<Tensor>& ts);

/// Turns autocast off on this thread while alive (the backward pass runs under one).
class Suspend {
 public:
  Suspend();
  ~Suspend();
  Suspend(const Suspend&) = delete;
  Suspend& operator=(const Suspend&) = delete;

 private:
  bool prev_;
};

template <typename A> decltype(auto) cast_arg(Policy p, A&& a) {
  if constexpr (std::is_same_v<std::decay_t<A>, Tensor>) return cast(a, p);
  else return std::forward<A>(a);
}

/// The first line of an op on an autocast list:
///   if (autocast::active()) return autocast::run(Policy::Lower, [](auto&&... a) { return matmul(a...); }, a, b);
/// casts the Tensor arguments as the policy says, then calls f with autocast suspended, so
/// the op (and what it calls inside) sees autocast once, as PyTorch's dispatcher does.
template <typename F, typename... A> auto run(Policy p, F&& f, A&&... args) {
  auto cast_args = std::make_tuple(cast_arg(p, std::forward<A>(args))...);
  Suspend s;
  return std::apply(std::forward<F>(f), cast_args);
}

}  // namespace autocast
}  // namespace focus
