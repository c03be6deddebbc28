// The `focus` command line: see tools/focus/cli.h.
#include <cstdlib>

#include <unistd.h>

#include "tools/focus/cli.h"

int main(int argc, char** argv) {
  // The kernels' OpenMP threads spin while they wait for work by default. A training run has
  // a data-loader thread beside them, and on a 2-core machine (or one busy with anything
  // else) the spinning threads took the cores from the threads with work: g2p's default
  // run went from ~8k to ~1k tokens/s. Sleeping waiters cost a few percent at most.
  // libgomp reads OMP_WAIT_POLICY once, when it is loaded, so set it and start again.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default
  }
  return focus::cli::main(argc, argv);
}
