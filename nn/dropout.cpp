#include "nn/dropout.h"

#include "autograd/functions/dropout.h"

namespace focus::nn {

Dropout::Dropout(const DropoutOptions& options) : Module("Dropout"), options_(options) {
  FOCUS_CHECK(options.p_ >= 0 && options.p_ <= 1, "[Dropout] dropout probability has to be between 0 and 1, but got {}",
              options.p_);
}

Tensor Dropout::forward(const Tensor& x) const {
  FOCUS_CHECK(x.defined(), "[Dropout] the input is undefined");
  if (!is_training() || options_.p_ == 0) return x;
  return dropout(x, options_.p_, true);
}

std::string Dropout::extra_repr() const {
  return fmt::format("p={}, inplace={}", py_float(options_.p_), py_bool(options_.inplace_));
}

}  // namespace focus::nn
