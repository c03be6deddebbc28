// A job whose rank 1 fails, in the way argv[1] names; tests/distributed/failures.cmake runs it
// under mpirun and checks that the whole job ends, with a clear error, well within the
// timeout (3 s here), never hangs.
//   throw:  rank 1 throws a focus::Error nobody catches (std::terminate, SIGABRT).
//   exit:   rank 1 exits at once with status 3, without finalizing MPI.
//   return: rank 1 catches its error and returns from main normally; rank 0 waits in an
//           all_reduce rank 1 never joins, until its watchdog ends the job.
//   abort:  rank 1 catches its error and calls distributed::abort_job (what `focus train`
//           does), ending the job at once.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/creation.h"
#include "core/error.h"
#include "distributed/distributed.h"

namespace dist = focus::distributed;

static void fail_on_rank_1() { FOCUS_FAIL("[test] rank 1 gave up on purpose"); }

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  dist::init_process_group(dist::Backend::kMPI, std::chrono::seconds(3));
  focus::Tensor t = focus::ones({4});
  dist::all_reduce(t);  // everyone is here
  if (dist::get_rank() == 1) {
    if (mode == "throw") fail_on_rank_1();
    if (mode == "exit") std::_Exit(3);
    try {
      fail_on_rank_1();
    } catch (const focus::Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      if (mode == "abort") dist::abort_job(std::string("error: ") + e.what(), 2);
      return 1;
    }
  }
  dist::all_reduce(t);  // rank 1 never comes
  std::printf("rank %d: the second all_reduce completed, which it must not\n", dist::get_rank());
  return 0;
}
