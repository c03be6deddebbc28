// The NCCL communicator of focus::distributed (CUDA builds that found NCCL; its ncclUniqueId
// travels through MPI, or, in a build without MPI, there is one rank): the
// collectives on CUDA tensors of a Backend::kNCCL group, queued on focus's stream of the
// tensor's device (backends/cuda/context.h: one stream per GPU, which every kernel and copy
// of that device uses, so the collectives are ordered after the work that produced their
// tensors and before the work that reads them, without events).
#include <nccl.h>

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "backends/cuda/context.h"
#include "core/cuda.h"
#include "distributed/transport.h"

// ncclAvg and ncclBfloat16 came with NCCL 2.10; ncclCommFinalize with 2.14.
#if NCCL_VERSION_CODE < NCCL_VERSION(2, 10, 0)
#error "focus needs NCCL 2.10 or later (ncclAvg, ncclBfloat16)"
#endif

namespace focus::distributed {

bool is_nccl_available() { return true; }

namespace detail {

namespace {

std::string nccl_version_string() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "NCCL (version unknown)";
  // NCCL_VERSION(X, Y, Z) = X * 10000 + Y * 100 + Z since 2.9.
  return fmt::format("NCCL {}.{}.{}", v / 10000, (v / 100) % 100, v % 100);
}

// The focus::Error of a failed NCCL call: the op, the call, NCCL's error string and, when
// the communicator has one, its last error message (which says what went wrong in detail).
[[noreturn]] void throw_nccl(const char* op, const char* call, ncclResult_t r, ncclComm_t comm) {
  std::string detail;
  const char* last = ncclGetLastError(comm);  // comm may be null: the thread's last error
  if (last != nullptr && *last != '\0') detail = fmt::format("; NCCL says: {}", last);
  FOCUS_FAIL("[{}] {} failed: {} (ncclResult_t {}){}; {}", op, call, ncclGetErrorString(r), static_cast<int>(r),
             detail, nccl_version_string());
}

ncclDataType_t nccl_type(const char* op, DType t) {
  switch (t) {
    case kFloat32: return ncclFloat32;
    case kFloat64: return ncclFloat64;
    case kFloat16: return ncclFloat16;
    case kBFloat16: return ncclBfloat16;
    case kInt32: return ncclInt32;
    case kInt64: return ncclInt64;
    case kInt8: return ncclInt8;
    case kUInt8:
    case kBool: return ncclUint8;  // bool: one byte holding 0 or 1 (max is or, min is and)
  }
  FOCUS_FAIL("[{}] NCCL has no type for {}", op, dtype_name(t));
}

// The reduce op (the rules of what may be reduced how, AVG on floating-point tensors only and
// only MAX and MIN on bool, are checked once for every backend by distributed.cpp before a
// collective reaches a transport).
ncclRedOp_t nccl_op(const char* op, ReduceOp rop) {
  switch (rop) {
    case ReduceOp::SUM: return ncclSum;
    case ReduceOp::AVG: return ncclAvg;
    case ReduceOp::MAX: return ncclMax;
    case ReduceOp::MIN: return ncclMin;
  }
  FOCUS_FAIL("[{}] unknown reduce op", op);
}

class NcclCommImpl final : public NcclComm {
 public:
  NcclCommImpl(ncclComm_t comm, int device, int rank, int size)
      : comm_(comm), device_(device), rank_(rank), size_(size) {}

  ~NcclCommImpl() override {
    if (comm_ == nullptr) return;
    // Never throws: errors here are printed (a destructor may run at exit).
    try {
      cuda::DeviceGuard guard(device_);
      ncclResult_t r = ncclSuccess;
      if (!failed_) {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
        // Flushes the collectives still queued (every rank destroys its group together),
        // then frees the communicator.
        r = ncclCommFinalize(comm_);
        if (r == ncclSuccess) r = ncclCommDestroy(comm_);
#else
        r = ncclCommDestroy(comm_);
#endif
        if (r != ncclSuccess) {
          std::fprintf(stderr, "warning: [distributed] rank %d: destroying the NCCL communicator failed: %s; aborting it\n",
                       rank_, ncclGetErrorString(r));
          failed_ = true;
        }
      }
      if (failed_) (void)ncclCommAbort(comm_);  // frees it without waiting for the other ranks
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: [distributed] rank %d: destroying the NCCL communicator: %s\n", rank_, e.what());
    } catch (...) {
      std::fprintf(stderr, "warning: [distributed] rank %d: destroying the NCCL communicator failed\n", rank_);
    }
    comm_ = nullptr;
  }

  void all_reduce(const Tensor& t, ReduceOp op) override {
    const char* name = "all_reduce";
    const ncclDataType_t type = nccl_type(name, t.dtype());
    const ncclRedOp_t rop = nccl_op(name, op);
    if (t.numel() == 0) return;
    check_device(name, t, "the tensor");
    cudaStream_t s = stream();
    void* p = t.data_ptr();
    check(name, "ncclAllReduce", ncclAllReduce(p, p, static_cast<size_t>(t.numel()), type, rop, comm_, s));
  }

  void broadcast(const Tensor& t, int root) override {
    const char* name = "broadcast";
    const ncclDataType_t type = nccl_type(name, t.dtype());
    FOCUS_CHECK(root >= 0 && root < size_, "[{}] root {} is not a rank of this group of {}", name, root, size_);
    if (t.numel() == 0) return;
    check_device(name, t, "the tensor");
    cudaStream_t s = stream();
    void* p = t.data_ptr();
    check(name, "ncclBroadcast", ncclBroadcast(p, p, static_cast<size_t>(t.numel()), type, root, comm_, s));
  }

  void all_gather(const Tensor& in, const Tensor& out) override {
    const char* name = "all_gather_into_tensor";
    const ncclDataType_t type = nccl_type(name, in.dtype());
    FOCUS_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * size_,
                "[{}] the output ({} elements of {}) must hold {} x the input's {} elements of {}", name, out.numel(),
                dtype_name(out.dtype()), size_, in.numel(), dtype_name(in.dtype()));
    if (in.numel() == 0) return;
    check_device(name, in, "the input");
    check_device(name, out, "the output");
    cudaStream_t s = stream();
    // In place when in is rank()'s block of out (NCCL detects it from the pointers).
    check(name, "ncclAllGather",
          ncclAllGather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()), type, comm_, s));
  }

  void reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) override {
    const char* name = "reduce_scatter_tensor";
    const ncclDataType_t type = nccl_type(name, in.dtype());
    const ncclRedOp_t rop = nccl_op(name, op);
    FOCUS_CHECK(out.dtype() == in.dtype() && in.numel() == out.numel() * size_,
                "[{}] the input ({} elements of {}) must hold {} x the output's {} elements of {}", name, in.numel(),
                dtype_name(in.dtype()), size_, out.numel(), dtype_name(out.dtype()));
    if (out.numel() == 0) return;
    check_device(name, in, "the input");
    check_device(name, out, "the output");
    cudaStream_t s = stream();
    // In place when out is rank()'s block of in.
    check(name, "ncclReduceScatter",
          ncclReduceScatter(in.data_ptr(), out.data_ptr(), static_cast<size_t>(out.numel()), type, rop, comm_, s));
  }

 private:
  void check_device(const char* op, const Tensor& t, const char* what) const {
    FOCUS_CHECK(t.device().is_cuda() && t.device().index == device_,
                "[{}] {} is on {}, but this rank's NCCL communicator is on cuda:{} (rank {}: its local rank modulo the "
                "GPUs visible); move the tensor there",
                op, what, t.device(), device_, rank_);
    FOCUS_CHECK(t.is_contiguous(), "[{}] {} must be contiguous", op, what);
  }

  // focus's stream of the communicator's device; makes the device current on this thread
  // (as every CUDA op of focus does for its tensor's device), which NCCL's launches need.
  cudaStream_t stream() {
    FOCUS_CHECK(comm_ != nullptr, "[distributed] the NCCL communicator was destroyed");
    // An error NCCL met in an earlier collective (a peer failed, a network error) makes
    // every later one fail: report it instead of queueing more work.
    ncclResult_t async = ncclSuccess;
    check("distributed", "ncclCommGetAsyncError", ncclCommGetAsyncError(comm_, &async));
    if (async != ncclSuccess && async != ncclInProgress) {
      failed_ = true;
      throw_nccl("distributed", "an earlier NCCL collective", async, comm_);
    }
    return cuda_detail::context(device_).stream();
  }

  void check(const char* op, const char* call, ncclResult_t r) {
    if (r == ncclSuccess) return;
    failed_ = true;
    throw_nccl(op, call, r, comm_);
  }

  ncclComm_t comm_;
  int device_, rank_, size_;
  bool failed_ = false;
};

}  // namespace

std::unique_ptr<NcclComm> make_nccl_comm(Transport& bootstrap) {
  const char* op = "init_process_group";
  const int rank = bootstrap.rank();
  const int size = bootstrap.size();
  // Every rank learns whether every rank has a GPU before any of them waits in NCCL, so a
  // rank without one makes all of them fail with an error instead of a hang.
  const int gpus = cuda_detail::visible_device_count();
  int32_t ok = gpus > 0 ? 1 : 0;
  bootstrap.all_reduce(&ok, 1, kInt32, ReduceOp::MIN);
  if (gpus == 0)
    FOCUS_FAIL("[{}] Backend::kNCCL: rank {} sees no CUDA device (the driver reports no GPU; check "
               "CUDA_VISIBLE_DEVICES and nvidia-smi)",
               op, rank);
  FOCUS_CHECK(ok == 1, "[{}] Backend::kNCCL: another rank sees no CUDA device, so the NCCL group cannot be set up",
              op);
  const int device = bootstrap.local_rank() % gpus;
  cuda::DeviceGuard guard(device);  // NCCL binds the communicator to the current device

  // Rank 0's unique id, sent with whether rank 0 could make one (the others would wait in
  // the broadcast forever otherwise).
  struct {
    int32_t ok;
    ncclUniqueId id;
  } msg{};
  std::string id_error;
  if (rank == 0) {
    const ncclResult_t r = ncclGetUniqueId(&msg.id);
    msg.ok = r == ncclSuccess ? 1 : 0;
    if (r != ncclSuccess) {
      const char* last = ncclGetLastError(nullptr);
      id_error = fmt::format("{}{}{}", ncclGetErrorString(r), last && *last ? "; NCCL says: " : "", last ? last : "");
    }
  }
  bootstrap.broadcast(&msg, sizeof msg, 0);
  if (!msg.ok) {
    if (rank == 0)
      FOCUS_FAIL("[{}] Backend::kNCCL: ncclGetUniqueId failed on rank 0: {}; {}", op, id_error, nccl_version_string());
    FOCUS_FAIL("[{}] Backend::kNCCL: ncclGetUniqueId failed on rank 0, so the NCCL group cannot be set up", op);
  }

  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRank(&comm, size, msg.id, rank);
  if (r != ncclSuccess) {
    std::string detail;
    const char* last = ncclGetLastError(comm);
    if (last != nullptr && *last != '\0') detail = fmt::format("; NCCL says: {}", last);
    if (comm != nullptr) (void)ncclCommAbort(comm);
    FOCUS_FAIL("[{}] Backend::kNCCL: ncclCommInitRank (rank {} of {}, cuda:{}) failed: {}{}; {}. Each rank needs "
               "its own GPU: run at most as many ranks per machine as it has GPUs",
               op, rank, size, device, ncclGetErrorString(r), detail, nccl_version_string());
  }
  return std::make_unique<NcclCommImpl>(comm, device, rank, size);
}

}  // namespace detail

}  // namespace focus::distributed
