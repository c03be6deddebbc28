#include "core/random.h"

namespace focus {

void Generator::manual_seed(uint64_t seed) {
  std::lock_guard lock(mu_);
  seed_ = seed;
  offset_ = 0;
}
uint64_t Generator::seed() const {
  std::lock_guard lock(mu_);
  return seed_;
}
RandomState Generator::next(uint64_t n) {
  std::lock_guard lock(mu_);
  RandomState s{seed_, offset_};
  offset_ += n == 0 ? 1 : n;
  return s;
}
RandomState Generator::get_state() const {
  std::lock_guard lock(mu_);
  return {seed_, offset_};
}
void Generator::set_state(RandomState s) {
  std::lock_guard lock(mu_);
  seed_ = s.seed;
  offset_ = s.offset;
}

Generator& default_generator() {
  static Generator g;
  return g;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace focus
