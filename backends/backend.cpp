#include "backends/backend.h"

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"

namespace focus {

// The one registration point of the devices: the CUDA backend of device `index`, defined by
// backends/cuda/ when focus is built with CUDA and by backends/cuda_stub.cpp otherwise
// (which throws). Throws focus::Error for an index without a device.
Backend& cuda_backend(int index);

void Backend::unsupported(const char* op) const {
  FOCUS_FAIL("[{}] is not implemented for device {}", op, device());
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
void Backend::check_indices(const TensorView&, int64_t, int64_t, int64_t, const char* op, const char*) {
  unsupported(op);
}
void Backend::check_range(const TensorView&, double, double, const char* op, const char*) { unsupported(op); }

Backend& backend_for(Device d) {
  if (d.type == DeviceType::CPU) {
    static cpu::CpuBackend cpu;
    return cpu;
  }
  return cuda_backend(d.index);
}

}  // namespace focus
