#pragma once
/// Loss scaling for float16 mixed precision, as torch.amp.GradScaler: the loss is multiplied
/// by a scale before backward so small float16 gradients do not flush to zero; the
/// gradients are divided by it again before the optimizer step, which is skipped when any
/// of them is infinite or NaN; the scale then shrinks (backoff) after such a step and grows
/// after growth_interval clean steps in a row.
///
///   optim::GradScaler scaler;                       // GradScalerOptions().enabled(amp == fp16)
///   {
///     AutocastGuard guard(Device::cuda(), kFloat16);
///     loss = criterion(model->forward(x), y);
///   }
///   scaler.scale(loss).backward();
///   scaler.unscale_(opt);                           // optional: to clip true gradients
///   optim::clip_grad_norm_(model->parameters(), 1.0);
///   scaler.step(opt);                               // skipped if a gradient is inf/NaN
///   scaler.update();
///
/// A disabled scaler passes everything through (scale() returns the loss, step() steps), so
/// one training loop serves float32, bfloat16 and float16. bfloat16 has float32's range and
/// needs no scaler. Deciding whether to step reads one number back from the device per step,
/// as PyTorch's does.
#include <cstdint>
#include <unordered_map>

#include "core/tensor.h"
#include "core/tensor_dict.h"
#include "optim/optimizer.h"

namespace focus::optim {

struct GradScalerOptions {
  double init_scale_ = 65536.0;
  double growth_factor_ = 2.0;
  double backoff_factor_ = 0.5;
  int64_t growth_interval_ = 2000;
  bool enabled_ = true;
  GradScalerOptions& init_scale(double v) { init_scale_ = v; return *this; }
  GradScalerOptions& growth_factor(double v) { growth_factor_ = v; return *this; }
  GradScalerOptions& backoff_factor(double v) { backoff_factor_ = v; return *this; }
  GradScalerOptions& growth_interval(int64_t v) { growth_interval_ = v; return *this; }
  GradScalerOptions& enabled(bool v) { enabled_ = v; return *this; }
};

class GradScaler {
 public:
  /// Errors (naming [GradScaler]) on growth_factor <= 1, backoff_factor outside (0, 1),
  /// growth_interval <= 0 or a scale that is not positive and finite.
  explicit GradScaler(GradScalerOptions options = {});

  /// outputs * scale (the dtype of outputs is kept); outputs itself when disabled.
  Tensor scale(const Tensor& outputs) const;
  /// Divides the gradients of the optimizer's parameters by the scale in place and records
  /// whether any of them is infinite or NaN. At most once per optimizer between update()s,
  /// and before step(). float16 gradients are an error (the master weights must be float32,
  /// as PyTorch requires).
  void unscale_(Optimizer& optimizer);
  /// unscale_ (unless done) then optimizer.step() unless a gradient was inf/NaN; returns
  /// whether it stepped. Once per optimizer between update()s.
  bool step(Optimizer& optimizer);
  /// The next scale: backoff after a skipped step, growth after growth_interval good ones in
  /// a row (only to a finite value); or new_scale when given. Needs a step() or unscale_()
  /// since the last update().
  void update();
  void update(double new_scale);

  /// The current scale (1 when disabled).
  double get_scale() const { return options_.enabled_ ? scale_ : 1.0; }
  double get_growth_factor() const { return options_.growth_factor_; }
  double get_backoff_factor() const { return options_.backoff_factor_; }
  int64_t get_growth_interval() const { return options_.growth_interval_; }
  bool is_enabled() const { return options_.enabled_; }
  /// Good steps in a row since the last change of scale.
  int64_t growth_tracker() const { return growth_tracker_; }
  /// Steps skipped for inf/NaN gradients since construction (not saved).
  int64_t skipped_steps() const { return skipped_; }

  /// PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval,
  /// _growth_tracker (0-d float64 / int64 tensors); empty when disabled.
  TensorDict state_dict() const;
  /// Restores state_dict(); an empty dict (from a disabled scaler) or a missing key is an
  /// error.
  void load_state_dict(const TensorDict& state);

 private:
  struct PerOptimizer {
    bool unscaled = false, stepped = false, found_inf = false;
  };
  PerOptimizer& state_of(const Optimizer& o) { return per_opt_[&o]; }

  GradScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  int64_t skipped_ = 0;
  std::unordered_map<const Optimizer*, PerOptimizer> per_opt_;
};

}  // namespace focus::optim
