// Backend::kNCCL smoke test: collectives on CUDA tensors through NCCL, and a CPU tensor of
// the same group through MPI. Runs only where focus has NCCL and every rank has a GPU of
// its own (one NCCL rank per GPU: tools/gpu-check runs it with `mpirun -np 1`, or as a plain
// process, one rank, where the machine has no mpirun); elsewhere it says why it skips. The group is switched to NCCL for the test and back to MPI after,
// so that the test cases after it find the group main.cpp set up.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <string>

#include "core/creation.h"
#include "core/cuda.h"
#include "distributed/distributed.h"
#include "test_util.h"

namespace dist = focus::distributed;
using namespace focus;
using focus::testing::allclose;

namespace {

// Rank r's tensor: values r * 10 + i (i the flat index), in dtype, on the CPU.
Tensor nccl_rank_values(int r, const Shape& shape, DType dtype) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return (arange(0.0, static_cast<double>(n)) + r * 10.0).reshape(shape).to(dtype);
}

// Why this rank cannot run the NCCL test (empty: it can).
std::string nccl_skip_reason() {
  if (!dist::is_nccl_available())
    return "this focus has no NCCL (a CPU build, or a CUDA build that found no NCCL)";
  if (!cuda::is_available()) return "no CUDA device is visible";
  const int local = dist::get_local_world_size();
  if (local > cuda::device_count())
    return fmt::format("{} ranks on this machine but {} GPU(s): NCCL needs one GPU per rank (run with mpirun -np {})",
                       local, cuda::device_count(), cuda::device_count());
  return "";
}

// Puts the default group back to Backend::kMPI when the test ends, however it ends.
struct RestoreMpiGroup {
  ~RestoreMpiGroup() {
    try {
      if (dist::is_initialized()) dist::destroy_process_group();
      dist::init_process_group(dist::Backend::kMPI);
    } catch (const std::exception& e) {
      FAIL_CHECK("could not restore the MPI process group: " << e.what());
    }
  }
};

}  // namespace

TEST_SUITE("distributed") {
  TEST_CASE("nccl smoke: all_reduce, broadcast, all_gather, reduce_scatter on CUDA tensors") {
    // Every rank skips or none does (a rank alone in NCCL's setup would wait forever).
    const std::string why = nccl_skip_reason();
    Tensor can = tensor<int32_t>({why.empty() ? 1 : 0});
    dist::all_reduce(can, dist::ReduceOp::MIN);
    if (can.item<int32_t>() == 0) {
      MESSAGE(fmt::format("NCCL smoke test skipped on rank {}: {}", dist::get_rank(),
                          why.empty() ? std::string("another rank cannot run it") : why));
      return;
    }
    const int r = dist::get_rank();
    const int w = dist::get_world_size();
    const Device gpu = Device::cuda(dist::get_local_rank() % cuda::device_count());
    const Shape shape{3, 5};
    const Tensor sum_expect = (arange(0.0, 15.0).reshape(shape) * w + 10.0 * w * (w - 1) / 2).to(kFloat64);

    RestoreMpiGroup restore;
    dist::destroy_process_group();
    dist::init_process_group(dist::Backend::kNCCL);
    REQUIRE(dist::get_backend() == dist::Backend::kNCCL);
    CHECK(dist::get_rank() == r);
    CHECK(dist::get_world_size() == w);
    MESSAGE(fmt::format("NCCL group of {} rank(s); rank {} on {} ({})", w, r, gpu, cuda::get_device_name(gpu.index)));

    for (DType dt : {kFloat32, kBFloat16}) {
      CAPTURE(dtype_name(dt));
      const double tol = dt == kBFloat16 ? 1e-2 : 1e-6;
      Tensor s = nccl_rank_values(r, shape, dt).to(gpu);
      dist::all_reduce(s, dist::ReduceOp::SUM);
      CHECK(s.device() == gpu);
      CHECK(allclose(s.cpu().to(kFloat64), sum_expect, tol, 0));
      Tensor a = nccl_rank_values(r, shape, dt).to(gpu);
      dist::all_reduce(a, dist::ReduceOp::AVG);
      CHECK(allclose(a.cpu().to(kFloat64), sum_expect / w, tol, 0));
      Tensor mx = nccl_rank_values(r, shape, dt).to(gpu);
      dist::all_reduce(mx, dist::ReduceOp::MAX);
      CHECK(allclose(mx.cpu().to(kFloat64), nccl_rank_values(w - 1, shape, kFloat64), 0, 0));
    }

    // broadcast from the last rank
    Tensor b = nccl_rank_values(r, shape, kFloat32).to(gpu);
    dist::broadcast(b, w - 1);
    CHECK(allclose(b.cpu().to(kFloat64), nccl_rank_values(w - 1, shape, kFloat64), 0, 0));
    // int64 and bool (as uint8: max is or)
    Tensor i = nccl_rank_values(r, {4}, kInt64).to(gpu);
    dist::all_reduce(i, dist::ReduceOp::SUM);
    CHECK(allclose(i.cpu().to(kFloat64), (arange(0.0, 4.0) * w + 10.0 * w * (w - 1) / 2).to(kFloat64), 0, 0));
    Tensor flag = tensor<bool>({r == 0, false}).to(gpu);
    dist::all_reduce(flag, dist::ReduceOp::MAX);
    CHECK(flag.cpu().to_vector<bool>() == std::vector<bool>{true, false});
    CHECK_THROWS_WITH_AS(dist::all_reduce(flag, dist::ReduceOp::SUM), doctest::Contains("bool"), Error);

    // all_gather_into_tensor and reduce_scatter_tensor
    Tensor in = nccl_rank_values(r, {2}, kFloat32).to(gpu);
    Tensor gathered = zeros({2 * w}, TensorOptions(kFloat32).device(gpu));
    dist::all_gather_into_tensor(gathered, in);
    std::vector<float> g_expect;
    for (int k = 0; k < w; ++k) g_expect.insert(g_expect.end(), {k * 10.0f, k * 10.0f + 1.0f});
    CHECK(gathered.cpu().to_vector<float>() == g_expect);
    Tensor scatter_in = (arange(0.0, static_cast<double>(2 * w)) + r).to(kFloat32).to(gpu);
    Tensor scattered = zeros({2}, TensorOptions(kFloat32).device(gpu));
    dist::reduce_scatter_tensor(scattered, scatter_in, dist::ReduceOp::SUM);
    // sum over ranks q of (2r' + j + q) for this rank's block r' = r
    const float base = static_cast<float>(w * (w - 1) / 2);
    CHECK(scattered.cpu().to_vector<float>() ==
          std::vector<float>{2.0f * r * w + base, (2.0f * r + 1.0f) * w + base});

    // empty tensors: nothing to send, no error
    Tensor e = zeros({0}, TensorOptions(kFloat32).device(gpu));
    CHECK_NOTHROW(dist::all_reduce(e, dist::ReduceOp::SUM));
    CHECK_NOTHROW(dist::broadcast(e, 0));

    // a CPU tensor in the NCCL group goes through MPI
    Tensor c = nccl_rank_values(r, shape, kFloat32);
    dist::all_reduce(c, dist::ReduceOp::SUM);
    CHECK(c.device().is_cpu());
    CHECK(allclose(c.to(kFloat64), sum_expect, 1e-6, 0));
    dist::barrier();
    cuda::synchronize(gpu.index);
  }
}
