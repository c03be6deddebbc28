// focus_dist_tests: the distributed test suite, run by CTest under `mpirun -np N` (N = 1, 2,
// 4). Every rank runs every test case; the process group is initialized once here. Rank 0
// reports in full, the other ranks report their failures only.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/creation.h"
#include "distributed/distributed.h"

int main(int argc, char** argv) {
  namespace dist = focus::distributed;
  try {
    dist::init_process_group(dist::Backend::kMPI);
  } catch (const focus::Error& e) {
    std::fprintf(stderr, "focus_dist_tests: error: %s\n", e.what());
    return 1;
  }
  doctest::Context ctx;
  std::vector<const char*> args(argv, argv + argc);
  if (dist::get_rank() != 0) args.push_back("--minimal");
  ctx.applyCommandLine(static_cast<int>(args.size()), args.data());
  const int failed = ctx.run();
  // Every rank ends with the job's verdict, so mpirun's status is the same on all.
  int any = failed ? 1 : 0;
  auto t = focus::tensor<int32_t>({any});
  dist::all_reduce(t, dist::ReduceOp::MAX);
  any = t.item<int32_t>();
  dist::destroy_process_group();
  if (any && !failed && dist::is_mpi_available()) std::fprintf(stderr, "another rank failed\n");
  return any;
}
