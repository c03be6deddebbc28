#include "core/error.h"

namespace focus::detail {
void throw_error(std::string msg) { throw Error(msg); }
}  // namespace focus::detail
