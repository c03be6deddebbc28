#include "core/creation.h"

#include <cmath>

#include "core/ops/common.h"

namespace focus {

namespace {
Tensor finish(Tensor t, const TensorOptions& o) {
  if (o.requires_grad_) t.requires_grad_(true);
  return t;
}
Tensor alloc(const Shape& shape, DType dtype, Device device, const char* op) {
  raw::check_device(device, op);
  return raw::empty(shape, dtype, device);
}
}  // namespace

Tensor empty(const Shape& shape, TensorOptions o) {
  return finish(alloc(shape, o.dtype_or(kFloat32), o.device_, "empty"), o);
}

Tensor full(const Shape& shape, Scalar value, TensorOptions o) {
  Tensor t = alloc(shape, o.dtype_or(value.natural_dtype()), o.device_, "full");
  if (t.numel() > 0) raw::backend_of(t).fill(raw::make_view(t), value);
  return finish(t, o);
}

Tensor zeros(const Shape& shape, TensorOptions o) { return full(shape, 0.0, o.dtype(o.dtype_or(kFloat32))); }
Tensor ones(const Shape& shape, TensorOptions o) { return full(shape, 1.0, o.dtype(o.dtype_or(kFloat32))); }
Tensor scalar_tensor(Scalar value, TensorOptions o) { return full({}, value, o); }

Tensor arange(Scalar end, TensorOptions o) { return arange(0, end, 1, o); }

Tensor arange(Scalar start, Scalar end, Scalar step, TensorOptions o) {
  const bool all_int = start.is_integral() && end.is_integral() && step.is_integral();
  const DType dt = o.dtype_or(all_int ? kInt64 : kFloat32);
  const double s = start.to_double(), e = end.to_double(), st = step.to_double();
  FOCUS_CHECK(st != 0, "[arange] step must be nonzero");
  FOCUS_CHECK(std::isfinite(s) && std::isfinite(e), "[arange] start and end must be finite, got {} and {}", s, e);
  FOCUS_CHECK((st > 0 && e >= s) || (st < 0 && e <= s),
              "[arange] upper bound and step sign are inconsistent: start {}, end {}, step {}", s, e, st);
  const double n = std::ceil((e - s) / st);
  FOCUS_CHECK(n < 9.0e15, "[arange] too many elements ({})", n);
  const int64_t count = static_cast<int64_t>(n);
  Tensor cpu = alloc({count}, dt, kCPU, "arange");
  switch (dt) {
#define FOCUS_CASE(D, T)                                                                       \
  case D: {                                                                                    \
    T* p = cpu.data_ptr<T>();                                                                  \
    if (all_int) {                                                                             \
      for (int64_t i = 0; i < count; ++i) p[i] = static_cast<T>(start.to_int() + i * step.to_int()); \
    } else {                                                                                   \
      for (int64_t i = 0; i < count; ++i) p[i] = static_cast<T>(s + static_cast<double>(i) * st);     \
    }                                                                                          \
    break;                                                                                     \
  }
    FOCUS_CASE(kFloat32, float)
    FOCUS_CASE(kFloat64, double)
    FOCUS_CASE(kInt64, int64_t)
    FOCUS_CASE(kInt32, int32_t)
    FOCUS_CASE(kUInt8, uint8_t)
#undef FOCUS_CASE
    default: FOCUS_FAIL("[arange] unsupported dtype {}", dt);
  }
  return finish(o.device_.is_cpu() ? cpu : raw::to_contiguous(cpu, dt, o.device_), o);
}

Tensor linspace(double start, double end, int64_t steps, TensorOptions o) {
  FOCUS_CHECK(steps >= 0, "[linspace] number of steps must be non-negative, got {}", steps);
  const DType dt = o.dtype_or(kFloat32);
  Tensor cpu = alloc({steps}, kFloat64, kCPU, "linspace");
  double* p = cpu.data_ptr<double>();
  const double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
  // Fill from both ends, as PyTorch does, so the last value is exactly `end`.
  const int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    p[i] = i < half ? start + step * static_cast<double>(i) : end - step * static_cast<double>(steps - 1 - i);
  return finish(raw::to_contiguous(cpu, dt, o.device_), o);
}

Tensor eye(int64_t n, int64_t m, TensorOptions o) {
  if (m < 0) m = n;
  FOCUS_CHECK(n >= 0, "[eye] n must be non-negative, got {}", n);
  Tensor cpu = zeros({n, m}, TensorOptions(o.dtype_or(kFloat32)));
  Tensor diag = raw::as_strided(cpu, {std::min(n, m)}, {m + 1}, 0);
  if (diag.numel()) raw::backend_of(diag).fill(raw::make_view(diag), 1);
  return finish(raw::to_contiguous(cpu, cpu.dtype(), o.device_), o);
}

const Tensor& uniform_(const Tensor& t, double low, double high, Generator* gen) {
  raw::check_floating(t, "uniform_", "self");
  FOCUS_CHECK(low <= high, "[uniform_] expected low <= high, got {} and {}", low, high);
  Generator& g = gen ? *gen : default_generator();
  Tensor target = t.is_contiguous() ? t : raw::empty(t.shape(), t.dtype(), t.device());
  raw::backend_of(t).uniform(raw::make_view(target), low, high, g.next(static_cast<uint64_t>(t.numel())));
  if (!target.is_same(t)) raw::copy_(t, target);
  t.bump_version();
  return t;
}

const Tensor& normal_(const Tensor& t, double mean, double std, Generator* gen) {
  raw::check_floating(t, "normal_", "self");
  FOCUS_CHECK(std >= 0, "[normal_] expected std >= 0, got {}", std);
  Generator& g = gen ? *gen : default_generator();
  Tensor target = t.is_contiguous() ? t : raw::empty(t.shape(), t.dtype(), t.device());
  raw::backend_of(t).normal(raw::make_view(target), mean, std, g.next(static_cast<uint64_t>(t.numel())));
  if (!target.is_same(t)) raw::copy_(t, target);
  t.bump_version();
  return t;
}

Tensor rand(const Shape& shape, TensorOptions o, Generator* gen) {
  Tensor t = alloc(shape, o.dtype_or(kFloat32), o.device_, "rand");
  uniform_(t, 0, 1, gen);
  return finish(t, o);
}

Tensor randn(const Shape& shape, TensorOptions o, Generator* gen) {
  Tensor t = alloc(shape, o.dtype_or(kFloat32), o.device_, "randn");
  normal_(t, 0, 1, gen);
  return finish(t, o);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions o, Generator* gen) {
  FOCUS_CHECK(low < high, "[randint] expected low < high, got low={} high={}", low, high);
  Tensor t = alloc(shape, o.dtype_or(kInt64), o.device_, "randint");
  Generator& g = gen ? *gen : default_generator();
  raw::backend_of(t).randint(raw::make_view(t), low, high, g.next(static_cast<uint64_t>(t.numel())));
  return finish(t, o);
}

Tensor randperm(int64_t n, TensorOptions o, Generator* gen) {
  FOCUS_CHECK(n >= 0, "[randperm] n must be non-negative, got {}", n);
  // Fisher-Yates driven by one randint draw per position, so the result is seeded.
  Tensor keys = rand({n}, kFloat64, gen);
  const double* k = keys.data_ptr<double>();
  Tensor out = alloc({n}, kInt64, kCPU, "randperm");
  int64_t* p = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = std::min<int64_t>(i, static_cast<int64_t>(k[i] * static_cast<double>(i + 1)));
    std::swap(p[i], p[j]);
  }
  return finish(raw::to_contiguous(out, o.dtype_or(kInt64), o.device_), o);
}

namespace {
TensorOptions like(const Tensor& t, TensorOptions o) {
  raw::check_defined(t, "like", "input");
  TensorOptions r = o;
  if (!o.dtype_) r.dtype_ = t.dtype();
  return r;
}
}  // namespace

Tensor empty_like(const Tensor& t, TensorOptions o) { return empty(t.shape(), like(t, o)); }
Tensor zeros_like(const Tensor& t, TensorOptions o) { return zeros(t.shape(), like(t, o)); }
Tensor ones_like(const Tensor& t, TensorOptions o) { return ones(t.shape(), like(t, o)); }
Tensor full_like(const Tensor& t, Scalar v, TensorOptions o) { return full(t.shape(), v, like(t, o)); }
Tensor rand_like(const Tensor& t, TensorOptions o) { return rand(t.shape(), like(t, o)); }
Tensor randn_like(const Tensor& t, TensorOptions o) { return randn(t.shape(), like(t, o)); }

template <typename T> Tensor tensor(const std::vector<T>& data, const Shape& shape, TensorOptions o) {
  const int64_t n = checked_numel(shape, "tensor");
  FOCUS_CHECK(n == static_cast<int64_t>(data.size()), "[tensor] {} values do not fill shape {} ({} elements)",
              data.size(), shape, n);
  Tensor cpu = alloc(shape, dtype_of_v<T>, kCPU, "tensor");
  T* p = static_cast<T*>(cpu.data_ptr());
  for (int64_t i = 0; i < n; ++i) p[i] = data[static_cast<size_t>(i)];
  return finish(raw::to_contiguous(cpu, o.dtype_or(dtype_of_v<T>), o.device_), o);
}

template Tensor tensor<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor tensor<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor tensor<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor tensor<int32_t>(const std::vector<int32_t>&, const Shape&, TensorOptions);
template Tensor tensor<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);
template Tensor tensor<bool>(const std::vector<bool>&, const Shape&, TensorOptions);

}  // namespace focus
