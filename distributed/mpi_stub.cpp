// focus::distributed without MPI (FOCUS_MPI off, or MPI not found): world size 1 only.
#include "distributed/transport.h"

namespace focus::distributed {

bool is_mpi_available() { return false; }

namespace detail {

std::unique_ptr<Transport> make_mpi_transport() {
  FOCUS_FAIL("[init_process_group] this focus was built without MPI; install libopenmpi-dev and rebuild focus");
}

void finalize_mpi() {}

}  // namespace detail

}  // namespace focus::distributed
