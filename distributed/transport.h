#pragma once
/// The transports under focus::distributed (internal): what moves bytes between ranks.
/// distributed.cpp owns the default group, its communication thread and the checks; a
/// Transport only runs one blocking collective at a time, on that thread.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "distributed/distributed.h"

namespace focus::distributed {

/// What a Work waits on: set by the communication thread when its collective is done.
struct Work::State {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  std::chrono::steady_clock::time_point started, ended;  // on the communication thread
  void finish(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      ended = std::chrono::steady_clock::now();
      error = std::move(e);
    }
    cv.notify_all();
  }
};

}  // namespace focus::distributed

namespace focus::distributed::detail {

/// Host-memory collectives, blocking, called from one thread at a time (the group's
/// communication thread). Reductions get SUM, MAX or MIN (AVG is a SUM followed by a
/// division, done by the caller); counts are in elements of dtype; buffers are contiguous.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual void all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op) = 0;
  virtual void broadcast(void* buf, int64_t nbytes, int root) = 0;
  /// out: size() * nbytes bytes, rank r's block at r * nbytes.
  virtual void all_gather(const void* in, void* out, int64_t nbytes) = 0;
  /// in: size() * count elements; out: count elements, the reduction of every rank's
  /// block rank().
  virtual void reduce_scatter(const void* in, void* out, int64_t count, DType dtype, ReduceOp op) = 0;
  virtual void barrier() = 0;
  /// Ends the job (MPI_Abort for MPI); safe from any thread.
  [[noreturn]] virtual void abort(int code) = 0;
};

/// The Open MPI transport (distributed/mpi.cpp, in builds with MPI); initializes MPI when
/// the program has not. Throws focus::Error when MPI cannot be used.
std::unique_ptr<Transport> make_mpi_transport();
/// World size 1, without MPI: every collective is a copy.
std::unique_ptr<Transport> make_local_transport();
/// Finalizes MPI if focus initialized it (called once, at exit).
void finalize_mpi();

/// NCCL collectives on CUDA tensors (distributed/nccl.cpp in CUDA builds with NCCL), queued
/// on the current CUDA stream of the tensor's device. Tensors are contiguous and on the
/// communicator's device; AVG is NCCL's own.
class NcclComm {
 public:
  virtual ~NcclComm() = default;
  virtual void all_reduce(const Tensor& t, ReduceOp op) = 0;
  virtual void broadcast(const Tensor& t, int root) = 0;
  /// out: size * in.numel() elements, rank r's input at r * in.numel().
  virtual void all_gather(const Tensor& in, const Tensor& out) = 0;
  /// in: size * out.numel() elements.
  virtual void reduce_scatter(const Tensor& in, const Tensor& out, ReduceOp op) = 0;
};
/// Creates the communicator of every rank (rank 0's ncclUniqueId is broadcast through
/// bootstrap, which must be usable from the calling thread), on the GPU given by the
/// local rank modulo the GPUs visible. Errors when NCCL is missing or no GPU is there.
std::unique_ptr<NcclComm> make_nccl_comm(Transport& bootstrap);

}  // namespace focus::distributed::detail
