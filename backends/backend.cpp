#include "backends/backend.h"

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"

namespace focus {

// The one registration point of the devices: the CUDA backend of device `index`, defined by
// backends/cuda/ when focus is built with CUDA and by backends/cuda_stub.cpp otherwise
// (which throws). Throws focus::Error for an index without a device.
Backend& cuda_backend(int index);

void Backend::unsupported(const char* op) const {
  FOCUS_FAIL("[{}] is not implemented for device {}", op, device());
}

void Backend::copy(const TensorView&, const TensorView&) { unsupported("copy_"); }
void Backend::fill(const TensorView&, Scalar) { unsupported("fill_"); }
void Backend::uniform(const TensorView&, double, double, RandomState) { unsupported("uniform_"); }
void Backend::normal(const TensorView&, double, double, RandomState) { unsupported("normal_"); }
void Backend::randint(const TensorView&, int64_t, int64_t, RandomState) { unsupported("randint"); }
void Backend::unary(UnaryOp, const TensorView&, const TensorView&, UnaryParams) { unsupported("unary"); }
void Backend::unary_backward(UnaryBackwardOp, const TensorView&, const TensorView&, const TensorView&,
                             const TensorView&, UnaryParams) {
  unsupported("unary_backward");
}
void Backend::binary(BinaryOp, const TensorView&, const TensorView&, const TensorView&) { unsupported("binary"); }
void Backend::where(const TensorView&, const TensorView&, const TensorView&, const TensorView&) {
  unsupported("where");
}
void Backend::check_indices(const TensorView&, int64_t, int64_t, int64_t, const char* op, const char*) {
  unsupported(op);
}
void Backend::check_range(const TensorView&, double, double, const char* op, const char*) { unsupported(op); }

// PyTorch's addmm(bias, x, weight^T): the bias broadcast into out, then one GEMM with beta 1
// adds the product onto it. The views are those the raw op built before this kernel existed
// (stride 0 on broadcast and size-1 dims, as make_view gives), so the CPU's numbers stay
// bit for bit.
void Backend::linear(const TensorView& out, const TensorView& x, const TensorView& weight, const TensorView& bias) {
  if (out.numel == 0) return;
  const int nd = out.ndim;
  const int64_t N = weight.sizes[0], K = weight.sizes[1];
  const bool has_bias = bias.data != nullptr;
  if (has_bias) {
    TensorView b = out;  // bias [N] broadcast to out's sizes
    b.data = bias.data;
    b.dtype = bias.dtype;
    for (int d = 0; d < nd; ++d) b.strides[d] = 0;
    b.strides[nd - 1] = N == 1 ? 0 : bias.strides[0];
    copy(out, b);
  }
  TensorView wt = out;  // weight^T [K, N] (a column-major view) broadcast to out's batch dims
  wt.data = weight.data;
  wt.dtype = weight.dtype;
  for (int d = 0; d < nd - 2; ++d) wt.strides[d] = 0;
  wt.sizes[nd - 2] = K;
  wt.sizes[nd - 1] = N;
  wt.strides[nd - 2] = K == 1 ? 0 : weight.strides[1];
  wt.strides[nd - 1] = N == 1 ? 0 : weight.strides[0];
  wt.numel = K * N;
  for (int d = 0; d < nd - 2; ++d) wt.numel *= out.sizes[d];
  matmul(out, x, wt, 1.0, has_bias ? 1.0 : 0.0);
}

namespace {

// A 2-D view [rows, cols] with the given strides on v's data and dtype.
TensorView view2d(const TensorView& v, int64_t rows, int64_t cols, int64_t s_row, int64_t s_col) {
  TensorView r;
  r.data = v.data;
  r.dtype = v.dtype;
  r.ndim = 2;
  r.sizes[0] = rows;
  r.sizes[1] = cols;
  r.strides[0] = s_row;
  r.strides[1] = s_col;
  r.numel = rows * cols;
  return r;
}

// The transpose of a 2-D view (no copy: BLAS reads it with its transpose flag).
TensorView transposed(const TensorView& v) { return view2d(v, v.sizes[1], v.sizes[0], v.strides[1], v.strides[0]); }

// Device memory of one kernel call, given back on every path.
struct ScratchBuffer {
  Backend& be;
  size_t nbytes;
  void* data;
  ScratchBuffer(Backend& b, size_t n) : be(b), nbytes(n), data(b.allocate(n)) {}
  ~ScratchBuffer() { be.deallocate(data, nbytes); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
};

}  // namespace

// The composition gelu(linear(x, weight, bias)) as its two kernels, on the views the raw
// ops would build (unary's loops see one flat contiguous run either way).
void Backend::linear_gelu(const TensorView& out, const TensorView& pre, const TensorView& x, const TensorView& weight,
                          const TensorView& bias, bool tanh_approx) {
  if (out.numel == 0) return;
  linear(pre, x, weight, bias);
  unary(tanh_approx ? UnaryOp::GeluTanh : UnaryOp::Gelu, out, pre, UnaryParams{});
}

// LinearBackward0's products: mm(grad, W), mm(grad^T, x) and the gemv ones[R] @ grad.
void Backend::linear_backward(const TensorView& grad_x, const TensorView& grad_weight, const TensorView& grad_bias,
                              const TensorView& grad, const TensorView& x, const TensorView& weight) {
  // grad_x = grad @ W : [R, N] x [N, K] -> [R, K]
  if (grad_x.data != nullptr) matmul(grad_x, grad, weight, 1.0, 0.0);
  // grad_W = grad^T @ x : [N, R] x [R, K] -> [N, K] (grad^T is a view: BLAS Trans)
  if (grad_weight.data != nullptr) matmul(grad_weight, transposed(grad), x, 1.0, 0.0);
  if (grad_bias.data != nullptr) {
    // grad_b = ones[R] @ grad : [1, R] x [R, N] -> [1, N]
    const int64_t R = grad.sizes[0], N = grad.sizes[1];
    ScratchBuffer ones(*this, static_cast<size_t>(R) * dtype_size(grad.dtype));
    TensorView o = view2d(grad, 1, R, R, 1);
    o.data = ones.data;
    fill(o, Scalar(1.0));
    matmul(view2d(grad_bias, 1, N, N, 1), o, grad, 1.0, 0.0);
  }
}

// The multi-tensor steps of a device without its own: one single-tensor step per ref, which
// is per element the same update by definition. Each dtype is first stepped on an empty view
// (which writes nothing), so that one without a kernel here (float16 on the CPU) throws
// before any ref is written.
namespace {

TensorView empty_view(DType dtype) {
  TensorView v;
  v.dtype = dtype;
  v.ndim = 1;
  v.numel = 0;
  v.strides[0] = 1;
  return v;
}

template <typename Ref, typename F> void probe_dtypes(const Ref* refs, size_t count, F&& step_empty) {
  uint64_t seen = 0;  // one bit per dtype value
  for (size_t i = 0; i < count; ++i) {
    const DType dt = refs[i].param.dtype;
    const uint64_t bit = uint64_t{1} << (static_cast<unsigned>(dt) % 64);
    if (seen & bit) continue;
    seen |= bit;
    const TensorView e = empty_view(dt);
    step_empty(e);
  }
}

}  // namespace

void Backend::adam_step_multi(const AdamTensorRef* refs, size_t count, const AdamStepParams& p) {
  if (p.capturable)
    FOCUS_FAIL("[adam_step_multi] capturable=True needs the parameters on a CUDA device (as PyTorch's), got {}",
               device());
  probe_dtypes(refs, count, [&](const TensorView& e) { adam_step(e, e, e, e, e, p); });
  AdamStepParams q = p;
  for (size_t i = 0; i < count; ++i) {
    const AdamTensorRef& r = refs[i];
    if (r.param.numel == 0) continue;
    q.step_size = r.step_size;
    q.bias_correction2_sqrt = r.bias_correction2_sqrt;
    adam_step(r.param, r.grad, r.exp_avg, r.exp_avg_sq, r.max_exp_avg_sq, q);
  }
}

void Backend::sgd_step_multi(const SgdTensorRef* refs, size_t count, const SgdStepParams& p) {
  probe_dtypes(refs, count, [&](const TensorView& e) { sgd_step(e, e, e, p); });
  SgdStepParams q = p;
  for (size_t i = 0; i < count; ++i) {
    const SgdTensorRef& r = refs[i];
    if (r.param.numel == 0) continue;
    q.first_step = r.first_step;
    sgd_step(r.param, r.grad, r.momentum_buffer, q);
  }
}

Backend& backend_for(Device d) {
  if (d.type == DeviceType::CPU) {
    static cpu::CpuBackend cpu;
    return cpu;
  }
  return cuda_backend(d.index);
}

}  // namespace focus
