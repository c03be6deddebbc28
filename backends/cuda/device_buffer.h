#pragma once
/// A temporary device buffer from the device's caching allocator, given back when it goes out
/// of scope. Freeing it right after the launches that use it is safe: the device's one stream
/// orders the next user of the block after them. Host code only (.cu and .cpp files alike).
#include <cstddef>

#include "backends/cuda/context.h"

namespace focus::cuda_detail {

class DeviceBuffer {
 public:
  DeviceBuffer(DeviceContext& ctx, size_t nbytes) : alloc_(ctx.allocator()), ptr_(alloc_.allocate(nbytes)) {}
  DeviceBuffer(int device, size_t nbytes) : DeviceBuffer(context(device), nbytes) {}
  ~DeviceBuffer() {
    try {  // may run during unwinding: never throw
      alloc_.deallocate(ptr_);
    } catch (...) {
    }
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  template <typename T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  CachingAllocator& alloc_;
  void* ptr_;  // null for 0 bytes
};

}  // namespace focus::cuda_detail
