// The CPU backend's cache of large blocks (backends/cpu/cpu_backend.cpp): a freed block
// serves later requests of its size or up to a fifth smaller, and comes back whole.
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/backend.h"
#include "test_util.h"

using namespace focus;

TEST_SUITE("cpu_alloc") {

TEST_CASE("a freed large block serves requests down to 4/5 of its size and returns whole") {
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("AddressSanitizer build: the block cache is off (every free must reach ASan); nothing to check");
  return;
#endif
  if (const char* env = std::getenv("FOCUS_CPU_CACHE_MB"); env && std::string(env) == "0") {
    MESSAGE("FOCUS_CPU_CACHE_MB=0: the block cache is off; nothing to check");
    return;
  }
  Backend& be = backend_for(kCPU);
  // An odd size, so that no block cached by another test fits it.
  const size_t big = (37u << 20) + 4096 * 3 + 100, smaller = big - big / 6, half = big / 2;
  void* a = be.allocate(big);
  std::memset(a, 1, big);
  be.deallocate(a, big);
  void* b = be.allocate(smaller);  // a fits (within a quarter)
  CHECK(b == a);
  void* c = be.allocate(big);  // a is taken: a block of its own
  CHECK(c != a);
  std::memset(c, 2, big);
  be.deallocate(b, smaller);  // a comes back with its whole size...
  void* d = be.allocate(big);  // ...so it serves a full-size request again
  CHECK(d == a);
  std::memset(d, 3, big);
  be.deallocate(d, big);
  void* e = be.allocate(half);  // half the size is too small to take a
  CHECK(e != a);
  std::memset(e, 4, half);
  be.deallocate(e, half);
  be.deallocate(c, big);
}

}  // TEST_SUITE
