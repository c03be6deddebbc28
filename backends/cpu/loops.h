#pragma once
/// Elementwise iteration over N strided views of equal sizes (out first). Dims are
/// coalesced first, so contiguous tensors become one flat loop that the compiler
/// vectorizes; other layouts walk an n-d counter with a strided innermost loop. Large
/// ranges split across threads (parallel.h).
#include <array>
#include <concepts>
#include <cstdint>
#include <utility>

#include "backends/backend.h"
#include "backends/cpu/parallel.h"

namespace focus::cpu {

template <size_t N> struct StridedLoop {
  int ndim = 0;
  int64_t numel = 1;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];  // bytes
  char* base[N];

  explicit StridedLoop(const std::array<const TensorView*, N>& views) {
    const TensorView& out = *views[0];
    numel = out.numel;
    for (size_t k = 0; k < N; ++k) base[k] = static_cast<char*>(views[k]->data);
    // Keep non-1 dims, innermost last.
    for (int d = 0; d < out.ndim; ++d) {
      if (out.sizes[d] == 1) continue;
      sizes[ndim] = out.sizes[d];
      for (size_t k = 0; k < N; ++k)
        strides[k][ndim] = views[k]->strides[d] * static_cast<int64_t>(dtype_size(views[k]->dtype));
      ++ndim;
    }
    // Merge dim d into d+1 when every operand is contiguous across them.
    int w = ndim - 1;
    if (ndim > 1) {
      int64_t ns[kMaxDims];
      int64_t nstr[N][kMaxDims];
      int m = 0;
      ns[0] = sizes[ndim - 1];
      for (size_t k = 0; k < N; ++k) nstr[k][0] = strides[k][ndim - 1];
      for (int d = ndim - 2; d >= 0; --d) {
        bool merge = true;
        for (size_t k = 0; k < N; ++k)
          if (strides[k][d] != nstr[k][m] * ns[m]) merge = false;
        if (merge) {
          ns[m] *= sizes[d];
        } else {
          ++m;
          ns[m] = sizes[d];
          for (size_t k = 0; k < N; ++k) nstr[k][m] = strides[k][d];
        }
      }
      ndim = m + 1;
      for (int d = 0; d < ndim; ++d) {
        sizes[d] = ns[ndim - 1 - d];
        for (size_t k = 0; k < N; ++k) strides[k][d] = nstr[k][ndim - 1 - d];
      }
      (void)w;
    }
    if (ndim == 0) {  // all size-1 dims: one element
      ndim = 1;
      sizes[0] = numel;
      for (size_t k = 0; k < N; ++k) strides[k][0] = 0;
    }
  }

  /// Calls inner(char* ptrs[N], const int64_t* strides_bytes, int64_t n) over runs of the
  /// innermost dim covering [begin, end) in row-major order.
  template <typename Inner> void run_range(int64_t begin, int64_t end, const Inner& inner) const {
    const int last = ndim - 1;
    int64_t idx[kMaxDims];
    int64_t rem = begin;
    for (int d = last; d >= 0; --d) {
      idx[d] = rem % sizes[d];
      rem /= sizes[d];
    }
    char* ptrs[N];
    int64_t inner_strides[N];
    for (size_t k = 0; k < N; ++k) inner_strides[k] = strides[k][last];
    int64_t pos = begin;
    while (pos < end) {
      for (size_t k = 0; k < N; ++k) {
        char* p = base[k];
        for (int d = 0; d <= last; ++d) p += idx[d] * strides[k][d];
        ptrs[k] = p;
      }
      const int64_t n = std::min(sizes[last] - idx[last], end - pos);
      inner(ptrs, inner_strides, n);
      pos += n;
      idx[last] += n;
      for (int d = last; d > 0 && idx[d] >= sizes[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
  }

  template <typename Inner> void run(const Inner& inner, int64_t grain = kGrain) const {
    parallel_for(0, numel, grain, [&](int64_t b, int64_t e) { run_range(b, e, inner); });
  }
};

namespace detail {

// The per-run loops are separate functions, never inlined into their caller and with
// everything they call inlined (flatten). Inlined into an OpenMP outlined region, GCC ran
// out of inlining budget and called vexp/verf per element, so the same op vectorized on
// one thread and ran scalar (10x slower) on two.
//
// Long runs go in blocks of 4 KiB of output, each preceded by software prefetches of the next
// block's operands: without them a compute-heavy op (GELU) ran at half its in-cache speed on
// operands streamed from memory, its slow loop leaving the hardware prefetchers behind.
template <typename Out, typename F, typename... Ins>
[[gnu::noinline, gnu::flatten]] void contiguous_run(int64_t n, const F& f, Out* __restrict o, const Ins*... in) {
  constexpr int64_t kBlock = 4096 / static_cast<int64_t>(sizeof(Out));
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock), pe = std::min(n, e + kBlock);
    for (int64_t j = e; j < pe; j += 64 / static_cast<int64_t>(sizeof(Out))) {
      (__builtin_prefetch(in + j * static_cast<int64_t>(sizeof(Out)) / static_cast<int64_t>(sizeof(Ins)), 0), ...);
    }
    for (int64_t i = b; i < e; ++i) o[i] = f(in[i]...);
  }
}

template <typename Out, typename F, typename... Ins, size_t... I>
[[gnu::noinline, gnu::flatten]] void strided_run(int64_t n, const F& f, char** p, const int64_t* s,
                                                 std::index_sequence<I...>) {
  for (int64_t i = 0; i < n; ++i)
    *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const Ins*>(p[I + 1] + i * s[I + 1])...);
}

}  // namespace detail

/// out[i] = f(in[i]...) with typed operands: Out the output type, Ins the input types.
/// Contiguous operands (and stride-0 scalars) get a vectorizable loop.
/// Grain: kGrain for cheap ops, kHeavyGrain for transcendental ones (parallel.h).
template <typename Out, typename... Ins, typename F>
void elementwise_grain(int64_t grain, const TensorView& out, const F& f, const std::same_as<TensorView> auto&... ins) {
  constexpr size_t N = 1 + sizeof...(Ins);
  static_assert(sizeof...(Ins) == sizeof...(ins));
  StridedLoop<N> loop({&out, &ins...});
  loop.run([&](char** p, const int64_t* s, int64_t n) {
    bool contig = s[0] == static_cast<int64_t>(sizeof(Out));
    size_t k = 1;
    ((contig = contig && s[k++] == static_cast<int64_t>(sizeof(Ins))), ...);
    if (contig) {
      [&]<size_t... I>(std::index_sequence<I...>) {
        detail::contiguous_run<Out, F, Ins...>(n, f, reinterpret_cast<Out*>(p[0]),
                                               reinterpret_cast<const Ins*>(p[I + 1])...);
      }(std::index_sequence_for<Ins...>{});
    } else {
      detail::strided_run<Out, F, Ins...>(n, f, p, s, std::index_sequence_for<Ins...>{});
    }
  }, grain);
}

template <typename Out, typename... Ins, typename F>
void elementwise(const TensorView& out, const F& f, const std::same_as<TensorView> auto&... ins) {
  elementwise_grain<Out, Ins...>(kGrain, out, f, ins...);
}

}  // namespace focus::cpu
