// training::Trainer: the loop of training/trainer.h.
#include "training/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <nlohmann/json.hpp>

#include "autograd/autocast.h"
#include "autograd/functions/elementwise.h"
#include "core/creation.h"
#include "nn/module.h"
#include "optim/lr_scheduler.h"
#include "optim/optimizer.h"
#include "training/config.h"
#include "training/run.h"
#include "training/tensorboard.h"

namespace focus::training {

namespace {
// The checkpoint's metadata key of the sums since the last "train" line.
constexpr const char* kUnloggedMeta = "trainer_unlogged";
}  // namespace

TrainerOptions TrainerOptions::from_config(const Config& c, int64_t steps) {
  TrainerOptions o(steps);
  if (c.contains("log_every")) o.log_every(c.integer("log_every"));
  if (c.contains("eval_every")) o.eval_every(c.integer("eval_every"));
  if (c.contains("checkpoint_every")) o.checkpoint_every(c.integer("checkpoint_every"));
  if (c.contains("grad_clip")) o.grad_clip(c.real("grad_clip"));
  return o;
}

StepOutput& StepOutput::add(std::string name, Tensor sum, double count) {
  FOCUS_CHECK(sum.defined() && sum.numel() == 1, "[StepOutput] add '{}': the sum must be a one-element tensor", name);
  FOCUS_CHECK(std::isfinite(count) && count >= 0, "[StepOutput] add '{}': count must be finite and >= 0, got {}",
              name, count);
  sums.emplace_back(std::move(name), std::move(sum), count);
  return *this;
}

Trainer::Trainer(Run& run, nn::Module& model, optim::Optimizer& opt, optim::LRScheduler* sched, TrainerOptions opts)
    : run_(run), model_(model), opt_(opt), sched_(sched), opts_(std::move(opts)) {
  FOCUS_CHECK(opts_.steps_ >= 1, "[Trainer] steps must be >= 1, got {}", opts_.steps_);
  FOCUS_CHECK(opts_.steps_per_epoch_ >= 0 && opts_.eval_every_ >= 0 && opts_.checkpoint_every_ >= 0,
              "[Trainer] steps_per_epoch, eval_every and checkpoint_every must be >= 0, got {}, {}, {}",
              opts_.steps_per_epoch_, opts_.eval_every_, opts_.checkpoint_every_);
  FOCUS_CHECK(opts_.log_every_ >= 1, "[Trainer] log_every must be >= 1, got {}", opts_.log_every_);
  FOCUS_CHECK(std::isfinite(opts_.grad_clip_) && opts_.grad_clip_ >= 0,
              "[Trainer] grad_clip must be >= 0 (0 = off), got {}", opts_.grad_clip_);
}

Trainer& Trainer::generator(Generator* gen) {
  gen_ = gen;
  return *this;
}

Trainer& Trainer::meta(std::map<std::string, std::string> meta) {
  meta_ = std::move(meta);
  return *this;
}

Trainer& Trainer::on_validate(std::function<void(int64_t)> validate) {
  validate_ = std::move(validate);
  return *this;
}

int64_t Trainer::restore() {
  FOCUS_CHECK(!restored_, "[Trainer] restore: called twice");
  restored_ = run_.restore(model_, &opt_, sched_, gen_, opts_.steps_);
  step_ = *restored_;
  first_unlogged_ = step_ + 1;
  if (step_ > 0) {
    const auto meta = checkpoint_meta((run_.dir() / kCheckpointFile).string());
    if (auto it = meta.find(kUnloggedMeta); it != meta.end()) {
      const nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
      FOCUS_CHECK(j.is_object() && j.contains("loss_sum") && j["loss_sum"].is_number() && j.contains("count") &&
                      j["count"].is_number_integer() && j["count"].get<int64_t>() >= 0,
                  "[Trainer] the checkpoint's {} metadata is malformed: {}", kUnloggedMeta, it->second);
      unlogged_.loaded_loss_sum = j["loss_sum"].get<double>();
      unlogged_.count = j["count"].get<int64_t>();
      first_unlogged_ = step_ + 1 - unlogged_.count;
      for (const auto& s : j.value("sums", nlohmann::json::array())) {
        FOCUS_CHECK(s.is_array() && s.size() == 3 && s[0].is_string() && s[1].is_number() && s[2].is_number(),
                    "[Trainer] the checkpoint's {} metadata is malformed: {}", kUnloggedMeta, it->second);
        unlogged_.sums.emplace_back(s[0].get<std::string>(), full({}, s[1].get<double>(), TensorOptions(kFloat64)),
                                    s[2].get<double>());
      }
    }
  }
  return step_;
}

void Trainer::check_finite(double mean_loss) const {
  FOCUS_CHECK(std::isfinite(mean_loss),
              "[{}] the training loss is {} in steps {} .. {}: lower lr, raise warmup_steps or set grad_clip",
              run_.model(), mean_loss, first_unlogged_, step_);
}

void Trainer::save() {
  std::map<std::string, std::string> meta = meta_;
  if (unlogged_.count > 0) {
    // Exact doubles: the resumed run's next line must equal an uninterrupted run's.
    nlohmann::json j{{"loss_sum", unlogged_.loss_sum.item<double>()}, {"count", unlogged_.count}};
    for (const auto& [name, sum, count] : unlogged_.sums) j["sums"].push_back({name, sum.item<double>(), count});
    meta[kUnloggedMeta] = j.dump();
  }
  run_.save_checkpoint(model_, &opt_, sched_, step_, gen_, meta);
}

bool Trainer::fit(const std::function<StepOutput(int64_t)>& training_step) {
  FOCUS_CHECK(static_cast<bool>(training_step), "[Trainer] fit: the training step function is empty");
  if (!restored_) restore();
  const int64_t total = opts_.steps_, per_epoch = opts_.steps_per_epoch_;
  const int world = run_.world_size();
  const Device device = run_.device();
  // What the "train" line averages, summed on the device (the loss in float64, as host doubles
  // would add it) and read on the host only when a line is logged or a checkpoint written.
  const TensorOptions f64 = TensorOptions(kFloat64).device(device);
  // A run resumed between two log lines goes on with the sums its checkpoint holds, so its
  // next line equals an uninterrupted run's.
  Tensor& loss_sum = unlogged_.loss_sum;
  int64_t& loss_count = unlogged_.count;
  auto& sums = unlogged_.sums;
  loss_sum = full({}, unlogged_.loaded_loss_sum, f64);
  for (auto& [name, sum, count] : sums) sum = sum.to(device);
  int64_t items_since_log = 0;
  Tensor grad_norm;
  double lr = opt_.lr();
  auto epoch_of = [&](int64_t s) { return per_epoch > 0 ? s / per_epoch : 0; };
  auto checked_mean = [&] {
    const double mean = loss_sum.item<double>() / static_cast<double>(loss_count);
    check_finite(mean);
    return mean;
  };

  const auto t_start = std::chrono::steady_clock::now();
  auto t_log = t_start;
  Progress& progress = run_.progress();
  progress.start(total, opts_.unit_);
  model_.train();
  while (step_ < total && !run_.interrupted()) {
    StepOutput out;
    {
      AutocastGuard ac = run_.autocast();  // --amp: the forward in bfloat16/float16
      out = training_step(step_);
    }
    FOCUS_CHECK(out.loss.defined() && out.loss.numel() == 1,
                "[Trainer] step {}: the training step must return a one-element loss tensor", step_ + 1);
    FOCUS_CHECK(out.items >= 0, "[Trainer] step {}: items must be >= 0, got {}", step_ + 1, out.items);
    opt_.zero_grad();
    run_.backward(out.loss);
    lr = opt_.lr();
    grad_norm = run_.step(opt_, model_.parameters(), opts_.grad_clip_);
    if (sched_) sched_->step();
    ++step_;

    loss_sum = loss_sum + out.loss.detach().to(kFloat64);
    ++loss_count;
    const int64_t items = world * out.items;  // --nproc: every rank's items
    items_since_log += items;
    items_trained_ += items;
    for (const auto& added : out.sums) {
      const std::string& name = std::get<0>(added);
      const Tensor sum = std::get<1>(added).detach().to(device).to(kFloat64).reshape({});
      auto it = std::find_if(sums.begin(), sums.end(), [&](const auto& s) { return std::get<0>(s) == name; });
      if (it == sums.end()) {
        sums.emplace_back(name, sum, std::get<2>(added));
      } else {
        std::get<1>(*it) = std::get<1>(*it) + sum;
        std::get<2>(*it) += std::get<2>(added);
      }
    }
    progress.update(step_, epoch_of(step_ - 1) + 1, out.loss, items);
    if (SummaryWriter* tb = run_.tensorboard(); tb && step_ % run_.tensorboard_every() == 0) {
      // The weights after this step and the (unscaled, clipped) gradients it used.
      for (const auto& [name, p] : model_.named_parameters()) {
        tb->add_histogram("parameters/" + name, p, step_);
        if (p.grad().defined()) tb->add_histogram("gradients/" + name, p.grad(), step_);
      }
    }

    if (step_ % opts_.log_every_ == 0 || step_ == total) {
      // --nproc: means over the ranks, one collective per value in the same order on every rank
      const double mean_loss = run_.mean_over_ranks(checked_mean());
      const auto now = std::chrono::steady_clock::now();  // after the read: the device has caught up
      const double dt = std::chrono::duration<double>(now - t_log).count();
      std::vector<std::pair<std::string, double>> metrics{{"loss", mean_loss}, {"lr", lr}};
      if (grad_norm.defined()) metrics.emplace_back("grad_norm", run_.mean_over_ranks(grad_norm.item<double>()));
      for (const auto& [name, sum, count] : sums) {
        const double s = run_.mean_over_ranks(sum.item<double>()), n = run_.mean_over_ranks(count);
        metrics.emplace_back(name, n > 0 ? s / n : 0.0);
      }
      if (per_epoch > 0) metrics.emplace_back("epoch", static_cast<double>(step_) / static_cast<double>(per_epoch));
      metrics.emplace_back("items_per_s", dt > 0 ? static_cast<double>(items_since_log) / dt : 0.0);
      run_.log("train", step_, metrics);
      t_log = now;
      loss_sum = zeros({}, f64);
      loss_count = 0;
      items_since_log = 0;
      sums.clear();
      first_unlogged_ = step_ + 1;
    }
    const bool validate = opts_.eval_every_ > 0 ? step_ % opts_.eval_every_ == 0
                                                : per_epoch > 0 && step_ % per_epoch == 0;
    if (validate_ && (validate || step_ == total)) {
      progress.clear();
      validate_(step_);
      model_.train();
    }
    if (opts_.checkpoint_every_ > 0 && step_ % opts_.checkpoint_every_ == 0 && step_ < total) {
      if (loss_count > 0) (void)checked_mean();  // never save weights a diverged step wrote
      save();
    }
  }
  progress.finish();
  if (loss_count > 0) (void)checked_mean();
  train_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  save();
  return step_ >= total && !run_.interrupted();
}

}  // namespace focus::training
