#include "nn/activation.h"

#include "autograd/functions/elementwise.h"
#include "autograd/functions/softmax.h"

namespace focus::nn {

namespace {
void check_input(const Tensor& x, const char* op) { FOCUS_CHECK(x.defined(), "[{}] the input is undefined", op); }
}  // namespace

Tensor ReLU::forward(const Tensor& x) const {
  check_input(x, "ReLU");
  return relu(x);
}

GELU::GELU(std::string approximate) : Module("GELU"), approximate_(std::move(approximate)) {
  FOCUS_CHECK(approximate_ == "none" || approximate_ == "tanh",
              "[GELU] approximate must be 'none' or 'tanh', got '{}'", approximate_);
}

Tensor GELU::forward(const Tensor& x) const {
  check_input(x, "GELU");
  return gelu(x, approximate_);
}

std::string GELU::extra_repr() const { return fmt::format("approximate='{}'", approximate_); }

Tensor SiLU::forward(const Tensor& x) const {
  check_input(x, "SiLU");
  return silu(x);
}

Tensor Tanh::forward(const Tensor& x) const {
  check_input(x, "Tanh");
  return tanh(x);
}

Tensor Sigmoid::forward(const Tensor& x) const {
  check_input(x, "Sigmoid");
  return sigmoid(x);
}

Tensor Softmax::forward(const Tensor& x) const {
  check_input(x, "Softmax");
  return softmax(x, dim_);
}

std::string Softmax::extra_repr() const { return fmt::format("dim={}", dim_); }

Tensor LogSoftmax::forward(const Tensor& x) const {
  check_input(x, "LogSoftmax");
  return log_softmax(x, dim_);
}

std::string LogSoftmax::extra_repr() const { return fmt::format("dim={}", dim_); }

}  // namespace focus::nn
