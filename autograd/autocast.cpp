#include "autograd/autocast.h"

#include <unordered_map>

#include "autograd/node.h"
#include "core/error.h"

namespace focus {

namespace {

struct State {
  bool enabled[2] = {false, false};             // per DeviceType (CPU, CUDA)
  DType dtype[2] = {kBFloat16, kFloat16};       // PyTorch's defaults
  int depth = 0;                                // guards alive that turned autocast on
  bool suspended = false;                       // inside the backward pass
  // Leaf casts reused within the outermost guard, keyed by the leaf and the target dtype;
  // the leaf is held too, so its address cannot be reused by another tensor meanwhile.
  struct Cached {
    Tensor leaf, cast;
  };
  std::unordered_map<const void*, Cached> cache[2];  // [0] float32, [1] lower
};

thread_local State g_state;

int slot(DeviceType t) { return t == DeviceType::CUDA ? 1 : 0; }

bool eligible(const Tensor& t) {
  return t.defined() && is_floating(t.dtype()) && t.dtype() != kFloat64 && g_state.enabled[slot(t.device().type)];
}

}  // namespace

AutocastGuard::AutocastGuard(Device device, std::optional<DType> dtype, bool enabled) : type_(device.type) {
  State& s = g_state;
  const int i = slot(type_);
  const DType want = dtype.value_or(type_ == DeviceType::CUDA ? kFloat16 : kBFloat16);
  FOCUS_CHECK(want == kFloat16 || want == kBFloat16,
              "[autocast] expected dtype float16 or bfloat16, got {}", want);
  prev_enabled_ = s.enabled[i];
  prev_dtype_ = s.dtype[i];
  s.enabled[i] = enabled;
  s.dtype[i] = want;
  ++s.depth;
}

AutocastGuard::~AutocastGuard() {
  State& s = g_state;
  const int i = slot(type_);
  s.enabled[i] = prev_enabled_;
  s.dtype[i] = prev_dtype_;
  if (--s.depth == 0) clear_autocast_cache();
}

bool is_autocast_enabled(DeviceType type) { return g_state.enabled[slot(type)]; }
DType get_autocast_dtype(DeviceType type) { return g_state.dtype[slot(type)]; }
void clear_autocast_cache() {
  g_state.cache[0].clear();
  g_state.cache[1].clear();
}

namespace autocast {

bool active() { return (g_state.enabled[0] || g_state.enabled[1]) && !g_state.suspended; }

Tensor cast(const Tensor& t, Policy p) {
  if (!active() || !eligible(t)) return t;
  const DType want = p == Policy::Lower ? g_state.dtype[slot(t.device().type)] : kFloat32;
  if (t.dtype() == want) return t;
  // Cached only for leaves that will get a gradient (weights), as PyTorch's autocast cache:
  // their cast is the same tensor for every use inside the guard.
  const bool cacheable = t.is_leaf() && t.requires_grad() && GradMode::is_enabled();
  if (!cacheable) return t.to(want);
  auto& cache = g_state.cache[p == Policy::Lower ? 1 : 0];
  auto it = cache.find(t.unsafe_impl());
  if (it != cache.end() && it->second.cast.dtype() == want) return it->second.cast;
  Tensor c = t.to(want);
  cache[t.unsafe_impl()] = {t, c};
  return c;
}

std::vector<Tensor> promote(const std::vector<Tensor>& ts) {
  if (!active()) return ts;
  DType widest = kBool;
  bool any = false, mixed = false;
  for (const Tensor& t : ts) {
    if (!eligible(t)) continue;
    if (any && t.dtype() != widest) mixed = true;
    widest = any ? promote_types(widest, t.dtype()) : t.dtype();
    any = true;
  }
  if (!mixed) return ts;
  std::vector<Tensor> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back(eligible(t) && t.dtype() != widest ? t.to(widest) : t);
  return out;
}

Suspend::Suspend() : prev_(g_state.suspended) { g_state.suspended = true; }
Suspend::~Suspend() { g_state.suspended = prev_; }

}  // namespace autocast
}  // namespace focus
