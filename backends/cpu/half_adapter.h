#pragma once
/// float16 and bfloat16 on the CPU, as PyTorch's CPU computes them: values stored in 16 bits,
/// arithmetic in float32, each result rounded once (to nearest, ties to even) into the
/// 16-bit type. One mechanism serves every kernel: a kernel called with 16-bit views widens
/// them to float32 temporaries, calls itself (its float32 kernel) on the float32 views and
/// rounds the outputs back into the caller's views:
///
///   void CpuBackend::softmax(const TensorView& out, const TensorView& in, int dim, bool log) {
///     if (any_16bit(out, in)) [[unlikely]] {
///       Float32Scope f(*this);
///       softmax(f.out(out), f.in(in), dim, log);
///       return f.commit();
///     }
///     ... the float32/float64 kernel as before
///
/// so float32 calls pay one branch. Views that are not 16-bit (bool masks, indices, a float32
/// lse) pass through unchanged. Only byte moves (copy between equal dtypes, fill, where,
/// index_select, gather, tril/triu) and conversions (copy, random fills) handle 16-bit
/// elements directly.
#include <cstddef>
#include <vector>

#include "backends/backend.h"

namespace focus::cpu {

class CpuBackend;

inline bool is_16bit(DType t) { return t == kFloat16 || t == kBFloat16; }
/// Whether any of the views holds float16 or bfloat16 (absent views included: their dtype
/// still says which kernel the caller meant).
template <typename... V> bool any_16bit(const V&... v) { return (is_16bit(v.dtype) || ...); }

/// float32 temporaries for one kernel call's 16-bit views (see the top). in() widens an
/// input; out() gives a temporary for an output (its old values unread); inout() widens an
/// output that the kernel also reads (in-place updates, accumulation into out, optimizer
/// states, beta != 0). commit() rounds every out()/inout() temporary into its view, in the
/// order they were requested; a scope left without commit() (the kernel threw) writes
/// nothing. Temporaries keep stride 0 on broadcast dims (a broadcast input is widened once,
/// not per use; an output dim of stride 0 stays one accumulated element) and are
/// contiguous otherwise, so kernels that need contiguous operands still get them.
class Float32Scope {
 public:
  explicit Float32Scope(CpuBackend& backend) : backend_(backend) {}
  ~Float32Scope();
  Float32Scope(const Float32Scope&) = delete;
  Float32Scope& operator=(const Float32Scope&) = delete;

  TensorView in(const TensorView& v) { return widen(v, kFloat32, true, false); }
  TensorView out(const TensorView& v) { return widen(v, kFloat32, false, true); }
  TensorView inout(const TensorView& v) { return widen(v, kFloat32, true, true); }
  /// out() into a temporary of another dtype (randint: int64, converted once on commit).
  TensorView out_as(const TensorView& v, DType dtype) { return widen(v, dtype, false, true); }
  /// Rounds the outputs into the caller's views (then frees nothing early: the destructor does).
  void commit();

 private:
  TensorView widen(const TensorView& v, DType dtype, bool read, bool write);

  struct Temp {
    void* data;
    size_t nbytes;
  };
  struct WriteBack {
    TensorView dst;  // the caller's view, broadcast dims collapsed to size 1
    TensorView src;  // the temporary, the same sizes
  };
  CpuBackend& backend_;
  std::vector<Temp> temps_;
  std::vector<WriteBack> writes_;
};

}  // namespace focus::cpu
