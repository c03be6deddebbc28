// training/run.h: run directories, metrics, checkpoints, progress line, Ctrl-C.
#include "training/run.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/creation.h"
#include "core/cuda.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "data/dataloader.h"
#include "data/sampler.h"
#include "distributed/ddp.h"
#include "distributed/distributed.h"
#include "nn/module.h"
#include "optim/checkpoint.h"
#include "optim/clip_grad.h"
#include "training/tensorboard.h"

namespace focus::training {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// ---- Ctrl-C --------------------------------------------------------------------------------

std::atomic<int> g_sigint_count{0};
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_runs_alive{0};
std::atomic<bool> g_signal_quiet{false};  // ranks other than 0 say nothing
struct sigaction g_previous_action, g_previous_usr1;

// SIGINT (Ctrl-C), and SIGUSR1, which mpirun passes on to every rank (`focus train --nproc`
// turns a Ctrl-C into a SIGUSR1 to mpirun).
extern "C" void on_sigint(int) {
  int n = g_sigint_count.fetch_add(1) + 1;
  if (n == 1) {
    g_interrupted.store(true);
    static const char msg[] =
        "\nfocus: interrupted: saving a checkpoint after this step (press Ctrl-C again to quit at once)\n";
    if (!g_signal_quiet.load()) {
      ssize_t r = ::write(2, msg, sizeof(msg) - 1);
      (void)r;
    }
  } else {
    static const char msg[] = "\nfocus: interrupted twice: quitting without saving\n";
    ssize_t r = ::write(2, msg, sizeof(msg) - 1);
    (void)r;
    ::_exit(130);
  }
}

void install_sigint_handler() {
  g_sigint_count.store(0);
  g_interrupted.store(false);
  if (g_runs_alive.fetch_add(1) == 0) {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a blocking read returns so the loop notices
    sigaction(SIGINT, &action, &g_previous_action);
    sigaction(SIGUSR1, &action, &g_previous_usr1);
  }
}

void remove_sigint_handler() {
  if (g_runs_alive.fetch_sub(1) == 1) {
    sigaction(SIGINT, &g_previous_action, nullptr);
    sigaction(SIGUSR1, &g_previous_usr1, nullptr);
  }
}

// ---- files ---------------------------------------------------------------------------------

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  FOCUS_CHECK(in.good(), "[run] cannot read {}: {}", path.string(), io::errno_text());
  std::stringstream ss;
  ss << in.rdbuf();
  FOCUS_CHECK(!in.bad(), "[run] cannot read {}: {}", path.string(), io::errno_text());
  return ss.str();
}

/// Writes a temporary file next to path, then renames it over path.
void write_text_atomic(const fs::path& path, const std::string& text) {
  io::write_file_atomic(path.string(), "run", text);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string format_rate(double r) {
  if (r >= 1e6) return fmt::format("{:.2f}M", r / 1e6);
  if (r >= 1e4) return fmt::format("{:.1f}k", r / 1e3);
  if (r >= 100) return fmt::format("{:.0f}", r);
  return fmt::format("{:.1f}", r);
}

std::string format_metric(double v) {
  if (!std::isfinite(v)) return fmt::format("{}", v);
  if (v == std::floor(v) && std::abs(v) < 1e12) return fmt::format("{}", static_cast<int64_t>(v));
  if (std::abs(v) >= 1e-3 && std::abs(v) < 1e5) return fmt::format("{:.4f}", v);
  return fmt::format("{:.4g}", v);
}

}  // namespace

// ---- Progress ------------------------------------------------------------------------------

Progress::Progress(std::ostream& out, bool tty, bool enabled) : out_(&out), tty_(tty), enabled_(enabled) {}

Progress& Progress::interval(double seconds) {
  interval_ = seconds;
  return *this;
}

void Progress::start(int64_t total_steps, std::string unit) {
  total_ = total_steps;
  unit_ = std::move(unit);
  step_ = 0;
  first_step_ = -1;
  epoch_ = 0;
  loss_ = 0.0;
  pending_loss_ = Tensor();
  rate_ = 0.0;
  items_ = 0;
  drawn_ = false;
  start_ = std::chrono::steady_clock::now();
  last_rate_ = start_;
  last_draw_ = start_ - std::chrono::hours(1);
  items_since_rate_ = 0.0;
}

void Progress::update(int64_t step, int64_t epoch, double loss, int64_t items_since_last_update) {
  loss_ = loss;
  pending_loss_ = Tensor();
  step_to(step, epoch, items_since_last_update);
}

void Progress::update(int64_t step, int64_t epoch, const Tensor& loss, int64_t items_since_last_update) {
  FOCUS_CHECK(loss.defined() && loss.numel() == 1, "[progress] the loss must be a one-element tensor, got {}",
              loss.defined() ? fmt::format("{}", loss.shape()) : std::string("an undefined tensor"));
  pending_loss_ = loss.detach();  // keeps the value, not the graph behind it
  step_to(step, epoch, items_since_last_update);
}

double Progress::current_loss() const { return pending_loss_.defined() ? pending_loss_.item<double>() : loss_; }

void Progress::step_to(int64_t step, int64_t epoch, int64_t items_since_last_update) {
  auto now = std::chrono::steady_clock::now();
  if (first_step_ < 0) {
    // The first update of a phase: its step was the first one timed.
    first_step_ = step - 1;
  }
  step_ = step;
  epoch_ = epoch;
  items_ += items_since_last_update;
  items_since_rate_ += static_cast<double>(items_since_last_update);
  double dt = std::chrono::duration<double>(now - last_rate_).count();
  if (dt >= 1.0 || rate_ == 0.0) {
    // Rate over the last second or so (smoothed), so a slow start does not linger.
    if (dt > 0) {
      double r = items_since_rate_ / dt;
      rate_ = rate_ == 0.0 || dt >= 5.0 ? r : 0.7 * rate_ + 0.3 * r;
    }
    items_since_rate_ = 0.0;
    last_rate_ = now;
  }
  if (!enabled_) return;
  double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (tty_ ? since_draw >= 0.1 : since_draw >= interval_) {
    draw(false);
    last_draw_ = now;
  }
}

std::string Progress::line() const {
  std::string s = total_ > 0 ? fmt::format("step {}/{} ({}%)", step_, total_, step_ * 100 / std::max<int64_t>(total_, 1))
                             : fmt::format("step {}", step_);
  s += fmt::format(" | epoch {}", epoch_);
  const double loss = current_loss();
  s += std::isfinite(loss) ? fmt::format(" | loss {:.4f}", loss) : fmt::format(" | loss {}", loss);
  if (!unit_.empty() && rate_ > 0) s += fmt::format(" | {} {}", format_rate(rate_), unit_);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  int64_t done = first_step_ < 0 ? 0 : step_ - first_step_;
  if (total_ > 0 && step_ < total_ && !finishing_) {
    if (done > 0) s += fmt::format(" | ETA {}", format_duration(elapsed / done * (total_ - step_)));
  } else {
    s += fmt::format(" | {} elapsed", format_duration(elapsed));
  }
  return s;
}

void Progress::draw(bool final_line) {
  if (pending_loss_.defined()) {  // the one host read of a tensor loss: when it is shown
    loss_ = pending_loss_.item<double>();
    pending_loss_ = Tensor();
  }
  if (tty_) {
    *out_ << '\r' << line() << "\x1b[K";
    if (final_line) *out_ << '\n';
    drawn_ = !final_line;
  } else {
    *out_ << line() << '\n';
  }
  out_->flush();
}

void Progress::finish() {
  if (!enabled_ || first_step_ < 0) {
    first_step_ = -1;
    pending_loss_ = Tensor();
    return;
  }
  finishing_ = true;
  draw(true);
  finishing_ = false;
  first_step_ = -1;
  drawn_ = false;
}

void Progress::clear() {
  if (enabled_ && tty_ && drawn_) {
    *out_ << "\r\x1b[K";
    out_->flush();
    drawn_ = false;
    last_draw_ = std::chrono::steady_clock::now() - std::chrono::hours(1);
  }
}

// ---- Run -----------------------------------------------------------------------------------

fs::path default_run_dir(const std::string& model) { return fs::path("runs") / model; }

void apply_threads(const Config& config, const std::string& model) {
  const int64_t n = config.integer("threads");
  FOCUS_CHECK(n >= 0 && n <= max_num_threads(),
              "[{}] threads must be 0 (every core) to {} (4 per core, at least 64), got {}", model, max_num_threads(), n);
  if (n > 0) set_num_threads(static_cast<int>(n));
}

Device usable_device(const std::string& spec, const std::string& command) {
  const Device device(spec);  // a malformed spec: the parser's own error
  if (device.is_cpu()) return device;
  try {
    if (cuda::is_available()) {
      const int n = cuda::device_count();
      FOCUS_CHECK(device.index < n, "this machine has {} GPU{} (cuda:0{})", n, n == 1 ? "" : "s",
                  n > 1 ? fmt::format(" .. cuda:{}", n - 1) : std::string());
    }
    // A tiny tensor moved there: the backend says why when it cannot (a build without CUDA,
    // no driver, no GPU).
    (void)zeros({1}).to(device);
  } catch (const Error& e) {
    FOCUS_FAIL("[{}] --device {}: this device cannot be used ({}); use --device cpu", command, spec, e.what());
  }
  return device;
}

std::string device_description(Device device) {
  if (!device.is_cuda()) return device.str();
  try {
    return fmt::format("{} ({})", device.str(), cuda::get_device_name(device.index));
  } catch (const Error&) {
    return device.str();  // the name is decoration: never fail a run over it
  }
}

namespace {
bool stderr_is_tty(std::ostream* err) { return err == nullptr && ::isatty(2); }
}  // namespace

namespace {
// This process's rank and the number of ranks of the default process group (0 and 1 when
// there is none).
std::pair<int, int> rank_and_world() {
  if (!distributed::is_initialized()) return {0, 1};
  return {distributed::get_rank(), distributed::get_world_size()};
}
// Where the ranks other than 0 write their console output: nowhere.
std::ostream& null_stream() {
  static std::ostream null(nullptr);
  return null;
}
}  // namespace

Run::Run(const std::string& model, Config config, RunOptions opts)
    : model_(model),
      config_(std::move(config)),
      opts_(std::move(opts)),
      dir_(opts_.dir.empty() ? default_run_dir(model) : fs::path(opts_.dir)),
      scaler_(optim::GradScalerOptions().enabled(opts_.amp == "fp16")),
      progress_(opts_.err ? *opts_.err : std::cerr, stderr_is_tty(opts_.err),
                !opts_.quiet && rank_and_world().first == 0) {
  std::tie(rank_, world_) = rank_and_world();
  // The device: parse, and make sure this build and machine can use it.
  device_ = usable_device(opts_.device, "train");
  FOCUS_CHECK(opts_.tensorboard_every >= 1, "[train] --tensorboard-every must be >= 1, got {}",
              opts_.tensorboard_every);
  FOCUS_CHECK(opts_.amp == "none" || opts_.amp == "bf16" || opts_.amp == "fp16",
              "[train] --amp must be none, bf16 or fp16, got '{}'", opts_.amp);
  FOCUS_CHECK(!(opts_.resume && opts_.overwrite), "[train] --resume and --overwrite contradict each other: pick one");
  const fs::path checkpoint = dir_ / kCheckpointFile;
  std::error_code ec;
  FOCUS_CHECK(!fs::exists(dir_, ec) || fs::is_directory(dir_, ec), "[train] run directory {} exists and is not a directory",
              dir_.string());
  if (opts_.resume) {
    FOCUS_CHECK(fs::exists(checkpoint, ec),
                "[train] --resume: there is no checkpoint to resume in {} ({} is missing); train without --resume to "
                "start a new run",
                dir_.string(), checkpoint.string());
    auto meta = checkpoint_meta(checkpoint.string());
    auto m = meta.find("model");
    FOCUS_CHECK(m == meta.end() || m->second == model, "[train] --resume: {} holds a checkpoint of model '{}', not '{}'",
                checkpoint.string(), m == meta.end() ? "" : m->second, model);
    // The checkpoint's own config is the truth; config.json is the fallback.
    auto c = meta.find("config");
    if (c != meta.end()) {
      config_.merge_json(c->second, checkpoint.string() + " (config)");
    } else if (fs::exists(dir_ / kConfigFile, ec)) {
      config_.merge_file((dir_ / kConfigFile).string());
    }
  } else if (fs::exists(checkpoint, ec)) {
    FOCUS_CHECK(opts_.overwrite,
                "[train] {} already holds a checkpoint of an earlier run ({}): pass --resume to continue it, "
                "--overwrite to start afresh and replace it, or --run-dir DIR to train into another directory",
                dir_.string(), checkpoint.string());
  }
  for (const auto& o : opts_.overrides) config_.apply(o);

  fs::create_directories(dir_, ec);
  FOCUS_CHECK(!ec && fs::is_directory(dir_), "[train] cannot create run directory {}: {}", dir_.string(), ec.message());
  start_ = std::chrono::steady_clock::now();
  install_sigint_handler();
  g_signal_quiet.store(rank_ != 0);
  if (opts_.detect_anomaly) anomaly_.emplace();
}

void Run::start_writing() {
  if (writing_) return;
  writing_ = true;
  if (rank_ != 0) return;  // rank 0 writes the run directory
  // What a killed run left half-written (a checkpoint, config.json, a picture): this run owns
  // the directory now, and the complete files beside them are what it resumes from.
  for (const std::string& stale : io::remove_stale_temporaries(dir_.string()))
    (opts_.err ? *opts_.err : std::cerr) << fmt::format("[train] removed {}, left by an interrupted write\n", stale);
  std::error_code ec;
  if (!opts_.resume) {
    // A fresh run: what an earlier run left is replaced; pictures only where a run was.
    bool earlier_run = false;
    for (const char* f : {kConfigFile, kCheckpointFile, kMetricsFile, kReportJsonFile})
      earlier_run = earlier_run || fs::exists(dir_ / f, ec);
    for (const char* f : {kCheckpointFile, kMetricsFile, kReportJsonFile, kReportTextFile}) fs::remove(dir_ / f, ec);
    if (earlier_run) fs::remove_all(dir_ / kTensorBoardDir, ec);
    if (earlier_run) {
      std::vector<fs::path> pictures;
      for (const auto& entry : fs::directory_iterator(dir_, ec))
        if (entry.path().extension() == ".png") pictures.push_back(entry.path());
      for (const auto& p : pictures) fs::remove(p, ec);
    }
  }
  write_text_atomic(dir_ / kConfigFile, config_.to_json() + "\n");
}

Run::~Run() { remove_sigint_handler(); }

SummaryWriter* Run::tensorboard() {
  if (!opts_.tensorboard || rank_ != 0) return nullptr;
  if (!tensorboard_) {
    start_writing();
    SummaryWriterOptions o((dir_ / kTensorBoardDir).string());
    o.flush_secs(10);
    if (resumed_step_ > 0) o.purge_step(resumed_step_ + 1);  // the steps trained again replace the old ones
    tensorboard_ = std::make_unique<SummaryWriter>(o);
  }
  return tensorboard_.get();
}

std::ostream& Run::out() const {
  if (rank_ != 0) return null_stream();
  return opts_.out ? *opts_.out : std::cout;
}

bool Run::interrupted() const {
  if (world_ == 1) return g_interrupted.load();
  // mpirun passes Ctrl-C to every rank, but not at the same step: the ranks agree.
  Tensor flag = tensor<int32_t>({g_interrupted.load() ? 1 : 0});
  distributed::all_reduce(flag, distributed::ReduceOp::MAX);
  return flag.item<int32_t>() != 0;
}

void Run::data_parallel(const std::shared_ptr<nn::Module>& model) {
  FOCUS_CHECK(model != nullptr, "[run] data_parallel: the model is null");
  FOCUS_CHECK(ddp_ == nullptr, "[run] data_parallel: called twice");
  if (world_ == 1) return;
  ddp_ = std::make_shared<nn::DistributedDataParallel<nn::Module>>(
      model, nn::DistributedDataParallelOptions().broadcast_buffers(false));
}

void Run::shuffle_for_ranks(data::DataLoaderOptions& opts, int64_t dataset_size) const {
  if (world_ == 1) {
    opts.shuffle(true);
    return;
  }
  opts.sampler(std::make_shared<data::DistributedSampler>(dataset_size, world_, rank_, true, opts.seed_));
}

double Run::mean_over_ranks(double v) const {
  if (world_ == 1) return v;
  Tensor t = tensor<double>({v});
  distributed::all_reduce(t, distributed::ReduceOp::AVG);
  return t.item<double>();
}

void Run::request_interrupt() { g_interrupted.store(true); }

void Run::log(const std::string& split, int64_t step, const std::vector<std::pair<std::string, double>>& metrics) {
  FOCUS_CHECK(!split.empty(), "[run] log: empty split name");
  start_writing();
  if (rank_ != 0) return;
  json j = json::object();
  j["split"] = split;
  j["step"] = step;
  double t = time_offset_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  j["time"] = std::round(t * 1000.0) / 1000.0;
  for (const auto& [name, value] : metrics) {
    FOCUS_CHECK(name != "split" && name != "step" && name != "time" && !j.contains(name),
                "[run] log: metric name '{}' is reserved or repeated", name);
    if (std::isfinite(value)) {
      j[name] = value;
    } else {
      j[name] = nullptr;  // JSON has no NaN/inf
    }
  }
  {
    std::ofstream f(dir_ / kMetricsFile, std::ios::app | std::ios::binary);
    FOCUS_CHECK(f.good(), "[run] cannot append to {}: {}", (dir_ / kMetricsFile).string(), io::errno_text());
    f << j.dump() << '\n';
    f.flush();
    FOCUS_CHECK(f.good(), "[run] cannot append to {}: {}", (dir_ / kMetricsFile).string(), io::errno_text());
  }
  last_logged_step_ = std::max(last_logged_step_, step);
  if (SummaryWriter* tb = tensorboard()) {
    for (const auto& [name, value] : metrics) tb->add_scalar(split + "/" + name, value, step);
  }
  if (split != "train") {
    progress_.clear();
    std::string s = fmt::format("{:<6} step {}", split, step);
    for (const auto& [name, value] : metrics) s += fmt::format("  {} {}", name, format_metric(value));
    out() << s << std::endl;
  }
}

void Run::save_checkpoint(nn::Module& model, optim::Optimizer* opt, optim::LRScheduler* sched, int64_t step,
                          Generator* gen, std::map<std::string, std::string> meta) {
  start_writing();
  meta["config"] = config_.to_json();
  meta["model"] = model_;
  meta["amp"] = opts_.amp;
  if (world_ > 1) {
    meta["world_size"] = std::to_string(world_);
    distributed::barrier();  // every rank has finished the step
  }
  if (rank_ == 0) {
    // Test hook (tests/crash/): FOCUS_TEST_STOP_IN_CHECKPOINT=STEP:BYTES stops this process
    // (SIGSTOP) once BYTES bytes of the checkpoint of step STEP are in its temporary file, for
    // a test to kill it in mid-write. Unset in every ordinary run.
    if (const char* hook = std::getenv("FOCUS_TEST_STOP_IN_CHECKPOINT"); hook && *hook) {
      long long at_step = -1, bytes = -1;
      char end = 0;
      FOCUS_CHECK(std::sscanf(hook, "%lld:%lld%c", &at_step, &bytes, &end) == 2 && bytes >= 0,
                  "[run] FOCUS_TEST_STOP_IN_CHECKPOINT must be STEP:BYTES, got '{}'", hook);
      if (at_step == step) focus::detail::set_safetensors_write_stop(bytes);
    }
    optim::save_checkpoint((dir_ / kCheckpointFile).string(), model, opt, sched, step, gen, meta, &scaler_);
  }
  if (world_ > 1) distributed::barrier();  // the file is complete before anyone reads it
}

AutocastGuard Run::autocast() const {
  return AutocastGuard(device_, opts_.amp == "fp16" ? kFloat16 : kBFloat16, opts_.amp != "none");
}

void Run::backward(const Tensor& loss) { scaler_.scale(loss).backward(); }

Tensor Run::step(optim::Optimizer& opt, const std::vector<Tensor>& params, double max_norm) {
  Tensor norm;
  if (max_norm > 0) {
    scaler_.unscale_(opt);  // clip the true gradients
    norm = optim::clip_grad_norm_(params, max_norm);
  }
  scaler_.step(opt);
  scaler_.update();
  return norm;
}

int64_t Run::restore(nn::Module& model, optim::Optimizer* opt, optim::LRScheduler* sched, Generator* gen,
                     int64_t total_steps) {
  if (!opts_.resume) {
    start_writing();
    return 0;
  }
  const fs::path checkpoint = dir_ / kCheckpointFile;
  int64_t step = optim::load_checkpoint(checkpoint.string(), model, opt, sched, gen, &scaler_);
  FOCUS_CHECK(step <= total_steps,
              "[train] --resume: {} is at step {}, past the end of this run: its settings ({}) train {} steps in all; "
              "set steps (or epochs) so that the run goes beyond step {}, or start a new run",
              checkpoint.string(), step, opts_.overrides.empty() ? "the checkpoint's config" : "after --set",
              total_steps, step);
  start_writing();  // after the checks: a refused resume writes nothing
  // Metrics logged after the checkpoint belong to steps that are trained again.
  std::error_code ec;
  if (rank_ == 0 && fs::exists(dir_ / kMetricsFile, ec)) {
    std::istringstream in(read_text(dir_ / kMetricsFile));
    std::string line, kept;
    double last_time = 0.0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) continue;  // a torn last line from a crash
      if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > step) continue;
      if (j.contains("time") && j["time"].is_number()) last_time = std::max(last_time, j["time"].get<double>());
      kept += line + "\n";
    }
    write_text_atomic(dir_ / kMetricsFile, kept);
    time_offset_ = last_time;
    start_ = std::chrono::steady_clock::now();
  }
  resumed_step_ = step;
  progress_.clear();
  out() << fmt::format("resuming {} from {} at step {}", model_, checkpoint.string(), step) << std::endl;
  return step;
}

void Run::report(const std::vector<std::pair<std::string, double>>& metrics, const std::string& text) {
  start_writing();
  if (rank_ != 0) {
    reported_ = true;
    return;
  }
  json j = json::object();
  j["model"] = model_;
  json m = json::object();
  std::string lines;
  for (const auto& [name, value] : metrics) {
    m[name] = std::isfinite(value) ? json(value) : json(nullptr);
    lines += fmt::format("{} {}\n", name, format_metric(value));
  }
  j["metrics"] = m;
  j["text"] = text;
  write_text_atomic(dir_ / kReportJsonFile, j.dump(2) + "\n");
  std::string body = text;
  if (!body.empty() && body.back() != '\n') body += '\n';
  write_text_atomic(dir_ / kReportTextFile, body + (metrics.empty() ? "" : "\n" + lines));
  if (SummaryWriter* tb = tensorboard()) {
    // The report's text and the pictures the run drew, at the last logged step.
    tb->add_text("report", "```\n" + body + (metrics.empty() ? "" : "\n" + lines) + "```", last_logged_step_);
    std::vector<fs::path> pictures;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec))
      if (entry.path().extension() == ".png") pictures.push_back(entry.path());
    std::sort(pictures.begin(), pictures.end());
    for (const auto& p : pictures) tb->add_png("pictures/" + p.stem().string(), read_text(p), last_logged_step_);
    tb->flush();
  }
  reported_ = true;
  progress_.clear();
  out() << body;
  out().flush();
}

// ---- checkpoint metadata -------------------------------------------------------------------

std::map<std::string, std::string> checkpoint_meta(const std::string& path) {
  std::error_code ec;
  FOCUS_CHECK(fs::exists(path, ec), "[checkpoint] no checkpoint at {}", path);
  FOCUS_CHECK(fs::is_regular_file(path, ec), "[checkpoint] {} is not a file", path);
  std::ifstream in(path, std::ios::binary);
  FOCUS_CHECK(in.good(), "[checkpoint] cannot read {}", path);
  const auto file_size = fs::file_size(path, ec);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  FOCUS_CHECK(in.gcount() == 8, "[checkpoint] {} is not a safetensors checkpoint (too short)", path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  FOCUS_CHECK(n > 0 && n <= file_size - 8 && n < (uint64_t(1) << 30),
              "[checkpoint] {} is not a safetensors checkpoint (bad header length {})", path, n);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  FOCUS_CHECK(static_cast<uint64_t>(in.gcount()) == n, "[checkpoint] {} is truncated", path);
  json j = json::parse(header, nullptr, false);
  FOCUS_CHECK(!j.is_discarded() && j.is_object(), "[checkpoint] {} is not a safetensors checkpoint (bad header)", path);
  std::map<std::string, std::string> meta;
  if (j.contains("__metadata__")) {
    const json& m = j["__metadata__"];
    FOCUS_CHECK(m.is_object(), "[checkpoint] {}: bad __metadata__", path);
    for (const auto& [k, v] : m.items()) {
      FOCUS_CHECK(v.is_string(), "[checkpoint] {}: metadata value of '{}' is not a string", path, k);
      meta[k] = v.get<std::string>();
    }
  }
  return meta;
}

std::map<std::string, std::string> checkpoint_meta(const std::string& path, const std::string& model) {
  auto meta = checkpoint_meta(path);
  auto it = meta.find("model");
  FOCUS_CHECK(it != meta.end(), "[checkpoint] {} was not written by `focus train` (its metadata names no model)", path);
  FOCUS_CHECK(it->second == model, "[checkpoint] {} holds a '{}' model, not '{}'", path, it->second, model);
  return meta;
}

}  // namespace focus::training
