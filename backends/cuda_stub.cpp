// Built when focus is built without CUDA: every use of a CUDA device fails clearly.
#include "backends/backend.h"
#include "core/error.h"

namespace focus {

Backend* cuda_backend() {
  FOCUS_FAIL("[to] focus was built without CUDA");
}

}  // namespace focus
