#include "nn/init.h"

#include <cmath>
#include <vector>

#include "autograd/node.h"
#include "core/creation.h"

namespace focus::nn::init {

namespace {
void check_defined(const Tensor& t, const char* op) {
  FOCUS_CHECK(t.defined(), "[{}] the tensor is undefined", op);
}

int64_t fan_of(const Tensor& t, std::string_view mode, const char* op) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  if (mode == "fan_in") return fan_in;
  if (mode == "fan_out") return fan_out;
  FOCUS_FAIL("[{}] mode {} not supported, please use one of fan_in, fan_out", op, mode);
}

// Standard normal CDF and its inverse (Acklam's rational approximation refined by two
// Halley steps, good to double precision).
double norm_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double norm_ppf(double p) {
  if (p <= 0) return -INFINITY;
  if (p >= 1) return INFINITY;
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double x;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p > 1 - 0.02425) {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  for (int i = 0; i < 2; ++i) {
    const double e = norm_cdf(x) - p;
    const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
    x = x - u / (1 + x * u / 2);
  }
  return x;
}
}  // namespace

double calculate_gain(std::string_view nl, double param) {
  if (nl == "linear" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" || nl == "conv_transpose1d" ||
      nl == "conv_transpose2d" || nl == "conv_transpose3d" || nl == "sigmoid")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1 + param * param));
  if (nl == "selu") return 3.0 / 4.0;
  FOCUS_FAIL("[calculate_gain] unsupported nonlinearity {}", nl);
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  check_defined(t, "calculate_fan_in_and_fan_out");
  FOCUS_CHECK(t.dim() >= 2,
              "[calculate_fan_in_and_fan_out] fan in and fan out can not be computed for tensor with fewer than 2 "
              "dimensions, got shape {}",
              t.shape());
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

const Tensor& uniform_(const Tensor& t, double a, double b, Generator* gen) {
  check_defined(t, "uniform_");
  NoGradGuard g;
  return focus::uniform_(t, a, b, gen);
}

const Tensor& normal_(const Tensor& t, double mean, double std, Generator* gen) {
  check_defined(t, "normal_");
  NoGradGuard g;
  return focus::normal_(t, mean, std, gen);
}

const Tensor& trunc_normal_(const Tensor& t, double mean, double std, double a, double b, Generator* gen) {
  check_defined(t, "trunc_normal_");
  FOCUS_CHECK(t.is_floating_point(), "[trunc_normal_] expected a floating tensor, got {}", t.dtype());
  FOCUS_CHECK(std > 0, "[trunc_normal_] expected std > 0, got {}", std);
  FOCUS_CHECK(a < b, "[trunc_normal_] expected a < b, got a={} b={}", a, b);
  NoGradGuard g;
  // Uniform draws mapped through the inverse CDF of the truncated normal, in float64, on
  // the host whatever t's device: the Philox draws do not depend on the device, so every
  // device gets the same numbers, and only the finished values travel (one copy to t).
  Tensor u = focus::rand(t.shape(), TensorOptions(kFloat64).device(kCPU), gen);
  double* v = u.data_ptr<double>();  // a fresh contiguous CPU tensor
  const double lo = norm_cdf((a - mean) / std), hi = norm_cdf((b - mean) / std);
  for (int64_t i = 0; i < u.numel(); ++i) {
    const double y = mean + std * norm_ppf(lo + v[i] * (hi - lo));
    v[i] = std::min(std::max(y, a), b);
  }
  t.copy_(u);
  return t;
}

const Tensor& constant_(const Tensor& t, double value) {
  check_defined(t, "constant_");
  NoGradGuard g;
  return t.fill_(value);
}
const Tensor& zeros_(const Tensor& t) { return constant_(t, 0.0); }
const Tensor& ones_(const Tensor& t) { return constant_(t, 1.0); }

const Tensor& xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  const double bound = std::sqrt(3.0) * std;
  return init::uniform_(t, -bound, bound, gen);
}

const Tensor& xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return init::normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

const Tensor& kaiming_uniform_(const Tensor& t, double a, std::string_view mode, std::string_view nonlinearity,
                               Generator* gen) {
  check_defined(t, "kaiming_uniform_");
  if (t.numel() == 0) return t;  // PyTorch warns and does nothing
  const int64_t fan = fan_of(t, mode, "kaiming_uniform_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
  const double bound = std::sqrt(3.0) * std;
  return init::uniform_(t, -bound, bound, gen);
}

const Tensor& kaiming_normal_(const Tensor& t, double a, std::string_view mode, std::string_view nonlinearity,
                              Generator* gen) {
  check_defined(t, "kaiming_normal_");
  if (t.numel() == 0) return t;
  const int64_t fan = fan_of(t, mode, "kaiming_normal_");
  return init::normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan)), gen);
}

}  // namespace focus::nn::init
