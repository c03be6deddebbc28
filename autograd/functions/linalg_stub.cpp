// TEMPORARY: replaced by linalg.cpp.
#include "autograd/functions/linalg.h"
namespace focus {
Tensor matmul(const Tensor&, const Tensor&) { FOCUS_FAIL("[matmul] not implemented yet"); }
}
