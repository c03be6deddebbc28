// backends/common/welford.h and backends/common/index_math.h, the reduction and index math
// that the CPU and CUDA kernels share (suite reduce_math, CPU only): exact 64-bit division
// by FastDivider, strided offsets, bounds and tril/triu predicates, NaN-propagating max/min,
// the arg-max order (merged in any order it still gives the first occurrence, as the CPU
// kernel), the p-norm terms and Welford/Chan merges.
//
// Suite cuda_reduce_indexing runs the CUDA reductions and indexing kernels
// (backends/cuda/reduce.cu, indexing.cu) against the CPU on the layouts that take different
// GPU paths (rows, columns, tiny blocks, split blocks, strided and non-mergeable reduced
// dims), every dtype, the empty-block and NaN rules, and the deferred device-side checks.
// Without a GPU each of its cases prints why it is skipped (test_util.h's have_cuda()).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/common/index_math.h"
#include "backends/common/welford.h"
#include "core/ops/indexing.h"
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;
using focus::testing::have_cuda;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// Merges xs[b, e) as a random binary tree (the split point drawn at each level), as the
// GPU's warps, blocks and split chunks do, with f(left, right).
template <typename T, typename F> T tree_merge(const std::vector<T>& xs, size_t b, size_t e, std::mt19937_64& rng,
                                               F f) {
  if (e - b == 1) return xs[b];
  const size_t mid = b + 1 + rng() % (e - b - 1);
  return f(tree_merge(xs, b, mid, rng, f), tree_merge(xs, mid, e, rng, f));
}

}  // namespace

TEST_SUITE("reduce_math") {

TEST_CASE("FastDivider divides every 64-bit dividend exactly") {
  using common::make_fast_divider;
  std::mt19937_64 rng(7);
  std::vector<uint64_t> divisors = {1, 2, 3, 5, 6, 7, 10, 12, 25, 60, 100, 641, 1000, 4095, 65537, 1000003};
  for (int k = 1; k <= 63; ++k) {
    const uint64_t p = uint64_t{1} << k;
    divisors.push_back(p);
    divisors.push_back(p - 1);
    if (k < 63) divisors.push_back(p + 1);
  }
  for (int i = 0; i < 200; ++i) {
    divisors.push_back(1 + rng() % 1000);
    divisors.push_back(1 + (rng() >> (1 + rng() % 63)));
  }
  for (uint64_t d : divisors) {
    const common::FastDivider f = make_fast_divider(d);
    CHECK(f.d == d);
    std::vector<uint64_t> ns = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, UINT64_MAX, UINT64_MAX - 1,
                                uint64_t{1} << 63, (uint64_t{1} << 63) - 1, UINT32_MAX, uint64_t{UINT32_MAX} + 1};
    const uint64_t q = UINT64_MAX / d;
    ns.push_back(q * d);
    ns.push_back(q * d - 1);
    for (int i = 0; i < 200; ++i) {
      ns.push_back(rng());
      ns.push_back(rng() >> (rng() % 64));
    }
    for (uint64_t n : ns) {
      INFO("n = " << n << ", d = " << d);
      REQUIRE(f.div(n) == n / d);
    }
  }
}

TEST_CASE("StridedOffsets: row-major position to offsets, any strides") {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int ndim = static_cast<int>(rng() % 6);
    int64_t sizes[kMaxDims], strides[2][kMaxDims];
    int64_t numel = 1;
    for (int d = 0; d < ndim; ++d) {
      sizes[d] = 1 + static_cast<int64_t>(rng() % 5);
      strides[0][d] = static_cast<int64_t>(rng() % 40) - 10;  // negative and 0 too
      strides[1][d] = static_cast<int64_t>(rng() % 1000);
      numel *= sizes[d];
    }
    const auto w = common::make_strided_offsets<2>(ndim, sizes, strides);
    for (int64_t i = 0; i < numel; ++i) {
      int64_t want[2] = {0, 0}, rem = i;
      for (int d = ndim - 1; d >= 0; --d) {
        const int64_t c = rem % sizes[d];
        rem /= sizes[d];
        want[0] += c * strides[0][d];
        want[1] += c * strides[1][d];
      }
      int64_t got[2];
      w.offsets(static_cast<uint64_t>(i), got);
      REQUIRE(got[0] == want[0]);
      REQUIRE(got[1] == want[1]);
    }
  }
  // Beyond 32 bits: a [2^20, 2^20, 3] view.
  const int64_t sizes[3] = {int64_t{1} << 20, int64_t{1} << 20, 3};
  const int64_t strides[1][kMaxDims] = {{1, int64_t{1} << 21, int64_t{1} << 42}};
  const auto w = common::make_strided_offsets<1>(3, sizes, strides);
  const int64_t pos = ((int64_t{12345} << 20) + 777) * 3 + 2;
  int64_t off[1];
  w.offsets(static_cast<uint64_t>(pos), off);
  CHECK(off[0] == 12345 + 777 * (int64_t{1} << 21) + 2 * (int64_t{1} << 42));
}

TEST_CASE("index bounds, value ranges and tril/triu columns") {
  CHECK(common::index_ok(0, 0, 3, -1));
  CHECK(common::index_ok(2, 0, 3, -1));
  CHECK_FALSE(common::index_ok(3, 0, 3, -1));
  CHECK_FALSE(common::index_ok(-1, 0, 3, -100));
  CHECK(common::index_ok(-100, 0, 3, -100));  // the skipped value
  CHECK(common::index_ok(7, 0, 3, 7));
  CHECK(common::value_in_range(0.0, 0.0, 1.0));
  CHECK(common::value_in_range(1.0f, 0.0f, 1.0f));
  CHECK_FALSE(common::value_in_range(1.5, 0.0, 1.0));
  CHECK_FALSE(common::value_in_range(-1e-9, 0.0, 1.0));
  CHECK_FALSE(common::value_in_range(kNaN, 0.0, 1.0));
  CHECK_FALSE(common::value_in_range(std::numeric_limits<float>::quiet_NaN(), 0.0f, 1.0f));
  CHECK_FALSE(common::value_in_range(-kInf, 0.0, 1.0));
  CHECK(common::value_in_range(kInf, 0.0, kInf));
  // trilu_keeps (the GPU's per element test) agrees with trilu_kept_columns (the range form),
  // also for orders far beyond the matrix and at the ends of int64.
  const std::vector<int64_t> ks = {INT64_MIN, INT64_MIN + 1, -1000, -7, -3, -1, 0, 1, 2, 5, 1000, INT64_MAX - 1,
                                   INT64_MAX};
  for (int64_t cols : {0, 1, 4, 7})
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t k : ks)
        for (bool lower : {true, false}) {
          int64_t b = 0, e = 0;
          common::trilu_kept_columns(i, k, cols, lower, &b, &e);
          for (int64_t j = 0; j < cols; ++j) {
            INFO("i " << i << " j " << j << " k " << k << " lower " << lower);
            CHECK(common::trilu_keeps(i, j, k, lower) == (j >= b && j < e));
            // The definition: tril keeps j - i <= k, triu keeps j - i >= k.
            CHECK(common::trilu_keeps(i, j, k, lower) == (lower ? j - i <= k : j - i >= k));
          }
        }
}

TEST_CASE("NaN-propagating max/min: any merge order gives NaN when one is NaN, else the extreme") {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const size_t n = 1 + rng() % 40;
    std::vector<double> xs(n);
    for (double& x : xs) x = static_cast<double>(static_cast<int>(rng() % 9) - 4);
    const bool with_nan = trial % 3 == 0;
    if (with_nan) xs[rng() % n] = kNaN;
    const double mx = tree_merge(xs, 0, n, rng, [](double a, double b) { return common::max_propagate_nan(a, b); });
    const double mn = tree_merge(xs, 0, n, rng, [](double a, double b) { return common::min_propagate_nan(a, b); });
    if (with_nan) {
      CHECK(std::isnan(mx));
      CHECK(std::isnan(mn));
    } else {
      CHECK(mx == *std::max_element(xs.begin(), xs.end()));
      CHECK(mn == *std::min_element(xs.begin(), xs.end()));
    }
  }
  // Identities: -inf for max, +inf for min; integers.
  CHECK(common::max_propagate_nan(-kInf, 3.0) == 3.0);
  CHECK(common::min_propagate_nan(kInf, 3.0) == 3.0);
  CHECK(std::isnan(common::max_propagate_nan(kNaN, 3.0)));
  CHECK(std::isnan(common::max_propagate_nan(3.0, kNaN)));
  CHECK(common::max_propagate_nan<int64_t>(-5, 2) == 2);
  CHECK(common::min_propagate_nan<int32_t>(-5, 2) == -5);
}

TEST_CASE("arg order: merged in any order it gives the CPU's argmax/argmin (first occurrence, first NaN)") {
  std::mt19937_64 rng(9);
  using Pair = std::pair<double, int64_t>;
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 30);
    std::vector<double> xs(static_cast<size_t>(n));
    for (double& x : xs) x = static_cast<double>(static_cast<int>(rng() % 5) - 2);  // many ties
    if (trial % 4 == 0) xs[rng() % n] = kNaN;
    if (trial % 8 == 0) xs[rng() % n] = kNaN;  // sometimes two NaNs
    if (trial % 5 == 0) xs[rng() % n] = -0.0;
    std::vector<Pair> pairs;
    for (int64_t i = 0; i < n; ++i) pairs.emplace_back(xs[static_cast<size_t>(i)], i);
    const Tensor t = tensor<double>(xs);
    for (bool is_max : {true, false}) {
      auto better = [is_max](const Pair& a, const Pair& b) {
        const bool take = is_max ? common::arg_better<true>(b.first, b.second, a.first, a.second)
                                 : common::arg_better<false>(b.first, b.second, a.first, a.second);
        return take ? b : a;
      };
      const Pair got = tree_merge(pairs, 0, pairs.size(), rng, better);
      const int64_t want = (is_max ? argmax(t) : argmin(t)).item<int64_t>();
      INFO("trial " << trial << " is_max " << is_max);
      CHECK(got.second == want);
      // The merge of a pair with itself in either order is the lower index.
      CHECK(better(pairs[0], pairs.back()).second == better(pairs.back(), pairs[0]).second);
    }
  }
}

TEST_CASE("p-norm terms") {
  for (double x : {-2.5, -1.0, -0.0, 0.0, 0.5, 3.0}) {
    CHECK(common::norm_term<0>(x, 0.0) == (x != 0 ? 1.0 : 0.0));
    CHECK(common::norm_term<1>(x, 1.0) == std::abs(x));
    CHECK(common::norm_term<2>(x, 2.0) == x * x);
    CHECK(common::norm_term<3>(x, 3.0) == std::pow(std::abs(x), 3.0));
    CHECK(common::norm_term<3>(static_cast<float>(x), 0.5f) == std::pow(std::abs(static_cast<float>(x)), 0.5f));
  }
  CHECK(std::isnan(common::norm_term<1>(kNaN, 1.0)));
  CHECK(common::norm_term<0>(kNaN, 0.0) == 1.0);  // NaN != 0 counts, as PyTorch
  CHECK(common::norm_kind(0) == 0);
  CHECK(common::norm_kind(1) == 1);
  CHECK(common::norm_kind(2) == 2);
  CHECK(common::norm_kind(0.5) == 3);
  CHECK(common::norm_kind(-1) == 3);
  // The CPU norm kernel runs on the same terms.
  const Tensor x = tensor<double>({1.0, -2.0, 0.0, 3.0});
  CHECK(norm(x, 0).item<double>() == 3.0);
  CHECK(norm(x, 1).item<double>() == 6.0);
  CHECK(norm(x, 3).item<double>() == doctest::Approx(std::pow(36.0, 1.0 / 3)));
}

TEST_CASE("Welford: running updates and Chan merges in any order match the two-pass variance") {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(1000.0, 3.0);  // a large mean: the hard case for one pass
  for (int trial = 0; trial < 50; ++trial) {
    const size_t n = 1 + rng() % 500;
    std::vector<double> xs(n);
    for (double& x : xs) x = normal(rng);
    double mean = 0;
    for (double x : xs) mean += x;
    mean /= static_cast<double>(n);
    double m2 = 0;
    for (double x : xs) m2 += (x - mean) * (x - mean);
    // One pass.
    common::Welford<double> s = common::welford_empty<double>();
    for (double x : xs) common::welford_add(s, x);
    CHECK(s.count == static_cast<double>(n));
    CHECK(s.mean == doctest::Approx(mean).epsilon(1e-14));
    CHECK(s.m2 == doctest::Approx(m2).epsilon(1e-9));
    // Single-value states merged as a random tree.
    std::vector<common::Welford<double>> parts;
    for (double x : xs) {
      common::Welford<double> p = common::welford_empty<double>();
      common::welford_add(p, x);
      parts.push_back(p);
    }
    const auto merged = tree_merge(parts, 0, parts.size(), rng, [](const auto& a, const auto& b) {
      return common::welford_merge(a, b);
    });
    CHECK(merged.count == static_cast<double>(n));
    CHECK(merged.mean == doctest::Approx(mean).epsilon(1e-14));
    CHECK(merged.m2 == doctest::Approx(m2).epsilon(1e-9));
    if (n > 1) CHECK(common::welford_var(merged, 1.0) == doctest::Approx(m2 / static_cast<double>(n - 1)).epsilon(1e-9));
    CHECK(common::welford_var(merged, 0.0) == doctest::Approx(m2 / static_cast<double>(n)).epsilon(1e-9));
  }
  // The empty state is the merge's identity on either side, exactly.
  common::Welford<float> s = common::welford_empty<float>();
  common::welford_add(s, 2.0f);
  common::welford_add(s, 4.0f);
  const auto e = common::welford_empty<float>();
  for (const auto& m : {common::welford_merge(s, e), common::welford_merge(e, s)}) {
    CHECK(m.count == 2.0f);
    CHECK(m.mean == 3.0f);
    CHECK(m.m2 == 2.0f);
  }
  // Too few values for the correction: M2 / 0, so nan for equal values and inf otherwise,
  // as PyTorch (var of one value is nan; of [1, 2] with correction 2 inf).
  common::Welford<double> one = common::welford_empty<double>();
  common::welford_add(one, 5.0);
  CHECK(std::isnan(common::welford_var(one, 1.0)));
  CHECK(std::isnan(common::welford_var(common::welford_empty<double>(), 1.0)));
  CHECK(common::welford_var(one, 0.0) == 0.0);
  common::Welford<double> two = common::welford_empty<double>();
  common::welford_add(two, 1.0);
  common::welford_add(two, 2.0);
  CHECK(std::isinf(common::welford_var(two, 2.0)));
  CHECK(common::welford_var(two, 1.0) == 0.5);
}

}  // TEST_SUITE

// ---- CUDA against the CPU ---------------------------------------------------------------------

namespace {

const Device kGpu = Device::cuda(0);

// f(x) on the CPU and on the GPU (x copied there), compared on the CPU: same dtype and
// shape, values within the tolerance (NaN where the CPU has NaN).
template <typename F> void check_same(const std::string& name, const Tensor& x, F f, double rtol = 1e-5,
                                      double atol = 1e-6) {
  INFO("case " << name);
  const Tensor want = f(x);
  const Tensor got = f(x.to(kGpu));
  CHECK(got.device() == kGpu);
  CHECK(got.dtype() == want.dtype());
  CHECK(allclose(got.cpu(), want, rtol, atol));
}

Tensor rnd(const Shape& s, DType t = kFloat32) { return randn(s, TensorOptions(t)); }

}  // namespace

TEST_SUITE("cuda_reduce_indexing") {

TEST_CASE("reduce layouts: rows, columns, tiny blocks, split blocks, strided and non-mergeable dims") {
  if (!have_cuda()) return;
  manual_seed(21);
  struct Layout {
    const char* name;
    Tensor x;
    DimList dims;
  };
  const std::vector<Layout> layouts = {
      {"last dim (warp rows)", rnd({300, 100}), {1}},
      {"last dim, long (block rows)", rnd({7, 5000}), {1}},
      {"first dim (columns)", rnd({500, 70}), {0}},
      {"first dim, few columns, long (split columns)", rnd({100000, 3}), {0}},
      {"middle dim", rnd({6, 50, 9}), {1}},
      {"outer and inner dims (non-mergeable)", rnd({6, 5, 40}), {0, 2}},
      {"tiny blocks", rnd({2000, 3}), {1}},
      {"one element per block", rnd({64, 1}), {1}},
      {"everything (split rows)", rnd({1000, 1000}), {}},
      {"transposed input", rnd({40, 300}).t(), {1}},
      {"stepped input", rnd({30, 400}).slice(1, 0, 400, 3), {1}},
      {"broadcast input (stride 0)", rnd({1, 300}).expand({50, 300}), {0}},
      {"0-d", rnd({}), {}},
  };
  for (const Layout& l : layouts) {
    const std::string n = l.name;
    check_same(n + ": sum", l.x, [&](const Tensor& t) { return sum(t, l.dims); }, 1e-4, 1e-4);
    check_same(n + ": sum keepdim", l.x, [&](const Tensor& t) { return sum(t, l.dims, true); }, 1e-4, 1e-4);
    check_same(n + ": mean", l.x, [&](const Tensor& t) { return mean(t, l.dims); }, 1e-4, 1e-5);
    check_same(n + ": amax", l.x, [&](const Tensor& t) { return amax(t, l.dims); }, 0, 0);
    check_same(n + ": amin", l.x, [&](const Tensor& t) { return amin(t, l.dims); }, 0, 0);
    for (double p : {0.0, 1.0, 2.0, 3.0, 0.5, kInf, -kInf})
      check_same(n + ": norm " + std::to_string(p), l.x, [&](const Tensor& t) { return norm(t, p, l.dims); }, 1e-4,
                 1e-5);
    check_same(n + ": var", l.x, [&](const Tensor& t) { return var(t, l.dims); }, 1e-4, 1e-5);
    check_same(n + ": float64 sum", l.x.to(kFloat64), [&](const Tensor& t) { return sum(t, l.dims); }, 1e-10, 1e-10);
  }
  // Products of values near 1, so that they neither vanish nor overflow.
  const Tensor near1 = 1 + 0.01 * rnd({40, 300});
  check_same("prod rows", near1, [](const Tensor& t) { return prod(t, 1); }, 1e-4, 1e-6);
  check_same("prod columns", near1, [](const Tensor& t) { return prod(t, 0); }, 1e-4, 1e-6);
  check_same("prod all", near1, [](const Tensor& t) { return prod(t); }, 1e-3, 1e-6);
  check_same("max all", rnd({333, 77}), [](const Tensor& t) { return max(t); }, 0, 0);
}

TEST_CASE("reduce dtypes: integer and bool sums and products to int64, max/min keep the dtype") {
  if (!have_cuda()) return;
  manual_seed(22);
  const Tensor i64 = randint(-1000, 1000, {50, 37}), small = randint(-3, 4, {6, 7});
  for (DType t : {kInt64, kInt32, kUInt8, kBool}) {
    INFO("dtype " << std::string(dtype_name(t)));
    const Tensor x = (t == kUInt8 ? randint(0, 256, {50, 37}) : i64).to(t);
    check_same("sum rows", x, [](const Tensor& v) { return sum(v, {1}); }, 0, 0);
    check_same("sum columns", x, [](const Tensor& v) { return sum(v, {0}); }, 0, 0);
    check_same("sum all", x, [](const Tensor& v) { return sum(v); }, 0, 0);
    check_same("amax", x, [](const Tensor& v) { return amax(v, {1}); }, 0, 0);
    check_same("amin columns", x, [](const Tensor& v) { return amin(v, {0}); }, 0, 0);
    check_same("max all", x, [](const Tensor& v) { return max(v); }, 0, 0);
    check_same("prod", (t == kBool ? small.to(kBool) : small.to(t)), [](const Tensor& v) { return prod(v, 1); }, 0, 0);
    check_same("argmax", x, [](const Tensor& v) { return argmax(v, 1); }, 0, 0);
    check_same("argmin columns", x, [](const Tensor& v) { return argmin(v, 0); }, 0, 0);
  }
  // int64 sums wrap as on the CPU.
  const Tensor big = full({3, 4}, Scalar(int64_t{1} << 62), TensorOptions(kInt64));
  check_same("int64 wrap", big, [](const Tensor& v) { return sum(v, {1}); }, 0, 0);
  check_same("int64 product wrap", big, [](const Tensor& v) { return prod(v, 1); }, 0, 0);
}

TEST_CASE("reduce float16 and bfloat16: accumulated in float32") {
  if (!have_cuda()) return;
  manual_seed(23);
  const Tensor x = rnd({64, 3000});
  for (DType t : {kFloat16, kBFloat16}) {
    INFO("dtype " << std::string(dtype_name(t)));
    const Tensor xg = x.to(kGpu).to(t);
    const Tensor xr = xg.to(kFloat32).cpu();  // the rounded inputs, reduced in float32 on the CPU
    for (const DimList& dims : {DimList{1}, DimList{0}, DimList{}}) {
      const Tensor s = sum(xg, dims), m = mean(xg, dims), n2 = norm(xg, 2, dims);
      CHECK(s.dtype() == t);
      // The result is rounded once to the 16-bit type: compare at its precision.
      CHECK(allclose(s.to(kFloat32).cpu(), sum(xr, dims), 1e-2, 0.5));
      CHECK(allclose(m.to(kFloat32).cpu(), mean(xr, dims), 1e-2, 1e-2));
      CHECK(allclose(n2.to(kFloat32).cpu(), norm(xr, 2, dims), 1e-2, 1e-2));
    }
    CHECK(allclose(amax(xg, {1}).to(kFloat32).cpu(), amax(xr, {1}), 0, 0));
    CHECK(allclose(argmax(xg, 1).cpu(), argmax(xr, 1), 0, 0));
  }
}

TEST_CASE("reduce edge cases: empty blocks, NaN propagation, arg ties and NaN") {
  if (!have_cuda()) return;
  const Tensor e = zeros({3, 0});
  check_same("sum of nothing", e, [](const Tensor& v) { return sum(v, {1}); }, 0, 0);
  check_same("mean of nothing (nan)", e, [](const Tensor& v) { return mean(v, {1}); }, 0, 0);
  check_same("prod of nothing (1)", e, [](const Tensor& v) { return prod(v, 1); }, 0, 0);
  check_same("int sum of nothing", e.to(kInt32), [](const Tensor& v) { return sum(v, {1}); }, 0, 0);
  for (double p : {0.0, 1.0, 2.0, 3.0, kInf, -kInf})
    check_same("norm of nothing", e, [p](const Tensor& v) { return norm(v, p, {1}); }, 0, 0);
  check_same("no outputs", zeros({0, 5}), [](const Tensor& v) { return sum(v, {1}); }, 0, 0);
  // NaN propagates through max/min and the inf norms wherever it sits.
  std::vector<float> vals(4000);
  for (size_t i = 0; i < vals.size(); ++i) vals[i] = static_cast<float>(i % 97) - 40.f;
  vals[2999] = NAN;
  const Tensor xn = tensor<float>(vals, {4, 1000});
  for (const DimList& dims : {DimList{1}, DimList{0}})
    for (auto f : {+[](const Tensor& v, const DimList& d) { return amax(v, d); },
                   +[](const Tensor& v, const DimList& d) { return amin(v, d); },
                   +[](const Tensor& v, const DimList& d) { return norm(v, kInf, d); },
                   +[](const Tensor& v, const DimList& d) { return norm(v, -kInf, d); }})
      check_same("NaN", xn, [&](const Tensor& v) { return f(v, dims); }, 0, 0);
  check_same("NaN max all", xn, [](const Tensor& v) { return max(v); }, 0, 0);
  // Ties: the first occurrence; NaN: the first NaN.
  const Tensor ties = tensor<float>({1, 3, 3, 0, 3, -1, -1, 0, 2, NAN, 5, NAN}, {2, 6});
  for (int64_t d : {0, 1}) {
    check_same("argmax ties/NaN", ties, [d](const Tensor& v) { return argmax(v, d); }, 0, 0);
    check_same("argmin ties/NaN", ties, [d](const Tensor& v) { return argmin(v, d); }, 0, 0);
    check_same("max values", ties, [d](const Tensor& v) { return std::get<0>(max(v, d)); }, 0, 0);
    check_same("max indices", ties, [d](const Tensor& v) { return std::get<1>(max(v, d)); }, 0, 0);
    check_same("min indices", ties, [d](const Tensor& v) { return std::get<1>(min(v, d)); }, 0, 0);
  }
  // A long row with its maximum repeated far apart (split merges keep the first).
  Tensor longrow = zeros({1, 200000});
  longrow.narrow(1, 150000, 1).fill_(7);
  longrow.narrow(1, 12345, 1).fill_(7);
  check_same("argmax long row", longrow, [](const Tensor& v) { return argmax(v, 1); }, 0, 0);
  check_same("argmax flattened", rnd({300, 700}), [](const Tensor& v) { return argmax(v); }, 0, 0);
}

TEST_CASE("indexing kernels: index_select, embedding and its backward, gather, scatter_add") {
  if (!have_cuda()) return;
  manual_seed(24);
  const Tensor x = rnd({7, 9, 5});
  const Tensor id = tensor<int64_t>({4, 0, 0, 3, 4, 2});  // in range of every dim, repeated
  for (int64_t d : {0, 1, 2}) {
    check_same("index_select", x, [&](const Tensor& v) { return index_select(v, d, id.to(v.device())); }, 0, 0);
    check_same("index_select int32", x,
               [&](const Tensor& v) { return index_select(v, d, id.to(kInt32).to(v.device())); }, 0, 0);
    check_same("index_select transposed", x.transpose(0, 2),
               [&](const Tensor& v) { return index_select(v, d, id.to(v.device())); }, 0, 0);
  }
  check_same("index_select int64 data", randint(0, 100, {5, 4}),
             [&](const Tensor& v) { return index_select(v, 0, tensor<int64_t>({4, 4, 1}).to(v.device())); }, 0, 0);
  check_same("index_select bool data", randint(0, 2, {5, 4}).to(kBool),
             [&](const Tensor& v) { return index_select(v, 1, tensor<int64_t>({3, 0}).to(v.device())); }, 0, 0);
  // index_add with repeated indices and a skipped one (embedding backward's padding_idx).
  const Tensor w = rnd({10, 16});
  const Tensor tokens = tensor<int64_t>({3, 1, 3, 3, 0, 9, 1, 3}, {2, 4});
  for (std::optional<int64_t> pad : {std::optional<int64_t>{}, std::optional<int64_t>{3}}) {
    Tensor wc = w.clone().requires_grad_(), wg = w.to(kGpu).detach().requires_grad_();
    Tensor gout = rnd({2, 4, 16});
    sum(embedding(wc, tokens, pad) * gout).backward();
    sum(embedding(wg, tokens.to(kGpu), pad) * gout.to(kGpu)).backward();
    CHECK(allclose(wg.grad().cpu(), wc.grad(), 1e-5, 1e-6));
  }
  for (DType t : {kFloat64, kInt64, kInt32, kUInt8, kFloat16, kBFloat16}) {
    INFO("index_add dtype " << std::string(dtype_name(t)));
    const Tensor src = randint(0, 5, {6, 3}).to(t), ind = tensor<int64_t>({2, 0, 2, 2, 1, 0});
    Tensor want = zeros({3, 3}, TensorOptions(t == kFloat16 || t == kBFloat16 ? kFloat32 : t));
    raw::index_add_(want, 0, ind, src.to(want.dtype()));
    Tensor got = zeros({3, 3}, TensorOptions(t).device(kGpu));
    raw::index_add_(got, 0, ind.to(kGpu), src.to(kGpu));
    CHECK(allclose(got.to(want.dtype()).cpu(), want, 0, 0));
    Tensor got1 = zeros({3, 3}, TensorOptions(t).device(kGpu));  // along dim 1, skipping index 2
    Tensor want1 = zeros({3, 3}, TensorOptions(want.dtype()));
    raw::index_add_(got1, 1, ind.to(kGpu), src.t().contiguous().to(kGpu), 2);
    raw::index_add_(want1, 1, ind, src.t().contiguous().to(want.dtype()), 2);
    CHECK(allclose(got1.to(want.dtype()).cpu(), want1, 0, 0));
  }
  // gather / scatter_add along each dim, index smaller than the input elsewhere.
  const Tensor gid = randint(0, 3, {3, 4, 2});  // in range of every dim
  for (int64_t d : {0, 1, 2}) {
    check_same("gather", x, [&](const Tensor& v) { return gather(v, d, gid.to(v.device())); }, 0, 0);
    const Tensor src = rnd({3, 4, 2});
    check_same("scatter_add", x,
               [&](const Tensor& v) { return scatter_add(v, d, gid.to(v.device()), src.to(v.device())); }, 1e-6, 1e-6);
    check_same("scatter_add int64", x.to(kInt64),
               [&](const Tensor& v) { return scatter_add(v, d, gid.to(v.device()), (src * 10).to(kInt64).to(v.device())); },
               0, 0);
  }
  check_same("gather transposed input", x.transpose(0, 1),
             [&](const Tensor& v) { return gather(v, 1, gid.to(v.device())); }, 0, 0);
}

TEST_CASE("tril, triu and one_hot") {
  if (!have_cuda()) return;
  manual_seed(25);
  const Tensor x = rnd({3, 5, 7});
  for (int64_t k : {-100, -6, -2, -1, 0, 1, 3, 6, 100}) {
    check_same("tril", x, [k](const Tensor& v) { return tril(v, k); }, 0, 0);
    check_same("triu", x, [k](const Tensor& v) { return triu(v, k); }, 0, 0);
    check_same("tril transposed", x.transpose(1, 2), [k](const Tensor& v) { return tril(v, k); }, 0, 0);
  }
  check_same("triu int", randint(0, 9, {4, 4}), [](const Tensor& v) { return triu(v, 1); }, 0, 0);
  check_same("tril bool", randint(0, 2, {4, 6}).to(kBool), [](const Tensor& v) { return tril(v); }, 0, 0);
  const Tensor labels = tensor<int64_t>({0, 3, 1, 3, 2}, {5});
  check_same("one_hot", labels, [](const Tensor& v) { return one_hot(v); }, 0, 0);
  check_same("one_hot classes", labels.view({1, 5}), [](const Tensor& v) { return one_hot(v, 6); }, 0, 0);
  check_same("one_hot int32", labels.to(kInt32), [](const Tensor& v) { return one_hot(v, 4); }, 0, 0);
}

TEST_CASE("index checks: scan_indices errors at once, check_indices and check_range at the next sync") {
  if (!have_cuda()) return;
  const Tensor x = rnd({3, 4}).to(kGpu);
  // scan_indices returns to the host: the raw op throws at once.
  CHECK_THROWS_WITH_AS(index_select(x, 0, tensor<int64_t>({0, 5, 7}).to(kGpu)),
                       "[index_select] index 5 is out of bounds for dim 0 with size 3", Error);
  CHECK_THROWS_WITH_AS(index_select(x, 1, tensor<int32_t>({-1}).to(kGpu)),
                       "[index_select] index -1 is out of bounds for dim 1 with size 4", Error);
  CHECK_THROWS_WITH_AS(one_hot(tensor<int64_t>({1, -2}).to(kGpu)),
                       "[one_hot] class values must be non-negative, got -2", Error);
  CHECK(one_hot(tensor<int64_t>({1, 4}).to(kGpu)).shape() == Shape{2, 5});  // num_classes from the max
  // check_indices (cross_entropy's targets): recorded on the device, reported at the next
  // synchronisation with the first bad flat position (a transposed target: row-major order).
  const Tensor logits = rnd({4, 3}).to(kGpu);
  const Tensor bad = tensor<int64_t>({0, 2, 3, 1}).to(kGpu);
  CHECK_THROWS_WITH_AS(
      {
        Tensor loss = cross_entropy(logits, bad);
        loss.item<float>();
      },
      doctest::Contains("target 3 is out of bounds for [0, 3) (at position 2"), Error);
  // The ignored index passes; the device is usable afterwards.
  CHECK(std::isfinite(cross_entropy(logits, tensor<int64_t>({0, -100, 2, 1}).to(kGpu)).item<float>()));
  // check_range (binary_cross_entropy's input): the value and position as on the CPU.
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<float>({0.5f, 1.5f, -1.f}).to(kGpu), zeros({3}).to(kGpu))
                           .item<float>(),
                       doctest::Contains("[binary_cross_entropy] all elements of input should be between 0 and 1, "
                                         "got 1.5 (at position 1"),
                       Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<double>({0.0, 1.0, -1e-9, 2.0}, {2, 2}).t().to(kGpu),
                                            zeros({2, 2}, kFloat64).to(kGpu))
                           .item<double>(),
                       doctest::Contains("got -1e-09 (at position 1"), Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy(tensor<float>({0.5f, NAN}).to(kGpu), zeros({2}).to(kGpu)).item<float>(),
                       doctest::Contains("got nan (at position 1"), Error);
  CHECK(binary_cross_entropy(tensor<float>({0.f, 1.f}).to(kGpu), tensor<float>({1.f, 0.f}).to(kGpu), {},
                             Reduction::Sum)
            .item<float>() == 200.f);
}

}  // TEST_SUITE
