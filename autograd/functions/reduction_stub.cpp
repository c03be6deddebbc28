// TEMPORARY: replaced by reduction.cpp.
#include "autograd/functions/reduction.h"
namespace focus {
Tensor sum(const Tensor&) { FOCUS_FAIL("[sum] not implemented yet"); }
Tensor sum(const Tensor&, const DimList&, bool) { FOCUS_FAIL("[sum] not implemented yet"); }
Tensor mean(const Tensor&) { FOCUS_FAIL("[mean] not implemented yet"); }
Tensor mean(const Tensor&, const DimList&, bool) { FOCUS_FAIL("[mean] not implemented yet"); }
Tensor argmax(const Tensor&, std::optional<int64_t>, bool) { FOCUS_FAIL("[argmax] not implemented yet"); }
}
