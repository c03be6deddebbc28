#pragma once
/// Helpers every raw op uses: building kernel views, allocating outputs, device checks.
/// Raw ops (namespace focus::raw) validate, allocate and dispatch to the device's
/// kernels without recording autograd history.
#include "backends/backend.h"
#include "core/tensor.h"

namespace focus::raw {

/// The kernel's view of t (its own sizes and strides); errors beyond kMaxDims dims.
TensorView make_view(const Tensor& t);
/// t's view broadcast to shape (stride 0 on expanded dims); shape must be a valid
/// broadcast target of t.shape().
TensorView make_view(const Tensor& t, const Shape& shape);
/// A new uninitialized contiguous tensor.
Tensor empty(const Shape& shape, DType dtype, Device device);
/// A tensor sharing t's storage with the given geometry (no checks beyond kMaxDims).
Tensor as_strided(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);
/// t itself when already contiguous with this dtype and device, else a converted copy.
Tensor to_contiguous(const Tensor& t, DType dtype, Device device, bool non_blocking = false);
/// A contiguous copy (always new storage).
Tensor clone(const Tensor& t);
/// dst = src (broadcast src to dst's shape, convert dtype, cross devices).
/// non_blocking: a copy of contiguous pinned CPU memory to a GPU is queued without waiting.
void copy_(const Tensor& dst, const Tensor& src, bool non_blocking = false);
/// A contiguous copy of a CPU tensor in page-locked memory (t itself if already pinned).
Tensor pin_memory(const Tensor& t);
/// A new uninitialized contiguous CPU tensor in page-locked memory.
Tensor empty_pinned(const Shape& shape, DType dtype);
/// The backend of t's device.
inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

/// Errors unless t is defined; arg names the argument ("input", "weight", ...).
void check_defined(const Tensor& t, const char* op, const char* arg);
/// Errors unless a and b are on one device.
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
/// Errors unless this build and machine can use device d; the message names op and says
/// why (e.g. built without CUDA, and how to build with it; no such GPU).
void check_device(Device d, const char* op);
/// Errors unless t has a floating dtype.
void check_floating(const Tensor& t, const char* op, const char* arg);

}  // namespace focus::raw
