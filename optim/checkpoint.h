#pragma once
/// Training checkpoints: model, optimizer, scheduler, step and RNG state in ONE safetensors
/// file, written atomically (temporary file in the same directory, fsync, rename, fsync of
/// the directory), so a crash mid-write never destroys the previous checkpoint.
///
/// File layout (safetensors keys):
///   model.<name>        the model's state_dict() (PyTorch names: a plain numpy/safetensors
///                       reader gets the weights by stripping "model.")
///   optimizer.<key>     Optimizer::state_dict() (see optim/optimizer.h)
///   scheduler.<key>     LRScheduler::state_dict() (see optim/lr_scheduler.h)
///   step                int64 0-d
///   rng.default         int64 [2]: the default generator's (seed, offset), bit-cast
///   rng.generator       int64 [2]: the extra generator's state, when one was given
/// metadata: format = "focus-checkpoint", version = "1", optimizer / scheduler = their
/// names when present, plus any caller entries.
///
/// Resuming is exact: training N steps, saving, loading into freshly built objects and
/// training M more gives bit-identical weights to N + M steps in one go.
#include <cstdint>
#include <optional>
#include <string>

#include "core/random_state.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "core/tensor_dict.h"

namespace focus::nn {
class Module;
}

namespace focus::optim {

class GradScaler;

class Optimizer;
class LRScheduler;

/// A checkpoint file split into its parts (read_checkpoint).
struct Checkpoint {
  TensorDict model;      ///< the model's state_dict (prefix removed)
  TensorDict optimizer;  ///< empty when the file has no optimizer
  TensorDict scheduler;  ///< empty when the file has no scheduler
  TensorDict grad_scaler;  ///< empty when the file has no (enabled) GradScaler
  int64_t step = 0;
  RandomState default_rng;
  std::optional<RandomState> generator_rng;
  SafetensorsMetadata metadata;
};

/// Writes model (+ optimizer, scheduler when non-null), step and the default generator's
/// state (+ generator's, when non-null) to path atomically. extra_metadata entries are
/// added to the file's metadata (the keys format, version, optimizer and scheduler are
/// reserved). Errors name "[checkpoint]".
/// scaler (when non-null and enabled): its state_dict, under "grad_scaler.".
void save_checkpoint(const std::string& path, const nn::Module& model, const Optimizer* optimizer = nullptr,
                     const LRScheduler* scheduler = nullptr, int64_t step = 0, const Generator* generator = nullptr,
                     const SafetensorsMetadata& extra_metadata = {}, const GradScaler* scaler = nullptr);

/// Reads and checks a checkpoint file without applying it: it must be a focus checkpoint of
/// a known version with a step and the default RNG state.
Checkpoint read_checkpoint(const std::string& path);

/// Restores model (strict state_dict load), optimizer, scheduler (when non-null: the file
/// must hold them, of the same type), the default generator's state (and generator's, when
/// non-null: the file must hold it) and returns the step. On any error (a mismatched model,
/// a missing part, ...) nothing is changed and a focus::Error names "[checkpoint]" and the
/// file.
/// scaler (when non-null and enabled) gets the file's GradScaler state when it holds one
/// and is left as it is otherwise (a run saved without float16 loss scaling resumed with it
/// starts from the scaler's initial scale, as a fresh torch.amp.GradScaler would).
int64_t load_checkpoint(const std::string& path, nn::Module& model, Optimizer* optimizer = nullptr,
                        LRScheduler* scheduler = nullptr, Generator* generator = nullptr, GradScaler* scaler = nullptr);

}  // namespace focus::optim
