// bench_int8_onednn: focus's int8 Linear (focus::linear_int8, backends/cpu/int8.cpp) against the
// int8 matrix product of oneDNN, the library issue 17 suggested (Debian 12's libdnnl-dev, oneDNN
// 2.6.3), on bench_int8's shapes and the g2p decoder's, at one thread count.
//
//   ./build/cpu/tools/bench/bench_int8_onednn [--threads 2] [--repeats 5]
//
// Built only where CMake finds oneDNN (libdnnl-dev); otherwise it says so and exits 0.
//
// Columns, microseconds per product y = x W^T + b, x [M, K] float32, W [N, K] (best of
// --repeats, each the mean of a loop):
//   focus       linear_int8: the whole op, x quantized per row (uint8 with a zero point) at
//               run time, int32 sums, the per-row x per-channel scales and the bias in its
//               epilogue, float32 out.
//   dnnl s32    oneDNN matmul u8 x s8 -> s32 alone (the weights pre-reordered to the layout
//               oneDNN picks, the primitive made once per shape): only the integer product. A
//               oneDNN-based Linear adds the quantization of x and a pass over the [M, N] sums
//               (oneDNN 2.6 takes no per-row zero point for the source), so this is a lower
//               bound on it.
//   dnnl op     a whole Linear around that product, from public pieces: x quantized per row
//               symmetrically (quantize_per_channel_int8 of x: int8 codes and a scale per row,
//               no zero point), oneDNN s8 x s8 -> s32, then y = sums * (row scale x channel
//               scale) + b in focus elementwise ops. Unfused, so an upper bound on what a
//               oneDNN-based Linear would cost.
//   dnnl f32    oneDNN matmul s8 x s8 -> f32 with the per-channel scales as run-time output
//               scales and the per-row scale and the bias as binary post-ops (the fused way
//               to the same op); oneDNN 2.6 runs it on a reference kernel, so it is timed once.
//   make        milliseconds to create the dnnl s32 primitive for the shape (decoding changes
//               M every step: a primitive per M, or a slower run-time-M one).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <focus/focus.h>

#include "backends/cpu/int8.h"
#include "bench_util.h"

#if FOCUS_BENCH_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

using namespace focus;
using bench::now_s;

namespace {

// Microseconds per call of f: the best of repeats loops of reps calls (bench::best_time).
template <typename F> double best_us(int repeats, int reps, const F& f) {
  return bench::best_time(repeats, [&] {
           for (int r = 0; r < reps; ++r) f();
         }) / reps * 1e6;
}

struct Shape3 {
  int64_t m, k, n;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, repeats = 5;
  CLI::App app("bench_int8_onednn: focus's int8 Linear against oneDNN's int8 matmul");
  bench::add_number(app, "--threads", threads, "threads (focus's pool and oneDNN's OpenMP)", 1);
  bench::add_number(app, "--repeats", repeats, "timed loops of each measurement (the best is kept)", 1);
  if (auto rc = bench::parse_command_line(app, argc, argv)) return *rc;
#if !FOCUS_BENCH_DNNL
  std::printf("bench_int8_onednn: built without oneDNN (install libdnnl-dev and reconfigure); nothing to measure\n");
  (void)threads;
  (void)repeats;
  return 0;
#else
  try {
    set_num_threads(threads);
    omp_set_num_threads(threads);
    NoGradGuard no_grad;
    const dnnl_version_t* v = dnnl_version();
    std::printf("bench_int8_onednn: %d thread(s); CPU %s; focus int8 kernel %s; oneDNN %d.%d.%d (%s)\n\n", threads,
                bench::cpu_model().c_str(), cpu::int8_kernel().c_str(), v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime");
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream strm(eng);
    const std::vector<Shape3> shapes{{1, 128, 384},   {1, 128, 512},   {1, 512, 128},  {5, 128, 768}, {320, 128, 384},
                                     {320, 128, 512}, {320, 512, 128}, {640, 128, 512}, {640, 512, 128}, {1024, 256, 1024}};
    std::printf("microseconds per product (best of %d)\n", repeats);
    std::printf("  %16s %10s %10s %10s %12s %10s\n", "M x K x N", "focus", "dnnl s32", "dnnl op", "dnnl f32", "make ms");
    Generator gen(1);
    for (const auto& s : shapes) {
      const Tensor x = randn({s.m, s.k}, TensorOptions(kFloat32), &gen);
      const Tensor w = randn({s.n, s.k}, TensorOptions(kFloat32), &gen), b = randn({s.n}, TensorOptions(kFloat32), &gen);
      auto [q, scale] = quantize_per_channel_int8(w);
      const Int8PackedWeight packed = pack_int8(q, scale);
      const int reps = s.m * s.k * s.n < 1000000 ? 200 : 20;
      const double t_focus = best_us(repeats, reps, [&] { (void)linear_int8(x, packed, b); });

      // oneDNN inputs: x as uint8 / int8 codes, W [N, K] int8 read as [K, N] (format ba).
      const Tensor xu = randint(0, 256, {s.m, s.k}).to(kUInt8), xs = randint(-127, 128, {s.m, s.k}).to(kInt8);
      const Tensor row_scale = rand({s.m, 1}, TensorOptions(kFloat32), &gen), out = empty({s.m, s.n}, kFloat32);
      const Tensor sums = empty({s.m, s.n}, kInt32);
      const dnnl::memory::dims M_K{s.m, s.k}, K_N{s.k, s.n}, M_N{s.m, s.n};
      dnnl::memory w_user({K_N, dt::s8, tag::ba}, eng, q.data_ptr());

      // s32: the integer product alone
      const double t0 = now_s();
      const dnnl::matmul::primitive_desc pd_s32(
          dnnl::matmul::desc({M_K, dt::u8, tag::ab}, {K_N, dt::s8, tag::any}, {M_N, dt::s32, tag::ab}), eng);
      const dnnl::matmul mm_s32(pd_s32);
      const double make_ms = (now_s() - t0) * 1e3;
      dnnl::memory w_s32(pd_s32.weights_desc(), eng);
      dnnl::reorder(w_user, w_s32).execute(strm, w_user, w_s32);
      dnnl::memory src_u8({M_K, dt::u8, tag::ab}, eng, xu.data_ptr()), dst_s32({M_N, dt::s32, tag::ab}, eng, sums.data_ptr());
      const double t_s32 = best_us(repeats, reps, [&] {
        mm_s32.execute(strm, {{DNNL_ARG_SRC, src_u8}, {DNNL_ARG_WEIGHTS, w_s32}, {DNNL_ARG_DST, dst_s32}});
        strm.wait();
      });

      // a whole op: symmetric per-row quantization of x, the s8 x s8 -> s32 product, the scales and bias
      const dnnl::matmul::primitive_desc pd_ss(
          dnnl::matmul::desc({M_K, dt::s8, tag::ab}, {K_N, dt::s8, tag::any}, {M_N, dt::s32, tag::ab}), eng);
      const dnnl::matmul mm_ss(pd_ss);
      dnnl::memory w_ss(pd_ss.weights_desc(), eng);
      dnnl::reorder(w_user, w_ss).execute(strm, w_user, w_ss);
      const Tensor scale_row = scale.view({1, s.n});
      const double t_op = best_us(repeats, reps, [&] {
        auto [xq, xs_scale] = quantize_per_channel_int8(x);
        dnnl::memory src({M_K, dt::s8, tag::ab}, eng, xq.data_ptr());
        mm_ss.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w_ss}, {DNNL_ARG_DST, dst_s32}});
        strm.wait();
        (void)(sums.to(kFloat32) * (xs_scale.view({s.m, 1}) * scale_row) + b);
      });

      // f32: per-channel output scales, then x per-row scale and + bias as post-ops
      dnnl::primitive_attr attr;
      attr.set_output_scales(1 << 1, {DNNL_RUNTIME_F32_VAL});
      dnnl::post_ops po;
      po.append_binary(dnnl::algorithm::binary_mul, {{s.m, 1}, dt::f32, tag::ab});
      po.append_binary(dnnl::algorithm::binary_add, {{1, s.n}, dt::f32, tag::ab});
      attr.set_post_ops(po);
      const dnnl::matmul::primitive_desc pd_f32(
          dnnl::matmul::desc({M_K, dt::s8, tag::ab}, {K_N, dt::s8, tag::any}, {M_N, dt::f32, tag::ab}), attr, eng);
      const dnnl::matmul mm_f32(pd_f32);
      dnnl::memory w_f32(pd_f32.weights_desc(), eng);
      dnnl::reorder(w_user, w_f32).execute(strm, w_user, w_f32);
      dnnl::memory src_s8({M_K, dt::s8, tag::ab}, eng, xs.data_ptr()), dst_f32({M_N, dt::f32, tag::ab}, eng, out.data_ptr());
      dnnl::memory oscale({{s.n}, dt::f32, tag::a}, eng, scale.data_ptr());
      dnnl::memory rows({{s.m, 1}, dt::f32, tag::ab}, eng, row_scale.data_ptr());
      dnnl::memory bias({{1, s.n}, dt::f32, tag::ab}, eng, b.data_ptr());
      const double t_f32 = best_us(1, 1, [&] {
        mm_f32.execute(strm, {{DNNL_ARG_SRC, src_s8},
                              {DNNL_ARG_WEIGHTS, w_f32},
                              {DNNL_ARG_DST, dst_f32},
                              {DNNL_ARG_ATTR_OUTPUT_SCALES, oscale},
                              {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, rows},
                              {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, bias}});
        strm.wait();
      });
      std::printf("  %16s %10.1f %10.1f %10.1f %12.1f %10.2f\n",
                  (std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n)).c_str(), t_focus, t_s32,
                  t_op, t_f32, make_ms);
    }
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "bench_int8_onednn: oneDNN: %s (status %d)\n", e.what(), static_cast<int>(e.status));
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_int8_onednn: %s\n", e.what());
    return 1;
  }
  return 0;
#endif
}
