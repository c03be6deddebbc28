// Shape and indexing ops: cat, stack, split, chunk, repeat, index_select, gather,
// scatter_add, take_along_dim, tril, triu, one_hot, embedding.
#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

namespace {

Tensor rnd(const Shape& shape) { return randn(shape, kFloat64).requires_grad_(); }
Tensor longs(const std::vector<int64_t>& v, const Shape& shape) { return tensor<int64_t>(v, shape); }
Tensor longs(const std::vector<int64_t>& v) { return tensor<int64_t>(v); }
Tensor doubles(const std::vector<double>& v, const Shape& shape) { return tensor<double>(v, shape); }

// f's gradient as a function of the inputs (create_graph), so gradcheck of it checks the
// second derivative: d/dx <grad_x f(x), w>.
Tensor grad_of(const std::function<Tensor(const Tensor&)>& f, const Tensor& x, const Tensor& w) {
  EnableGradGuard eg;
  Tensor y = f(x);
  return autograd::grad({y}, {x}, {w}, /*retain_graph=*/true, /*create_graph=*/true)[0];
}

}  // namespace

TEST_SUITE("indexing") {

// ---- cat / stack ---------------------------------------------------------------------------

TEST_CASE("cat: values, dims, promotion, non-contiguous, empty") {
  Tensor a = arange(6, kFloat32).view({2, 3});
  Tensor b = arange(6, 9, 1, kFloat32).view({1, 3});
  Tensor c0 = cat({a, b});
  CHECK(c0.shape() == Shape{3, 3});
  CHECK(c0.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  Tensor c1 = cat({a, a.narrow(1, 0, 1)}, -1);
  CHECK(c1.shape() == Shape{2, 4});
  CHECK(c1.to_vector<float>() == std::vector<float>{0, 1, 2, 0, 3, 4, 5, 3});
  // Non-contiguous input (transposed) and a single tensor.
  Tensor t = arange(6, kFloat32).view({3, 2}).t();
  CHECK(cat({t, a}, 0).to_vector<float>() == std::vector<float>{0, 2, 4, 1, 3, 5, 0, 1, 2, 3, 4, 5});
  CHECK(cat({t}).to_vector<float>() == std::vector<float>{0, 2, 4, 1, 3, 5});
  // Expanded (stride 0) input.
  Tensor e = tensor<float>({7.f, 8.f, 9.f}).expand({2, 3});
  CHECK(cat({e, b}).to_vector<float>() == std::vector<float>{7, 8, 9, 7, 8, 9, 6, 7, 8});
  // Type promotion across inputs.
  Tensor i = arange(3).view({1, 3});
  CHECK(cat({i, b}).dtype() == kFloat32);
  CHECK(cat({i, i}).dtype() == kInt64);
  CHECK(cat({b, b.to(kFloat64)}).dtype() == kFloat64);
  CHECK(cat({tensor<bool>({true, false}), tensor<int32_t>({3})}).to_vector<int32_t>() == std::vector<int32_t>{1, 0, 3});
  // Legacy empty 1-D tensors are skipped whatever the others' shape, but join the promotion.
  Tensor legacy = zeros({0}, kFloat64);
  Tensor cl = cat({legacy, a, legacy}, 1);
  CHECK(cl.shape() == Shape{2, 3});
  CHECK(cl.dtype() == kFloat64);
  CHECK(cat({zeros({0}), zeros({0})}).shape() == Shape{0});
  // Empty along the cat dim and elsewhere.
  CHECK(cat({zeros({2, 0}), a}, 1).to_vector<float>() == a.to_vector<float>());
  CHECK(cat({zeros({0, 3}), zeros({0, 3})}, 1).shape() == Shape{0, 6});
  // Size-1 dims.
  CHECK(cat({ones({1, 1}), zeros({1, 1})}, 1).to_vector<float>() == std::vector<float>{1, 0});
}

TEST_CASE("cat errors") {
  Tensor a = zeros({2, 3});
  CHECK_THROWS_WITH_AS(cat({}), "[cat] expected a non-empty list of tensors", Error);
  CHECK_THROWS_WITH_AS(cat({a, zeros({2, 4})}),
                       "[cat] sizes of tensors must match except in dim 0: expected size 3 but got size 4 for tensor 1 "
                       "(shapes [2, 3] and [2, 4])",
                       Error);
  CHECK_THROWS_WITH_AS(cat({a, zeros({2, 3, 1})}),
                       "[cat] tensors must have the same number of dims: got shapes [2, 3] and [2, 3, 1] (tensor 1)",
                       Error);
  CHECK_THROWS_WITH_AS(cat({a, scalar_tensor(1.0)}),
                       "[cat] zero-dimensional tensor (at position 1) cannot be concatenated", Error);
  CHECK_THROWS_WITH_AS(cat({a, Tensor()}), "[cat] tensor 1 in the list is undefined", Error);
  CHECK_THROWS_WITH_AS(cat({a, a}, 2), "[cat] dim 2 is out of range for a tensor with 2 dims (expected -2 to 1)",
                       Error);
}

TEST_CASE("cat gradients") {
  Tensor a = rnd({2, 3}), b = rnd({3, 2}).t(), c = rnd({2, 1});
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[2]}, 1); }, {a, b, c}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return cat({in[0], in[1]}, 0); }, {a, b}));
  // An input without grad, and a legacy empty one.
  Tensor k = randn({2, 2}, kFloat64);
  CHECK(gradcheck([k](const std::vector<Tensor>& in) { return cat({k, in[0], zeros({0}, kFloat64)}, -1); }, {a}));
  // Mixed dtypes: each gradient comes back in its input's dtype.
  Tensor f = ones({1, 2}).requires_grad_();
  Tensor d = ones({1, 2}, kFloat64).requires_grad_();
  Tensor legacy = zeros({0}).requires_grad_();
  Tensor out = cat({f, d, legacy});
  CHECK(out.dtype() == kFloat64);
  out.backward(tensor<double>({1, 2, 3, 4}, {2, 2}));
  CHECK(f.grad().dtype() == kFloat32);
  CHECK(f.grad().to_vector<float>() == std::vector<float>{1, 2});
  CHECK(d.grad().to_vector<double>() == std::vector<double>{3, 4});
  CHECK(legacy.grad().shape() == Shape{0});
}

TEST_CASE("stack: values, dims, gradients, errors") {
  Tensor a = arange(6, kFloat32).view({2, 3}), b = a + 10;
  Tensor s0 = stack({a, b});
  CHECK(s0.shape() == Shape{2, 2, 3});
  CHECK(s0.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15});
  Tensor s2 = stack({a, b}, -1);
  CHECK(s2.shape() == Shape{2, 3, 2});
  CHECK(s2.to_vector<float>() == std::vector<float>{0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15});
  CHECK(stack({a.t(), b.t()}, 1).to_vector<float>() ==
        std::vector<float>{0, 3, 10, 13, 1, 4, 11, 14, 2, 5, 12, 15});
  CHECK(stack({scalar_tensor(1.0), scalar_tensor(2.0)}).to_vector<float>() == std::vector<float>{1, 2});
  CHECK(stack({zeros({0}), zeros({0})}).shape() == Shape{2, 0});
  CHECK(stack({arange(2), ones({2})}).dtype() == kFloat32);
  Tensor x = rnd({2, 3}), y = rnd({3, 2}).t();
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return stack({in[0], in[1], in[0]}, 1); }, {x, y}));
  CHECK_THROWS_WITH_AS(stack({}), "[stack] expected a non-empty list of tensors", Error);
  CHECK_THROWS_WITH_AS(stack({zeros({2}), zeros({3})}),
                       "[stack] expects each tensor to be equal size, but got [2] at entry 0 and [3] at entry 1", Error);
  CHECK_THROWS_WITH_AS(stack({a, b}, 3), "[stack] dim 3 is out of range for a tensor with 3 dims (expected -3 to 2)",
                       Error);
}

// ---- split / chunk -------------------------------------------------------------------------

TEST_CASE("split and chunk: pieces are views") {
  Tensor x = arange(10, kFloat32).view({5, 2});
  auto p = split(x, 2);
  REQUIRE(p.size() == 3);
  CHECK(p[0].shape() == Shape{2, 2});
  CHECK(p[2].shape() == Shape{1, 2});
  CHECK(p[2].to_vector<float>() == std::vector<float>{8, 9});
  CHECK(p[1].storage() == x.storage());
  auto q = split(x, std::vector<int64_t>{1, 0, 4}, 0);
  REQUIRE(q.size() == 3);
  CHECK(q[1].shape() == Shape{0, 2});
  CHECK(q[2].to_vector<float>() == std::vector<float>{2, 3, 4, 5, 6, 7, 8, 9});
  auto cols = split(x, 1, -1);
  REQUIRE(cols.size() == 2);
  CHECK(cols[1].to_vector<float>() == std::vector<float>{1, 3, 5, 7, 9});
  CHECK(split(x, 7).size() == 1);
  CHECK(split(zeros({0, 3}), 2).size() == 1);
  CHECK(split(zeros({0, 3}), 0).size() == 1);
  // chunk: ceil(5 / 4) = 2 per piece -> 3 pieces; 10 chunks of 5 rows -> 5 pieces.
  auto c = chunk(x, 4);
  REQUIRE(c.size() == 3);
  CHECK(c[2].shape() == Shape{1, 2});
  CHECK(chunk(x, 10).size() == 5);
  CHECK(chunk(x, 2, 1)[1].to_vector<float>() == std::vector<float>{1, 3, 5, 7, 9});
  auto e = chunk(zeros({0, 3}), 3);
  REQUIRE(e.size() == 3);
  CHECK(e[2].shape() == Shape{0, 3});
}

TEST_CASE("split and chunk gradients and errors") {
  Tensor x = rnd({4, 5});
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return split(in[0], 2, 1)[2]; }, {x}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& in) {
        auto p = split(in[0].t(), std::vector<int64_t>{3, 2});
        return cat({p[1] * 2.0, p[0]});
      },
      {x}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return chunk(in[0], 3, 0)[1] * 3.0; }, {x}));
  Tensor y = zeros({5});
  CHECK_THROWS_WITH_AS(split(y, 0), "[split] split_size can only be 0 if dimension size is 0, but got dimension size of 5",
                       Error);
  CHECK_THROWS_WITH_AS(split(y, -1), "[split] split_size must be non-negative, got -1", Error);
  CHECK_THROWS_WITH_AS(split(y, std::vector<int64_t>{2, 2}),
                       "[split] split sizes [2, 2] must sum exactly to 5 (the size of dim 0), got 4", Error);
  CHECK_THROWS_WITH_AS(split(y, std::vector<int64_t>{6, -1}), "[split] split sizes must be non-negative, got [6, -1]",
                       Error);
  CHECK_THROWS_WITH_AS(split(scalar_tensor(1.0), 1), "[split] expects at least a 1-dimensional tensor", Error);
  CHECK_THROWS_WITH_AS(split(y, 1, 1), "[split] dim 1 is out of range for a tensor with 1 dims (expected -1 to 0)",
                       Error);
  CHECK_THROWS_WITH_AS(chunk(y, 0), "[chunk] chunks must be greater than 0, got 0", Error);
}

TEST_CASE("unbind: views, one node, gradients as the select composition") {
  Tensor x = rnd({3, 4, 2});
  auto u = unbind(x, 1);
  REQUIRE(u.size() == 4);
  CHECK(u[2].shape() == Shape{3, 2});
  CHECK(u[2].storage() == x.storage());
  CHECK(allclose(u[3], x.select(1, 3)));
  CHECK(unbind(x, -1).size() == 2);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return unbind(in[0], 1)[2] * 3.0; }, {x}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& in) {
        auto p = unbind(in[0].transpose(0, 2), 0);
        return p[0] * p[1];
      },
      {x}));
  // The single-node backward (stack of the slices' gradients, zeros for unused slices)
  // equals the per-slice select composition.
  Tensor a = rnd({2, 3, 5}).requires_grad_(), b = a.detach().clone().requires_grad_();
  Tensor w = rnd({2, 5});
  auto ua = unbind(a, 1);
  ((ua[0] * w).sum() + (ua[2] * ua[2]).sum()).backward();
  ((b.select(1, 0) * w).sum() + (b.select(1, 2) * b.select(1, 2)).sum()).backward();
  CHECK(allclose(a.grad(), b.grad(), 1e-12, 1e-12));
  // split: the one-node cat backward equals narrow's.
  Tensor c = rnd({7, 3}).requires_grad_(), d = c.detach().clone().requires_grad_();
  auto sc = split(c, 3);
  (sc[0].sum() * 2.0 + (sc[2] * sc[2]).sum()).backward();
  (d.narrow(0, 0, 3).sum() * 2.0 + (d.narrow(0, 6, 1) * d.narrow(0, 6, 1)).sum()).backward();
  CHECK(allclose(c.grad(), d.grad(), 1e-12, 1e-12));
  CHECK_THROWS_WITH_AS(unbind(scalar_tensor(1.0), 0), "[unbind] expects at least a 1-dimensional tensor", Error);
}

// ---- repeat --------------------------------------------------------------------------------

TEST_CASE("repeat: values") {
  Tensor x = tensor<float>({1, 2, 3, 4}, {2, 2});
  Tensor r = repeat(x, {2, 3});
  CHECK(r.shape() == Shape{4, 6});
  CHECK(r.to_vector<float>() == std::vector<float>{1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4,
                                                   1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4});
  // Extra leading dims, non-contiguous input, zero repeats, 0-d input, ints.
  Tensor r2 = repeat(x.t(), {2, 1, 1});
  CHECK(r2.shape() == Shape{2, 2, 2});
  CHECK(r2.to_vector<float>() == std::vector<float>{1, 3, 2, 4, 1, 3, 2, 4});
  CHECK(repeat(x, {0, 2}).shape() == Shape{0, 4});
  CHECK(repeat(scalar_tensor(5.0), {3}).to_vector<float>() == std::vector<float>{5, 5, 5});
  CHECK(repeat(scalar_tensor(5.0), {}).shape() == Shape{});
  CHECK(repeat(arange(2), {2}).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0, 1});
  CHECK(repeat(tensor<float>({7.f}).expand({3}), {2}).to_vector<float>() == std::vector<float>(6, 7.f));
  CHECK_THROWS_WITH_AS(repeat(x, {2}),
                       "[repeat] number of repeats (1) can not be smaller than the number of dims of the tensor (shape "
                       "[2, 2])",
                       Error);
  CHECK_THROWS_WITH_AS(repeat(x, {2, -1}), "[repeat] repeats must be non-negative, got [2, -1]", Error);
}

TEST_CASE("repeat gradients") {
  Tensor x = rnd({2, 3});
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return repeat(in[0], {2, 1, 3}); }, {x}));
  Tensor y = rnd({3, 2}).t();
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return repeat(in[0], {1, 2}); }, {y}));
}

// ---- index_select --------------------------------------------------------------------------

TEST_CASE("index_select: values") {
  Tensor x = arange(12, kFloat32).view({3, 4});
  CHECK(index_select(x, 0, longs({2, 0, 2})).to_vector<float>() ==
        std::vector<float>{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11});
  CHECK(index_select(x, 1, tensor<int32_t>({3, 1})).to_vector<float>() == std::vector<float>{3, 1, 7, 5, 11, 9});
  CHECK(index_select(x, -1, longs({3, 1})).shape() == Shape{3, 2});
  // Non-contiguous input and index, 0-d index, empty index, ints and bools.
  CHECK(index_select(x.t(), 0, longs({1})).to_vector<float>() == std::vector<float>{1, 5, 9});
  CHECK(index_select(x, 1, longs({0, 9, 2, 9}).slice(0, 0, std::nullopt, 2)).to_vector<float>() ==
        std::vector<float>{0, 2, 4, 6, 8, 10});
  CHECK(index_select(x, 1, scalar_tensor(2, kInt64)).shape() == Shape{3, 1});
  CHECK(index_select(x, 0, zeros({0}, kInt64)).shape() == Shape{0, 4});
  CHECK(index_select(scalar_tensor(5.0), 0, longs({0})).shape() == Shape{});
  CHECK(index_select(arange(5), 0, longs({4, 4})).to_vector<int64_t>() == std::vector<int64_t>{4, 4});
  CHECK(index_select(tensor<bool>({true, false}), 0, longs({1, 0})).to_vector<bool>() == std::vector<bool>{false, true});
  // 3-D, middle dim.
  Tensor z = arange(24, kFloat64).view({2, 3, 4});
  CHECK(index_select(z, 1, longs({2})).to_vector<double>() == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});
}

TEST_CASE("index_select gradients and errors") {
  Tensor x = rnd({4, 3});
  Tensor idx = longs({3, 0, 3, 1, 3});
  CHECK(gradcheck([idx](const std::vector<Tensor>& in) { return index_select(in[0], 0, idx); }, {x}));
  Tensor xt = rnd({3, 4}).t();
  Tensor idx2 = longs({2, 0, 2});
  CHECK(gradcheck([idx2](const std::vector<Tensor>& in) { return index_select(in[0], 1, idx2); }, {xt}));
  Tensor w = randn({5, 3}, kFloat64);
  CHECK(gradcheck(
      [idx, w](const std::vector<Tensor>& in) {
        return grad_of([idx](const Tensor& t) { return index_select(t, 0, idx) * index_select(t, 0, idx); }, in[0], w);
      },
      {x}));
  Tensor y = zeros({3, 5});
  CHECK_THROWS_WITH_AS(index_select(y, 1, longs({1, 7, 9})), "[index_select] index 7 is out of bounds for dim 1 with size 5",
                       Error);
  CHECK_THROWS_WITH_AS(index_select(y, 0, longs({-1})), "[index_select] index -1 is out of bounds for dim 0 with size 3",
                       Error);
  CHECK_THROWS_WITH_AS(index_select(y, 0, longs({0, 1}, {1, 2})),
                       "[index_select] index must be 0-d or 1-d, got shape [1, 2]", Error);
  CHECK_THROWS_WITH_AS(index_select(y, 0, tensor<float>({0.f})), "[index_select] index must be int64 or int32, got float32",
                       Error);
  CHECK_THROWS_WITH_AS(index_select(y, 2, longs({0})),
                       "[index_select] dim 2 is out of range for a tensor with 2 dims (expected -2 to 1)", Error);
  CHECK_THROWS_WITH_AS(index_select(scalar_tensor(1.0), 0, longs({0, 0})),
                       "[index_select] index into a 0-d tensor must have exactly one value, got 2", Error);
}

TEST_CASE("index_select_out: into views of a bigger buffer, as index_select; errors") {
  auto equal = [](const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && a.to_vector<double>() == b.to_vector<double>();
  };
  Generator gen(3);
  const Tensor x = randn({5, 3, 4, 6}, TensorOptions(kFloat32), &gen);
  const Tensor idx = longs({4, 0, 0, 2});
  // out: the first 4 rows and 3 of 8 positions of a buffer [6, 3, 8, 6] (strided in dims 0 and 2)
  const Tensor buffer = full({6, 3, 8, 6}, -7.0, TensorOptions(kFloat32));
  const Tensor view = buffer.narrow(0, 0, 4).narrow(2, 0, 4);
  const uint64_t version = buffer.version();
  const Tensor& r = index_select_out(view, x, 0, idx);
  CHECK(&r == &view);
  CHECK(buffer.version() > version);  // an in-place write
  CHECK(equal(view, index_select(x, 0, idx)));
  // nothing outside the view was touched
  CHECK(equal(buffer.narrow(2, 4, 4), full({6, 3, 4, 6}, -7.0, TensorOptions(kFloat32))));
  CHECK(equal(buffer.narrow(0, 4, 2), full({2, 3, 8, 6}, -7.0, TensorOptions(kFloat32))));
  // other dims, int32 and 0-d indices, short slices, a strided input
  const Tensor y = arange(24, kFloat64).view({2, 3, 4});
  Tensor o = empty({2, 2, 4}, kFloat64);
  index_select_out(o, y, 1, tensor<int32_t>({2, 0}));
  CHECK(equal(o, index_select(y, 1, longs({2, 0}))));
  Tensor o2 = zeros({4, 1}, kFloat64);
  index_select_out(o2, y.select(0, 1).t(), 1, scalar_tensor(1, kInt64));
  CHECK(equal(o2, index_select(y.select(0, 1).t(), 1, scalar_tensor(1, kInt64))));
  Tensor s = zeros({}, kFloat64);
  index_select_out(s, scalar_tensor(2.5, kFloat64), 0, longs({0}));
  CHECK(s.item<double>() == 2.5);
  index_select_out(empty({0, 3, 4, 6}, kFloat32), x, 0, zeros({0}, kInt64));  // nothing to write
  // errors
  CHECK_THROWS_WITH_AS(index_select_out(empty({3, 3, 4, 6}, kFloat32), x, 0, idx),
                       "[index_select_out] out must have shape [4, 3, 4, 6] (the input's with 4 rows along dim 0), got "
                       "[3, 3, 4, 6]",
                       Error);
  CHECK_THROWS_WITH_AS(index_select_out(empty({4, 3, 4, 6}, kFloat64), x, 0, idx),
                       "[index_select_out] out has dtype float64 but the input has float32", Error);
  CHECK_THROWS_WITH_AS(index_select_out(x.narrow(0, 1, 4), x, 0, idx),
                       "[index_select_out] out shares memory with the input; write into a tensor of its own", Error);
  CHECK_THROWS_WITH_AS(index_select_out(empty({4, 3, 4, 6}, kFloat32), x, 0, longs({4, 5, 0, 0})),
                       "[index_select_out] index 5 is out of bounds for dim 0 with size 5", Error);
  CHECK_THROWS_WITH_AS(index_select_out(Tensor(), x, 0, idx), "[index_select_out] argument 'out' is an undefined tensor", Error);
  // not differentiable
  const Tensor xg = randn({5, 2}, kFloat64).requires_grad_();
  CHECK_THROWS_WITH_AS(index_select_out(empty({1, 2}, kFloat64), xg, 0, longs({1})),
                       "[index_select_out] functions with out= arguments do not support autograd, but the input requires "
                       "grad; use index_select, or run under NoGradGuard",
                       Error);
  {
    NoGradGuard no_grad;
    Tensor o3 = empty({1, 2}, kFloat64);
    index_select_out(o3, xg, 0, longs({1}));
    CHECK(equal(o3, xg.detach().narrow(0, 1, 1)));
  }
}

// ---- gather / scatter_add ------------------------------------------------------------------

TEST_CASE("gather: values") {
  Tensor x = arange(12, kFloat32).view({3, 4});
  // dim 1: out[i][j] = x[i][idx[i][j]]
  Tensor g1 = gather(x, 1, longs({3, 0, 1, 1, 2, 3}, {3, 2}));
  CHECK(g1.to_vector<float>() == std::vector<float>{3, 0, 5, 5, 10, 11});
  // dim 0 with an index smaller than x: out[i][j] = x[idx[i][j]][j]
  Tensor g0 = gather(x, 0, tensor<int32_t>({2, 0, 1}, {1, 3}));
  CHECK(g0.to_vector<float>() == std::vector<float>{8, 1, 6});
  // Non-contiguous x and index (transposed), negative dim.
  Tensor xt = x.t();  // [4, 3]
  Tensor it = longs({0, 1, 2, 3, 0, 1}, {2, 3}).t();  // [3, 2]
  // out[i][j] = xt[it[i][j]][j] = 4 j + it[i][j], it = [[0, 3], [1, 0], [2, 1]]
  CHECK(gather(xt, -2, it).to_vector<float>() == std::vector<float>{0, 7, 1, 4, 2, 5});
  // Expanded index, 0-d, empty, 3-D middle dim, ints.
  CHECK(gather(x, 1, longs({2}).view({1, 1}).expand({3, 1})).to_vector<float>() == std::vector<float>{2, 6, 10});
  CHECK(gather(scalar_tensor(3.0), 0, scalar_tensor(0, kInt64)).item<double>() == 3.0);
  CHECK(gather(x, 1, zeros({3, 0}, kInt64)).shape() == Shape{3, 0});
  Tensor z = arange(24).view({2, 3, 4});
  CHECK(gather(z, 1, longs({2, 0, 1, 1}, {1, 1, 4})).to_vector<int64_t>() == std::vector<int64_t>{8, 1, 6, 7});
}

TEST_CASE("scatter_add: values") {
  Tensor x = zeros({2, 4});
  Tensor idx = longs({1, 1, 3, 0, 0, 2}, {2, 3});
  Tensor src = tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(scatter_add(x, 1, idx, src).to_vector<float>() == std::vector<float>{0, 3, 0, 3, 9, 0, 6, 0});
  // dim 0, duplicates accumulate; src larger than index; x unchanged (out of place).
  Tensor base = ones({3, 2});
  Tensor big = tensor<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  // (GCC 12.2 with -march=native miscompiles the literal {2, 2, 2, 0} here: SLP stores it as
  // a broadcast of 2.)
  Tensor r = scatter_add(base, 0, longs({2, 1, 2, 0}, {2, 2}), big);
  CHECK(r.to_vector<float>() == std::vector<float>{1, 5, 1, 3, 5, 1});
  CHECK(base.to_vector<float>() == std::vector<float>(6, 1.f));
  // Non-contiguous operands.
  Tensor xt = zeros({4, 2}).t();
  CHECK(scatter_add(xt, 1, idx, src.t().contiguous().t()).to_vector<float>() ==
        std::vector<float>{0, 3, 0, 3, 9, 0, 6, 0});
  CHECK(scatter_add(arange(3), 0, longs({2, 2}), longs({5, 6})).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 13});
  CHECK(scatter_add(x, 1, zeros({2, 0}, kInt64), src).to_vector<float>() == std::vector<float>(8, 0.f));
}

TEST_CASE("gather and scatter_add gradients") {
  Tensor x = rnd({3, 4});
  Tensor idx = longs({2, 0, 2, 1, 1, 1, 2, 0}, {2, 4});
  CHECK(gradcheck([idx](const std::vector<Tensor>& in) { return gather(in[0], 0, idx); }, {x}));
  Tensor xt = rnd({4, 3}).t();
  Tensor idx1 = longs({3, 3, 0, 1, 2, 2}, {3, 2});
  CHECK(gradcheck([idx1](const std::vector<Tensor>& in) { return gather(in[0], 1, idx1); }, {xt}));
  Tensor src = rnd({3, 5});
  CHECK(gradcheck([idx](const std::vector<Tensor>& in) { return scatter_add(in[0], 0, idx, in[1]); }, {x, src}));
  CHECK(gradcheck([idx1](const std::vector<Tensor>& in) { return scatter_add(in[0], 1, idx1, in[1]); },
                  {rnd({3, 4}), rnd({3, 3}).t()}));
  // Second derivative through gather <-> scatter_add.
  Tensor w = randn({3, 2}, kFloat64);
  CHECK(gradcheck(
      [idx1, w](const std::vector<Tensor>& in) {
        return grad_of([idx1](const Tensor& t) { return gather(t, 1, idx1) * gather(t, 1, idx1); }, in[0], w);
      },
      {xt}));
}

TEST_CASE("gather and scatter_add errors") {
  Tensor x = zeros({3, 5});
  CHECK_THROWS_WITH_AS(gather(x, 1, longs({0, 7, 9, 1}, {2, 2})), "[gather] index 7 is out of bounds for dim 1 with size 5",
                       Error);
  CHECK_THROWS_WITH_AS(gather(x, 0, longs({0, -2}, {1, 2})), "[gather] index -2 is out of bounds for dim 0 with size 3",
                       Error);
  CHECK_THROWS_WITH_AS(gather(x, 1, zeros({4, 2}, kInt64)),
                       "[gather] index shape [4, 2] must not exceed the input shape [3, 5] outside dim 1", Error);
  CHECK_THROWS_WITH_AS(gather(x, 1, zeros({2}, kInt64)),
                       "[gather] index must have as many dims as the input, got index shape [2] and input shape [3, 5]",
                       Error);
  CHECK_THROWS_WITH_AS(gather(x, 1, zeros({1, 1}, kUInt8)), "[gather] index must be int64 or int32, got uint8", Error);
  CHECK_THROWS_WITH_AS(scatter_add(x, 1, longs({5}, {1, 1}), ones({1, 1})),
                       "[scatter_add] index 5 is out of bounds for dim 1 with size 5", Error);
  CHECK_THROWS_WITH_AS(scatter_add(x, 1, zeros({2, 2}, kInt64), ones({1, 1})),
                       "[scatter_add] index shape [2, 2] must not exceed the src shape [1, 1], nor the input shape [3, 5] "
                       "outside dim 1",
                       Error);
  CHECK_THROWS_WITH_AS(scatter_add(x, 1, zeros({1, 1}, kInt64), ones({1, 1}, kFloat64)),
                       "[scatter_add] src dtype float64 does not match input dtype float32", Error);
  CHECK_THROWS_WITH_AS(scatter_add(x, 0, zeros({1}, kInt64), ones({1})),
                       "[scatter_add] index and src must have as many dims as the input, got input shape [3, 5], index "
                       "shape [1], src shape [1]",
                       Error);
}

// ---- take_along_dim ------------------------------------------------------------------------

TEST_CASE("take_along_dim: values, broadcasting, gradients") {
  Tensor x = tensor<float>({10, 30, 20, 5, 4, 6}, {2, 3});
  // Top-1 per row (indices [2, 1] broadcast against nothing).
  CHECK(take_along_dim(x, longs({1, 2}, {2, 1}), 1).to_vector<float>() == std::vector<float>{30, 6});
  // indices [1, 2] broadcast over the rows of x.
  CHECK(take_along_dim(x, longs({0, 2}, {1, 2}), 1).to_vector<float>() == std::vector<float>{10, 20, 5, 6});
  // x [1, 3] broadcast over indices' rows.
  Tensor row = tensor<float>({7, 8, 9}, {1, 3});
  CHECK(take_along_dim(row, longs({2, 0, 1, 1}, {2, 2}), 1).to_vector<float>() == std::vector<float>{9, 7, 8, 8});
  CHECK(take_along_dim(x, longs({1, 0, 1}, {1, 3}), -2).to_vector<float>() == std::vector<float>{5, 30, 6});
  Tensor a = rnd({3, 4});
  Tensor idx = longs({3, 0, 1, 1, 2, 2}, {3, 2});
  CHECK(gradcheck([idx](const std::vector<Tensor>& in) { return take_along_dim(in[0], idx, 1); }, {a}));
  Tensor bi = longs({3, 0}, {1, 2});
  CHECK(gradcheck([bi](const std::vector<Tensor>& in) { return take_along_dim(in[0].t(), bi, 1); }, {rnd({4, 2})}));
  CHECK_THROWS_WITH_AS(take_along_dim(x, longs({0, 1}), 1),
                       "[take_along_dim] input and indices must have the same number of dims, got input shape [2, 3] and "
                       "indices shape [2]",
                       Error);
  CHECK_THROWS_WITH_AS(take_along_dim(x, longs({3}, {1, 1}), 1),
                       "[gather] index 3 is out of bounds for dim 1 with size 3", Error);
}

TEST_CASE("take_along_dim gradients with a broadcast input") {
  Tensor idx = longs({2, 0, 1, 1, 0, 0}, {3, 2});
  CHECK(gradcheck([idx](const std::vector<Tensor>& in) { return take_along_dim(in[0], idx, 1); }, {rnd({1, 4})}));
}

// ---- tril / triu ---------------------------------------------------------------------------

TEST_CASE("tril and triu: values") {
  Tensor x = arange(1, 13, 1, kFloat32).view({3, 4});
  CHECK(tril(x).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0});
  CHECK(triu(x).to_vector<float>() == std::vector<float>{1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12});
  CHECK(tril(x, 1).to_vector<float>() == std::vector<float>{1, 2, 0, 0, 5, 6, 7, 0, 9, 10, 11, 12});
  CHECK(tril(x, -1).to_vector<float>() == std::vector<float>{0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0});
  CHECK(triu(x, 2).to_vector<float>() == std::vector<float>{0, 0, 3, 4, 0, 0, 0, 8, 0, 0, 0, 0});
  CHECK(triu(x, -1).to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12});
  CHECK(tril(x, -5).to_vector<float>() == std::vector<float>(12, 0.f));
  CHECK(triu(x, -5).to_vector<float>() == x.to_vector<float>());
  CHECK(tril(x, 9).to_vector<float>() == x.to_vector<float>());
  // Batched and non-contiguous (transposed last two dims), ints and bools, empty.
  Tensor b = arange(8).view({2, 2, 2});
  CHECK(tril(b).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 2, 3, 4, 0, 6, 7});
  CHECK(triu(b.transpose(1, 2)).to_vector<int64_t>() == std::vector<int64_t>{0, 2, 0, 3, 4, 6, 0, 7});
  CHECK(triu(b.transpose(0, 2)).to_vector<int64_t>() == std::vector<int64_t>{0, 4, 0, 6, 1, 5, 0, 7});
  CHECK(tril(ones({2, 2}, kBool)).to_vector<bool>() == std::vector<bool>{true, false, true, true});
  CHECK(tril(zeros({2, 0, 3})).shape() == Shape{2, 0, 3});
  CHECK_THROWS_WITH_AS(tril(zeros({3})), "[tril] expects a tensor with at least 2 dims, got shape [3]", Error);
  CHECK_THROWS_WITH_AS(triu(scalar_tensor(1.0)), "[triu] expects a tensor with at least 2 dims, got shape []", Error);
}

TEST_CASE("tril and triu gradients") {
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return tril(in[0], -1); }, {rnd({2, 3, 4})}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return triu(in[0], 1); }, {rnd({4, 3}).t()}));
}

// ---- one_hot -------------------------------------------------------------------------------

TEST_CASE("one_hot") {
  Tensor o = one_hot(longs({0, 2, 1, 2}, {2, 2}));
  CHECK(o.dtype() == kInt64);
  CHECK(o.shape() == Shape{2, 2, 3});
  CHECK(o.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1});
  CHECK(one_hot(tensor<int32_t>({1}), 4).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 0, 0});
  CHECK(one_hot(longs({2, 9, 0, 9}).slice(0, 0, std::nullopt, 2)).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 0, 1, 1, 0, 0});
  CHECK(one_hot(scalar_tensor(1, kInt64), 2).shape() == Shape{2});
  CHECK(one_hot(zeros({0}, kInt64), 3).shape() == Shape{0, 3});
  CHECK_THROWS_WITH_AS(one_hot(longs({1, -1})), "[one_hot] class values must be non-negative, got -1", Error);
  CHECK_THROWS_WITH_AS(one_hot(longs({1, 3, 4}), 3), "[one_hot] class value 3 is out of range for num_classes 3", Error);
  CHECK_THROWS_WITH_AS(one_hot(zeros({0}, kInt64)), "[one_hot] can not infer the number of classes from an empty tensor",
                       Error);
  CHECK_THROWS_WITH_AS(one_hot(zeros({1})), "[one_hot] indices must be int64 or int32, got float32", Error);
  CHECK_THROWS_WITH_AS(one_hot(longs({0}), -2), "[one_hot] num_classes must be -1 or non-negative, got -2", Error);
}

// ---- embedding -----------------------------------------------------------------------------

TEST_CASE("embedding: values and gradient with padding") {
  Tensor w = arange(8, kFloat32).view({4, 2}).requires_grad_();
  Tensor idx = longs({3, 0, 3, 2, 1, 3}, {2, 3});
  Tensor e = embedding(w, idx);
  CHECK(e.shape() == Shape{2, 3, 2});
  CHECK(e.to_vector<float>() == std::vector<float>{6, 7, 0, 1, 6, 7, 4, 5, 2, 3, 6, 7});
  Tensor g = arange(12, kFloat32).view({2, 3, 2});
  e.backward(g);
  // Row 3 is hit at positions 0, 2, 5: rows of g 0+2+5 -> (0+4+10, 1+5+11).
  CHECK(w.grad().to_vector<float>() == std::vector<float>{2, 3, 8, 9, 6, 7, 14, 17});
  // padding_idx: no gradient for that row, forward unchanged; negative wraps.
  for (int64_t pad : {3, -1}) {
    Tensor w2 = arange(8, kFloat32).view({4, 2}).requires_grad_();
    Tensor e2 = embedding(w2, idx, pad);
    CHECK(e2.to_vector<float>() == e.to_vector<float>());
    e2.backward(g);
    CHECK(w2.grad().to_vector<float>() == std::vector<float>{2, 3, 8, 9, 6, 7, 0, 0});
  }
  // int32 indices, 0-d index, non-contiguous weight and indices.
  CHECK(embedding(w.detach(), tensor<int32_t>({1})).to_vector<float>() == std::vector<float>{2, 3});
  CHECK(embedding(w.detach(), scalar_tensor(2, kInt64)).shape() == Shape{2});
  Tensor wt = arange(8, kFloat32).view({2, 4}).t();  // [4, 2]
  CHECK(embedding(wt, idx.t()).to_vector<float>() == std::vector<float>{3, 7, 2, 6, 0, 4, 1, 5, 3, 7, 3, 7});
  CHECK(embedding(w.detach(), zeros({0, 2}, kInt64)).shape() == Shape{0, 2, 2});
}

TEST_CASE("embedding gradients and errors") {
  Tensor idx = longs({1, 0, 4, 1, 1, 2}, {3, 2});
  CHECK(gradcheck([idx](const std::vector<Tensor>& in) { return embedding(in[0], idx); }, {rnd({5, 3})}));
  // With padding_idx the padding row is read but gets no gradient, so gradcheck sees the
  // output with the padding positions masked out (the analytical side must then give 0).
  Tensor keep = ne(idx, Scalar(1)).unsqueeze(-1).to(kFloat64);
  CHECK(gradcheck([idx, keep](const std::vector<Tensor>& in) { return embedding(in[0], idx, 1) * keep; },
                  {rnd({3, 5}).t()}));
  CHECK(gradcheck([idx, keep](const std::vector<Tensor>& in) { return embedding(in[0], idx.t(), -4) * keep.transpose(0, 1); },
                  {rnd({5, 2})}));
  CHECK_FALSE(gradcheck([idx](const std::vector<Tensor>& in) { return embedding(in[0], idx, 1); }, {rnd({5, 3})},
                        GradcheckOptions{.raise = false}));
  Tensor wv = randn({3, 2, 3}, kFloat64);
  CHECK(gradcheck(
      [idx, wv](const std::vector<Tensor>& in) {
        return grad_of([idx](const Tensor& t) { return embedding(t, idx, 1) * embedding(t, idx, 1); }, in[0], wv);
      },
      {rnd({5, 3})}));
  Tensor w = zeros({5, 3});
  CHECK_THROWS_WITH_AS(embedding(w, longs({0, 5, 6})), "[embedding] index 5 is out of bounds for dim 0 with size 5",
                       Error);
  CHECK_THROWS_WITH_AS(embedding(w, longs({-1})), "[embedding] index -1 is out of bounds for dim 0 with size 5", Error);
  CHECK_THROWS_WITH_AS(embedding(w, longs({0}), 5), "[embedding] padding_idx 5 must be within num_embeddings 5", Error);
  CHECK_THROWS_WITH_AS(embedding(w, longs({0}), -6), "[embedding] padding_idx -6 must be within num_embeddings 5",
                       Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({5}), longs({0})),
                       "[embedding] weight must be 2-D [num_embeddings, embedding_dim], got shape [5]", Error);
  CHECK_THROWS_WITH_AS(embedding(w, zeros({1})), "[embedding] indices must be int64 or int32, got float32", Error);
}

// ---- large inputs: threaded kernels ---------------------------------------------------------

TEST_CASE("large inputs: threaded kernels match serial references") {
  manual_seed(3);
  // Embedding backward with many repeated indices (index_add split over columns).
  const int64_t n = 40000, num = 50, dim = 8;
  Tensor idx = randint(0, num, {n});
  Tensor w = randn({num, dim}, kFloat64).requires_grad_();
  Tensor g = randn({n, dim}, kFloat64);
  embedding(w, idx).backward(g);
  std::vector<double> ref(num * dim, 0.0);
  auto iv = idx.to_vector<int64_t>();
  auto gv = g.to_vector<double>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < dim; ++j) ref[iv[i] * dim + j] += gv[i * dim + j];
  CHECK(allclose(w.grad(), tensor<double>(ref, {num, dim}), 1e-10, 1e-10));
  // scatter_add over many lines, gather back.
  Tensor src = randn({3, n}, kFloat64);
  Tensor sidx = randint(0, 7, {3, n});
  Tensor s = scatter_add(zeros({3, 7}, kFloat64), 1, sidx, src);
  std::vector<double> sref(21, 0.0);
  auto siv = sidx.to_vector<int64_t>();
  auto sv = src.to_vector<double>();
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = 0; i < n; ++i) sref[r * 7 + siv[r * n + i]] += sv[r * n + i];
  CHECK(allclose(s, tensor<double>(sref, {3, 7}), 1e-10, 1e-10));
  Tensor gth = gather(s, 1, sidx);
  auto gthv = gth.to_vector<double>();
  bool ok = true;
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = 0; i < n; ++i) ok = ok && gthv[r * n + i] == sref[r * 7 + siv[r * n + i]];
  CHECK(ok);
  // The first bad index (in row-major order) is reported even when a later thread also
  // finds one.
  std::vector<int64_t> bad(100000, 1);
  bad[40000] = 12;
  bad[70000] = 13;
  bad[99999] = -4;
  CHECK_THROWS_WITH_AS(index_select(zeros({10}), 0, longs(bad)),
                       "[index_select] index 12 is out of bounds for dim 0 with size 10", Error);
  // tril over many rows; index_select of long rows.
  Tensor big = randn({300, 300});
  Tensor tl = tril(big, 1);
  auto bv = big.to_vector<float>(), tv = tl.to_vector<float>();
  bool tri_ok = true;
  for (int64_t i = 0; i < 300; ++i)
    for (int64_t j = 0; j < 300; ++j) tri_ok = tri_ok && tv[i * 300 + j] == (j <= i + 1 ? bv[i * 300 + j] : 0.f);
  CHECK(tri_ok);
  Tensor rows = index_select(big.t(), 0, longs({299, 0, 7}));
  CHECK(allclose(rows, stack({big.select(1, 299), big.select(1, 0), big.select(1, 7)})));
  // Long slices (copied row by row): contiguous rows, and a middle dim with outer dims.
  Tensor table = randn({10, 70});
  Tensor er = embedding(table, longs({9, 0, 9}, {3, 1}));
  CHECK(allclose(er, stack({table[9], table[0], table[9]}).unsqueeze(1)));
  Tensor cube = randn({3, 5, 80});
  Tensor mid = index_select(cube, 1, longs({4, 4, 1}));
  CHECK(allclose(mid, stack({cube.select(1, 4), cube.select(1, 4), cube.select(1, 1)}, 1)));
  CHECK(allclose(index_select(cube.transpose(0, 2), 2, longs({2, 0})),
                 stack({cube[2], cube[0]}).permute({2, 1, 0})));
}

}  // TEST_SUITE
