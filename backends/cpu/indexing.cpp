// CPU kernels for indexing: index scans, index_select / index_add, gather / scatter_add,
// tril / triu, one_hot. The raw ops (core/ops/indexing.cpp) check every index with
// scan_indices() first, so these kernels only ever see in-range indices.
#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "backends/common/raw_op_util.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/half_adapter.h"
#include "backends/cpu/loops.h"

namespace focus::cpu {

namespace {

// v without dim `dim` (same data pointer).
TensorView drop_dim(const TensorView& v, int dim) {
  TensorView r;
  r.data = v.data;
  r.dtype = v.dtype;
  r.ndim = 0;
  r.numel = 1;
  for (int d = 0; d < v.ndim; ++d) {
    if (d == dim) continue;
    r.sizes[r.ndim] = v.sizes[d];
    r.strides[r.ndim] = v.strides[d];
    r.numel *= v.sizes[d];
    ++r.ndim;
  }
  return r;
}

// v's strides over the sizes of `shape` (a view no larger than v in any dim).
TensorView with_sizes(const TensorView& v, const TensorView& shape) {
  TensorView r = v;
  r.numel = shape.numel;
  for (int d = 0; d < v.ndim; ++d) r.sizes[d] = shape.sizes[d];
  return r;
}

using common::dispatch_bytes;

template <typename I> inline int64_t load_index(const char* p) { return static_cast<int64_t>(*reinterpret_cast<const I*>(p)); }

}  // namespace

Backend::IndexScan CpuBackend::scan_indices(const TensorView& index, int64_t lo, int64_t hi) {
  IndexScan res;
  if (index.numel == 0) return res;
  dispatch_index(index.dtype, "index", [&](auto tag) {
    using I = decltype(tag);
    StridedLoop<1> loop({&index});
    std::mutex m;
    int64_t gmin = INT64_MAX, gmax = INT64_MIN, gbad = -1, gval = 0;
    parallel_for(0, loop.numel, kGrain, [&](int64_t b, int64_t e) {
      int64_t lmin = INT64_MAX, lmax = INT64_MIN, lbad = -1, lval = 0, pos = b;
      loop.run_range(b, e, [&](char** p, const int64_t* s, int64_t n) {
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        if (s[0] == static_cast<int64_t>(sizeof(I))) {
          const I* v = reinterpret_cast<const I*>(p[0]);
          for (int64_t i = 0; i < n; ++i) {
            const int64_t x = v[i];
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
          }
        } else {
          for (int64_t i = 0; i < n; ++i) {
            const int64_t x = load_index<I>(p[0] + i * s[0]);
            mn = std::min(mn, x);
            mx = std::max(mx, x);
          }
        }
        // Only a run holding a bad value is searched for the first one.
        if (lbad < 0 && (mn < lo || mx >= hi)) {
          for (int64_t i = 0; i < n; ++i) {
            const int64_t x = load_index<I>(p[0] + i * s[0]);
            if (x < lo || x >= hi) {
              lbad = pos + i;
              lval = x;
              break;
            }
          }
        }
        lmin = std::min(lmin, mn);
        lmax = std::max(lmax, mx);
        pos += n;
      });
      std::lock_guard<std::mutex> lock(m);
      gmin = std::min(gmin, lmin);
      gmax = std::max(gmax, lmax);
      if (lbad >= 0 && (gbad < 0 || lbad < gbad)) {
        gbad = lbad;
        gval = lval;
      }
    });
    res.first_bad = gbad;
    res.bad_value = gval;
    res.min = gmin;
    res.max = gmax;
  });
  return res;
}

void CpuBackend::check_indices(const TensorView& index, int64_t lo, int64_t hi, int64_t skip, const char* op,
                               const char* what) {
  if (index.numel == 0) return;
  dispatch_index(index.dtype, op, [&](auto tag) {
    using I = decltype(tag);
    StridedLoop<1> loop({&index});
    int64_t pos = 0;
    // Serial: the check is one pass over a small index tensor, and the first bad position
    // must be found in order.
    loop.run_range(0, loop.numel, [&](char** p, const int64_t* s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t x = load_index<I>(p[0] + i * s[0]);
        FOCUS_CHECK(x == skip || (x >= lo && x < hi), "[{}] {} {} is out of bounds for [{}, {}) (at position {})", op,
                    what, x, lo, hi, pos + i);
      }
      pos += n;
    });
  });
}

namespace {

// out[..., i, ...] = x[..., index[..., i, ...], ...]: one pass over out in row-major order,
// the index supplying the offset along dim (strides in xg are 0 along dim). Used by gather,
// and by index_select when the slices after dim are short.
template <typename T, typename I>
void gather_loop(const TensorView& out, const TensorView& xg, const TensorView& index, int64_t xstr_elems) {
  StridedLoop<3> loop({&out, &xg, &index});
  loop.run([xstr_elems](char** p, const int64_t* s, int64_t n) {
    constexpr int64_t ts = sizeof(T), is = sizeof(I);
    T* __restrict o = reinterpret_cast<T*>(p[0]);
    const T* __restrict x = reinterpret_cast<const T*>(p[1]);
    const I* __restrict idx = reinterpret_cast<const I*>(p[2]);
    if (s[0] == ts && s[1] == ts && s[2] == is) {  // gather, contiguous
      for (int64_t i = 0; i < n; ++i) o[i] = x[i + static_cast<int64_t>(idx[i]) * xstr_elems];
    } else if (s[0] == ts && s[1] == 0 && s[2] == is) {  // index_select over the innermost dim
      for (int64_t i = 0; i < n; ++i) o[i] = x[static_cast<int64_t>(idx[i]) * xstr_elems];
    } else if (s[0] == ts && s[1] == ts && s[2] == 0) {  // one contiguous slice
      const T* __restrict xs = x + static_cast<int64_t>(idx[0]) * xstr_elems;
      for (int64_t i = 0; i < n; ++i) o[i] = xs[i];
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<T*>(p[0] + i * s[0]) =
            reinterpret_cast<const T*>(p[1] + i * s[1])[load_index<I>(p[2] + i * s[2]) * xstr_elems];
    }
  });
}

}  // namespace

void CpuBackend::index_select(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
  const int64_t n = index.numel;
  const TensorView orow = drop_dim(out, dim), xrow = drop_dim(x, dim);
  const int64_t row = orow.numel;
  if (n == 0 || row == 0) return;
  int64_t inner = 1;
  for (int d = dim + 1; d < out.ndim; ++d) inner *= out.sizes[d];
  if (inner < 64) {
    // Short slices (e.g. columns of a matrix): walk out in row-major order instead, with
    // the index broadcast over every dim but dim.
    TensorView xg = with_sizes(x, out), ig = out;
    xg.strides[dim] = 0;
    ig.data = index.data;
    ig.dtype = index.dtype;
    for (int d = 0; d < out.ndim; ++d) ig.strides[d] = d == dim && index.ndim ? index.strides[0] : 0;
    dispatch_index(index.dtype, "index_select", [&](auto itag) {
      dispatch_bytes(out.dtype, "index_select", [&](auto btag) {
        gather_loop<decltype(btag), decltype(itag)>(out, xg, ig, x.strides[dim]);
      });
    });
    return;
  }
  const int64_t es = static_cast<int64_t>(dtype_size(out.dtype));
  const int64_t ostr = out.strides[dim] * es, xstr = x.strides[dim] * es;
  const int64_t istr = (index.ndim ? index.strides[0] : 0) * static_cast<int64_t>(dtype_size(index.dtype));
  dispatch_index(index.dtype, "index_select", [&](auto itag) {
    using I = decltype(itag);
    dispatch_bytes(out.dtype, "index_select", [&](auto btag) {
      using T = decltype(btag);
      const StridedLoop<2> loop({&orow, &xrow});
      const bool contig = loop.ndim == 1 && loop.strides[0][0] == es && loop.strides[1][0] == es;
      const char* ibase = static_cast<const char*>(index.data);
      // Flat range over (index entry j, element of its slice): slices may be split.
      parallel_for(0, n * row, kGrain, [&](int64_t b, int64_t e) {
        StridedLoop<2> l = loop;
        for (int64_t j = b / row; j < n && j * row < e; ++j) {
          const int64_t rb = std::max<int64_t>(b - j * row, 0), re = std::min<int64_t>(e - j * row, row);
          const int64_t src = load_index<I>(ibase + j * istr);
          l.base[0] = static_cast<char*>(out.data) + j * ostr;
          l.base[1] = static_cast<char*>(x.data) + src * xstr;
          if (contig) {
            std::memcpy(l.base[0] + rb * es, l.base[1] + rb * es, static_cast<size_t>((re - rb) * es));
          } else {
            l.run_range(rb, re, [](char** p, const int64_t* s, int64_t m) {
              if (s[0] == sizeof(T) && s[1] == sizeof(T)) {  // a contiguous run of a strided slice
                std::memcpy(p[0], p[1], static_cast<size_t>(m) * sizeof(T));
                return;
              }
              for (int64_t i = 0; i < m; ++i)
                *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const T*>(p[1] + i * s[1]);
            });
          }
        }
      });
    });
  });
}

void CpuBackend::index_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src,
                           int64_t skip) {
  if (any_16bit(out, src)) [[unlikely]] {  // out accumulates: widened first, rounded once at the end
    Float32Scope f(*this);
    index_add(f.inout(out), dim, index, f.in(src), skip);
    return f.commit();
  }
  const int64_t n = index.numel;
  const TensorView orow = drop_dim(out, dim), srow = drop_dim(src, dim);
  const int64_t row = srow.numel;
  if (n == 0 || row == 0) return;
  const int64_t es = static_cast<int64_t>(dtype_size(out.dtype));
  const int64_t ostr = out.strides[dim] * es, sstr = src.strides[dim] * es;
  const int64_t istr = (index.ndim ? index.strides[0] : 0) * static_cast<int64_t>(dtype_size(index.dtype));
  dispatch_index(index.dtype, "index_add", [&](auto itag) {
    using I = decltype(itag);
    dispatch_numeric(out.dtype, "index_add", [&](auto tag) {
      using T = decltype(tag);
      const StridedLoop<2> loop({&orow, &srow});
      const char* ibase = static_cast<const char*>(index.data);
      // Repeated indices add into one row, so threads split the row's elements, never the
      // index entries: each thread walks every entry over its own columns.
      const int64_t grain = std::max<int64_t>(kGrain / n, 1);
      parallel_for(0, row, grain, [&](int64_t b, int64_t e) {
        StridedLoop<2> l = loop;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t dst = load_index<I>(ibase + j * istr);
          if (dst == skip) continue;
          l.base[0] = static_cast<char*>(out.data) + dst * ostr;
          l.base[1] = static_cast<char*>(src.data) + j * sstr;
          l.run_range(b, e, [](char** p, const int64_t* s, int64_t m) {
            if (s[0] == static_cast<int64_t>(sizeof(T)) && s[1] == static_cast<int64_t>(sizeof(T))) {
              T* __restrict o = reinterpret_cast<T*>(p[0]);
              const T* __restrict v = reinterpret_cast<const T*>(p[1]);
              for (int64_t i = 0; i < m; ++i) o[i] = static_cast<T>(o[i] + v[i]);
            } else {
              for (int64_t i = 0; i < m; ++i) {
                T& o = *reinterpret_cast<T*>(p[0] + i * s[0]);
                o = static_cast<T>(o + *reinterpret_cast<const T*>(p[1] + i * s[1]));
              }
            }
          });
        }
      });
    });
  });
}

void CpuBackend::gather(const TensorView& out, const TensorView& x, int dim, const TensorView& index) {
  if (out.numel == 0) return;
  // x over index's sizes, with the index supplying the offset along dim.
  TensorView xg = with_sizes(x, index);
  xg.strides[dim] = 0;
  dispatch_index(index.dtype, "gather", [&](auto itag) {
    dispatch_bytes(out.dtype, "gather", [&](auto btag) {
      gather_loop<decltype(btag), decltype(itag)>(out, xg, index, x.strides[dim]);
    });
  });
}

void CpuBackend::scatter_add(const TensorView& out, int dim, const TensorView& index, const TensorView& src) {
  if (index.numel == 0) return;
  if (any_16bit(out, src)) [[unlikely]] {  // out accumulates: widened first, rounded once at the end
    Float32Scope f(*this);
    scatter_add(f.inout(out), dim, index, f.in(src));
    return f.commit();
  }
  // Entries along dim may hit one element of out, so each thread owns whole lines along
  // dim (all other coordinates fixed), which write disjoint elements.
  const int64_t len = index.sizes[dim];
  const int64_t ies = static_cast<int64_t>(dtype_size(index.dtype)), es = static_cast<int64_t>(dtype_size(out.dtype));
  const int64_t istr = index.strides[dim] * ies, ostr = out.strides[dim] * es, sstr = src.strides[dim] * es;
  const TensorView iline = drop_dim(index, dim);
  const TensorView oline = drop_dim(with_sizes(out, index), dim);
  const TensorView sline = drop_dim(with_sizes(src, index), dim);
  dispatch_index(index.dtype, "scatter_add", [&](auto itag) {
    using I = decltype(itag);
    dispatch_numeric(out.dtype, "scatter_add", [&](auto tag) {
      using T = decltype(tag);
      const StridedLoop<3> loop({&iline, &oline, &sline});
      parallel_for(0, loop.numel, std::max<int64_t>(kGrain / len, 1), [&](int64_t b, int64_t e) {
        loop.run_range(b, e, [&](char** p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i) {
            const char* ip = p[0] + i * s[0];
            char* op = p[1] + i * s[1];
            const char* sp = p[2] + i * s[2];
            if (istr == static_cast<int64_t>(sizeof(I)) && sstr == static_cast<int64_t>(sizeof(T))) {
              const I* idx = reinterpret_cast<const I*>(ip);
              const T* v = reinterpret_cast<const T*>(sp);
              T* o = reinterpret_cast<T*>(op);
              const int64_t os = ostr / static_cast<int64_t>(sizeof(T));
              for (int64_t k = 0; k < len; ++k) {
                T& dst = o[static_cast<int64_t>(idx[k]) * os];
                dst = static_cast<T>(dst + v[k]);
              }
            } else {
              for (int64_t k = 0; k < len; ++k) {
                T& o = *reinterpret_cast<T*>(op + load_index<I>(ip + k * istr) * ostr);
                o = static_cast<T>(o + *reinterpret_cast<const T*>(sp + k * sstr));
              }
            }
          }
        });
      });
    });
  });
}

void CpuBackend::trilu(const TensorView& out, const TensorView& x, int64_t k, bool lower) {
  if (out.numel == 0) return;
  const int nd = x.ndim;
  const int64_t R = x.sizes[nd - 2], C = x.sizes[nd - 1];
  const int64_t rows = out.numel / C;
  const int64_t xcs = x.strides[nd - 1];
  dispatch_bytes(out.dtype, "tril", [&](auto btag) {
    using T = decltype(btag);
    T* o = out.ptr<T>();  // contiguous
    const T* xs = x.ptr<T>();
    parallel_for(0, rows, std::max<int64_t>(kGrain / C, 1), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        // Offset of row r of x: r runs over all dims but the last.
        int64_t off = 0, rem = r;
        for (int d = nd - 2; d >= 0; --d) {
          off += (rem % x.sizes[d]) * x.strides[d];
          rem /= x.sizes[d];
        }
        const int64_t i = r % R;
        // Columns kept: j <= i + k (lower) or j >= i + k (upper).
        int64_t keep_b, keep_e;
        if (lower) {
          keep_b = 0;
          keep_e = std::clamp<int64_t>(i + k + 1, 0, C);
        } else {
          keep_b = std::clamp<int64_t>(i + k, 0, C);
          keep_e = C;
        }
        T* orow = o + r * C;
        const T* xrow = xs + off;
        for (int64_t j = 0; j < keep_b; ++j) orow[j] = T(0);
        if (xcs == 1) {
          for (int64_t j = keep_b; j < keep_e; ++j) orow[j] = xrow[j];
        } else {
          for (int64_t j = keep_b; j < keep_e; ++j) orow[j] = xrow[j * xcs];
        }
        for (int64_t j = keep_e; j < C; ++j) orow[j] = T(0);
      }
    });
  });
}

void CpuBackend::one_hot(const TensorView& out, const TensorView& index) {
  const int64_t N = index.numel, C = out.ndim ? out.sizes[out.ndim - 1] : 1;
  if (N == 0 || C == 0) return;
  int64_t* o = out.ptr<int64_t>();
  dispatch_index(index.dtype, "one_hot", [&](auto itag) {
    using I = decltype(itag);
    const I* idx = index.ptr<I>();
    parallel_for(0, N, std::max<int64_t>(kGrain / C, 1), [&](int64_t b, int64_t e) {
      std::memset(o + b * C, 0, static_cast<size_t>((e - b) * C) * sizeof(int64_t));
      for (int64_t i = b; i < e; ++i) o[i * C + static_cast<int64_t>(idx[i])] = 1;
    });
  });
}

}  // namespace focus::cpu
