// The `focus` command line: see tools/focus/cli.h and docs/CLI.md.
#include "tools/focus/cli.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <iostream>
#include <set>

#include <fcntl.h>
#include <signal.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/threads.h"
#include "distributed/distributed.h"
#include "models/datasets/datasets.h"
#include "training/config.h"
#include "models/zoo/pictures.h"
#include "models/zoo/registry.h"
#include "training/run.h"


namespace focus::cli {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& m : zoo::models()) names.push_back(m.name);
  return names;
}

std::string join_or_none(const std::vector<std::string>& v) {
  return v.empty() ? std::string("(none)") : fmt::format("{}", fmt::join(v, ", "));
}

/// Every model command name: the standard ones and any a model registers.
std::vector<std::string> all_command_names() {
  std::vector<std::string> names = zoo::command_names();
  for (const auto& m : zoo::models()) {
    for (const auto& [name, cmd] : m.commands) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  return names;
}

/// The models that have command `name`.
std::vector<std::string> models_with(const std::string& name) {
  std::vector<std::string> out;
  for (const auto& m : zoo::models())
    if (m.commands.count(name)) out.push_back(m.name);
  return out;
}

std::string checkpoint_path(const std::string& given, const std::string& run_dir, const std::string& model) {
  if (!given.empty()) return given;
  fs::path dir = run_dir.empty() ? training::default_run_dir(model) : fs::path(run_dir);
  return (dir / training::kCheckpointFile).string();
}

/// A checkpoint the command reads must exist and hold `model`.
void check_checkpoint(const std::string& command, const std::string& path, const std::string& model, bool given) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (given) FOCUS_FAIL("[{}] checkpoint file {} does not exist", command, path);
    FOCUS_FAIL("[{}] no checkpoint at {}: train one with `focus train {}`, or pass --checkpoint FILE", command, path,
               model);
  }
  FOCUS_CHECK(fs::is_regular_file(path, ec), "[{}] {} is not a file", command, path);
  (void)training::checkpoint_meta(path, model);
}

/// State of one `focus <command> <model>` subcommand.
struct ModelCommandState {
  const zoo::ModelEntry* model = nullptr;
  const zoo::ModelCommand* command = nullptr;
  std::string name;
  CLI::App* app = nullptr;
  std::string checkpoint;
  std::string device = "cpu";
  std::vector<std::string> inputs;
  std::map<std::string, std::string> values;
  std::map<std::string, bool> flags;
};

std::string usage_hint(const CLI::App& app) {
  // The deepest selected subcommand names the help to read.
  std::vector<std::string> chain;
  const CLI::App* cur = &app;
  while (true) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    chain.push_back(cur->get_name());
  }
  return chain.empty() ? "focus --help" : fmt::format("focus {} --help", fmt::join(chain, " "));
}

std::string describe_model(const zoo::ModelEntry& m) {
  std::string s = fmt::format("{} - {}\n\nconfig keys (default configuration; change with --set key=value):\n", m.name,
                              m.description);
  training::Config c = m.default_config();
  size_t width = 0;
  for (const auto& k : c.keys()) width = std::max(width, k.size());
  for (const auto& k : c.keys())
    s += fmt::format("  {:<{}}  {:<7}  {}\n", k, width, training::type_name(c.type(k)), c.text(k));
  std::vector<std::string> presets{"default"};
  for (const auto& [name, f] : m.presets)
    if (name != "default") presets.push_back(name);
  s += fmt::format("\npresets (--config NAME): {}\n", fmt::join(presets, ", "));
  if (!m.commands.empty()) {
    s += "\ncommands:\n";
    for (const auto& [name, cmd] : m.commands) {
      s += fmt::format("  focus {} {}{}{}  {}\n", name, m.name, cmd.inputs.empty() ? "" : " " + cmd.inputs,
                       cmd.inputs.empty() ? "" : " ...", cmd.help);
      for (const auto& o : cmd.options)
        s += fmt::format("      --{}{}  {}{}\n", o.name, o.flag ? "" : " VALUE", o.help,
                         o.flag || o.default_value.empty() ? "" : fmt::format(" (default {})", o.default_value));
    }
  }
  return s;
}

// The focus executable (set by main; --nproc starts it again under mpirun).
std::string g_executable;

// The number of processes mpirun started this one among (0: not started by mpirun).
int launched_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  return 0;
}

// A program on the PATH, or "".
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t at = 0;
  while (at <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', at), dirs.size());
    const std::string candidate = dirs.substr(at, end - at) + "/" + name;
    if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    at = end + 1;
  }
  return "";
}

// The mpirun started by --nproc, for the signal handler below.
std::atomic<pid_t> g_mpirun_pid{0};
std::atomic<int> g_launcher_sigints{0};

// Ctrl-C while --nproc's mpirun runs: mpirun is in a process group of its own (so the
// terminal's SIGINT reaches neither it, which would end the job at once, nor the ranks
// directly); the first Ctrl-C becomes a SIGUSR1 to mpirun, which passes it on to every rank
// (each then saves a checkpoint at the same step and exits with 130), the second a SIGTERM,
// which ends the job.
extern "C" void on_launcher_signal(int sig) {
  const pid_t pid = g_mpirun_pid.load();
  if (pid <= 0) return;
  const int n = sig == SIGTERM ? 2 : g_launcher_sigints.fetch_add(1) + 1;
  ::kill(pid, n == 1 ? SIGUSR1 : SIGTERM);
}

// `focus train ... --nproc N`: runs the same command in N processes under mpirun (one
// thread each unless FOCUS_NUM_THREADS says otherwise) and returns mpirun's exit status.
int launch_mpirun(const std::vector<std::string>& args, int nproc, std::ostream& out) {
  FOCUS_CHECK(distributed::is_mpi_available(),
              "[train] --nproc {}: this focus was built without MPI; install openmpi-bin and libopenmpi-dev and rebuild "
              "it",
              nproc);
  const std::string mpirun = find_on_path("mpirun");
  FOCUS_CHECK(!mpirun.empty(), "[train] --nproc {}: mpirun is not on the PATH; install openmpi-bin", nproc);
  FOCUS_CHECK(!g_executable.empty(), "[train] --nproc needs the focus executable (run it as `focus train ...`)");
  // --stdin none: mpirun runs in a process group of its own (see on_launcher_signal), where
  // reading the terminal would stop it.
  std::vector<std::string> argv{mpirun,   "-np",  std::to_string(nproc), "--bind-to", "none", "--oversubscribe",
                                "--stdin", "none"};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
  // One thread per rank unless told otherwise; shared-memory transfers without the
  // cross-memory-attach mechanism many containers forbid.
  ::setenv("FOCUS_NUM_THREADS", "1", 0);
  ::setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
  for (const char* name : {"FOCUS_NUM_THREADS", "FOCUS_DIST_TIMEOUT", "FOCUS_DATA"})
    if (std::getenv(name)) argv.insert(argv.end(), {"-x", name});
  argv.push_back(g_executable);
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    argv.push_back(args[i]);
  }
  out << fmt::format("focus: starting {} processes: {}", nproc, fmt::join(argv, " ")) << std::endl;
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  // mpirun in a process group of its own; on Linux it also gets a SIGTERM, which ends the job,
  // when this launcher dies, even by SIGKILL (the OOM killer, `kill -9`): its ranks would
  // otherwise train on, orphaned, into the run directory a --resume then shares with them.
  // Between fork and exec the child makes async-signal-safe calls only; an exec that fails
  // sends its errno back through a close-on-exec pipe.
  int report[2];
  FOCUS_CHECK(::pipe2(report, O_CLOEXEC) == 0, "[train] --nproc: cannot start {}: pipe: {}", mpirun,
              std::strerror(errno));
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(report[0]);
    ::setpgid(0, 0);
#ifdef __linux__
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != launcher) ::_exit(kExitError);  // the launcher is already gone
#endif
    ::execve(mpirun.c_str(), cargv.data(), environ);
    const int e = errno;
    ssize_t w = ::write(report[1], &e, sizeof(e));
    (void)w;
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  if (pid < 0) ::close(report[0]);
  FOCUS_CHECK(pid > 0, "[train] --nproc: cannot start {}: {}", mpirun, std::strerror(fork_errno));
  int exec_errno = 0;
  ssize_t got = 0;
  while ((got = ::read(report[0], &exec_errno, sizeof(exec_errno))) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (got > 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    FOCUS_FAIL("[train] --nproc: cannot start {}: {}", mpirun, std::strerror(exec_errno));
  }
  g_launcher_sigints.store(0);
  g_mpirun_pid.store(pid);
  struct sigaction action {}, old_int {}, old_term {};
  action.sa_handler = on_launcher_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_mpirun_pid.store(0);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : kExitError;
}

}  // namespace

int run(const std::vector<std::string>& args_in, std::ostream& out, std::ostream& err) {
  try {
    CLI::App app{"focus: train and use the attention models of the focus model zoo", "focus"};
    app.require_subcommand(1);
    app.footer(fmt::format("Models: {}. Run `focus COMMAND --help` for a command's options, `focus models MODEL` for "
                           "a model's config keys and commands. See docs/CLI.md.",
                           join_or_none(model_names())));

    // ---- train ----
    std::string train_model, train_config, train_device = "cpu", train_run_dir, train_amp = "none";
    std::vector<std::string> train_sets;
    bool train_resume = false, train_overwrite = false, train_quiet = false, train_detect_anomaly = false,
         train_tensorboard = false;
    int64_t train_tensorboard_every = 100;
    int train_nproc = 1;
    CLI::App* train = app.add_subcommand("train", "Train a model; writes a run directory (default runs/MODEL)");
    train->add_option("MODEL", train_model, "The model (`focus models` lists them)")->required();
    train->add_option("--config", train_config,
                      "A JSON config file (keys as in `focus models MODEL`) or a preset name (default, full)");
    train->add_option("--set", train_sets, "Change one config key: --set steps=500 (repeatable)")
        ->allow_extra_args(false)
        ->type_name("KEY=VALUE");
    train->add_option("--device", train_device, "cpu, cuda or cuda:N")->capture_default_str()->type_name("DEVICE");
    train->add_option("--amp", train_amp,
                      "Mixed precision: none, bf16 (autocast to bfloat16) or fp16 (autocast to float16 with loss "
                      "scaling)")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "bf16", "fp16"}))
        ->type_name("MODE");
    train->add_flag("--detect-anomaly", train_detect_anomaly,
                    "Stop at the first NaN or infinite gradient with an error naming the backward node and the "
                    "forward op that made it (autograd anomaly detection; slower, for debugging)");
    train->add_flag("--tensorboard", train_tensorboard,
                    "Write TensorBoard event files in RUN_DIR/tensorboard: the metrics, parameter and gradient "
                    "histograms, the report and the pictures (tensorboard --logdir runs)");
    train->add_option("--tensorboard-every", train_tensorboard_every,
                      "Steps between the parameter and gradient histograms of --tensorboard")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
        ->type_name("N");
    train->add_flag("--resume", train_resume, "Continue from the run directory's checkpoint");
    train->add_flag("--overwrite", train_overwrite, "Start afresh even though the run directory holds a checkpoint");
    train->add_option("--run-dir", train_run_dir, "Run directory (default runs/MODEL)")->type_name("DIR");
    train->add_flag("-q,--quiet", train_quiet, "No progress line");
    train->add_option("--nproc", train_nproc,
                      "Train data-parallel in N processes on this machine (starts mpirun; batch_size is per process, "
                      "one thread each unless FOCUS_NUM_THREADS is set)")
        ->check(CLI::Range(1, 4096))
        ->type_name("N");
    train->footer(
        "The run directory gets config.json, metrics.jsonl, checkpoint.safetensors (every checkpoint_every steps, at "
        "the end and on Ctrl-C) and report.json/report.txt. Ctrl-C saves a checkpoint and stops (exit status 130); "
        "--resume continues it. Under mpirun (or with --nproc), rank 0 writes the run directory; see "
        "docs/DISTRIBUTED.md.");

    // ---- eval ----
    std::string eval_model, eval_checkpoint, eval_split = "test", eval_run_dir, eval_device = "cpu";
    std::vector<std::string> eval_sets;
    CLI::App* eval = app.add_subcommand("eval", "Evaluate a trained model's checkpoint on a data split");
    eval->add_option("MODEL", eval_model, "The model")->required();
    CLI::Option* eval_ckpt_opt =
        eval->add_option("--checkpoint", eval_checkpoint, "Checkpoint file (default runs/MODEL/checkpoint.safetensors)")
            ->type_name("FILE");
    eval->add_option("--run-dir", eval_run_dir, "Take the checkpoint from this run directory")
        ->type_name("DIR")
        ->excludes(eval_ckpt_opt);
    eval->add_option("--split", eval_split, "Data split")->capture_default_str()->check(CLI::IsMember({"test", "valid", "train"}));
    eval->add_option("--set", eval_sets, "Change a key of the stored config (e.g. dataset=synthetic)")
        ->allow_extra_args(false)
        ->type_name("KEY=VALUE");
    eval->add_option("--device", eval_device, "cpu, cuda or cuda:N")->capture_default_str()->type_name("DEVICE");
    bool eval_int8 = false;
    eval->add_flag("--int8", eval_int8,
                   "Evaluate the model with int8 weights (dynamic quantization of every Linear, CPU only)");

    // ---- model commands: focus <command> <model> ... ----
    std::deque<ModelCommandState> states;
    for (const auto& cname : all_command_names()) {
      auto with = models_with(cname);
      CLI::App* c = app.add_subcommand(
          cname, fmt::format("Run a model's `{}` command (models: {})", cname, join_or_none(with)));
      c->require_subcommand(1);
      for (const auto& m : zoo::models()) {
        auto it = m.commands.find(cname);
        if (it == m.commands.end()) continue;
        ModelCommandState& st = states.emplace_back();
        st.model = &m;
        st.command = &it->second;
        st.name = cname;
        st.app = c->add_subcommand(m.name, it->second.help);
        if (it->second.reads_checkpoint)
          st.app->add_option("--checkpoint", st.checkpoint,
                             fmt::format("Checkpoint file (default runs/{}/checkpoint.safetensors)", m.name))
              ->type_name("FILE");
        st.app->add_option("--device", st.device, "cpu, cuda or cuda:N")->capture_default_str()->type_name("DEVICE");
        if (!it->second.inputs.empty()) {
          auto* o = st.app->add_option(it->second.inputs, st.inputs, "Inputs");
          if (it->second.inputs_required) o->required();
        }
        for (const auto& opt : it->second.options) {
          FOCUS_CHECK(!opt.name.empty() && opt.name != "checkpoint" && opt.name != "device" && opt.name != "help",
                      "[models] {} {}: bad option name '{}'", cname, m.name, opt.name);
          std::string flag_name = (opt.name.size() == 1 ? "-" : "--") + opt.name;
          if (opt.flag) {
            st.flags[opt.name] = false;
            st.app->add_flag(flag_name, st.flags[opt.name], opt.help);
          } else {
            st.values[opt.name] = opt.default_value;
            std::string help = opt.help;
            if (!opt.default_value.empty()) help += fmt::format(" (default {})", opt.default_value);
            auto* o = st.app->add_option(flag_name, st.values[opt.name], help)->type_name("VALUE");
            if (opt.repeat) o->join();  // every value, joined by '\n' (CommandArgs::list)
          }
        }
      }
    }

    // ---- data ----
    std::string fetch_name, fetch_from;
    bool fetch_force = false;
    CLI::App* data = app.add_subcommand("data", "Fetch and list the datasets (cache: $FOCUS_DATA or ~/.cache/focus)");
    data->require_subcommand(1);
    CLI::App* fetch = data->add_subcommand("fetch", "Download (or convert a local copy of) a dataset into the cache");
    fetch->add_option("NAME", fetch_name, "Dataset name (`focus data list`)")->required();
    fetch->add_option("--from", fetch_from, "Use a local copy of the original files instead of downloading")
        ->type_name("PATH");
    fetch->add_flag("--force", fetch_force, "Fetch again even if the cached copy is complete");
    CLI::App* list = data->add_subcommand("list", "List the datasets and whether each is in the cache");

    // ---- plot ----
    std::string plot_dir;
    CLI::App* plot = app.add_subcommand("plot", "Draw a run's loss and metric curves (PNG files in the run directory)");
    plot->add_option("RUN_DIR", plot_dir, "Run directory (with metrics.jsonl)")->required();

    // ---- models ----
    std::string models_name;
    CLI::App* models_cmd = app.add_subcommand("models", "List the models, or describe one (config keys, commands)");
    models_cmd->add_option("MODEL", models_name, "A model to describe");

    // An unknown command: name the ones that exist.
    if (!args_in.empty() && args_in[0].rfind("-", 0) != 0) {
      std::vector<std::string> commands;
      for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) commands.push_back(s->get_name());
      if (std::find(commands.begin(), commands.end(), args_in[0]) == commands.end()) {
        err << fmt::format("focus: error: unknown command '{}'; the commands are: {}\nRun `focus --help` for usage.\n",
                           args_in[0], fmt::join(commands, ", "));
        return kExitUsage;
      }
    }
    // A model command for an unknown model, or one without that command: a clear error.
    if (args_in.size() >= 2 && args_in[1].rfind("-", 0) != 0) {
      const auto names = all_command_names();
      if (std::find(names.begin(), names.end(), args_in[0]) != names.end()) {
        const zoo::ModelEntry& m = zoo::find_model(args_in[1]);
        FOCUS_CHECK(m.commands.count(args_in[0]), "[{}] model '{}' has no `{}` command; models with it: {}",
                    args_in[0], m.name, args_in[0], join_or_none(models_with(args_in[0])));
      }
    }

    try {
      std::vector<std::string> reversed(args_in.rbegin(), args_in.rend());
      app.parse(reversed);
    } catch (const CLI::CallForHelp& e) {
      out << app.help();
      return kExitOk;
    } catch (const CLI::CallForAllHelp& e) {
      out << app.help("", CLI::AppFormatMode::All);
      return kExitOk;
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return kExitOk;
      err << "focus: error: " << e.what() << "\n" << "Run `" << usage_hint(app) << "` for usage.\n";
      return kExitUsage;
    }

    if (train->parsed()) {
      const zoo::ModelEntry& m = zoo::find_model(train_model);
      // Data-parallel: --nproc N starts mpirun, which starts this command N times; a
      // process started by mpirun joins the process group.
      const int launched = launched_world_size();
      if (launched == 0 && train_nproc > 1) return launch_mpirun(args_in, train_nproc, out);
      if (launched > 0 && !distributed::is_initialized()) {
        const bool gpu = train_device.rfind("cuda", 0) == 0;
        FOCUS_CHECK(!gpu || distributed::is_nccl_available(),
                    "[train] --device {} with several processes needs NCCL (a CUDA build of focus that found NCCL "
                    "and MPI)",
                    train_device);
        distributed::init_process_group(gpu ? distributed::Backend::kNCCL : distributed::Backend::kMPI);
      }
      const int world = distributed::is_initialized() ? distributed::get_world_size() : 1;
      const bool rank0 = !distributed::is_initialized() || distributed::get_rank() == 0;
      FOCUS_CHECK(train_nproc == 1 || train_nproc == world, "[train] --nproc {}, but mpirun started {} processes",
                  train_nproc, world);
      static std::ostream null_out(nullptr);
      std::ostream& tout = rank0 ? out : null_out;  // rank 0 speaks for the job
      training::Config config = m.default_config();
      if (!train_config.empty()) {
        FOCUS_CHECK(!train_resume,
                    "[train] --config cannot be combined with --resume: a resumed run keeps its stored config (change "
                    "keys with --set)");
        std::error_code ec;
        if (fs::exists(train_config, ec)) {
          config.merge_file(train_config);
        } else if (train_config == "default") {
          // the default configuration
        } else if (m.presets.count(train_config)) {
          config = m.presets.at(train_config)();
        } else {
          std::vector<std::string> presets{"default"};
          for (const auto& [n, f] : m.presets)
            if (n != "default") presets.push_back(n);
          FOCUS_FAIL("[train] --config {}: no such file, and no preset of that name; presets of {}: {}", train_config,
                     m.name, fmt::join(presets, ", "));
        }
      }
      training::RunOptions opts;
      opts.set_dir(train_run_dir)
          .set_resume(train_resume)
          .set_overwrite(train_overwrite)
          .set_device(train_device)
          .set_amp(train_amp)
          .set_detect_anomaly(train_detect_anomaly)
          .set_tensorboard(train_tensorboard, train_tensorboard_every)
          .set_quiet(train_quiet)
          .set_overrides(train_sets);
      opts.out = &out;
      opts.err = (&err == &std::cerr) ? nullptr : &err;  // the real stderr may be a terminal
      training::Run run(m.name, config, opts);
      std::string parallel;
      if (world > 1) {
        const int threads = get_num_threads();
        parallel = fmt::format(", {} processes x {} thread{}", world, threads, threads == 1 ? "" : "s");
        if (run.config().contains("batch_size"))
          parallel += fmt::format(", effective batch {} x {} = {}", world, run.config().integer("batch_size"),
                                  world * run.config().integer("batch_size"));
      }
      tout << fmt::format("training {} in {}{}, device {}{}{}{}{}", m.name, run.dir().string(),
                          train_resume ? " (resuming)" : "", training::device_description(run.device()),
                          train_amp == "none" ? "" : ", mixed precision " + train_amp, parallel,
                          train_detect_anomaly ? ", anomaly detection on" : "",
                          train_tensorboard ? fmt::format(", TensorBoard in {}", (run.dir() / training::kTensorBoardDir).string()) : "")
           << std::endl;
      m.train(run);
      if (!rank0) return run.interrupted() && !run.reported() ? kExitInterrupted : kExitOk;
      if (run.interrupted() && !run.reported()) {  // a Ctrl-C after the report: the run is complete
        err << fmt::format(
            "focus: interrupted; the checkpoint is in {}; continue with: focus train {} --resume{}{}\n",
            (run.dir() / training::kCheckpointFile).string(), m.name,
            train_run_dir.empty() ? "" : " --run-dir " + train_run_dir,
            world > 1 ? fmt::format(" --nproc {}", world) : "");
        return kExitInterrupted;
      }
      // The loss and metric curves; a run that logged nothing has none.
      std::vector<std::string> pictures;
      try {
        pictures = zoo::plot_run(run.dir().string());
      } catch (const Error& e) {
        err << "focus: warning: no curves drawn: " << e.what() << std::endl;
      }
      tout << fmt::format("run directory: {} (config.json, metrics.jsonl, checkpoint.safetensors, report.txt{})",
                         run.dir().string(), pictures.empty() ? "" : ", curves " + fmt::format("{}", fmt::join(pictures, ", ")))
          << std::endl;
      return kExitOk;
    }

    if (eval->parsed()) {
      const zoo::ModelEntry& m = zoo::find_model(eval_model);
      zoo::EvalArgs ea;
      ea.device = training::usable_device(eval_device, "eval");  // before any work, as train does
      ea.int8 = eval_int8;
      ea.checkpoint = checkpoint_path(eval_checkpoint, eval_run_dir, m.name);
      check_checkpoint("eval", ea.checkpoint, m.name, !eval_checkpoint.empty());
      ea.split = eval_split;
      ea.overrides = eval_sets;
      (void)ea.config();  // bad --set keys fail before any work
      m.evaluate(ea, out);
      return kExitOk;
    }

    for (auto& st : states) {
      if (!st.app->parsed()) continue;
      zoo::CommandArgs ca;
      ca.command = st.name;
      ca.device = training::usable_device(st.device, st.name);
      if (st.command->reads_checkpoint) {
        ca.checkpoint = checkpoint_path(st.checkpoint, "", st.model->name);
        check_checkpoint(st.name, ca.checkpoint, st.model->name, !st.checkpoint.empty());
      }
      ca.err = (&err == &std::cerr) ? nullptr : &err;
      ca.inputs = st.inputs;
      ca.options = st.values;
      for (const auto& [name, on] : st.flags) ca.options[name] = on ? "true" : "false";
      st.command->run(ca, out);
      return kExitOk;
    }

    if (fetch->parsed()) {
      datasets::FetchOptions fo;
      if (!fetch_from.empty()) fo.from = fs::path(fetch_from);
      fo.force = fetch_force;
      fo.log = [&out](const std::string& line) { out << line << std::endl; };
      datasets::fetch(fetch_name, fo);
      out << fmt::format("{} is ready in {}", fetch_name, datasets::dataset_dir(fetch_name).string()) << std::endl;
      return kExitOk;
    }

    if (list->parsed()) {
      out << fmt::format("datasets in {}:", datasets::data_root().string()) << "\n";
      for (const auto& name : datasets::dataset_names()) {
        std::string state;
        try {
          state = "ready (" + datasets::dataset_dir(name).string() + ")";
        } catch (const Error& e) {
          std::error_code ec;
          state = fs::exists(datasets::data_root() / name, ec)
                      ? fmt::format("damaged: {}", e.what())
                      : fmt::format("not fetched (focus data fetch {})", name);
        }
        out << fmt::format("  {:<14} {}", name, state) << "\n";
      }
      return kExitOk;
    }

    if (plot->parsed()) {
      std::error_code ec;
      FOCUS_CHECK(fs::is_directory(plot_dir, ec), "[plot] {} is not a run directory (it does not exist)", plot_dir);
      FOCUS_CHECK(fs::exists(fs::path(plot_dir) / training::kMetricsFile, ec),
                  "[plot] {} has no {}: not a run directory, or the run logged nothing yet", plot_dir,
                  training::kMetricsFile);
      for (const auto& path : zoo::plot_run(plot_dir)) out << "wrote " << path << "\n";
      return kExitOk;
    }

    if (models_cmd->parsed()) {
      if (!models_name.empty()) {
        out << describe_model(zoo::find_model(models_name));
        return kExitOk;
      }
      if (zoo::models().empty()) out << "no models are built in\n";
      size_t width = 0;
      for (const auto& m : zoo::models()) width = std::max(width, m.name.size());
      for (const auto& m : zoo::models()) {
        std::vector<std::string> cmds;
        for (const auto& [name, c] : m.commands) cmds.push_back(name);
        out << fmt::format("{:<{}}  {}{}", m.name, width, m.description,
                           cmds.empty() ? "" : fmt::format(" [{}]", fmt::join(cmds, ", ")))
            << "\n";
      }
      return kExitOk;
    }
    err << "focus: error: no command given\nRun `focus --help` for usage.\n";
    return kExitUsage;
  } catch (const zoo::Interrupted& e) {  // a model command stopped by Ctrl-C, its state saved
    err << "focus: interrupted; " << e.what() << std::endl;
    return kExitInterrupted;
  } catch (const Error& e) {
    // A failing rank ends the whole job at once: the others would wait for it.
    if (distributed::is_initialized() && distributed::get_world_size() > 1)
      distributed::abort_job(std::string("focus: error: ") + e.what(), kExitError);
    err << "focus: error: " << e.what() << std::endl;
    return kExitError;
  } catch (const std::exception& e) {
    err << "focus: error: " << e.what() << std::endl;
    return kExitError;
  }
}

int main(int argc, char** argv) {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  g_executable = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string(argv[0]);
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return run(args, std::cout, std::cerr);
}

}  // namespace focus::cli
