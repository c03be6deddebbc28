// nn::DistributedDataParallel: the reducer (buckets, hooks, overlap with backward).
#include "distributed/ddp.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "autograd/engine.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "distributed/transport.h"

namespace focus::nn {

namespace dist = focus::distributed;
using Clock = std::chrono::steady_clock;

struct DistributedDataParallelBase::Slot {
  size_t param;
  int64_t offset;
  int64_t numel;
};

struct DistributedDataParallelBase::Bucket {
  Tensor flat;
  std::vector<Slot> slots;
  size_t pending = 0;
  dist::Work work;
  bool launched = false;
};

namespace {

std::string signature(const std::vector<std::pair<std::string, Tensor>>& params,
                      const std::vector<std::pair<std::string, Tensor>>& buffers) {
  std::string s;
  for (const auto& [n, t] : params) s += fmt::format("parameter {} {} {};", n, dtype_name(t.dtype()), t.shape());
  for (const auto& [n, t] : buffers) s += fmt::format("buffer {} {} {};", n, dtype_name(t.dtype()), t.shape());
  return s;
}

// The first entry where two signatures differ, for the error message.
std::string first_difference(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at < s.size()) {
      const size_t end = s.find(';', at);
      out.push_back(s.substr(at, end - at));
      at = end + 1;
    }
    return out;
  };
  const auto x = split(a), y = split(b);
  for (size_t i = 0; i < std::max(x.size(), y.size()); ++i) {
    const std::string l = i < x.size() ? x[i] : "(nothing)", r = i < y.size() ? y[i] : "(nothing)";
    if (l != r) return fmt::format("rank 0 has '{}' where this rank has '{}'", l, r);
  }
  return "?";
}

// Copies rank 0's values of t to every rank.
void broadcast_from_0(const Tensor& t) {
  if (t.is_contiguous()) {
    dist::broadcast(t, 0);
    return;
  }
  Tensor c = t.contiguous();
  dist::broadcast(c, 0);
  t.copy_(c);
}

}  // namespace

DistributedDataParallelBase::DistributedDataParallelBase(std::shared_ptr<Module> module,
                                                         DistributedDataParallelOptions opts)
    : Module("DistributedDataParallel"), opts_(opts) {
  FOCUS_CHECK(module != nullptr, "[DistributedDataParallel] the module is null");
  FOCUS_CHECK(dist::is_initialized(),
              "[DistributedDataParallel] the default process group has not been initialized; call "
              "focus::distributed::init_process_group() first");
  FOCUS_CHECK(opts_.bucket_cap_mb_ > 0, "[DistributedDataParallel] bucket_cap_mb must be positive, got {}",
              opts_.bucket_cap_mb_);
  module_ = register_module("module", module);

  // Every rank must hold the same model.
  const auto named = module_->named_parameters();
  const auto buffers = module_->named_buffers();
  const std::string mine = signature(named, buffers);
  const std::vector<std::string> all = dist::all_gather_bytes(mine);
  for (size_t r = 1; r < all.size(); ++r)
    FOCUS_CHECK(all[r] == all[0],
                "[DistributedDataParallel] rank {} holds different parameters or buffers from rank 0 (names, dtypes and "
                "shapes must agree): {}",
                r, first_difference(all[0], all[r]));
  {
    NoGradGuard ng;
    for (const auto& [n, t] : named) broadcast_from_0(t);
    for (const auto& [n, t] : buffers) broadcast_from_0(t);
  }

  for (const auto& [n, t] : named) {
    if (!t.requires_grad()) continue;
    params_.push_back(t);
    names_.push_back(n);
  }
  // Buckets: parameters in reverse order (about the order backward produces their
  // gradients); one open bucket per (dtype, device); the first closes at 1 MB, the others at
  // bucket_cap_mb (the first never above bucket_cap_mb), as PyTorch's _compute_bucket_assignment_by_size.
  const int64_t first_cap = 1024 * 1024;
  const int64_t cap = static_cast<int64_t>(opts_.bucket_cap_mb_ * 1024 * 1024);
  struct Open {
    std::vector<size_t> members;
    int64_t bytes = 0;
    bool first = true;
  };
  std::map<std::pair<int, std::string>, Open> open;
  std::vector<std::vector<size_t>> assignment;
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    Open& o = open[{static_cast<int>(p.dtype()), fmt::format("{}", p.device())}];
    o.members.push_back(k);
    o.bytes += p.numel() * static_cast<int64_t>(p.element_size());
    if (o.bytes >= (o.first ? std::min(first_cap, cap) : cap)) {
      assignment.push_back(std::move(o.members));
      o = Open{{}, 0, false};
    }
  }
  for (auto& [key, o] : open)
    if (!o.members.empty()) assignment.push_back(std::move(o.members));
  // Bucket order: by the latest parameter each holds (launch order follows backward).
  std::stable_sort(assignment.begin(), assignment.end(),
                   [](const auto& a, const auto& b) { return a.front() > b.front(); });
  where_.resize(params_.size());
  for (const auto& members : assignment) {
    auto b = std::make_unique<Bucket>();
    int64_t n = 0;
    for (size_t k : members) {
      b->slots.push_back({k, n, params_[k].numel()});
      where_[k] = {buckets_.size(), b->slots.size() - 1};
      n += params_[k].numel();
    }
    const Tensor& p0 = params_[members.front()];
    b->flat = zeros({n}, TensorOptions(p0.dtype()).device(p0.device()));
    buckets_.push_back(std::move(b));
  }
  ready_.assign(params_.size(), 0);
  reset_iteration();
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(params_[k].register_post_accumulate_grad_hook([this, k](const Tensor&) { on_grad(k); }));
}

DistributedDataParallelBase::~DistributedDataParallelBase() {
  for (auto& h : hooks_) h.remove();
  for (auto& b : buckets_) {
    try {
      if (b->launched) b->work.wait();
    } catch (...) {
    }
  }
}

std::vector<std::vector<size_t>> DistributedDataParallelBase::bucket_indices() const {
  std::vector<std::vector<size_t>> out;
  for (const auto& b : buckets_) {
    out.emplace_back();
    for (const Slot& s : b->slots) out.back().push_back(s.param);
  }
  return out;
}

void DistributedDataParallelBase::reset_iteration() {
  std::fill(ready_.begin(), ready_.end(), 0);
  for (auto& b : buckets_) {
    b->pending = b->slots.size();
    b->launched = false;
    b->work = dist::Work();
  }
  next_launch_ = 0;
}

void DistributedDataParallelBase::prepare_forward() {
  FOCUS_CHECK(!in_backward_,
              "[DistributedDataParallel] the previous backward did not finish its gradient reduction (it failed part "
              "way); the ranks can no longer agree on the gradients");
  if (opts_.broadcast_buffers_ && dist::get_world_size() > 1) {
    NoGradGuard ng;
    for (const Tensor& b : module_->buffers()) broadcast_from_0(b);
  }
}

void DistributedDataParallelBase::on_grad(size_t k) {
  if (!require_sync_) return;  // no_sync()
  if (!in_backward_) {
    in_backward_ = true;
    stats_ = DdpCommStats{};
    autograd::queue_callback([this] { finalize(); });
  }
  FOCUS_CHECK(!ready_[k],
              "[DistributedDataParallel] parameter '{}' received its gradient twice in one backward (a backward "
              "through part of the graph twice, or retain_graph); run one backward per forward",
              names_[k]);
  ready_[k] = 1;
  auto [bi, si] = where_[k];
  Bucket& b = *buckets_[bi];
  const Slot& s = b.slots[si];
  const Tensor g = params_[k].grad();
  if (g.defined() && g.data_ptr() != static_cast<char*>(b.flat.data_ptr()) + s.offset * g.element_size()) {
    NoGradGuard ng;
    b.flat.narrow(0, s.offset, s.numel).copy_(g.reshape({-1}));
  }
  if (--b.pending == 0) launch_ready_buckets();
}

void DistributedDataParallelBase::launch_ready_buckets() {
  // In bucket order on every rank, so the ranks' collectives match.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) {
    Bucket& b = *buckets_[next_launch_++];
    b.work = dist::all_reduce(b.flat, dist::ReduceOp::AVG, true);
    b.launched = true;
    ++stats_.buckets;
    stats_.bytes += b.flat.numel() * static_cast<int64_t>(b.flat.element_size());
  }
}

void DistributedDataParallelBase::finalize() {
  std::vector<int32_t> used(params_.size(), 1);
  std::vector<std::string> missing;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (ready_[k]) continue;
    if (!opts_.find_unused_parameters_) {
      if (missing.size() < 10) missing.push_back(names_[k]);
      continue;
    }
    used[k] = 0;
    ready_[k] = 1;
    auto [bi, si] = where_[k];
    Bucket& b = *buckets_[bi];
    const Slot& s = b.slots[si];
    NoGradGuard ng;
    b.flat.narrow(0, s.offset, s.numel).zero_();
    --b.pending;
  }
  if (!missing.empty()) {
    for (auto& b : buckets_)
      if (b->launched) b->work.wait();
    in_backward_ = false;
    reset_iteration();
    FOCUS_FAIL("[DistributedDataParallel] parameters received no gradient in this backward: {}; pass "
               "DistributedDataParallelOptions().find_unused_parameters(true) when some parameters may not take "
               "part in the loss",
               fmt::join(missing, ", "));
  }
  launch_ready_buckets();
  const auto wait_start = Clock::now();
  std::exception_ptr error;
  for (auto& b : buckets_) {
    try {
      b->work.wait();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  stats_.exposed_seconds = std::chrono::duration<double>(Clock::now() - wait_start).count();
  for (auto& b : buckets_)
    if (const auto& st = b->work.state())
      stats_.comm_seconds += std::chrono::duration<double>(st->ended - st->started).count();
  in_backward_ = false;
  reset_iteration();
  if (error) std::rethrow_exception(error);

  if (opts_.find_unused_parameters_) {
    // A parameter no rank used keeps its .grad (PyTorch leaves it None).
    Tensor u = tensor<int32_t>(used);
    dist::all_reduce(u, dist::ReduceOp::MAX);
    used = u.to_vector<int32_t>();
  }
  NoGradGuard ng;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!used[k]) continue;
    auto [bi, si] = where_[k];
    const Bucket& b = *buckets_[bi];
    const Slot& s = b.slots[si];
    const Tensor& p = params_[k];
    Tensor slot = b.flat.narrow(0, s.offset, s.numel).view(p.shape());
    Tensor g = p.grad();
    if (opts_.gradient_as_bucket_view_) {
      if (!g.defined() || g.data_ptr() != slot.data_ptr()) p.set_grad(slot);
    } else if (g.defined()) {
      g.copy_(slot);
    } else {
      p.set_grad(slot.clone());
    }
  }
}

void consume_prefix_in_state_dict_if_present(TensorDict& dict, const std::string& prefix) {
  TensorDict out;
  for (const auto& [k, v] : dict) {
    const bool has = k.size() >= prefix.size() && k.compare(0, prefix.size(), prefix) == 0;
    out.insert(has ? k.substr(prefix.size()) : k, v);
  }
  dict = std::move(out);
}

}  // namespace focus::nn
