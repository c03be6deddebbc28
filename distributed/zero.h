#pragma once
/// optim::ZeroRedundancyOptimizer, as torch.distributed.optim.ZeroRedundancyOptimizer (ZeRO
/// stage 1): the optimizer state is sharded over the ranks of the default process group.
///
///   auto ddp = std::make_shared<nn::DistributedDataParallel<Net>>(net);
///   auto opt = optim::ZeroRedundancyOptimizer::make<optim::AdamW>(
///       ddp->parameters(), optim::AdamWOptions().lr(3e-4).weight_decay(0.1));
///   for (...) { opt.zero_grad(); ddp->forward(x).mean().backward(); opt.step(); }
///
/// What it does:
///  - Partition (every rank computes the same one, PyTorch's greedy rule): within each param
///    group, parameters sorted by numel (largest first, ties in their order) go one by one
///    to the rank with the smallest total numel so far (totals carried over groups; ties to
///    the lowest rank). Each rank's list keeps the parameters' original order (PyTorch
///    keeps the sorted order; the consolidated state_dict is the same either way).
///  - Each rank builds its local optimizer (the factory's, e.g. AdamW) over its own shard
///    only, with the same param groups (a group may be empty on a rank), so it holds about
///    1/N of the optimizer state. A rank that owns no parameter at all (more ranks than
///    parameters) gives its local optimizer one placeholder tensor that never has a
///    gradient, so it never steps and never has state.
///  - step(): copies the hyperparameters of this optimizer's param groups into the local
///    optimizer's (so schedulers, which drive param_groups(), work as on any Optimizer, as
///    PyTorch syncs them), steps the local optimizer (gradients must already be the same on
///    every rank: averaged by DistributedDataParallel), then every parameter is sent from
///    its owner: one broadcast per owner rank and dtype/device of one flat buffer of its
///    parameters (PyTorch broadcasts per parameter). A collective: every rank calls it.
///  - zero_grad(), lr(), set_lr(), param_groups(), defaults() are the base Optimizer's over
///    all parameters; name() is "ZeroRedundancyOptimizer". state(p) and step_count(p) answer
///    for the parameters this rank owns (std::nullopt for the others).
///  - consolidate_state_dict(to): a collective (every rank calls it): each rank's shard
///    state (its local optimizer's state_dict, re-indexed to the global parameter order)
///    goes through safetensors bytes and all_gather_bytes (every rank receives every shard
///    and the ranks other than `to` drop them). state_dict() on rank `to` then returns the
///    full state in the layout the local optimizer class has over all parameters (state.<i>
///    with i the global index, param_groups.<g> with this optimizer's hyperparameters and
///    scheduler extras); its state tensors are CPU copies taken at consolidation, as
///    PyTorch's. state_dict() on another rank, before consolidation, or after a step() or
///    load_state_dict() since the last consolidation is an error.
///  - load_state_dict(full) (on every rank, no communication): takes a full state_dict (as
///    state_dict() returns, or a plain optimizer's of the same class over the same groups);
///    each rank keeps its own shard's state and every group's hyperparameters.
///  - Checkpoints: optim::save_checkpoint(path, model, &zero, ...) on rank `to` after
///    consolidate_state_dict(to) (it calls state_dict()); optim::load_checkpoint(path, model,
///    &zero, ...) on every rank.
///  - Checks (focus::Error "[ZeroRedundancyOptimizer] ..."): no process group, no
///    parameters, parameters that differ across ranks (count, groups, dtype or shape,
///    compared once at construction through all_gather_bytes: every rank throws the same
///    error), add_param_group() after construction (reported at the next step()).
///
/// Not supported (unlike PyTorch): add_param_group() after construction, overlap_with_ddp,
/// parameters_as_bucket_view.
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/tensor_dict.h"
#include "optim/optimizer.h"

namespace focus::optim {

class ZeroRedundancyOptimizer : public Optimizer {
 public:
  /// Builds the local optimizer over a rank's shard (its param groups, in order).
  using Factory = std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>)>;

  /// Over params (one param group) or over param groups, each rank's shard optimized by the
  /// optimizer make_local builds. Every rank must construct it with the same parameters
  /// (count, dtype, shape): construction compares them (a collective).
  ZeroRedundancyOptimizer(std::vector<Tensor> params, Factory make_local);
  ZeroRedundancyOptimizer(std::vector<ParamGroup> groups, Factory make_local);
  ~ZeroRedundancyOptimizer() override;

  /// The factory of Opt constructed with options: PyTorch's optimizer_class=Opt, **kwargs.
  ///   ZeroRedundancyOptimizer opt(params, ZeroRedundancyOptimizer::factory<AdamW>(AdamWOptions().lr(1e-3)));
  template <class Opt, class Options>
  static Factory factory(const Options& options) {
    return [options](std::vector<ParamGroup> groups) -> std::unique_ptr<Optimizer> {
      return std::make_unique<Opt>(std::move(groups), options);
    };
  }
  template <class Opt>
  static Factory factory() {
    return [](std::vector<ParamGroup> groups) -> std::unique_ptr<Optimizer> {
      return std::make_unique<Opt>(std::move(groups));
    };
  }
  /// ZeroRedundancyOptimizer::make<AdamW>(params, AdamWOptions().lr(1e-3)): PyTorch's
  /// ZeroRedundancyOptimizer(params, optimizer_class=AdamW, lr=1e-3). params: a
  /// std::vector<Tensor> or a std::vector<ParamGroup>. (Returned by value, constructed in
  /// place; use std::make_unique<ZeroRedundancyOptimizer>(params, factory<Opt>(options)) for
  /// a pointer.)
  template <class Opt, class Params, class Options>
  static ZeroRedundancyOptimizer make(Params params, const Options& options) {
    return ZeroRedundancyOptimizer(std::move(params), factory<Opt>(options));
  }
  template <class Opt, class Params>
  static ZeroRedundancyOptimizer make(Params params) {
    return ZeroRedundancyOptimizer(std::move(params), factory<Opt>());
  }

  /// Steps the local shard, then broadcasts every parameter from its owner (a collective).
  void step() override;
  using Optimizer::step;

  /// The rank's local optimizer (holding only its shard's parameters and state).
  Optimizer& local_optimizer() { return *local_; }
  const Optimizer& local_optimizer() const { return *local_; }
  /// The rank that owns each parameter, in the global order (over groups, as state_dict
  /// indices): the same on every rank.
  const std::vector<int>& owners() const { return owner_; }
  /// The parameters rank r owns, in the global order.
  std::vector<Tensor> params_of_rank(int r) const;
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  /// Owned parameters: the local optimizer's state; others: std::nullopt.
  std::optional<TensorDict> state(const Tensor& param) const override;
  std::optional<double> step_count(const Tensor& param) const override;

  /// Gathers every rank's shard state on rank `to` (a collective: every rank calls it).
  void consolidate_state_dict(int to = 0);
  /// The full state on the rank that consolidated (see the top of this header); an error
  /// on any other rank and before consolidation.
  TensorDict state_dict() const override;
  /// Loads a full state_dict on every rank: each keeps its own shard's state.
  void load_state_dict(const TensorDict& dict) override;

 protected:
  std::vector<std::string> state_names() const override { return {}; }

 private:
  struct Setup;
  explicit ZeroRedundancyOptimizer(Setup setup);
  void sync_groups_to_local();

  std::unique_ptr<Optimizer> local_;
  int rank_ = 0;
  int world_size_ = 1;
  std::vector<int> owner_;                    // global index -> owning rank
  std::vector<std::pair<size_t, size_t>> where_;  // global index -> (group, index in group)
  std::vector<int64_t> local_to_global_;      // local optimizer's index -> global (-1: placeholder)
  std::vector<int64_t> global_to_local_;      // global index -> local index (-1: not owned)
  // Set by consolidate_state_dict on rank `to`: state.<global>.<name>, CPU copies.
  std::optional<TensorDict> consolidated_;
  int consolidated_to_ = -1;
};

}  // namespace focus::optim
