#pragma once
/// The CUDA runtime as a user program sees it (torch.cuda's names). Every function exists
/// in every build: without CUDA (a build with FOCUS_CUDA=OFF, or no GPU on the machine)
/// is_available() is false, device_count() is 0 and the others throw focus::Error saying so.
#include <cstddef>
#include <cstdint>
#include <string>

namespace focus::cuda {

/// True when this build has the CUDA backend and at least one GPU is visible.
bool is_available();
/// Number of visible GPUs (0 without CUDA).
int device_count();
/// The device the calls below use when given device -1.
int current_device();
/// Makes device the current one (as torch.cuda.set_device).
void set_device(int device);
/// The GPU's name, e.g. "NVIDIA H200". device -1: the current device.
std::string get_device_name(int device = -1);
/// Waits for every kernel queued on the device and reports an error recorded on it as
/// focus::Error. device -1: the current device.
void synchronize(int device = -1);

/// Caching allocator figures, in bytes (torch.cuda.memory_allocated and friends): bytes
/// held by tensors now; the peak of that since the start or the last reset; bytes held
/// from the driver (tensors plus the cache).
size_t memory_allocated(int device = -1);
size_t max_memory_allocated(int device = -1);
size_t memory_reserved(int device = -1);
void reset_peak_memory_stats(int device = -1);
/// Gives the cached, unused blocks back to the driver.
void empty_cache();

/// Makes `device` current for its lifetime and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

}  // namespace focus::cuda
