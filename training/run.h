#pragma once
/// A training run: its directory (config.json, metrics.jsonl, checkpoint.safetensors,
/// report.json, report.txt, pictures), its progress bar and Ctrl-C handling.
///
/// A model's train function (ModelEntry::train) receives a Run made by the command line:
///
///   void train(training::Run& run) {
///     const training::Config& c = run.config();
///     auto model = std::make_shared<MyModel>(...);
///     model->to(run.device());                   // before the optimizer sees the parameters
///     optim::AdamW opt(model->parameters(), ...);
///     manual_seed(c.integer("seed"));           // dropout draws from the default generator
///     Generator gen(c.integer("seed") + 1);      // any other stream training draws from
///     int64_t step = run.restore(*model, &opt, &sched, &gen, c.integer("steps"));  // 0: fresh run
///     run.progress().start(c.integer("steps"), "tok/s");
///     while (step < c.integer("steps") && !run.interrupted()) {
///       ... one step (the batch moved with .to(run.device())) ...; ++step;
///       run.progress().update(step, epoch, loss, tokens_in_batch);   // loss: a 0-d device tensor
///       if (step % c.integer("eval_every") == 0) run.log("valid", step, {{"loss", vl}});
///       if (step % c.integer("checkpoint_every") == 0) run.save_checkpoint(*model, &opt, &sched, step, &gen, meta);
///     }
///     run.progress().finish();
///     run.save_checkpoint(*model, &opt, &sched, step, &gen, meta);
///     if (run.interrupted()) return;                                // the CLI exits with 130
///     run.report({{"test_accuracy", acc}}, "test accuracy 91.2%\n");
///   }
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/random.h"
#include "autograd/anomaly.h"
#include "autograd/autocast.h"
#include "core/tensor.h"
#include "training/config.h"
#include "optim/grad_scaler.h"

namespace focus::nn {
class Module;
class DistributedDataParallelBase;
}
namespace focus::data {
struct DataLoaderOptions;
}
namespace focus::optim {
class Optimizer;
class LRScheduler;
}  // namespace focus::optim

namespace focus::training {

class SummaryWriter;

/// A progress line: "step 120/3000 (4%) | epoch 2 | loss 1.2345 | 12.3k tok/s | ETA 3m12s".
/// On a terminal it is redrawn in place with '\r'; otherwise (a log file, a pipe) a plain line
/// is written at most every interval seconds (default 10) and at finish().
class Progress {
 public:
  /// Writes to out; tty: redraw in place. enabled = false: writes nothing.
  explicit Progress(std::ostream& out, bool tty = false, bool enabled = true);

  /// Starts a phase of total_steps steps; unit names the items counted by update
  /// ("tok/s", "img/s", "emails/s").
  void start(int64_t total_steps, std::string unit);
  /// Records that step (1-based count of steps done) is reached, with the epoch, the latest
  /// loss and the number of items processed since the previous update (for the rate).
  void update(int64_t step, int64_t epoch, double loss, int64_t items_since_last_update);
  /// The same with the loss as a one-element tensor on any device: it is read on the host only
  /// when a line is drawn, so a training loop on a GPU does not wait for every step's loss.
  void update(int64_t step, int64_t epoch, const Tensor& loss, int64_t items_since_last_update);
  /// Ends the phase: the last line is completed with a newline.
  void finish();
  /// Clears a line drawn in place (before other output is written on a terminal); the next
  /// update redraws it.
  void clear();

  /// Seconds between plain lines when not on a terminal (default 10; 0 = every update).
  Progress& interval(double seconds);
  /// The text of the current line (without '\r' or newline), for tests.
  std::string line() const;

 private:
  void draw(bool final_line);
  void step_to(int64_t step, int64_t epoch, int64_t items_since_last_update);
  double current_loss() const;  // loss_, or the pending tensor's value
  std::ostream* out_;
  bool tty_, enabled_;
  double interval_ = 10.0;
  int64_t total_ = 0, step_ = 0, first_step_ = -1, epoch_ = 0;
  double loss_ = 0.0, rate_ = 0.0;
  Tensor pending_loss_;  // a loss given as a tensor, not read yet (undefined: loss_ is current)
  int64_t items_ = 0;
  std::string unit_;
  bool drawn_ = false;
  bool finishing_ = false;  // the final line shows the time taken instead of the ETA
  std::chrono::steady_clock::time_point start_, last_rate_, last_draw_;
  double items_since_rate_ = 0.0;
};

/// How a run is set up (the command line's train flags).
struct RunOptions {
  /// Run directory; "" = runs/<model>.
  std::string dir;
  /// Continue from dir/checkpoint.safetensors (which must exist); the stored config.json is
  /// used, then `overrides` apply.
  bool resume = false;
  /// Start afresh even though dir holds a checkpoint (its files are replaced).
  bool overwrite = false;
  /// "cpu" or "cuda[:N]"; a device this build or machine cannot use -> focus::Error
  /// (usable_device).
  std::string device = "cpu";
  /// Mixed precision of the training steps: "none" (float32), "bf16" (autocast to bfloat16)
  /// or "fp16" (autocast to float16 with loss scaling by a GradScaler, saved in the
  /// checkpoint). Anything else -> focus::Error.
  std::string amp = "none";
  /// Anomaly detection (autograd::DetectAnomalyGuard) for the Run's lifetime: a backward
  /// that produces NaN or infinite gradients stops training with an error naming the
  /// backward node and the forward op that recorded it. For debugging: it slows every step.
  bool detect_anomaly = false;
  /// TensorBoard event files in <dir>/tensorboard (rank 0): every log() line as scalars
  /// ("train/loss", "valid/accuracy", ...), parameter and gradient histograms every
  /// tensorboard_every steps (training::Trainer), and at the report its text and the run's
  /// pictures. A resumed run's events replace those of the steps it trains again.
  bool tensorboard = false;
  /// Steps between the histograms of the parameters and gradients (>= 1).
  int64_t tensorboard_every = 100;
  /// No progress line.
  bool quiet = false;
  /// "key=value" changes applied last (also after the stored config on resume).
  std::vector<std::string> overrides;
  /// Where metrics echoes and the report go (nullptr = std::cout), and the progress line
  /// (nullptr = std::cerr, redrawn in place when stderr is a terminal).
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;

  RunOptions& set_dir(std::string d) { dir = std::move(d); return *this; }
  RunOptions& set_resume(bool b = true) { resume = b; return *this; }
  RunOptions& set_overwrite(bool b = true) { overwrite = b; return *this; }
  RunOptions& set_device(std::string d) { device = std::move(d); return *this; }
  RunOptions& set_quiet(bool b = true) { quiet = b; return *this; }
  RunOptions& set_amp(std::string a) { amp = std::move(a); return *this; }
  RunOptions& set_detect_anomaly(bool b = true) { detect_anomaly = b; return *this; }
  RunOptions& set_tensorboard(bool b = true, int64_t every = 100) { tensorboard = b; tensorboard_every = every; return *this; }
  RunOptions& set_overrides(std::vector<std::string> o) { overrides = std::move(o); return *this; }
  RunOptions& set_streams(std::ostream* o, std::ostream* e) { out = o; err = e; return *this; }
};

/// The file names inside a run directory.
inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kMetricsFile = "metrics.jsonl";
inline constexpr const char* kCheckpointFile = "checkpoint.safetensors";
inline constexpr const char* kReportJsonFile = "report.json";
inline constexpr const char* kReportTextFile = "report.txt";
inline constexpr const char* kTensorBoardDir = "tensorboard";

/// The default run directory of a model: runs/<model>.
std::filesystem::path default_run_dir(const std::string& model);

/// The device named by spec ("cpu", "cuda", "cuda:N") when this build and machine can use
/// it. Otherwise focus::Error "[command] --device SPEC: this device cannot be used (why); use
/// --device cpu" (a build without CUDA, no GPU, no GPU of that index); a spec that is no
/// device at all -> the parser's error ("expected 'cpu', 'cuda' or 'cuda:N'").
/// The config's "threads" setting applied: 0 keeps focus's default (every core), 1 to
/// max_num_threads() sets it; anything else is an error naming the model.
void apply_threads(const Config& config, const std::string& model);
Device usable_device(const std::string& spec, const std::string& command = "train");
/// How run headers name a device: "cpu", or "cuda:0 (NVIDIA H200)" with the GPU's name.
std::string device_description(Device device);

class Run {
 public:
  /// Checks opts.device (usable_device), then makes or opens the run directory; the first
  /// write (log, save_checkpoint, restore or report) then writes config.json and, for a
  /// fresh run, removes what an earlier run left
  /// (checkpoint, metrics, report and, if the directory held a run, its .png pictures). So a
  /// run that fails before it writes anything (a bad config value, a dataset not fetched)
  /// leaves the earlier run as it was, even with --overwrite.
  /// - fresh (no --resume): a directory that already holds a checkpoint is an error unless
  ///   overwrite (nothing is touched).
  /// - resume: the checkpoint must exist; config.json is read back into `config` (keys must
  ///   exist in it, so pass the model's default config) and opts.overrides apply.
  /// Installs a SIGINT handler for the Run's lifetime: the first Ctrl-C sets interrupted(),
  /// a second one exits the process at once with status 130. With opts.detect_anomaly,
  /// anomaly detection is on for the Run's lifetime (the previous mode comes back after).
  Run(const std::string& model, Config config, RunOptions opts);
  ~Run();
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  const std::string& model() const { return model_; }
  const Config& config() const { return config_; }
  const std::filesystem::path& dir() const { return dir_; }
  Device device() const { return device_; }
  bool resuming() const { return opts_.resume; }
  /// Where the model's console output goes (metrics echoes, report).
  std::ostream& out() const;

  /// Appends {"split": split, "step": step, "time": seconds of training so far, <metrics>...}
  /// to metrics.jsonl; splits other than "train" are also echoed to out() as
  /// "valid  step 500  loss 1.2345  acc 0.9120".
  void log(const std::string& split, int64_t step, const std::vector<std::pair<std::string, double>>& metrics);

  /// Writes dir/checkpoint.safetensors atomically (optim::save_checkpoint); meta gets
  /// "config" (config().to_json()) and "model" (the model's name) added. The default
  /// generator's state is always saved; `gen` is an extra one (nullptr: none).
  void save_checkpoint(nn::Module& model, optim::Optimizer* opt, optim::LRScheduler* sched, int64_t step,
                       Generator* gen, std::map<std::string, std::string> meta = {});
  /// Resuming: loads dir/checkpoint.safetensors into the objects (optim::load_checkpoint),
  /// drops metrics.jsonl lines after its step and returns the step. A fresh run: returns 0.
  /// total_steps: where this run ends with its (possibly --set) config; a checkpoint already
  /// past it is an error (a run cannot train backwards), one exactly at it resumes to report.
  int64_t restore(nn::Module& model, optim::Optimizer* opt, optim::LRScheduler* sched, Generator* gen,
                  int64_t total_steps);

  /// True once Ctrl-C was pressed (or request_interrupt was called): the training loop should
  /// save a checkpoint and return. Distributed, the ranks agree (true when any rank was
  /// interrupted), so every rank must call it at the same points.
  bool interrupted() const;
  /// Sets interrupted() as Ctrl-C would (for tests and embedding programs).
  void request_interrupt();

  Progress& progress() { return progress_; }

  /// The run's TensorBoard writer (RunOptions::tensorboard; nullptr when off and on ranks
  /// other than 0), made at its first use, in <dir>/tensorboard.
  SummaryWriter* tensorboard();
  /// Steps between parameter and gradient histograms (RunOptions::tensorboard_every).
  int64_t tensorboard_every() const { return opts_.tensorboard_every; }

  /// Data-parallel training (`focus train --nproc N`, or the command started under mpirun
  /// with the process group initialized): this process's rank and the number of ranks (0
  /// and 1 otherwise). Rank 0 alone writes the run directory, logs, reports and draws the
  /// progress line; checkpoints are written by rank 0 once every rank has finished the
  /// step, and every rank resumes from them. batch_size is per rank: the effective batch is
  /// world_size() x batch_size.
  int rank() const { return rank_; }
  int world_size() const { return world_; }
  /// Wraps model in nn::DistributedDataParallel when world_size() > 1 (nothing otherwise):
  /// every backward through its parameters then leaves the gradients averaged over the
  /// ranks (the model is called directly; its buffers must not change in training). Call
  /// once, after model->to(device()) and before training; rank 0's parameters are copied
  /// to every rank.
  void data_parallel(const std::shared_ptr<nn::Module>& model);
  /// The wrapper made by data_parallel (nullptr when not distributed).
  nn::DistributedDataParallelBase* ddp() const { return ddp_.get(); }
  /// Shuffles a training DataLoader's epochs: shuffle(true) in one process; with several
  /// ranks, a data::DistributedSampler (seeded with opts' seed) that gives each rank its
  /// share of every epoch, the same number of batches on every rank (so an epoch takes
  /// 1/world_size() of the steps). dataset_size: the loader's dataset's.
  void shuffle_for_ranks(data::DataLoaderOptions& opts, int64_t dataset_size) const;
  /// The mean of v over the ranks (v when not distributed); every rank must call it.
  double mean_over_ranks(double v) const;

  /// Mixed precision (RunOptions::amp). A training step reads:
  ///   Tensor loss;
  ///   { AutocastGuard ac = run.autocast(); loss = criterion(model->forward(x), y); }
  ///   opt.zero_grad();
  ///   run.backward(loss);                                   // loss * scale for fp16
  ///   Tensor norm = run.step(opt, model->parameters(), clip); // unscale, clip, step, update
  /// autocast(): a guard for the run's device, on with --amp bf16/fp16, off otherwise.
  AutocastGuard autocast() const;
  /// The amp mode: "none", "bf16" or "fp16".
  const std::string& amp() const { return opts_.amp; }
  /// Whether anomaly detection is on for this run (RunOptions::detect_anomaly).
  bool detect_anomaly() const { return opts_.detect_anomaly; }
  /// loss.backward(), the loss scaled by the GradScaler first with fp16.
  void backward(const Tensor& loss);
  /// The optimizer step: unscale the gradients (fp16), clip them to max_norm when
  /// max_norm > 0 (returning their total norm before clipping; undefined otherwise), step
  /// (skipped by the scaler on inf/NaN gradients) and update the scale.
  Tensor step(optim::Optimizer& opt, const std::vector<Tensor>& params, double max_norm);
  /// The loss scaler (disabled unless fp16).
  optim::GradScaler& scaler() { return scaler_; }

  /// Writes dir/report.json ({"model", "metrics": {...}, "text"}) and dir/report.txt (text, then
  /// one "name value" line per metric) and prints text to out().
  void report(const std::vector<std::pair<std::string, double>>& metrics, const std::string& text);
  /// True once report() was written: the run finished, even if Ctrl-C came after its last
  /// checkpoint (during the final evaluation).
  bool reported() const { return reported_; }

 private:
  void start_writing();  // once, before the first write: see the constructor

  std::string model_;
  Config config_;
  RunOptions opts_;
  std::filesystem::path dir_;
  Device device_;
  optim::GradScaler scaler_;
  Progress progress_;
  std::chrono::steady_clock::time_point start_;
  double time_offset_ = 0.0;
  bool writing_ = false;
  bool reported_ = false;
  int rank_ = 0, world_ = 1;
  std::shared_ptr<nn::DistributedDataParallelBase> ddp_;
  std::optional<autograd::DetectAnomalyGuard> anomaly_;  // with opts_.detect_anomaly
  std::unique_ptr<SummaryWriter> tensorboard_;             // with opts_.tensorboard, on rank 0
  int64_t resumed_step_ = 0;                               // restore()'s step
  int64_t last_logged_step_ = 0;                           // the report's step in TensorBoard
};

/// The metadata of a checkpoint file (read from its header only). A missing or unreadable
/// file -> focus::Error naming it.
std::map<std::string, std::string> checkpoint_meta(const std::string& path);
/// checkpoint_meta, checking that it was written by a Run of `model` (meta "model").
std::map<std::string, std::string> checkpoint_meta(const std::string& path, const std::string& model);
}  // namespace focus::training
