#pragma once
/// The models the `focus` command line knows, each described by a ModelEntry: its default
/// config and presets, its training and evaluation programs and its own commands
/// (`focus predict g2p WORD ...`, `focus generate char-gpt --prompt TEXT`, ...).
#include <functional>
#include <iosfwd>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "nn/module.h"
#include "training/config.h"
#include "training/run.h"

namespace focus::zoo {

/// An option of a model command: `--name VALUE`, or `--name` alone when flag.
struct CommandOption {
  std::string name;           ///< without dashes: "beam", "temperature"
  std::string help;
  std::string default_value;  ///< text; a flag's default is "false"
  bool flag = false;          ///< takes no value; "true" when given
  /// May be given more than once (`--set a=1 --set b=2`): the values are joined by '\n'
  /// (CommandArgs::list splits them).
  bool repeat = false;
};

/// What a model command receives.
struct CommandArgs {
  std::string checkpoint;                     ///< path of the checkpoint (default runs/<model>/checkpoint.safetensors; exists)
  std::vector<std::string> inputs;            ///< the positional inputs
  std::map<std::string, std::string> options; ///< every declared option, defaults filled in

  /// The option's text; an undeclared name -> focus::Error.
  const std::string& option(const std::string& name) const;
  /// The option parsed as an integer / real / boolean; a bad value -> focus::Error naming the
  /// option and the value (e.g. "[generate] --temperature: expected a number, got 'hot'").
  int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;
  bool flag(const std::string& name) const;
  /// A repeatable option's values, in order (none when not given).
  std::vector<std::string> list(const std::string& name) const;
  /// Name used in errors ("predict").
  std::string command;
  /// Where to run the model (--device, checked usable by the command line; default the CPU).
  Device device = kCPU;
  /// The command line's error stream, for progress lines (nullptr: std::cerr).
  std::ostream* err = nullptr;
};

/// Thrown by a model command that stopped on Ctrl-C after saving its state (a training
/// command's checkpoint): the command line prints "focus: interrupted; " + what() on stderr
/// and exits with status 130, as `focus train` does.
struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A model-specific command: `focus <command> <model> [INPUT ...] [--checkpoint F] [--device D] [--opt value ...]`.
/// The command line adds --checkpoint and --device to every command: its options cannot take
/// those names (nor "help").
struct ModelCommand {
  std::string help;
  /// Name of the positional inputs in the help ("WORD", "FILE"); "" = the command takes none.
  std::string inputs;
  /// With inputs != "": whether at least one input is required.
  bool inputs_required = true;
  /// Whether the command reads a trained checkpoint: the command line adds --checkpoint
  /// (default runs/<model>/checkpoint.safetensors, checked to exist before the command runs).
  /// false: no --checkpoint (a command that finds its inputs itself, such as finetune --from).
  bool reads_checkpoint = true;
  std::vector<CommandOption> options;
  std::function<void(const CommandArgs&, std::ostream& out)> run;
};

/// What `focus eval` passes to ModelEntry::evaluate.
struct EvalArgs {
  std::string checkpoint;              ///< exists
  std::string split = "test";          ///< "test", "valid" or "train"
  std::vector<std::string> overrides;  ///< --set key=value, to apply to the stored config
  Device device = kCPU;                ///< where to run the model (--device, checked usable; default the CPU)
  bool int8 = false;                   ///< --int8: evaluate the model quantized (quantize_if_asked)
  /// The checkpoint's stored config with the overrides applied.
  training::Config config() const;
};

struct ModelEntry {
  std::string name;         ///< "g2p", "char-gpt", "spam", "vit"
  std::string description;  ///< one line for `focus models`
  /// Every key with its default value (including "dataset", "steps", "seed", ...): the
  /// default configuration, which trains in at most ~10 minutes on 2 CPU cores.
  std::function<focus::training::Config()> default_config;
  /// Named configurations for --config NAME ("full", ...); each a complete training::Config.
  std::map<std::string, std::function<focus::training::Config()>> presets;
  /// Trains (resuming when run.resuming()), evaluates and writes the report.
  std::function<void(focus::training::Run&)> train;
  /// Loads the checkpoint, evaluates on args.split and prints the metrics to out.
  std::function<void(const EvalArgs&, std::ostream& out)> evaluate;
  /// "predict", "generate", "classify", ...
  std::map<std::string, ModelCommand> commands;
  /// The config a checkpoint's stored config is merged over (config_from_checkpoint), from
  /// the checkpoint's metadata; unset: default_config(). For checkpoints written by a
  /// model's own commands with other config keys (char-gpt's finetune runs).
  std::function<focus::training::Config(const std::map<std::string, std::string>& meta)> checkpoint_config;
};

/// The --int8 flag of the inference commands (predict, generate, classify): the model runs
/// with int8 weights (nn::quantize_dynamic). Read it with int8_requested.
CommandOption int8_option();
/// Whether args ask for --int8 (absent from args.options, as when a program calls the
/// command directly: no).
bool int8_requested(const CommandArgs& args);
/// With int8, quantizes model (nn::quantize_dynamic: every Linear and attention projection)
/// and says so on note (a line "int8: N layers quantized ..."); an error naming command unless
/// device is the CPU (int8 layers run there only, as PyTorch's).
void quantize_if_asked(bool int8, nn::Module& model, Device device, const std::string& command, std::ostream& note);

/// The command names a model may register (the CLI has a subcommand for each).
const std::vector<std::string>& command_names();

/// All models: the built-in list (registry.cpp) followed by any added with add_model().
const std::vector<ModelEntry>& models();
/// The model named name; unknown -> focus::Error listing the known models.
const ModelEntry& find_model(const std::string& name);
/// Adds a model (tests, embedding programs); a name already taken -> focus::Error.
void add_model(ModelEntry entry);
/// Removes a model added with add_model (tests); unknown -> no-op.
void remove_model(const std::string& name);

/// The config stored in a checkpoint by Run::save_checkpoint (meta "config"). For a model of
/// the registry (meta "model"), the stored values are merged over that model's defaults
/// (ModelEntry::checkpoint_config when set), so a checkpoint written before a key was added
/// still loads (the new key takes its default).
training::Config config_from_checkpoint(const std::string& path);

}  // namespace focus::zoo
