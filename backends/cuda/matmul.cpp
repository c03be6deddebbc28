// CUDA matrix products on cuBLAS: every Backend::matmul goes through one strided-batched GEMM
// wrapper. The views are mapped onto column-major calls by backends/common/matmul_plan.h
// (out^T = b^T a^T, transposes as operation flags, broadcast batches as stride 0, batch dims
// folded into M or K where the strides allow, outer loops otherwise); an operand is copied
// only when it has neither a row- nor a column-major layout.
//
// dtypes: float32 (CUBLAS_COMPUTE_32F, or CUBLAS_COMPUTE_32F_FAST_TF32 when
// set_float32_matmul_precision("high") allows TF32), float64 (dgemm), float16 and bfloat16
// (float32 accumulation). Integer products are not supported on CUDA (as in PyTorch).
//
// Backend::linear with a bias is one cuBLASLt GEMM with the bias in its epilogue (llm.c's
// matmul_cublaslt): out^T [N, M] = W x^T + bias, column-major, where CUBLASLT_EPILOGUE_BIAS
// adds a vector of D's row count (N) to every column (every row of out). Other cases (no
// bias, float64, layouts cuBLASLt cannot read in place, no algorithm found) take Backend's
// default: the bias copied into out, then matmul with beta 1.
//
// Backend::linear_gelu (focus::linear_gelu) with approximate "tanh" is the same call with
// CUBLASLT_EPILOGUE_GELU_AUX_BIAS (GELU_AUX without bias): D = out^T = gelu(W x^T + bias) and
// the auxiliary matrix = pre^T = W x^T + bias, the GELU's input that the backward needs.
// Which GELU: cuBLASLt's documentation (cublasLt.h, cublasLtEpilogue_t) says only
// "x := GELU(x)" and does not give the formula; the epilogue computes the tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Evidence: PyTorch's addmm_out_cuda_impl
// (aten/src/ATen/native/cuda/Blas.cpp) sends _addmm_activation(use_gelu=True) to this
// epilogue and, on the paths where it cannot use the epilogue, replaces it by
// at::gelu_(result, "tanh"); llm.c's matmul_cublaslt fuses it for GPT-2's tanh GELU
// (llmc/gelu.cuh). So the exact (erf) form, approximate "none", never takes the GELU
// epilogue: it takes linear's bias epilogue into pre, then the elementwise exact GELU kernel.
// The aux matrix (CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER / _AUX_LD): elements of D's type
// (EPILOGUE_AUX_DATA_TYPE left unset), leading dim "divisible by 8 and no less than the number
// of rows of the output matrix" (cublasLt.h): pre is contiguous [M, N], i.e. column-major
// [N, M] with ld N, so N % 8 == 0 is required, else the default path. cuBLASLt reads the aux
// (and bias) pointer's value for the alignment its heuristics assume and publishes no other
// rule for it; pre is a fresh allocation, and a pointer below 16-byte alignment (any
// element type's vector width) is not sent: the default path takes it.
//
// linear_gelu's backward: d_pre = grad * gelu'(pre) by the elementwise kernel
// (unary_backward). The DGELU / DGELU_BGRAD epilogues apply gelu' to a GEMM's own product,
// and no GEMM of this backward produces the GELU output's gradient: it arrives from the next
// op (the next Linear's grad_x GEMM, another node). Then Backend::linear_backward on d_pre:
// grad_x = d_pre W by matmul, and grad_weight = d_pre^T x with grad_bias = column sums of
// d_pre in one cuBLASLt GEMM with CUBLASLT_EPILOGUE_BGRADB: column-major D = grad_weight^T
// [K, N] = op(A) op(B) with op(A) = x^T [K, R], op(B) = d_pre [R, N]; BGRADB reduces op(B)
// over the GEMM's k (= R) into a vector of D's column count (N), of D's type ("Bias gradient
// vector elements are the same type as the output elements", cublasLt.h). Else matmul + reduce.
#include <cstdint>
#include <memory>

#include "backends/common/matmul_plan.h"
#include "backends/cuda/check.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_buffer.h"
#include "core/error.h"
#include "core/precision.h"

namespace focus::cuda_detail {

namespace {

cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

// The cuBLAS storage and compute types of a float32 / float16 / bfloat16 GEMM: float32
// accumulation, TF32 for float32 only when the matmul precision allows it.
struct GemmTypes {
  cudaDataType_t type;
  cublasComputeType_t compute;
};
GemmTypes gemm_types(DType dt) {
  GemmTypes t{CUDA_R_32F, CUBLAS_COMPUTE_32F};
  if (dt == kFloat16) {
    t.type = CUDA_R_16F;
  } else if (dt == kBFloat16) {
    t.type = CUDA_R_16BF;
  } else if (allow_tf32()) {
    t.compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  }
  return t;
}

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
  const auto [type, compute] = gemm_types(dt);
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
  std::unique_ptr<DeviceBuffer> abuf, bbuf;
  auto pack = [&](const TensorView& v, std::unique_ptr<DeviceBuffer>& buf) {
    common::PackedOperand pk = common::pack_operand(v);
    buf = std::make_unique<DeviceBuffer>(ctx, static_cast<size_t>(pk.numel) * dtype_size(dt));
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

namespace {

// Owners of the cuBLASLt descriptors of one call, destroyed on every path (a failing call
// throws). Destroy statuses are ignored: a destructor must not throw.
struct LtMatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~LtMatmulDesc() {
    if (d) cublasLtMatmulDescDestroy(d);
  }
};
struct LtLayout {
  cublasLtMatrixLayout_t d = nullptr;
  ~LtLayout() {
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
};
struct LtPreference {
  cublasLtMatmulPreference_t d = nullptr;
  ~LtPreference() {
    if (d) cublasLtMatmulPreferenceDestroy(d);
  }
};

// The largest power of two up to 256 that divides the address: the heuristics otherwise
// assume 256-byte aligned operands and may pick a kernel that a view's offset breaks.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

// v's dims before the last seen as one dim of *rows rows: the stride of one row, or -1
// when they do not fold (size-1 dims constrain nothing; 0 when there is one row).
int64_t folded_row_stride(const TensorView& v, int64_t* rows) {
  int64_t r = 1, s_row = 0;
  bool first = true;
  for (int d = v.ndim - 2; d >= 0; --d) {
    if (v.sizes[d] == 1) continue;
    if (first) {
      s_row = v.strides[d];
      first = false;
    } else if (v.strides[d] != s_row * r) {
      return -1;
    }
    r *= v.sizes[d];
  }
  if (s_row < 0) return -1;  // gemm_layout refuses it anyway; -1 stays the one failure value
  *rows = r;
  return s_row;
}

// Runs one cuBLASLt matmul D = op(A) op(B) (beta 0, C = D) after asking the heuristics with
// the operands' alignments; false (nothing queued) when no algorithm is returned.
bool lt_matmul(DeviceContext& ctx, const LtMatmulDesc& desc, const void* a, const LtLayout& a_desc, const void* b,
               const LtLayout& b_desc, void* d, const LtLayout& d_desc) {
  size_t workspace_size = 0;
  void* workspace = ctx.lt_workspace(&workspace_size);
  const uint64_t max_workspace = workspace_size;
  const uint32_t align_a = alignment_of(a), align_b = alignment_of(b), align_d = alignment_of(d);
  LtPreference pref;
  FOCUS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.d));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.d, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                          &max_workspace, sizeof(max_workspace)));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                          sizeof(align_a)));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                          sizeof(align_b)));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d,
                                                          sizeof(align_d)));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.d, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d,
                                                          sizeof(align_d)));

  cublasLtHandle_t lt = ctx.cublas_lt();
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  // NOT_SUPPORTED means no heuristic for this configuration: the default path computes it.
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt, desc.d, a_desc.d, b_desc.d, d_desc.d, d_desc.d, pref.d, 1, &heuristic, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  if (st != CUBLAS_STATUS_SUCCESS) throw_cublas_error("cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__, st);
  if (found == 0 || heuristic.state != CUBLAS_STATUS_SUCCESS) return false;

  // beta = 0: C (= D) is not read, so D's old contents (NaN included) do not matter.
  const float alpha = 1.0f, beta = 0.0f;
  FOCUS_CUBLAS_CHECK(cublasLtMatmul(lt, desc.d, &alpha, a, a_desc.d, b, b_desc.d, &beta, d, d_desc.d, d, d_desc.d,
                                    &heuristic.algo, workspace, workspace_size, ctx.stream()));
  return true;
}

// out [M, N] = x [M, K] @ weight [N, K]^T + bias [N] as one cuBLASLt call with the bias
// epilogue; with pre (linear_gelu's tanh form): out = gelu_tanh(that), pre = that, by the
// GELU_AUX_BIAS epilogue (GELU_AUX when there is no bias). false (nothing queued) when the
// views or the heuristics rule it out.
bool linear_lt(DeviceContext& ctx, const TensorView& out, const TensorView& x, const TensorView& weight,
               const TensorView& bias, const TensorView* pre = nullptr) {
  const DType dt = out.dtype;
  const int nd = out.ndim;
  const int64_t N = weight.sizes[0], K = weight.sizes[1];
  int64_t M = 0, Mx = 0;
  const int64_t o_row = folded_row_stride(out, &M), x_row = folded_row_stride(x, &Mx);
  if (o_row < 0 || x_row < 0 || Mx != M || M < 1 || N < 1 || K < 1) return false;
  const bool has_bias = bias.data != nullptr;
  if (has_bias && N > 1 && bias.strides[0] != 1) return false;  // the epilogue reads a packed vector
  const common::GemmLayout lo = common::gemm_layout(M, N, o_row, out.strides[nd - 1]);
  const common::GemmLayout lx = common::gemm_layout(M, K, x_row, x.strides[nd - 1]);
  const common::GemmLayout lw = common::gemm_layout(N, K, weight.strides[0], weight.strides[1]);
  if (!lo.ok || lo.col_major || !lx.ok || !lw.ok) return false;

  const auto [type, compute] = gemm_types(dt);
  const cudaDataType_t scale_type = CUDA_R_32F;  // alpha, beta and the accumulator
  // Column-major: A = weight with op(A) = W [N, K]: a row-major W is, read column-major,
  // W^T [K, N] (op T), a column-major one is W itself (op N). B = x with op(B) = x^T [K, M]:
  // a row-major x reads as x^T (op N), a column-major one as x (op T). D = out^T [N, M].
  const cublasOperation_t transa = lw.col_major ? CUBLAS_OP_N : CUBLAS_OP_T;
  const cublasOperation_t transb = lx.col_major ? CUBLAS_OP_T : CUBLAS_OP_N;
  const auto a_rows = static_cast<uint64_t>(lw.col_major ? N : K), a_cols = static_cast<uint64_t>(lw.col_major ? K : N);
  const auto b_rows = static_cast<uint64_t>(lx.col_major ? M : K), b_cols = static_cast<uint64_t>(lx.col_major ? K : M);
  int64_t aux_ld = 0;
  if (pre != nullptr) {
    // The aux matrix has D's layout: contiguous [M, N] rows = column-major [N, M], ld N, which
    // cuBLASLt wants divisible by 8 (cublasLt.h, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD).
    if (!out.is_contiguous() || !pre->is_contiguous() || pre->numel != out.numel || lo.ld != N || N % 8 != 0 ||
        alignment_of(pre->data) < 16)
      return false;
    aux_ld = N;
  }
  const cublasLtEpilogue_t epilogue = pre != nullptr ? (has_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                                     : CUBLASLT_EPILOGUE_BIAS;
  const void* bias_ptr = bias.data;
  const auto bias_type = static_cast<int32_t>(type);

  LtMatmulDesc desc;
  FOCUS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.d, compute, scale_type));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  FOCUS_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (has_bias) {
    FOCUS_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof(bias_ptr)));
    FOCUS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                      sizeof(bias_type)));
  }
  if (pre != nullptr) {
    void* aux_ptr = pre->data;
    FOCUS_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux_ptr, sizeof(aux_ptr)));
    FOCUS_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
  }
  LtLayout a_desc, b_desc, d_desc;
  FOCUS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_desc.d, type, a_rows, a_cols, lw.ld));
  FOCUS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_desc.d, type, b_rows, b_cols, lx.ld));
  FOCUS_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&d_desc.d, type, static_cast<uint64_t>(N), static_cast<uint64_t>(M), lo.ld));
  return lt_matmul(ctx, desc, weight.data, a_desc, x.data, b_desc, out.data, d_desc);
}

// grad_weight [N, K] = d_pre [R, N]^T @ x [R, K] and grad_bias [N] = d_pre summed over rows (d_pre:
// linear_backward's grad) as
// one cuBLASLt GEMM with the BGRADB epilogue (see the top of this file); false (nothing
// queued) when the views or the heuristics rule it out.
bool weight_grad_lt(DeviceContext& ctx, const TensorView& grad_weight, const TensorView& grad_bias,
                    const TensorView& d_pre, const TensorView& x) {
  const DType dt = d_pre.dtype;
  const int64_t R = d_pre.sizes[0], N = d_pre.sizes[1], K = x.sizes[1];
  if (R < 1 || N < 1 || K < 1 || !d_pre.is_contiguous() || !grad_weight.is_contiguous() ||
      !grad_bias.is_contiguous() || alignment_of(grad_bias.data) < 16)
    return false;
  const common::GemmLayout lx = common::gemm_layout(R, K, x.strides[0], x.strides[1]);
  const common::GemmLayout lg = common::gemm_layout(R, N, d_pre.strides[0], d_pre.strides[1]);
  const common::GemmLayout lo = common::gemm_layout(N, K, grad_weight.strides[0], grad_weight.strides[1]);
  if (!lx.ok || !lg.ok || lg.col_major || !lo.ok || lo.col_major) return false;

  const auto [type, compute] = gemm_types(dt);
  const cudaDataType_t scale_type = CUDA_R_32F;
  // Column-major D = grad_weight^T [K, N] (ld lo.ld). A = x with op(A) = x^T [K, R]: a
  // row-major x reads column-major as x^T (op N), a column-major one as x (op T). B = d_pre
  // with op(B) = d_pre [R, N]: row-major, it reads column-major as d_pre^T [N, R] (op T).
  const cublasOperation_t transa = lx.col_major ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t transb = CUBLAS_OP_T;
  const auto a_rows = static_cast<uint64_t>(lx.col_major ? R : K), a_cols = static_cast<uint64_t>(lx.col_major ? K : R);
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BGRADB;
  void* bias_ptr = grad_bias.data;  // an output here: BGRADB writes D's column sums of op(B)

  LtMatmulDesc desc;
  FOCUS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.d, compute, scale_type));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  FOCUS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  FOCUS_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  FOCUS_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof(bias_ptr)));
  LtLayout a_desc, b_desc, d_desc;
  FOCUS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_desc.d, type, a_rows, a_cols, lx.ld));
  FOCUS_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&b_desc.d, type, static_cast<uint64_t>(N), static_cast<uint64_t>(R), lg.ld));
  FOCUS_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&d_desc.d, type, static_cast<uint64_t>(K), static_cast<uint64_t>(N), lo.ld));
  return lt_matmul(ctx, desc, x.data, a_desc, d_pre.data, b_desc, grad_weight.data, d_desc);
}

TensorView transposed2d(const TensorView& v) {
  TensorView t = v;
  t.sizes[0] = v.sizes[1];
  t.sizes[1] = v.sizes[0];
  t.strides[0] = v.strides[1];
  t.strides[1] = v.strides[0];
  return t;
}

bool lt_dtype(DType dt) { return dt == kFloat32 || dt == kFloat16 || dt == kBFloat16; }

}  // namespace

void CudaBackend::linear(const TensorView& out, const TensorView& x, const TensorView& weight,
                         const TensorView& bias) {
  if (out.numel == 0) return;
  const DType dt = out.dtype;
  if (bias.data != nullptr && lt_dtype(dt) && x.dtype == dt && weight.dtype == dt && bias.dtype == dt &&
      linear_lt(context(index_), out, x, weight, bias))
    return;
  Backend::linear(out, x, weight, bias);
}

void CudaBackend::linear_gelu(const TensorView& out, const TensorView& pre, const TensorView& x,
                              const TensorView& weight, const TensorView& bias, bool tanh_approx) {
  if (out.numel == 0) return;
  const DType dt = out.dtype;
  if (tanh_approx && lt_dtype(dt) && x.dtype == dt && weight.dtype == dt && pre.dtype == dt &&
      (bias.data == nullptr || bias.dtype == dt) && linear_lt(context(index_), out, x, weight, bias, &pre))
    return;
  Backend::linear_gelu(out, pre, x, weight, bias, tanh_approx);
}

void CudaBackend::linear_backward(const TensorView& grad_x, const TensorView& grad_weight,
                                  const TensorView& grad_bias, const TensorView& grad, const TensorView& x,
                                  const TensorView& weight) {
  const DType dt = grad.dtype;
  if (!lt_dtype(dt) || grad_weight.data == nullptr || grad_bias.data == nullptr) {
    Backend::linear_backward(grad_x, grad_weight, grad_bias, grad, x, weight);
    return;
  }
  // grad_x = grad @ W : [R, N] x [N, K] -> [R, K]
  if (grad_x.data != nullptr) matmul(grad_x, grad, weight, 1.0, 0.0);
  if (weight_grad_lt(context(index_), grad_weight, grad_bias, grad, x)) return;
  // grad_W = grad^T @ x : [N, R] x [R, K] -> [N, K]; grad_b = grad^T [N, R] summed over R
  matmul(grad_weight, transposed2d(grad), x, 1.0, 0.0);
  reduce(ReduceOp::Sum, grad_bias, transposed2d(grad), 1, 0.0);
}

}  // namespace focus::cuda_detail
