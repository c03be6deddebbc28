#include "distributed/zero.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "autograd/node.h"
#include "core/creation.h"
#include "core/safetensors.h"
#include "distributed/distributed.h"

namespace focus::optim {

namespace {

constexpr const char* kName = "ZeroRedundancyOptimizer";

// "float32[3, 4]" for each parameter, per group: what every rank must agree on (devices
// may differ: each rank its own GPU).
std::vector<std::vector<std::string>> describe(const std::vector<ParamGroup>& groups) {
  std::vector<std::vector<std::string>> out;
  for (const auto& g : groups) {
    auto& d = out.emplace_back();
    for (const auto& p : g.params()) d.push_back(fmt::format("{}{}", p.dtype(), p.shape()));
  }
  return out;
}

std::string encode(const std::vector<std::vector<std::string>>& desc) {
  std::string s;
  for (const auto& g : desc) {
    for (const auto& p : g) s += p + ";";
    s += "|";
  }
  return s;
}

// Splits "<int>.<rest>" into the int and rest; std::nullopt when malformed.
std::optional<std::pair<int64_t, std::string_view>> split_index(std::string_view s) {
  int64_t v = -1;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr == s.data() || ptr == s.data() + s.size() || *ptr != '.' || v < 0)
    return std::nullopt;
  std::string_view rest = s.substr(static_cast<size_t>(ptr - s.data()) + 1);
  if (rest.empty()) return std::nullopt;
  return std::make_pair(v, rest);
}

}  // namespace

struct ZeroRedundancyOptimizer::Setup {
  std::vector<ParamGroup> groups;
  std::unique_ptr<Optimizer> local;
  int rank = 0;
  int world_size = 1;
  std::vector<int> owner;
  std::vector<std::pair<size_t, size_t>> where;
  std::vector<int64_t> local_to_global;
  std::vector<int64_t> global_to_local;

  static Setup create(std::vector<ParamGroup> groups, const Factory& make_local) {
    FOCUS_CHECK(distributed::is_initialized(),
                "[{}] needs the default process group: call distributed::init_process_group() first", kName);
    FOCUS_CHECK(make_local != nullptr, "[{}] no factory for the local optimizer", kName);
    size_t total = 0;
    for (const auto& g : groups) total += g.params().size();
    FOCUS_CHECK(total > 0, "[{}] optimizer got an empty parameter list", kName);
    for (size_t gi = 0; gi < groups.size(); ++gi)
      for (size_t j = 0; j < groups[gi].params().size(); ++j)
        FOCUS_CHECK(groups[gi].params()[j].defined(), "[{}] parameter {} of group {} is an undefined tensor", kName,
                    j, gi);

    Setup s;
    s.rank = distributed::get_rank();
    s.world_size = distributed::get_world_size();

    // Every rank must hold the same parameters: one exchange, and every rank throws the same
    // error when they differ.
    const auto mine = describe(groups);
    const auto all = distributed::all_gather_bytes(encode(mine));
    for (int r = 1; r < s.world_size; ++r) {
      if (all[static_cast<size_t>(r)] == all[0]) continue;
      // Re-derive both descriptions from the strings to name the first difference.
      auto parse = [](const std::string& e) {
        std::vector<std::vector<std::string>> d;
        std::string cur;
        d.emplace_back();
        for (char c : e) {
          if (c == ';') { d.back().push_back(cur); cur.clear(); }
          else if (c == '|') d.emplace_back();
          else cur += c;
        }
        d.pop_back();
        return d;
      };
      const auto d0 = parse(all[0]);
      const auto dr = parse(all[static_cast<size_t>(r)]);
      FOCUS_CHECK(d0.size() == dr.size(),
                  "[{}] every rank must be given the same parameters: rank 0 has {} param groups, rank {} has {}",
                  kName, d0.size(), r, dr.size());
      for (size_t gi = 0; gi < d0.size(); ++gi) {
        FOCUS_CHECK(d0[gi].size() == dr[gi].size(),
                    "[{}] every rank must be given the same parameters: rank 0 has {} parameters in group {}, rank "
                    "{} has {}",
                    kName, d0[gi].size(), gi, r, dr[gi].size());
        for (size_t j = 0; j < d0[gi].size(); ++j)
          FOCUS_CHECK(d0[gi][j] == dr[gi][j],
                      "[{}] every rank must be given the same parameters: parameter {} of group {} is {} on rank 0 "
                      "but {} on rank {}",
                      kName, j, gi, d0[gi][j], dr[gi][j], r);
      }
      FOCUS_FAIL("[{}] every rank must be given the same parameters (rank 0 and rank {} differ)", kName, r);
    }

    // Partition: PyTorch's greedy rule, group by group, the rank totals carried over.
    std::vector<int64_t> sizes(static_cast<size_t>(s.world_size), 0);
    std::vector<std::vector<std::vector<Tensor>>> shards(groups.size());  // [group][rank]
    std::vector<std::vector<int>> owner_in_group(groups.size());
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& params = groups[gi].params();
      std::vector<size_t> order(params.size());
      for (size_t j = 0; j < order.size(); ++j) order[j] = j;
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
      owner_in_group[gi].assign(params.size(), 0);
      for (size_t j : order) {
        const int r = static_cast<int>(std::min_element(sizes.begin(), sizes.end()) - sizes.begin());
        owner_in_group[gi][j] = r;
        sizes[static_cast<size_t>(r)] += params[j].numel();
      }
    }
    // The global order, and this rank's shard in the original order.
    std::vector<ParamGroup> local_groups;
    int64_t global = 0;
    size_t local_count = 0;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& params = groups[gi].params();
      std::vector<Tensor> shard;
      for (size_t j = 0; j < params.size(); ++j, ++global) {
        const int r = owner_in_group[gi][j];
        s.owner.push_back(r);
        s.where.emplace_back(gi, j);
        if (r == s.rank) {
          s.global_to_local.push_back(static_cast<int64_t>(local_count++));
          s.local_to_global.push_back(global);
          shard.push_back(params[j]);
        } else {
          s.global_to_local.push_back(-1);
        }
      }
      local_groups.push_back(group_with_params(groups[gi], std::move(shard)));
    }
    if (local_count == 0) {
      // More ranks than parameters: a placeholder that never has a gradient.
      const Tensor& p0 = groups[s.where[0].first].params()[s.where[0].second];
      Tensor placeholder = zeros({1}, TensorOptions(p0.dtype()).device(p0.device()));
      // The placeholder goes first in group 0 (local index 0).
      std::vector<Tensor> ps{placeholder};
      local_groups[0] = group_with_params(local_groups[0], ps);
      s.local_to_global.push_back(-1);
    }
    s.local = make_local(std::move(local_groups));
    FOCUS_CHECK(s.local != nullptr, "[{}] the factory returned no optimizer", kName);
    FOCUS_CHECK(s.local->param_groups().size() == groups.size(),
                "[{}] the local optimizer has {} param groups, but {} were given to it", kName,
                s.local->param_groups().size(), groups.size());
    FOCUS_CHECK(s.local->num_params() == s.local_to_global.size(),
                "[{}] the local optimizer has {} parameters, but {} were given to it", kName, s.local->num_params(),
                s.local_to_global.size());
    s.groups = std::move(groups);
    return s;
  }
};

ZeroRedundancyOptimizer::ZeroRedundancyOptimizer(std::vector<Tensor> params, Factory make_local)
    : ZeroRedundancyOptimizer(std::vector<ParamGroup>{ParamGroup(std::move(params))}, std::move(make_local)) {}

ZeroRedundancyOptimizer::ZeroRedundancyOptimizer(std::vector<ParamGroup> groups, Factory make_local)
    : ZeroRedundancyOptimizer(Setup::create(std::move(groups), make_local)) {}

ZeroRedundancyOptimizer::ZeroRedundancyOptimizer(Setup setup)
    : Optimizer(kName, setup.local->defaults().clone()),
      local_(std::move(setup.local)),
      rank_(setup.rank),
      world_size_(setup.world_size),
      owner_(std::move(setup.owner)),
      where_(std::move(setup.where)),
      local_to_global_(std::move(setup.local_to_global)),
      global_to_local_(std::move(setup.global_to_local)) {
  init_groups(std::move(setup.groups));
  // The groups' resolved hyperparameters are the local optimizer's (the same overrides
  // over the same defaults); copy them so that both start identical.
  sync_groups_to_local();
}

ZeroRedundancyOptimizer::~ZeroRedundancyOptimizer() = default;

std::vector<Tensor> ZeroRedundancyOptimizer::params_of_rank(int r) const {
  std::vector<Tensor> out;
  for (size_t i = 0; i < owner_.size(); ++i)
    if (owner_[i] == r) out.push_back(groups_[where_[i].first].params()[where_[i].second]);
  return out;
}

void ZeroRedundancyOptimizer::sync_groups_to_local() {
  auto& local_groups = local_->param_groups();
  for (size_t g = 0; g < groups_.size(); ++g) set_group_options(local_groups[g], groups_[g].options());
}

void ZeroRedundancyOptimizer::step() {
  FOCUS_CHECK(groups_.size() == local_->param_groups().size() && num_params() == owner_.size(),
              "[{}] add_param_group() after construction is not supported (build a new {} over all the groups)",
              kName, kName);
  consolidated_.reset();
  consolidated_to_ = -1;
  sync_groups_to_local();
  local_->step();
  if (world_size_ == 1) return;

  // Every parameter from its owner: one flat buffer per owner and (dtype, device).
  NoGradGuard no_grad;
  struct Bucket {
    int owner;
    std::vector<Tensor> params;
    Tensor flat;
    distributed::Work work;
  };
  std::vector<Bucket> buckets;
  for (int r = 0; r < world_size_; ++r) {
    const size_t first = buckets.size();
    for (const Tensor& p : params_of_rank(r)) {
      Bucket* b = nullptr;
      for (size_t k = first; k < buckets.size(); ++k)
        if (buckets[k].params[0].dtype() == p.dtype() && buckets[k].params[0].device() == p.device()) b = &buckets[k];
      if (!b) {
        buckets.push_back(Bucket{r, {}, Tensor(), distributed::Work()});
        b = &buckets.back();
      }
      b->params.push_back(p);
    }
  }
  for (Bucket& b : buckets) {
    const Tensor& p0 = b.params[0];
    if (b.params.size() == 1 && p0.is_contiguous()) {
      b.flat = p0;  // broadcast in place
    } else {
      int64_t total = 0;
      for (const Tensor& p : b.params) total += p.numel();
      b.flat = empty({total}, TensorOptions(p0.dtype()).device(p0.device()));
      if (b.owner == rank_) {
        int64_t off = 0;
        for (const Tensor& p : b.params) {
          b.flat.narrow(0, off, p.numel()).copy_(p.reshape({p.numel()}));
          off += p.numel();
        }
      }
    }
    b.work = distributed::broadcast(b.flat, b.owner, /*async_op=*/true);
  }
  for (Bucket& b : buckets) {
    b.work.wait();
    if (b.owner == rank_ || b.flat.unsafe_impl() == b.params[0].unsafe_impl()) continue;
    int64_t off = 0;
    for (const Tensor& p : b.params) {
      p.copy_(b.flat.narrow(0, off, p.numel()).view(p.shape()));
      off += p.numel();
    }
  }
}

std::optional<TensorDict> ZeroRedundancyOptimizer::state(const Tensor& param) const { return local_->state(param); }

std::optional<double> ZeroRedundancyOptimizer::step_count(const Tensor& param) const {
  return local_->step_count(param);
}

void ZeroRedundancyOptimizer::consolidate_state_dict(int to) {
  FOCUS_CHECK(to >= 0 && to < world_size_, "[{}] consolidate_state_dict: rank {} out of range (world size {})", kName,
              to, world_size_);
  // This rank's shard, re-indexed to the global order (the local optimizer's own order of
  // names per parameter: step first, then its tensors).
  TensorDict shard;
  size_t li = 0;
  for (const auto& g : local_->param_groups()) {
    for (const auto& p : g.params()) {
      const int64_t gi = local_to_global_[li++];
      if (gi < 0) continue;
      if (auto st = local_->state(p))
        for (const auto& [k, v] : *st) shard.insert(fmt::format("state.{}.{}", gi, k), v);
    }
  }
  const std::vector<uint8_t> bytes = safetensors_serialize(shard);
  const auto all = distributed::all_gather_bytes(std::string(bytes.begin(), bytes.end()));
  consolidated_.reset();
  consolidated_to_ = to;
  if (rank_ != to) return;
  // Merge in the global order.
  std::map<int64_t, std::vector<std::pair<std::string, Tensor>>> by_index;
  for (const std::string& b : all) {
    const TensorDict d = safetensors_deserialize(reinterpret_cast<const uint8_t*>(b.data()), b.size());
    for (const auto& [k, v] : d) {
      std::string_view rest(k);
      rest.remove_prefix(6);  // "state."
      auto parsed = split_index(rest);
      FOCUS_CHECK(parsed.has_value(), "[{}] malformed shard key '{}'", kName, k);
      by_index[parsed->first].emplace_back(k, v);
    }
  }
  TensorDict out;
  for (const auto& [i, entries] : by_index)
    for (const auto& [k, v] : entries) out.insert(k, v);
  consolidated_ = std::move(out);
}

TensorDict ZeroRedundancyOptimizer::state_dict() const {
  FOCUS_CHECK(consolidated_.has_value() || consolidated_to_ < 0 || consolidated_to_ == rank_,
              "[{}] state_dict() on rank {}: the optimizer state was consolidated on rank {}, call state_dict() "
              "there (consolidate_state_dict(to) gathers it on rank `to` only)",
              kName, rank_, consolidated_to_);
  FOCUS_CHECK(consolidated_.has_value(),
              "[{}] state_dict() on rank {}: the optimizer state has not been consolidated on this rank; call "
              "consolidate_state_dict(to) on every rank first, then state_dict() on rank `to` (again after each "
              "step() or load_state_dict())",
              kName, rank_);
  TensorDict out = *consolidated_;
  save_param_groups(out);
  return out;
}

void ZeroRedundancyOptimizer::load_state_dict(const TensorDict& dict) {
  const std::string op = fmt::format("{}.load_state_dict", kName);
  // 1. Sort the keys: group entries (full keys, for the base class) and state by saved id.
  TensorDict group_part;
  std::map<int64_t, std::vector<std::pair<std::string, Tensor>>> state_by_id;
  for (const auto& [key, value] : dict) {
    std::string_view k(key);
    if (k.substr(0, 13) == "param_groups.") {
      group_part.insert(key, value);
    } else if (k.substr(0, 6) == "state.") {
      auto parsed = split_index(k.substr(6));
      FOCUS_CHECK(parsed.has_value(), "[{}] malformed key '{}' (expected state.<i>.<name>)", op, key);
      state_by_id[parsed->first].emplace_back(std::string(parsed->second), value);
    } else {
      FOCUS_FAIL("[{}] unexpected key '{}' (expected state.* or param_groups.*)", op, key);
    }
  }
  // 2. Saved ids of every parameter (positionally, as Optimizer::load_state_dict maps them).
  const size_t n = owner_.size();
  std::vector<int64_t> saved_id(n, -1);
  std::unordered_map<int64_t, size_t> id_to_global;
  size_t loaded_groups = 0;
  while (group_part.contains(fmt::format("param_groups.{}.params", loaded_groups))) ++loaded_groups;
  FOCUS_CHECK(loaded_groups == groups_.size(),
              "[{}] loaded state dict has {} parameter groups, but the optimizer has {}", op, loaded_groups,
              groups_.size());
  size_t global = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const Tensor& ids = group_part.at(fmt::format("param_groups.{}.params", gi));
    FOCUS_CHECK(ids.dim() == 1 && (ids.dtype() == kInt64 || ids.dtype() == kInt32),
                "[{}] 'param_groups.{}.params' must be a 1-d integer tensor, got {} of shape {}", op, gi, ids.dtype(),
                ids.shape());
    const size_t count = groups_[gi].params().size();
    FOCUS_CHECK(ids.numel() == static_cast<int64_t>(count),
                "[{}] loaded param group {} has {} parameters, but the optimizer's group has {}", op, gi, ids.numel(),
                count);
    for (int64_t id : ids.to_vector<int64_t>()) {
      FOCUS_CHECK(id_to_global.emplace(id, global).second, "[{}] parameter id {} appears twice in param_groups", op,
                  id);
      saved_id[global++] = id;
    }
  }
  for (const auto& [id, entries] : state_by_id)
    FOCUS_CHECK(id_to_global.count(id) != 0, "[{}] state for parameter id {} that no group lists", op, id);
  // 3. The local optimizer's dict: its shard's state and every group's hyperparameters.
  TensorDict local;
  size_t li = 0;
  const auto& local_groups = local_->param_groups();
  for (size_t gi = 0; gi < local_groups.size(); ++gi) {
    std::vector<int64_t> local_ids;
    for (size_t j = 0; j < local_groups[gi].params().size(); ++j, ++li) {
      local_ids.push_back(static_cast<int64_t>(li));
      const int64_t g = local_to_global_[li];
      if (g < 0) continue;
      auto it = state_by_id.find(saved_id[static_cast<size_t>(g)]);
      if (it == state_by_id.end()) continue;
      for (const auto& [name, value] : it->second) local.insert(fmt::format("state.{}.{}", li, name), value);
    }
    const std::string prefix = fmt::format("param_groups.{}.", gi);
    for (const auto& [k, v] : group_part.with_prefix_removed(prefix))
      if (k != "params") local.insert(prefix + k, v);
    local.insert(prefix + "params", tensor<int64_t>(local_ids, Shape{static_cast<int64_t>(local_ids.size())}));
  }
  // 4. Load: the local optimizer checks the state (nothing changes if it throws), then this
  // optimizer's groups take the hyperparameters and extras.
  local_->load_state_dict(local);
  Optimizer::load_state_dict(group_part);
  consolidated_.reset();
  consolidated_to_ = -1;
}

}  // namespace focus::optim
