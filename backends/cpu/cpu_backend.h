#pragma once
/// The CPU backend: OpenBLAS for matrix products, OpenMP-parallel loops elsewhere.
/// Its kernels are spread over backends/cpu/*.cpp by area.
#include "backends/backend.h"

namespace focus::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return kCPU; }

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
  void reduce(ReduceOp op, const TensorView& out, const TensorView& in, int nreduce, double p) override;
  void arg_reduce(bool is_max, const TensorView& values, const TensorView& indices, const TensorView& in) override;

  // ---- linear algebra: linalg.cpp -----------------------------------------------------------
  void matmul(const TensorView& out, const TensorView& a, const TensorView& b, double alpha,
              double beta) override;

  // ---- int8 dynamic quantization: int8.cpp ------------------------------------------------
  void quantize_int8_weight(const TensorView& q, const TensorView& scale, const TensorView& weight) override;
  void pack_int8_weight(const TensorView& packed, const TensorView& colsum, const TensorView& q) override;
  void linear_int8(const TensorView& out, const TensorView& x, const TensorView& packed, const TensorView& colsum,
                   const TensorView& scale, const TensorView& bias, int64_t n_begin) override;

  // ---- shape and indexing: indexing.cpp -----------------------------------------------------
  IndexScan scan_indices(const TensorView& index, int64_t lo, int64_t hi) override;
  void check_indices(const TensorView& index, int64_t lo, int64_t hi, int64_t skip, const char* op,
                     const char* what) override;
  void index_select(const TensorView& out, const TensorView& x, int dim, const TensorView& index) override;
  void index_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src,
                 int64_t skip) override;
  void gather(const TensorView& out, const TensorView& x, int dim, const TensorView& index) override;
  void scatter_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src) override;
  void trilu(const TensorView& out, const TensorView& x, int64_t k, bool lower) override;
  void one_hot(const TensorView& out, const TensorView& index) override;

  // ---- fused nn primitives ------------------------------------------------------------------
  // softmax, log_softmax: softmax.cpp; layer_norm, add_layer_norm: layer_norm.cpp
  void softmax(const TensorView& out, const TensorView& in, int dim, bool log) override;
  void softmax_backward(const TensorView& grad_in, const TensorView& grad_out, const TensorView& out, int dim,
                        bool log) override;
  void layer_norm(const TensorView& out, const TensorView& mean, const TensorView& rstd, const TensorView& in,
                  const TensorView& weight, const TensorView& bias, double eps) override;
  void layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                           const TensorView& dout, const TensorView& in, const TensorView& mean,
                           const TensorView& rstd, const TensorView& weight) override;
  void add_layer_norm(const TensorView& sum, const TensorView& out, const TensorView& mean, const TensorView& rstd,
                      const TensorView& x, const TensorView& residual, const TensorView& weight,
                      const TensorView& bias, double eps) override;
  void add_layer_norm_backward(const TensorView& dx, const TensorView& dweight, const TensorView& dbias,
                               const TensorView& dout, const TensorView& dsum, const TensorView& in,
                               const TensorView& mean, const TensorView& rstd, const TensorView& weight) override;

  // losses: loss.cpp; dropout: dropout.cpp; attention: attention.cpp
  void check_range(const TensorView& x, double lo, double hi, const char* op, const char* what) override;
  void cross_entropy_forward(const TensorView& out, const TensorView& lse, const TensorView& logits,
                             const TensorView& target, const TensorView& weight, int64_t ignore_index,
                             double label_smoothing, LossReduction reduction) override;
  void cross_entropy_backward(const TensorView& grad_logits, const TensorView& grad, const TensorView& logits,
                              const TensorView& lse, const TensorView& target, const TensorView& weight,
                              int64_t ignore_index, double label_smoothing, LossReduction reduction) override;
  void nll_loss_forward(const TensorView& out, const TensorView& log_probs, const TensorView& target,
                        const TensorView& weight, int64_t ignore_index, LossReduction reduction) override;
  void nll_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& target,
                         const TensorView& weight, int64_t ignore_index, LossReduction reduction) override;
  void mse_loss_forward(const TensorView& out, const TensorView& input, const TensorView& target,
                        LossReduction reduction) override;
  void mse_loss_backward(const TensorView& grad_input, const TensorView& grad, const TensorView& input,
                         const TensorView& target, LossReduction reduction) override;
  void dropout_forward(const TensorView& out, const TensorView& mask, const TensorView& in, double p,
                       RandomState rng) override;
  void dropout_backward(const TensorView& grad_in, const TensorView& grad, const TensorView& mask,
                        double p) override;
  void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& weights,
                         const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& mask,
                         bool is_causal, double scale, double dropout_p, RandomState rng) override;
  void attention_backward(const TensorView& grad_q, const TensorView& grad_k, const TensorView& grad_v,
                          const TensorView& grad_mask, const TensorView& grad_out, const TensorView& grad_weights,
                          const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& mask,
                          bool is_causal, const TensorView& out, const TensorView& lse, double scale,
                          double dropout_p, RandomState rng) override;
  // FlashAttention-2's tiling on the host (flash_attention.cpp): float32 and float64, any head dims.
  bool flash_attention_supports(DType dtype, int64_t E, int64_t Ev) const override;
  void flash_attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q,
                               const TensorView& k, const TensorView& v, const TensorView& mask, bool is_causal,
                               double scale, double dropout_p, RandomState rng) override;
  void flash_attention_backward(const TensorView& grad_q, const TensorView& grad_k, const TensorView& grad_v,
                                const TensorView& grad_mask, const TensorView& grad_out, const TensorView& q,
                                const TensorView& k, const TensorView& v, const TensorView& mask, bool is_causal,
                                const TensorView& out, const TensorView& lse, double scale, double dropout_p,
                                RandomState rng) override;

  // ---- optimizers: optim.cpp ------------------------------------------------------------------
  void adam_step(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                 const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq, const AdamStepParams& p) override;
  void sgd_step(const TensorView& param, const TensorView& grad, const TensorView& momentum_buffer,
                const SgdStepParams& p) override;
  /// Every parameter's elements as one range over the threads (optim.cpp).
  void adam_step_multi(const AdamTensorRef* refs, size_t count, const AdamStepParams& p) override;
  void sgd_step_multi(const SgdTensorRef* refs, size_t count, const SgdStepParams& p) override;
};

}  // namespace focus::cpu
