#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/engine.h"
#include "autograd/node.h"
#include "core/creation.h"
#include "core/ops/common.h"

namespace focus {

namespace {
// Address of the element with row-major linear index i in a strided float64 CPU tensor.
double* element(const Tensor& t, int64_t i) {
  double* p = static_cast<double*>(t.data_ptr());
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    const int64_t s = t.shape()[d];
    p += (i % s) * t.strides()[d];
    i /= s;
  }
  return p;
}
}  // namespace

bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
               const GradcheckOptions& o) {
  std::vector<size_t> diff;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    FOCUS_CHECK(x.dtype() == kFloat64 && x.device().is_cpu(),
                "[gradcheck] input {} must be a float64 cpu tensor, got {} on {}", k, x.dtype(), x.device());
    diff.push_back(k);
  }
  FOCUS_CHECK(!diff.empty(), "[gradcheck] no input requires grad");

  Tensor out = f(inputs);
  FOCUS_CHECK(out.defined() && out.is_floating_point(), "[gradcheck] f must return a floating tensor");
  const int64_t n_out = out.numel();

  // Numerical Jacobian columns: d out / d x[k][i] by central differences.
  std::vector<std::vector<double>> numeric(diff.size());
  {
    NoGradGuard ng;
    for (size_t a = 0; a < diff.size(); ++a) {
      const Tensor& x = inputs[diff[a]];
      numeric[a].resize(static_cast<size_t>(x.numel() * n_out));
      for (int64_t i = 0; i < x.numel(); ++i) {
        double* p = element(x, i);
        const double orig = *p;
        *p = orig + o.eps;
        std::vector<double> plus = f(inputs).to_vector<double>();
        *p = orig - o.eps;
        std::vector<double> minus = f(inputs).to_vector<double>();
        *p = orig;
        for (int64_t j = 0; j < n_out; ++j)
          numeric[a][static_cast<size_t>(i * n_out + j)] = (plus[j] - minus[j]) / (2 * o.eps);
      }
    }
  }

  // Analytical Jacobian rows: one backward per output element.
  std::vector<Tensor> wrt;
  for (size_t k : diff) wrt.push_back(inputs[k]);
  for (int64_t j = 0; j < n_out; ++j) {
    Tensor go = zeros(out.shape(), TensorOptions(out.dtype()));
    *element(go, j) = 1.0;
    std::vector<Tensor> g = autograd::grad({out}, wrt, {go}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    for (size_t a = 0; a < diff.size(); ++a) {
      const Tensor& x = inputs[diff[a]];
      std::vector<double> ga = g[a].defined() ? g[a].to_vector<double>() : std::vector<double>(x.numel(), 0.0);
      FOCUS_CHECK(static_cast<int64_t>(ga.size()) == x.numel(),
                  "[gradcheck] gradient for input {} has {} elements, the input has {}", diff[a], ga.size(), x.numel());
      for (int64_t i = 0; i < x.numel(); ++i) {
        const double an = ga[static_cast<size_t>(i)];
        const double nu = numeric[a][static_cast<size_t>(i * n_out + j)];
        if (!(std::abs(an - nu) <= o.atol + o.rtol * std::abs(nu))) {
          if (!o.raise) return false;
          FOCUS_FAIL("[gradcheck] Jacobian mismatch for output element {} with respect to input {} element {}: "
                     "numerical {:.10g}, analytical {:.10g}",
                     j, diff[a], i, nu, an);
        }
      }
    }
  }
  return true;
}

}  // namespace focus
