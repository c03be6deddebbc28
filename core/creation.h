#pragma once
/// Creation functions, as torch.zeros / torch.arange / torch.randn / torch.tensor.
#include <initializer_list>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace focus {

/// Uninitialized values. Default dtype float32.
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
/// Every element = value. Default dtype: the value's (bool, int64 or float32).
Tensor full(const Shape& shape, Scalar value, TensorOptions options = {});
/// A 0-d tensor holding value.
Tensor scalar_tensor(Scalar value, TensorOptions options = {});
/// [start, end) in steps. Default dtype int64 when all arguments are integers, else float32.
Tensor arange(Scalar end, TensorOptions options = {});
Tensor arange(Scalar start, Scalar end, Scalar step = 1, TensorOptions options = {});
/// steps values evenly spaced from start to end inclusive.
Tensor linspace(double start, double end, int64_t steps, TensorOptions options = {});
/// n x m identity (m = n when m < 0).
Tensor eye(int64_t n, int64_t m = -1, TensorOptions options = {});
/// Uniform in [0, 1).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
/// Standard normal.
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
/// Integers uniform in [low, high). Default dtype int64.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = {}, Generator* gen = nullptr);
/// A random permutation of 0..n-1 (int64).
Tensor randperm(int64_t n, TensorOptions options = {}, Generator* gen = nullptr);

/// *_like: same shape, and dtype/device of t unless options say otherwise.
Tensor empty_like(const Tensor& t, TensorOptions options = {});
Tensor zeros_like(const Tensor& t, TensorOptions options = {});
Tensor ones_like(const Tensor& t, TensorOptions options = {});
Tensor full_like(const Tensor& t, Scalar value, TensorOptions options = {});
Tensor rand_like(const Tensor& t, TensorOptions options = {});
Tensor randn_like(const Tensor& t, TensorOptions options = {});

/// In-place random fills (no autograd; used by init).
const Tensor& uniform_(const Tensor& t, double low = 0, double high = 1, Generator* gen = nullptr);
const Tensor& normal_(const Tensor& t, double mean = 0, double std = 1, Generator* gen = nullptr);

/// A tensor holding a copy of data with the given shape (default: 1-D). The dtype is T's
/// unless options say otherwise: tensor(std::vector<float>{1, 2, 3, 4}, {2, 2}).
template <typename T>
Tensor tensor(const std::vector<T>& data, const Shape& shape, TensorOptions options = {});
template <typename T>
Tensor tensor(const std::vector<T>& data, TensorOptions options = {}) {
  return tensor<T>(data, Shape{static_cast<int64_t>(data.size())}, options);
}
template <typename T>
Tensor tensor(std::initializer_list<T> data, TensorOptions options = {}) {
  return tensor<T>(std::vector<T>(data), options);
}
template <typename T>
Tensor tensor(std::initializer_list<T> data, const Shape& shape, TensorOptions options = {}) {
  return tensor<T>(std::vector<T>(data), shape, options);
}

}  // namespace focus
