#pragma once
/// The CUDA backend: one object per GPU (backend_for(Device::cuda(i))), its kernels on the
/// device's one stream (backends/cuda/context.h), matrix products on cuBLAS/cuBLASLt. Its
/// kernels are spread over backends/cuda/*.cu by area, as the CPU's over backends/cpu/.
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

#include <cuda_runtime.h>

#include "backends/backend.h"

namespace focus::cuda_detail {

class DeviceContext;

/// Why random ops refuse to run during CUDA graph capture (random.cu).
extern const char* const kRandomInCaptureWhy;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index) {}
  Device device() const override { return Device(DeviceType::CUDA, index_); }
  int index() const { return index_; }
  void synchronize() override;

  // ---- CUDA graphs: graph.cpp -------------------------------------------------------------
  void* graph_capture_begin() override;
  void graph_capture_end(void* graph) override;
  void graph_capture_abort(void* graph) noexcept override;
  void graph_replay(void* graph) override;
  void graph_destroy(void* graph) noexcept override;
  bool is_capturing() const override;
  void fail_if_capturing(const char* op, const char* why) override;

  // ---- memory: cuda_backend.cpp ----------------------------------------------------------
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t nbytes) override;
  void copy_from_host(void* dst, const void* host_src, size_t nbytes) override;
  void* allocate_pinned(size_t nbytes) override;
  void deallocate_pinned(void* ptr, size_t nbytes) override;
  void copy_from_host_async(void* dst, const void* pinned_src, size_t nbytes,
                            std::shared_ptr<const void> keep_alive) override;
  void copy_to_host_async(void* pinned_dst, const void* src, size_t nbytes,
                          std::shared_ptr<const void> keep_alive) override;

  // ---- copy, fill, random, elementwise: elementwise.cu, random.cu ------------------------
  void copy(const TensorView& dst, const TensorView& src) override;
  void fill(const TensorView& dst, Scalar value) override;
  void uniform(const TensorView& out, double lo, double hi, RandomState rng) override;
  void normal(const TensorView& out, double mean, double std, RandomState rng) override;
  void randint(const TensorView& out, int64_t lo, int64_t hi, RandomState rng) override;
  void unary(UnaryOp op, const TensorView& out, const TensorView& in, UnaryParams p) override;
  void unary_backward(UnaryBackwardOp op, const TensorView& out, const TensorView& grad, const TensorView& in,
                      const TensorView& result, UnaryParams p) override;
  void binary(BinaryOp op, const TensorView& out, const TensorView& a, const TensorView& b) override;
  void where(const TensorView& out, const TensorView& cond, const TensorView& a, const TensorView& b) override;

  // ---- reductions: reduce.cu -------------------------------------------------------------
  void reduce(ReduceOp op, const TensorView& out, const TensorView& in, int nreduce, double p) override;
  void arg_reduce(bool is_max, const TensorView& values, const TensorView& indices, const TensorView& in) override;

  // ---- matrix products: matmul.cpp (cuBLAS / cuBLASLt) -------------------------------------
  void matmul(const TensorView& out, const TensorView& a, const TensorView& b, double alpha, double beta) override;
  /// With a bias, x foldable to one [M, K] matrix and weight row- or column-major: one
  /// cuBLASLt GEMM with CUBLASLT_EPILOGUE_BIAS (float32/float16/bfloat16); else Backend's.
  void linear(const TensorView& out, const TensorView& x, const TensorView& weight, const TensorView& bias) override;
  /// approximate "tanh": one cuBLASLt GEMM with CUBLASLT_EPILOGUE_GELU_AUX(_BIAS) writing out
  /// and pre (the layouts of linear(), plus N % 8 == 0 for the aux matrix's leading dim);
  /// "none" (cuBLASLt has no erf GELU epilogue) and every other case: Backend's (linear's
  /// bias epilogue into pre, then the elementwise exact GELU kernel).
  void linear_gelu(const TensorView& out, const TensorView& pre, const TensorView& x, const TensorView& weight,
                   const TensorView& bias, bool tanh_approx) override;
  /// grad_x by matmul; grad_weight with grad_bias as one cuBLASLt GEMM with
  /// CUBLASLT_EPILOGUE_BGRADB where the layouts allow (else matmul and a sum reduction);
  /// float64, or only one of grad_weight / grad_bias wanted: Backend's.
  void linear_backward(const TensorView& grad_x, const TensorView& grad_weight, const TensorView& grad_bias,
                       const TensorView& grad, const TensorView& x, const TensorView& weight) override;

  // ---- shape and indexing: indexing.cu ------------------------------------------------------
  IndexScan scan_indices(const TensorView& index, int64_t lo, int64_t hi) override;
  void check_indices(const TensorView& index, int64_t lo, int64_t hi, int64_t skip, const char* op,
                     const char* what) override;
  void check_range(const TensorView& x, double lo, double hi, const char* op, const char* what) override;
  void index_select(const TensorView& out, const TensorView& x, int dim, const TensorView& index) override;
  void index_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src,
                 int64_t skip) override;
  void gather(const TensorView& out, const TensorView& x, int dim, const TensorView& index) override;
  void scatter_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src) override;
  void trilu(const TensorView& out, const TensorView& x, int64_t k, bool lower) override;
  void one_hot(const TensorView& out, const TensorView& index) override;

  // ---- softmax, log_softmax, layer_norm: softmax.cu, layer_norm.cu ----------------------------
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

  // ---- losses and dropout: loss.cu, dropout.cu -------------------------------------------------
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

  // ---- attention: attention.cu (batched GEMMs + the fused softmax) ------------------------------
  void attention_forward(const TensorView& out, const TensorView& lse, const TensorView& weights, const TensorView& q,
                         const TensorView& k, const TensorView& v, const TensorView& mask, bool is_causal,
                         double scale, double dropout_p, RandomState rng) override;
  void attention_backward(const TensorView& grad_q, const TensorView& grad_k, const TensorView& grad_v,
                          const TensorView& grad_mask, const TensorView& grad_out, const TensorView& grad_weights,
                          const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& mask,
                          bool is_causal, const TensorView& out, const TensorView& lse, double scale,
                          double dropout_p, RandomState rng) override;

  // ---- flash attention: flash_attention.cu (FlashAttention-2 on mma.sync tensor cores) ----------
  /// float16 / bfloat16, or float32 when TF32 is allowed (set_float32_matmul_precision "high"
  /// or "medium"); head dims 32, 64, 128 with E == Ev.
  bool flash_attention_supports(DType dtype, int64_t E, int64_t Ev) const override;
  void flash_attention_forward(const TensorView& out, const TensorView& lse, const TensorView& q, const TensorView& k,
                               const TensorView& v, const TensorView& mask, bool is_causal, double scale,
                               double dropout_p, RandomState rng) override;
  void flash_attention_backward(const TensorView& grad_q, const TensorView& grad_k, const TensorView& grad_v,
                                const TensorView& grad_mask, const TensorView& grad_out, const TensorView& q,
                                const TensorView& k, const TensorView& v, const TensorView& mask, bool is_causal,
                                const TensorView& out, const TensorView& lse, double scale, double dropout_p,
                                RandomState rng) override;

  // ---- optimizers: optim.cu --------------------------------------------------------------------
  void adam_step(const TensorView& param, const TensorView& grad, const TensorView& exp_avg,
                 const TensorView& exp_avg_sq, const TensorView& max_exp_avg_sq, const AdamStepParams& p) override;
  void sgd_step(const TensorView& param, const TensorView& grad, const TensorView& momentum_buffer,
                const SgdStepParams& p) override;
  /// Refs grouped by dtype; each group's tensors cut into chunks of 64K elements, one block
  /// per chunk, the chunk table in the kernel's arguments (under 4 KiB: several launches
  /// for many tensors). Same per-element update, hence bits, as adam_step / sgd_step.
  void adam_step_multi(const AdamTensorRef* refs, size_t count, const AdamStepParams& p) override;
  void sgd_step_multi(const SgdTensorRef* refs, size_t count, const SgdStepParams& p) override;

 private:
  /// Drops the keep-alive references of asynchronous copies that have finished (all of
  /// them after a synchronisation).
  void release_finished_copies(bool all);
  /// Records an event after the copy just queued and holds keep_alive until it has passed.
  void track_copy(DeviceContext& ctx, std::shared_ptr<const void> keep_alive);
  int index_;
  std::mutex copies_mu_;
  std::deque<std::pair<cudaEvent_t, std::shared_ptr<const void>>> copies_in_flight_;
};

}  // namespace focus::cuda_detail
