#pragma once
/// The training loop every training program writes, once: training::Trainer (in the manner
/// of PyTorch Lightning's Trainer.fit) runs the steps of a training::Run with its
/// checkpoints, resume, logging, validation, progress line, mixed precision and Ctrl-C.
/// A program may use it or write its own loop with Run's pieces.
///
///   training::Run run("my-model", config, training::RunOptions().set_dir("runs/mine"));
///   training::Trainer trainer(run, *model, opt, &sched,
///                             training::TrainerOptions(steps).log_every(10).grad_clip(1.0));
///   trainer.on_validate([&](int64_t step) { run.log("valid", step, {{"loss", valid_loss()}}); });
///   training::BatchStream batches(loader, trainer.restore());   // 0, or the step resumed from
///   trainer.fit([&](int64_t) {
///     auto& b = batches.next();
///     Tensor loss = criterion(model->forward(b.x.to(run.device())), b.y.to(run.device()));
///     return training::StepOutput(loss, b.x.size(0));
///   });
///   if (run.interrupted()) return;   // Ctrl-C: the checkpoint is saved
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace focus {
class Generator;
}
namespace focus::nn {
class Module;
}
namespace focus::optim {
class Optimizer;
class LRScheduler;
}  // namespace focus::optim

namespace focus::training {

class Config;
class Run;

/// What one training step returns (Lightning's training_step): the loss to minimize, the
/// number of items it trained on, and any extra metrics to average in the "train" log line.
struct StepOutput {
  StepOutput() = default;
  /// loss: a one-element tensor on the run's device, computed by the step (under the run's
  /// autocast, which the Trainer opens); items: this rank's items in the batch (tokens,
  /// images, examples), for the rate of the progress line and "items_per_s".
  StepOutput(Tensor loss, int64_t items) : loss(std::move(loss)), items(items) {}
  /// Adds a metric shown in the "train" log line as (sum of sum) / (sum of count) over the
  /// steps since the last line and over the ranks, e.g. add("accuracy", correct, batch_size).
  /// sum: a one-element tensor (any device; read only when a line is logged).
  StepOutput& add(std::string name, Tensor sum, double count);

  Tensor loss;
  int64_t items = 0;
  std::vector<std::tuple<std::string, Tensor, double>> sums;
};

/// How a Trainer runs. Every count is in optimizer steps.
struct TrainerOptions {
  /// steps: the run's total number of optimizer steps (>= 1).
  explicit TrainerOptions(int64_t steps) : steps_(steps) {}
  /// The options a config's shared keys give, where it has them: log_every, eval_every,
  /// checkpoint_every, grad_clip (the zoo's spelling, docs/CLI.md); the others keep their
  /// defaults.
  static TrainerOptions from_config(const Config& config, int64_t steps);
  /// Batches in an epoch (0: training is not in epochs): the epoch of the progress line and
  /// the log, and the validation at every epoch's end when eval_every is 0.
  TrainerOptions& steps_per_epoch(int64_t n) { steps_per_epoch_ = n; return *this; }
  /// A "train" line in metrics.jsonl every n steps and at the last (default 10).
  TrainerOptions& log_every(int64_t n) { log_every_ = n; return *this; }
  /// Validation (on_validate) every n steps; 0 (default): at the end of each epoch when
  /// steps_per_epoch is set. Always after the last step.
  TrainerOptions& eval_every(int64_t n) { eval_every_ = n; return *this; }
  /// A checkpoint every n steps (0, the default: only at the end or on Ctrl-C).
  TrainerOptions& checkpoint_every(int64_t n) { checkpoint_every_ = n; return *this; }
  /// Clip the gradients' total 2-norm to max_norm before each optimizer step (0: no
  /// clipping); the norm before clipping is logged as "grad_norm".
  TrainerOptions& grad_clip(double max_norm) { grad_clip_ = max_norm; return *this; }
  /// What the progress line's rate counts, as "tok/s", "img/s" (default "items/s").
  TrainerOptions& unit(std::string u) { unit_ = std::move(u); return *this; }

  int64_t steps_;
  int64_t steps_per_epoch_ = 0;
  int64_t log_every_ = 10;
  int64_t eval_every_ = 0;
  int64_t checkpoint_every_ = 0;
  double grad_clip_ = 0.0;
  std::string unit_ = "items/s";
};

class Trainer {
 public:
  /// The objects a checkpoint saves: model, optimizer, scheduler (nullptr: none). Bad
  /// options (steps < 1, negative counts or grad_clip) -> focus::Error "[Trainer] ...".
  Trainer(Run& run, nn::Module& model, optim::Optimizer& opt, optim::LRScheduler* sched, TrainerOptions opts);

  /// A random generator training draws from besides the default one, saved in checkpoints.
  Trainer& generator(Generator* gen);
  /// Extra checkpoint metadata (a vocabulary, normalization constants).
  Trainer& meta(std::map<std::string, std::string> meta);
  /// Called with the step count for each validation (the progress line cleared); the model
  /// is put back in training mode after it.
  Trainer& on_validate(std::function<void(int64_t step)> validate);

  /// Resuming: loads the run's checkpoint (Run::restore) and returns its step; a fresh run: 0.
  /// Call before fit when the data must be positioned (BatchStream); fit calls it otherwise.
  int64_t restore();
  /// Steps done so far.
  int64_t step() const { return step_; }

  /// Trains from step() to the last step. Each step: training_step(step index, from 0) under
  /// the run's autocast, zero_grad, backward (scaled with fp16), gradient clipping, the
  /// optimizer and scheduler steps; then the progress line, the "train" log line
  /// (loss, lr, grad_norm, epoch, items_per_s and the step's sums; a non-finite mean loss is
  /// an error, also checked before each checkpoint), validation and checkpoints as the
  /// options say. Ctrl-C stops after the current step. Ends with a checkpoint; returns true
  /// when every step is done and Ctrl-C was not pressed (then the program should return
  /// without its final evaluation: the run resumes to it).
  bool fit(const std::function<StepOutput(int64_t step)>& training_step);
  /// Seconds spent in fit (the steps only, no validation excluded).
  double train_seconds() const { return train_seconds_; }
  /// Items trained on in fit (the ranks' sum).
  int64_t items_trained() const { return items_trained_; }

 private:
  void save();
  void check_finite(double mean_loss) const;

  Run& run_;
  nn::Module& model_;
  optim::Optimizer& opt_;
  optim::LRScheduler* sched_;
  TrainerOptions opts_;
  Generator* gen_ = nullptr;
  std::map<std::string, std::string> meta_;
  std::function<void(int64_t)> validate_;
  std::optional<int64_t> restored_;
  struct Unlogged {  // what the next "train" line averages, summed since the last one
    Tensor loss_sum;              // float64, on the run's device
    double loaded_loss_sum = 0.0;  // from a resumed checkpoint
    int64_t count = 0;
    std::vector<std::tuple<std::string, Tensor, double>> sums;  // name, sum, count
  } unlogged_;
  int64_t step_ = 0;
  int64_t first_unlogged_ = 1;
  double train_seconds_ = 0.0;
  int64_t items_trained_ = 0;
};

/// The batches of a data::DataLoader for a step function: next() continues across epochs
/// (set_epoch, so every epoch is reshuffled as the loader does) from any step (resume
/// inside an epoch starts at the batch after the checkpoint's).
template <class Loader>
class BatchStream {
 public:
  using Batch = typename Loader::Iterator::value_type;
  /// on_epoch: called with each epoch's index before its batches are made (a collate
  /// function that depends on the epoch, such as augmentation, reads it).
  BatchStream(Loader& loader, int64_t start_step, std::function<void(int64_t)> on_epoch = {})
      : loader_(loader), on_epoch_(std::move(on_epoch)) {
    const int64_t per = loader.num_batches();
    FOCUS_CHECK(per >= 1, "[BatchStream] the loader has no batch in an epoch");
    FOCUS_CHECK(start_step >= 0, "[BatchStream] start_step must be >= 0, got {}", start_step);
    epoch_ = start_step / per;
    loader_.set_epoch(epoch_, start_step % per);
  }
  /// The next step's batch (valid until the following next()).
  Batch& next() {
    if (started_) ++it_;
    while (!started_ || it_ == loader_.end()) {
      if (started_) loader_.set_epoch(++epoch_);
      if (on_epoch_) on_epoch_(epoch_);
      it_ = loader_.begin();
      started_ = true;
    }
    return *it_;
  }
  /// The epoch of the batch next() returned last (from 0).
  int64_t epoch() const { return epoch_; }

 private:
  Loader& loader_;
  std::function<void(int64_t)> on_epoch_;
  typename Loader::Iterator it_;
  int64_t epoch_ = 0;
  bool started_ = false;
};

}  // namespace focus::training
