#pragma once
/// The CPU backend: OpenBLAS for matrix products, OpenMP-parallel loops elsewhere.
/// Its kernels are spread over backends/cpu/*.cpp by area.
#include "backends/backend.h"

namespace focus::cpu {

class CpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CPU; }

  // memory, copy, fill, random: cpu_backend.cpp
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t nbytes) override;
  void copy_from_host(void* dst, const void* host_src, size_t nbytes) override;
  void copy(const TensorView& dst, const TensorView& src) override;
  void fill(const TensorView& dst, Scalar value) override;
  void uniform(const TensorView& out, double lo, double hi, RandomState rng) override;
  void normal(const TensorView& out, double mean, double std, RandomState rng) override;
  void randint(const TensorView& out, int64_t lo, int64_t hi, RandomState rng) override;

  // elementwise: elementwise.cpp
  void unary(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p) override;
  void unary_backward(UnaryBackwardOp op, const TensorView& out, const TensorView& grad,
                      const TensorView& in, const TensorView& result, UnaryParams p) override;
  void binary(BinaryOp op, const TensorView& out, const TensorView& a, const TensorView& b) override;
  void where(const TensorView& out, const TensorView& cond, const TensorView& a,
             const TensorView& b) override;

  // ---- reductions: reduce.cpp ------------------------------------------------------------

  // ---- linear algebra: linalg.cpp -----------------------------------------------------------

  // ---- shape and indexing: indexing.cpp -----------------------------------------------------
  IndexScan scan_indices(const TensorView& index, int64_t lo, int64_t hi) override;
  void index_select(const TensorView& out, const TensorView& x, int dim, const TensorView& index) override;
  void index_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src,
                 int64_t skip) override;
  void gather(const TensorView& out, const TensorView& x, int dim, const TensorView& index) override;
  void scatter_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src) override;
  void trilu(const TensorView& out, const TensorView& x, int64_t k, bool lower) override;
  void one_hot(const TensorView& out, const TensorView& index) override;

  // ---- fused nn primitives: nn.cpp ----------------------------------------------------------
};

}  // namespace focus::cpu
