#include "core/ops/quantized.h"

#include "backends/common/int8_math.h"
#include "core/creation.h"
#include "core/ops/common.h"

namespace focus::raw {

namespace {
void check_cpu(const Tensor& t, const char* op, const char* arg) {
  FOCUS_CHECK(t.device().is_cpu(),
              "[{}] int8 quantized layers run on the CPU only (as PyTorch's quantize_dynamic); the {} is on {}", op,
              arg, t.device());
}
}  // namespace

std::pair<Tensor, Tensor> quantize_per_channel_int8(const Tensor& weight, const char* op) {
  check_defined(weight, op, "weight");
  check_cpu(weight, op, "weight");
  FOCUS_CHECK(weight.dim() == 2, "[{}] expected a 2-D weight [out_features, in_features], got shape {}", op,
              weight.shape());
  check_floating(weight, op, "weight");
  const Tensor w = to_contiguous(weight, kFloat32, kCPU);
  Tensor q = empty(weight.shape(), kInt8, kCPU), scale = empty({weight.size(0)}, kFloat32, kCPU);
  if (w.numel() == 0) {
    if (scale.numel() > 0) copy_(scale, scalar_tensor(common::kInt8MinScale, TensorOptions(kFloat32)));
    return {q, scale};
  }
  const float* p = w.data_ptr<float>();
  for (int64_t i = 0; i < w.numel(); ++i)
    FOCUS_CHECK(std::isfinite(p[i]), "[{}] the weight holds a non-finite value ({}) at flat index {}", op, p[i], i);
  backend_of(w).quantize_int8_weight(make_view(q), make_view(scale), make_view(w));
  return {q, scale};
}

Int8PackedWeight pack_int8(const Tensor& q, const Tensor& scale, const char* op) {
  check_defined(q, op, "int8 weight");
  check_defined(scale, op, "scale");
  check_cpu(q, op, "int8 weight");
  check_same_device(q, scale, op);
  FOCUS_CHECK(q.dtype() == kInt8 && q.dim() == 2, "[{}] expected an int8 weight [out_features, in_features], got {} {}",
              op, q.dtype(), q.shape());
  const int64_t N = q.size(0), K = q.size(1);
  FOCUS_CHECK(N >= 1 && K >= 1, "[{}] the weight must not be empty, got shape {}", op, q.shape());
  FOCUS_CHECK(K <= common::kMaxInt8K, "[{}] in_features {} is more than the int8 kernels take ({}: the int32 "
              "accumulator's bound)", op, K, common::kMaxInt8K);
  FOCUS_CHECK(scale.is_floating_point() && scale.dim() == 1 && scale.size(0) == N,
              "[{}] expected floating scales [{}], got {} {}", op, N, scale.dtype(), scale.shape());
  const int64_t Np = common::int8_padded_n(N), Kp = common::int8_padded_k(K);
  Int8PackedWeight w;
  w.out_features = N;
  w.in_features = K;
  w.packed = empty({Np * Kp}, kInt8, kCPU);
  w.colsum = empty({Np}, kInt32, kCPU);
  w.scale = zeros({Np}, TensorOptions(kFloat32));
  copy_(w.scale.narrow(0, 0, N), scale);
  const float* s = w.scale.data_ptr<float>();
  for (int64_t n = 0; n < N; ++n)
    FOCUS_CHECK(std::isfinite(s[n]) && s[n] > 0.0f, "[{}] scale {} of output channel {} is not a positive finite "
                "float32", op, s[n], n);
  backend_of(q).pack_int8_weight(make_view(w.packed), make_view(w.colsum), make_view(to_contiguous(q, kInt8, kCPU)));
  return w;
}

Tensor linear_int8(const Tensor& x, const Int8PackedWeight& w, const Tensor& bias, int64_t n_begin, int64_t n_count,
                   const char* op) {
  check_defined(x, op, "input");
  FOCUS_CHECK(w.defined(), "[{}] the packed weight is undefined", op);
  check_cpu(x, op, "input");
  FOCUS_CHECK(x.dtype() == kFloat32, "[{}] expected a float32 input, got {} (int8 layers take float32, as "
              "PyTorch's dynamically quantized Linear)", op, x.dtype());
  FOCUS_CHECK(x.dim() >= 1 && x.size(-1) == w.in_features,
              "[{}] expected input with last dimension {} (in_features), got shape {}", op, w.in_features, x.shape());
  const int64_t N = w.out_features;
  if (n_count < 0) n_count = N - n_begin;
  FOCUS_CHECK(n_begin >= 0 && n_begin % common::kInt8BlockN == 0 && n_count >= 0 && n_begin + n_count <= N,
              "[{}] rows {} .. {} of a weight of {} rows: the first must be a multiple of {} and the range inside", op,
              n_begin, n_begin + n_count, N, common::kInt8BlockN);
  if (bias.defined()) {
    check_cpu(bias, op, "bias");
    FOCUS_CHECK(bias.dtype() == kFloat32 && bias.dim() == 1 && bias.size(0) == N,
                "[{}] expected a float32 bias [{}], got {} {}", op, N, bias.dtype(), bias.shape());
  }
  Shape out_shape = x.shape();
  out_shape.back() = n_count;
  Tensor out = empty(out_shape, kFloat32, kCPU);
  const int64_t K = w.in_features, M = x.numel() / std::max<int64_t>(1, K);
  if (out.numel() == 0) return out;
  const Tensor x2 = to_contiguous(x, kFloat32, kCPU).reshape({M, K});
  const Tensor b = bias.defined() ? to_contiguous(bias, kFloat32, kCPU) : Tensor();
  TensorView bv;
  bv.dtype = kFloat32;
  if (b.defined()) bv = make_view(b);
  backend_of(x).linear_int8(make_view(out.reshape({M, n_count})), make_view(x2), make_view(w.packed),
                            make_view(w.colsum), make_view(w.scale), bv, n_begin);
  return out;
}

}  // namespace focus::raw
