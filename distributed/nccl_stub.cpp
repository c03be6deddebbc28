// focus::distributed without NCCL (a CPU build, or a CUDA build that did not find NCCL).
#include "distributed/transport.h"

namespace focus::distributed {

bool is_nccl_available() { return false; }

namespace detail {

std::unique_ptr<NcclComm> make_nccl_comm(Transport&) {
  FOCUS_FAIL("[init_process_group] Backend::kNCCL needs a CUDA build of focus that found NCCL");
}

}  // namespace detail

}  // namespace focus::distributed
