// CUDA matrix products on cuBLAS: every Backend::matmul goes through one strided-batched GEMM
// wrapper. The views are mapped onto column-major calls by backends/common/matmul_plan.h
// (out^T = b^T a^T, transposes as operation flags, broadcast batches as stride 0, batch dims
// folded into M or K where the strides allow, outer loops otherwise); an operand is copied
// only when it has neither a row- nor a column-major layout.
//
// dtypes: float32 (CUBLAS_COMPUTE_32F, or CUBLAS_COMPUTE_32F_FAST_TF32 when
// set_float32_matmul_precision("high") allows TF32), float64 (dgemm), float16 and bfloat16
// (float32 accumulation). Integer products are not supported on CUDA (as in PyTorch).
#include <cstdint>
#include <memory>

#include "backends/common/matmul_plan.h"
#include "backends/cuda/check.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "core/error.h"
#include "core/precision.h"

namespace focus::cuda_detail {

namespace {

// A temporary device buffer from the caching allocator, returned when it goes out of scope
// (safe right after the launches that use it: the device's one stream orders them).
class TempBuffer {
 public:
  TempBuffer(DeviceContext& ctx, size_t nbytes) : ctx_(ctx), ptr_(ctx.allocator().allocate(nbytes)) {}
  ~TempBuffer() {
    try {  // may run during unwinding: never throw
      if (ptr_) ctx_.allocator().deallocate(ptr_);
    } catch (...) {
    }
  }
  TempBuffer(const TempBuffer&) = delete;
  TempBuffer& operator=(const TempBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  DeviceContext& ctx_;
  void* ptr_;
};

cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

// One strided-batched GEMM of the plan (see MatmulPlan): pointers already offset.
void gemm_call(cublasHandle_t h, DType dt, const common::MatmulPlan& p, const void* a, const void* b, void* c,
               int count, double alpha, double beta) {
  const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
  const int lda = static_cast<int>(p.b_ld), ldb = static_cast<int>(p.a_ld), ldc = static_cast<int>(p.c_ld);
  const auto sa = static_cast<long long>(p.b_stride), sb = static_cast<long long>(p.a_stride),
             sc = static_cast<long long>(p.c_stride);
  if (dt == kFloat64) {
    FOCUS_CUBLAS_CHECK(cublasDgemmStridedBatched(h, op(p.b_trans), op(p.a_trans), m, n, k, &alpha,
                                                 static_cast<const double*>(b), lda, sa, static_cast<const double*>(a),
                                                 ldb, sb, &beta, static_cast<double*>(c), ldc, sc, count));
    return;
  }
  const float af = static_cast<float>(alpha), bf = static_cast<float>(beta);
  cudaDataType_t type = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  if (dt == kFloat16) {
    type = CUDA_R_16F;
  } else if (dt == kBFloat16) {
    type = CUDA_R_16BF;
  } else if (allow_tf32()) {
    compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  }
  FOCUS_CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, op(p.b_trans), op(p.a_trans), m, n, k, &af, b, type, lda, sa, a,
                                                type, ldb, sb, &bf, c, type, ldc, sc, count, compute,
                                                CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void CudaBackend::matmul(const TensorView& out, const TensorView& a, const TensorView& b, double alpha, double beta) {
  if (out.numel == 0) return;
  const DType dt = out.dtype;
  FOCUS_CHECK(dt == kFloat32 || dt == kFloat64 || dt == kFloat16 || dt == kBFloat16,
              "[matmul] {} matrix products are not supported on cuda (cuBLAS has no integer GEMM; PyTorch CUDA "
              "rejects them too): convert the operands to a floating dtype",
              dt);
  FOCUS_CHECK(a.dtype == dt && b.dtype == dt, "[matmul] internal: operands of dtypes {} and {} for a {} output",
              a.dtype, b.dtype, dt);
  const int nd = out.ndim;
  const int64_t K = a.sizes[nd - 1];
  if (K == 0 || alpha == 0) {
    // No products to add: out = beta * out on each distinct output element (0 when beta == 0,
    // whatever out held, NaN included), as the CPU does.
    const TensorView o = common::distinct_out(out);
    if (beta == 0)
      fill(o, Scalar(0.0));
    else if (beta != 1)
      unary(UnaryOp::MulScalar, o, o, UnaryParams{beta, 0});
    return;
  }
  DeviceContext& ctx = context(index_);
  common::MatmulPlan plan = common::plan_matmul(out, a, b);
  TensorView a2 = a, b2 = b;
  std::unique_ptr<TempBuffer> abuf, bbuf;
  auto pack = [&](const TensorView& v, std::unique_ptr<TempBuffer>& buf) {
    common::PackedOperand pk = common::pack_operand(v);
    buf = std::make_unique<TempBuffer>(ctx, static_cast<size_t>(pk.numel) * dtype_size(dt));
    pk.dst.data = buf->get();
    pk.packed.data = buf->get();
    copy(pk.dst, pk.src);
    return pk.packed;
  };
  if (plan.pack_a || plan.pack_b) {
    if (plan.pack_a) a2 = pack(a, abuf);
    if (plan.pack_b) b2 = pack(b, bbuf);
    plan = common::plan_matmul(out, a2, b2);
    FOCUS_CHECK(!plan.pack_a && !plan.pack_b, "[matmul] internal: packed operands still not usable by cuBLAS");
  }
  cublasHandle_t h = ctx.cublas();
  const size_t es = dtype_size(dt);
  const char* pa = static_cast<const char*>(a2.data);
  const char* pb = static_cast<const char*>(b2.data);
  char* pc = static_cast<char*>(out.data);
  common::for_each_gemm(plan, beta, [&](int64_t oa, int64_t ob, int64_t oc, int64_t count, double beta_i) {
    gemm_call(h, dt, plan, pa + oa * static_cast<int64_t>(es), pb + ob * static_cast<int64_t>(es),
              pc + oc * static_cast<int64_t>(es), static_cast<int>(count), alpha, beta_i);
  });
}

}  // namespace focus::cuda_detail
