// Built when focus is built without CUDA (FOCUS_CUDA=OFF, or AUTO without the toolkit):
// every use of a CUDA device fails with a focus::Error that says how to get one.
#include "backends/backend.h"
#include "core/cuda.h"
#include "core/error.h"

namespace focus {
namespace {
[[noreturn]] void no_cuda(const char* op) {
  FOCUS_FAIL("[{}] focus was built without CUDA, so no cuda device is available; rebuild with "
             "-DFOCUS_CUDA=ON (needs the CUDA toolkit) to use GPUs",
             op);
}
}  // namespace

Backend& cuda_backend(int) { no_cuda("cuda"); }

namespace cuda {
bool is_available() { return false; }
int device_count() { return 0; }
int current_device() { no_cuda("cuda.current_device"); }
void set_device(int) { no_cuda("cuda.set_device"); }
std::string get_device_name(int) { no_cuda("cuda.get_device_name"); }
void synchronize(int) { no_cuda("cuda.synchronize"); }
size_t memory_allocated(int) { no_cuda("cuda.memory_allocated"); }
size_t max_memory_allocated(int) { no_cuda("cuda.max_memory_allocated"); }
size_t memory_reserved(int) { no_cuda("cuda.memory_reserved"); }
void reset_peak_memory_stats(int) { no_cuda("cuda.reset_peak_memory_stats"); }
void empty_cache() {}  // nothing is cached without CUDA (a no-op, as in PyTorch)
bool is_current_stream_capturing(int) { return false; }
DeviceGuard::DeviceGuard(int) : previous_(0) { no_cuda("cuda.DeviceGuard"); }
DeviceGuard::~DeviceGuard() = default;
}  // namespace cuda

}  // namespace focus
