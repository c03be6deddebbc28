// The Open MPI transport of focus::distributed (built with FOCUS_MPI).
// The C API only (no deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "backends/common/half.h"
#include "distributed/transport.h"

namespace focus::distributed {

bool is_mpi_available() { return true; }

namespace detail {

namespace {

bool g_we_initialized = false;
std::once_flag g_ops_once;
MPI_Op g_half_ops[3];  // float16: sum, max, min
MPI_Op g_bf16_ops[3];  // bfloat16: sum, max, min

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<size_t>(len));
}

void check(int code, const char* what) {
  FOCUS_CHECK(code == MPI_SUCCESS, "[distributed] {} failed: {}", what, mpi_error(code));
}

// 16-bit reductions, computed in float32 and rounded once (as NCCL does).
template <bool kHalf, int kOp>
void reduce16(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = kHalf ? common::half_bits_to_float(a[i]) : common::bfloat16_bits_to_float(a[i]);
    const float y = kHalf ? common::half_bits_to_float(b[i]) : common::bfloat16_bits_to_float(b[i]);
    const float r = kOp == 0 ? x + y : kOp == 1 ? std::max(x, y) : std::min(x, y);
    b[i] = kHalf ? common::float_to_half_bits(r) : common::float_to_bfloat16_bits(r);
  }
}

void create_ops() {
  MPI_Op_create(&reduce16<true, 0>, 1, &g_half_ops[0]);
  MPI_Op_create(&reduce16<true, 1>, 1, &g_half_ops[1]);
  MPI_Op_create(&reduce16<true, 2>, 1, &g_half_ops[2]);
  MPI_Op_create(&reduce16<false, 0>, 1, &g_bf16_ops[0]);
  MPI_Op_create(&reduce16<false, 1>, 1, &g_bf16_ops[1]);
  MPI_Op_create(&reduce16<false, 2>, 1, &g_bf16_ops[2]);
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case kBool:
    case kUInt8: return MPI_UINT8_T;
    case kInt8: return MPI_INT8_T;
    case kInt32: return MPI_INT32_T;
    case kInt64: return MPI_INT64_T;
    case kFloat32: return MPI_FLOAT;
    case kFloat64: return MPI_DOUBLE;
    case kFloat16:
    case kBFloat16: return MPI_UINT16_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(DType t, ReduceOp op) {
  const int k = op == ReduceOp::MAX ? 1 : op == ReduceOp::MIN ? 2 : 0;
  if (t == kFloat16) return g_half_ops[k];
  if (t == kBFloat16) return g_bf16_ops[k];
  return k == 1 ? MPI_MAX : k == 2 ? MPI_MIN : MPI_SUM;
}

// Chunks of at most INT_MAX elements (MPI counts are int).
constexpr int64_t kChunk = INT_MAX / 8;

class MpiTransport final : public Transport {
 public:
  MpiTransport() {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    FOCUS_CHECK(!finalized, "[init_process_group] MPI was already finalized in this process; it cannot be used again");
    int provided = 0;
    if (!inited) {
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
      g_we_initialized = true;
    } else {
      MPI_Query_thread(&provided);
    }
    FOCUS_CHECK(provided >= MPI_THREAD_SERIALIZED,
                "[init_process_group] MPI provides thread level {}; focus needs MPI_THREAD_SERIALIZED or more "
                "(initialize MPI with MPI_Init_thread, or let focus initialize it)",
                provided);
    multiple_ = provided >= MPI_THREAD_MULTIPLE;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    std::call_once(g_ops_once, create_ops);
  }
  ~MpiTransport() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  void all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op) override {
    auto* p = static_cast<char*>(buf);
    const size_t es = dtype_size(dtype);
    for (int64_t at = 0; at < count; at += kChunk) {
      const int n = static_cast<int>(std::min(kChunk, count - at));
      check(MPI_Allreduce(MPI_IN_PLACE, p + at * static_cast<int64_t>(es), n, mpi_type(dtype), mpi_op(dtype, op), comm_),
            "MPI_Allreduce");
    }
  }
  void broadcast(void* buf, int64_t nbytes, int root) override {
    auto* p = static_cast<char*>(buf);
    for (int64_t at = 0; at < nbytes; at += kChunk) {
      const int n = static_cast<int>(std::min(kChunk, nbytes - at));
      check(MPI_Bcast(p + at, n, MPI_BYTE, root, comm_), "MPI_Bcast");
    }
  }
  void all_gather(const void* in, void* out, int64_t nbytes) override {
    FOCUS_CHECK(nbytes <= kChunk, "[all_gather] {} bytes per rank is more than MPI's transport takes at once ({})",
                nbytes, kChunk);
    check(MPI_Allgather(in, static_cast<int>(nbytes), MPI_BYTE, out, static_cast<int>(nbytes), MPI_BYTE, comm_),
          "MPI_Allgather");
  }
  void reduce_scatter(const void* in, void* out, int64_t count, DType dtype, ReduceOp op) override {
    FOCUS_CHECK(count <= kChunk, "[reduce_scatter] {} elements per rank is more than MPI's transport takes at once ({})",
                count, kChunk);
    check(MPI_Reduce_scatter_block(in, out, static_cast<int>(count), mpi_type(dtype), mpi_op(dtype, op), comm_),
          "MPI_Reduce_scatter_block");
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  [[noreturn]] void abort(int code) override {
    std::fflush(nullptr);
    // MPI_Abort from a thread other than the one inside MPI needs MPI_THREAD_MULTIPLE;
    // otherwise leaving without MPI_Finalize makes mpirun end the job all the same.
    if (multiple_) MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool multiple_ = false;
};

}  // namespace

std::unique_ptr<Transport> make_mpi_transport() { return std::make_unique<MpiTransport>(); }

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_we_initialized && !finalized) MPI_Finalize();
}

}  // namespace detail

}  // namespace focus::distributed
