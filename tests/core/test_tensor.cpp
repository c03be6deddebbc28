#include "test_util.h"

using namespace focus;
using focus::testing::allclose;

TEST_SUITE("core") {

TEST_CASE("creation: zeros ones full arange eye linspace") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.dtype() == kFloat32);
  CHECK(z.to_vector<float>() == std::vector<float>(6, 0.f));
  CHECK(ones({2}, kFloat64).to_vector<double>() == std::vector<double>{1, 1});
  CHECK(full({2}, 7).dtype() == kInt64);
  CHECK(full({2}, 2.5).to_vector<float>() == std::vector<float>{2.5f, 2.5f});
  CHECK(arange(5).dtype() == kInt64);
  CHECK(arange(5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(0, 1, 0.25).to_vector<float>() == std::vector<float>{0, 0.25f, 0.5f, 0.75f});
  CHECK(eye(3).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1});
  CHECK(eye(2, 3).shape() == Shape{2, 3});
  CHECK(linspace(0, 1, 5).to_vector<float>() == std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1});
  CHECK(linspace(0, 1, 0).numel() == 0);
  CHECK(tensor({1.f, 2.f, 3.f, 4.f}, {2, 2}).shape() == Shape{2, 2});
  CHECK(tensor<bool>({true, false}).dtype() == kBool);
}

TEST_CASE("creation errors") {
  CHECK_THROWS_WITH_AS(zeros({2, -1}), "[empty] negative size in shape [2, -1]", Error);
  CHECK_THROWS_WITH_AS(tensor({1.f, 2.f}, {3}), "[tensor] 2 values do not fill shape [3] (3 elements)", Error);
  CHECK_THROWS_WITH_AS(arange(0, 1, 0), "[arange] step must be nonzero", Error);
  CHECK_THROWS_WITH_AS(zeros({int64_t{1} << 40, int64_t{1} << 40}),
                       "[empty] shape [1099511627776, 1099511627776] is too large: its element count or strides "
                       "overflow int64",
                       Error);
  // No elements, but the contiguous strides (products of max(size, 1)) overflow: PyTorch's
  // "Stride calculation overflowed"; once undefined behaviour here.
  const int64_t big = int64_t{1} << 32;
  CHECK_THROWS_WITH_AS(empty({big, 0, big}), doctest::Contains("[empty] shape [4294967296, 0, 4294967296] is too large"),
                       Error);
  CHECK_THROWS_WITH_AS(zeros({0}).view({big, 0, big}), doctest::Contains("[view] shape [4294967296, 0, 4294967296]"),
                       Error);
  CHECK_THROWS_WITH_AS(zeros({0}).reshape({big, -1, big}), doctest::Contains("is too large"), Error);
  CHECK_THROWS_AS(zeros({1, 1}).expand({big, big, 2}), Error);
  CHECK(empty({big, 0, big / 4}).numel() == 0);  // strides up to 2^62 fit
  const Tensor wide = empty({int64_t{1} << 62, 0});
  CHECK_THROWS_WITH_AS(cat({wide, wide}, 0), doctest::Contains("[cat] the sizes in dim 0 add up past int64"), Error);
  CHECK_THROWS_WITH_AS(repeat(wide, {2, 1}), doctest::Contains("[repeat]"), Error);
  CHECK_THROWS_WITH_AS(randint(3, 3, {2}), "[randint] expected low < high, got low=3 high=3", Error);
}

TEST_CASE("random ops are reproducible under manual_seed") {
  manual_seed(42);
  Tensor a = randn({1000});
  Tensor u = rand({1000});
  manual_seed(42);
  Tensor b = randn({1000});
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  auto v = a.to_vector<double>();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= v.size();
  for (double x : v) s += (x - m) * (x - m);
  s = std::sqrt(s / v.size());
  CHECK(std::abs(m) < 0.1);
  CHECK(std::abs(s - 1) < 0.1);
  for (double x : u.to_vector<double>()) {
    CHECK(x >= 0);
    CHECK(x < 1);
  }
  Tensor r = randint(-3, 4, {500});
  for (int64_t x : r.to_vector<int64_t>()) {
    CHECK(x >= -3);
    CHECK(x < 4);
  }
  Tensor p = randperm(10);
  auto pv = p.to_vector<int64_t>();
  std::sort(pv.begin(), pv.end());
  CHECK(pv == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("views share storage") {
  Tensor x = arange(24, kFloat32).view({2, 3, 4});
  CHECK(x.shape() == Shape{2, 3, 4});
  CHECK(x.strides() == Shape{12, 4, 1});
  Tensor t = x.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK_FALSE(t.is_contiguous());
  CHECK(t.contiguous().is_contiguous());
  CHECK(x.permute({2, 0, 1}).shape() == Shape{4, 2, 3});
  CHECK(x.select(1, 2).to_vector<float>() == std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23});
  CHECK(x.narrow(2, 1, 2).to_vector<float>() ==
        std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});
  CHECK(x.slice(2, 0, std::nullopt, 2).to_vector<float>() ==
        std::vector<float>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22});
  CHECK(x.slice(0, -1).shape() == Shape{1, 3, 4});
  CHECK(x.unsqueeze(0).shape() == Shape{1, 2, 3, 4});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
  CHECK(x.unsqueeze(0).squeeze().shape() == Shape{2, 3, 4});
  CHECK(x.flatten().shape() == Shape{24});
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.unflatten(2, {2, -1}).shape() == Shape{2, 3, 2, 2});
  CHECK(x.view({-1, 4}).shape() == Shape{6, 4});
  Tensor e = arange(3, kFloat32).view({3, 1}).expand({2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(e.to_vector<float>()[5] == 1.f);
  // a view writes through
  x.select(0, 0).select(0, 0).fill_(-1);
  CHECK(x.to_vector<float>()[3] == -1.f);
  // reshape of a non-contiguous tensor copies
  Tensor r = t.reshape({24});
  CHECK(r.to_vector<float>()[1] == 12.f);
  CHECK(x[1][2].to_vector<float>() == std::vector<float>{20, 21, 22, 23});
}

TEST_CASE("view errors") {
  Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(x.view({4, 2}), "[view] shape [4, 2] is invalid for input of size 6", Error);
  CHECK_THROWS_WITH_AS(x.view({-1, -1}), "[view] only one dimension can be inferred (-1) in shape [-1, -1]", Error);
  CHECK_THROWS_WITH_AS(x.t().view({6}),
                       "[view] view size [6] is not compatible with input size [3, 2] and strides [1, 3] (at least one "
                       "dimension spans across two contiguous subspaces); use reshape instead",
                       Error);
  CHECK_THROWS_WITH_AS(x.transpose(0, 2), "[transpose] dim 2 is out of range for a tensor with 2 dims (expected -2 to 1)",
                       Error);
  CHECK_THROWS_WITH_AS(x.select(0, 2), "[select] index 2 is out of range for dim 0 of size 2", Error);
  CHECK_THROWS_WITH_AS(x.narrow(1, 2, 2), "[narrow] start (2) + length (2) exceeds dim 1 of size 3", Error);
  CHECK_THROWS_WITH_AS(x.expand({3, 3}),
                       "[expand] the expanded size 3 must match the existing size 2 at non-singleton dim 0: [2, 3] -> [3, 3]",
                       Error);
  CHECK_THROWS_WITH_AS(x.permute({0, 0}), "[permute] dim 0 repeats in [0, 0]", Error);
  CHECK_THROWS_WITH_AS(Tensor().dim(), "[tensor] use of an undefined tensor", Error);
  CHECK_THROWS_WITH_AS(x.item<float>(), "[item] a tensor with 6 elements cannot be converted to a scalar (shape [2, 3])",
                       Error);
  CHECK_THROWS_WITH_AS(x.data_ptr<double>(), "[data_ptr] tensor has dtype float32, requested float64", Error);
}

TEST_CASE("dtype conversion, copy_, clone, item") {
  Tensor x = tensor({1.5f, -2.5f, 3.0f});
  CHECK(x.to(kInt64).to_vector<int64_t>() == std::vector<int64_t>{1, -2, 3});
  CHECK(x.to(kBool).to_vector<bool>() == std::vector<bool>{true, true, true});
  CHECK(x.to(kFloat64).dtype() == kFloat64);
  Tensor y = zeros({2, 3});
  y.copy_(tensor({1.f, 2.f, 3.f}));  // broadcast
  CHECK(y.to_vector<float>() == std::vector<float>{1, 2, 3, 1, 2, 3});
  Tensor c = y.clone();
  c.fill_(0);
  CHECK(y.to_vector<float>()[0] == 1.f);
  CHECK(scalar_tensor(3.5).item<double>() == 3.5);
  CHECK(x[1].item<float>() == -2.5f);
}

TEST_CASE("type promotion") {
  Tensor i = tensor<int64_t>({1, 2});
  Tensor f = tensor({1.f, 2.f});
  Tensor d = tensor({1.0, 2.0});
  CHECK((i + f).dtype() == kFloat32);
  CHECK((f + d).dtype() == kFloat64);
  CHECK((i + 1).dtype() == kInt64);
  CHECK((i + 1.5).dtype() == kFloat32);
  CHECK((f + 1.5).dtype() == kFloat32);
  CHECK((f + scalar_tensor(1.0, kFloat64)).dtype() == kFloat32);  // 0-d of same category does not promote
  CHECK((i + scalar_tensor(1.0, kFloat64)).dtype() == kFloat64);  // 0-d of higher category does
  CHECK((i / i).dtype() == kFloat32);
  CHECK(eq(i, f).dtype() == kBool);
  CHECK(promote_types(kUInt8, kInt32) == kInt32);
  CHECK(promote_types(kBool, kUInt8) == kUInt8);
}

TEST_CASE("printing") {
  Tensor x = tensor({1.f, 2.f, 3.f, 4.f}, {2, 2});
  CHECK(fmt::format("{}", x) == "tensor([[1., 2.],\n        [3., 4.]], shape=[2, 2], dtype=float32, device=cpu)");
  Tensor y = tensor({0.5, -1.25});
  CHECK(fmt::format("{}", y) == "tensor([ 0.5000, -1.2500], shape=[2], dtype=float64, device=cpu)");
  CHECK(fmt::format("{}", tensor<int64_t>({3, 10})) == "tensor([ 3, 10], shape=[2], dtype=int64, device=cpu)");
  CHECK(fmt::format("{}", scalar_tensor(true)) == "tensor(True, shape=[], dtype=bool, device=cpu)");
  Tensor big = arange(2000, kFloat32);
  std::string s = fmt::format("{}", big);
  CHECK(s.find("...") != std::string::npos);
  CHECK(s.size() < 200);
  Tensor w = ones({2}).requires_grad_();
  CHECK(fmt::format("{}", w) == "tensor([1., 1.], shape=[2], dtype=float32, device=cpu, requires_grad=True)");
  CHECK(fmt::format("{}", w * 2) == "tensor([2., 2.], shape=[2], dtype=float32, device=cpu, grad_fn=<MulBackward1>)");
  CHECK(fmt::format("{}", Tensor()) == "Tensor(undefined)");
}

TEST_CASE("devices") {
  CHECK(Device("cpu") == kCPU);
  CHECK(Device("cuda:1").index == 1);
  CHECK_THROWS_WITH_AS(Device("tpu"), "[device] expected 'cpu', 'cuda' or 'cuda:N', got 'tpu'", Error);
  if (!cuda::is_available())
    CHECK_THROWS_WITH_AS(zeros({2}).to(Device("cuda")), doctest::Contains("[to] cannot use device cuda:0: "), Error);
}

}
