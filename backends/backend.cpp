#include "backends/backend.h"

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"

namespace focus {

Backend* cuda_backend();  // backends/cuda_stub.cpp, or the CUDA backend when built

void Backend::unsupported(const char* op) const {
  FOCUS_FAIL("[{}] is not implemented for device {}", op,
             type() == DeviceType::CPU ? "cpu" : "cuda");
}

void Backend::copy(const TensorView&, const TensorView&) { unsupported("copy_"); }
void Backend::fill(const TensorView&, Scalar) { unsupported("fill_"); }
void Backend::uniform(const TensorView&, double, double, RandomState) { unsupported("uniform_"); }
void Backend::normal(const TensorView&, double, double, RandomState) { unsupported("normal_"); }
void Backend::randint(const TensorView&, int64_t, int64_t, RandomState) { unsupported("randint"); }
void Backend::unary(UnaryOp, const TensorView&, const TensorView&, UnaryParams) { unsupported("unary"); }
void Backend::unary_backward(UnaryBackwardOp, const TensorView&, const TensorView&, const TensorView&,
                             const TensorView&, UnaryParams) {
  unsupported("unary_backward");
}
void Backend::binary(BinaryOp, const TensorView&, const TensorView&, const TensorView&) { unsupported("binary"); }
void Backend::where(const TensorView&, const TensorView&, const TensorView&, const TensorView&) {
  unsupported("where");
}

Backend& backend_for(DeviceType type) {
  if (type == DeviceType::CPU) {
    static cpu::CpuBackend cpu;
    return cpu;
  }
  return *cuda_backend();
}

}  // namespace focus
