#pragma once
/// nn::DistributedDataParallel, as torch.nn.parallel.DistributedDataParallel: data-parallel
/// training over the ranks of the default process group (focus::distributed).
///
///   distributed::init_process_group();
///   auto model = std::make_shared<MyModel>(...);
///   auto ddp = std::make_shared<nn::DistributedDataParallel<MyModel>>(model);
///   optim::AdamW opt(ddp->parameters(), ...);
///   for (...) { opt.zero_grad(); ddp->forward(x_of_this_rank).mean().backward(); opt.step(); }
///
/// Construction broadcasts rank 0's parameters and buffers to every rank (after checking that
/// every rank holds the same parameter names, dtypes and shapes). During backward, gradients
/// are averaged over the ranks in buckets (PyTorch's bucketing: parameters in reverse order,
/// the first bucket at most 1 MB, the others at most bucket_cap_mb; one bucket per dtype and
/// device run): each bucket's all-reduce starts, on the communication thread, as soon as
/// every gradient in it has been accumulated (Tensor::register_post_accumulate_grad_hook),
/// while the rest of the backward runs, and backward returns once all are done
/// (autograd::queue_callback). After backward every rank holds the same averaged .grad.
///
/// state_dict() names carry the "module." prefix, as PyTorch's (the wrapped model is the
/// child "module"); save ddp->module()->state_dict() for a checkpoint any process can load,
/// or strip the prefix with consume_prefix_in_state_dict_if_present().
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "distributed/distributed.h"
#include "nn/module.h"

namespace focus::nn {

struct DistributedDataParallelOptions {
  /// Bucket size in MiB (PyTorch's bucket_cap_mb, default 25).
  DistributedDataParallelOptions& bucket_cap_mb(double mb) { bucket_cap_mb_ = mb; return *this; }
  /// Parameters may get no gradient in a backward (unused branches): they are then counted as
  /// ready at the end of backward, contribute zeros, and a parameter no rank used keeps its
  /// .grad untouched. Without it, such a parameter is an error naming it.
  DistributedDataParallelOptions& find_unused_parameters(bool on = true) { find_unused_parameters_ = on; return *this; }
  /// Broadcast rank 0's buffers before every forward (default true).
  DistributedDataParallelOptions& broadcast_buffers(bool on = true) { broadcast_buffers_ = on; return *this; }
  /// .grad tensors become views into the buckets (saves one copy and the memory of one copy
  /// of the gradients); zero_grad(set_to_none = false) then keeps them views.
  DistributedDataParallelOptions& gradient_as_bucket_view(bool on = true) { gradient_as_bucket_view_ = on; return *this; }

  double bucket_cap_mb_ = 25.0;
  bool find_unused_parameters_ = false;
  bool broadcast_buffers_ = true;
  bool gradient_as_bucket_view_ = false;
};

/// Counters of the last synchronized backward, for benchmarks and tests.
struct DdpCommStats {
  int64_t buckets = 0;          // all-reduce calls of gradients
  int64_t bytes = 0;            // gradient bytes all-reduced
  double comm_seconds = 0;      // time the communication thread spent on them
  double exposed_seconds = 0;   // time the end of backward waited for them
};

/// The non-template part (the reducer); use DistributedDataParallel<M>.
class DistributedDataParallelBase : public Module {
 public:
  ~DistributedDataParallelBase() override;
  /// The wrapped model.
  const std::shared_ptr<Module>& module() const { return module_; }
  const DistributedDataParallelOptions& options() const { return opts_; }

  /// While the returned guard lives, backward accumulates gradients locally without
  /// all-reducing them (torch's `with ddp.no_sync():`; here the guard must cover the
  /// backward); the first synchronized backward afterwards averages the accumulated sums.
  class NoSyncGuard {
   public:
    explicit NoSyncGuard(DistributedDataParallelBase& d) : d_(&d), prev_(d.require_sync_) { d.require_sync_ = false; }
    ~NoSyncGuard() { if (d_) d_->require_sync_ = prev_; }
    NoSyncGuard(NoSyncGuard&& o) noexcept : d_(o.d_), prev_(o.prev_) { o.d_ = nullptr; }
    NoSyncGuard(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(NoSyncGuard&&) = delete;

   private:
    DistributedDataParallelBase* d_;
    bool prev_;
  };
  [[nodiscard]] NoSyncGuard no_sync() { return NoSyncGuard(*this); }

  /// Parameter indices (into module()->parameters() of those requiring grad) of each bucket.
  std::vector<std::vector<size_t>> bucket_indices() const;
  const DdpCommStats& last_comm_stats() const { return stats_; }

  /// What DistributedDataParallel<M>::forward does before the model's forward: broadcasts
  /// rank 0's buffers (broadcast_buffers) and checks that the last backward finished its
  /// reduction. The reduction itself needs no call: every backward through the wrapped
  /// model's parameters all-reduces their gradients (outside no_sync()), so a program may
  /// also call the model directly when its buffers never change.
  void prepare_forward();

 protected:
  DistributedDataParallelBase(std::shared_ptr<Module> module, DistributedDataParallelOptions opts);

 private:
  struct Bucket;
  struct Slot;
  void on_grad(size_t index);
  void launch_ready_buckets();
  void finalize();
  void reset_iteration();

  std::shared_ptr<Module> module_;
  DistributedDataParallelOptions opts_;
  std::vector<Tensor> params_;                 // those requiring grad, in module order
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::pair<size_t, size_t>> where_;  // param -> (bucket, slot)
  std::vector<RemovableHandle> hooks_;
  bool require_sync_ = true;
  bool in_backward_ = false;    // a hook fired and finalize has not run yet
  std::vector<char> ready_;
  size_t next_launch_ = 0;
  DdpCommStats stats_;
  std::chrono::steady_clock::time_point first_launch_;
};

/// DistributedDataParallel around a model of type M: forward(args...) calls M::forward.
template <class M>
class DistributedDataParallel : public DistributedDataParallelBase {
 public:
  explicit DistributedDataParallel(std::shared_ptr<M> module, DistributedDataParallelOptions opts = {})
      : DistributedDataParallelBase(module, opts), typed_(std::move(module)) {}
  /// The wrapped model, typed.
  const std::shared_ptr<M>& model() const { return typed_; }
  template <class... Args> decltype(auto) forward(Args&&... args) {
    prepare_forward();
    return typed_->forward(std::forward<Args>(args)...);
  }
  template <class... Args> decltype(auto) operator()(Args&&... args) { return forward(std::forward<Args>(args)...); }
  /// Runs fn(model) as the forward, for models whose training pass is not forward().
  template <class F> decltype(auto) run(F&& fn) {
    prepare_forward();
    return std::forward<F>(fn)(*typed_);
  }

 private:
  std::shared_ptr<M> typed_;
};

/// Removes prefix from every key of dict that starts with it (in place), as
/// torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(state_dict, "module.").
void consume_prefix_in_state_dict_if_present(TensorDict& dict, const std::string& prefix);

}  // namespace focus::nn
