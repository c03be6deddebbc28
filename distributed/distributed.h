#pragma once
/// focus::distributed: process groups and collectives, as torch.distributed.
///
/// One process per rank, started by Open MPI's `mpirun` (docs/DISTRIBUTED.md). The default
/// process group is set up by init_process_group(); collectives then run on tensors in
/// place. Every collective is queued to one communication thread per process, so the
/// collectives of a process run in the order they were issued, and each returns a Work:
/// with async_op = false the call returns once the collective is done; with async_op =
/// true it returns at once and Work::wait() blocks until it is done (rethrowing its error).
///
/// Backends:
///  - Backend::kMPI: CPU tensors, through Open MPI (a build with FOCUS_MPI; a build without
///    MPI runs with world size 1, and refuses a larger job with a clear error).
///  - Backend::kNCCL: CUDA tensors through NCCL (its communicator set up through MPI), CPU
///    tensors through MPI, as PyTorch's "cpu:gloo,cuda:nccl". NCCL collectives are queued
///    on the current CUDA stream in issue order; their Work is complete once queued, later
///    work on that stream is ordered after them (PyTorch's wait() semantics).
///
/// Checks: before each collective the ranks compare what they were asked (collective,
/// dtype, shape, reduce op, root); when they differ, every rank throws the same
/// focus::Error listing each rank's call, and nothing is exchanged. A collective that does
/// not complete within the timeout (a rank died, threw, or never called it) ends the whole
/// job: the rank prints what it waited for and calls MPI_Abort, so mpirun stops every rank.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace focus::distributed {

enum class Backend { kMPI, kNCCL };
/// "mpi" or "nccl".
std::string_view backend_name(Backend b);

/// torch.distributed.ReduceOp. AVG needs a floating-point tensor; bool tensors take MAX
/// (logical or) and MIN (logical and) only.
enum class ReduceOp { SUM, AVG, MAX, MIN };
std::string_view reduce_op_name(ReduceOp op);

/// True when focus was built with MPI (FOCUS_MPI) / with NCCL (a CUDA build that found it).
bool is_mpi_available();
bool is_nccl_available();

/// The timeout of collectives when none is given: FOCUS_DIST_TIMEOUT (seconds) if set,
/// else 30 minutes (PyTorch's default).
std::chrono::milliseconds default_timeout();

/// Sets up the default process group from the environment mpirun gives each process
/// (rank, world size). Initializes MPI unless the program already did (MPI is finalized
/// at exit, never before: MPI cannot be initialized twice). Unless FOCUS_NUM_THREADS is
/// set, each rank then uses cores / (ranks on this machine) threads (at least 1), as
/// torchrun sets OMP_NUM_THREADS; set_num_threads() afterwards overrides it.
/// Errors: already initialized; kNCCL without NCCL or without a GPU; a world size above 1
/// in a build without MPI.
void init_process_group(Backend backend = Backend::kMPI, std::chrono::milliseconds timeout = default_timeout());
bool is_initialized();
/// The default group's backend, this process's rank, the number of ranks, and the number
/// of ranks on this machine and this rank's index among them (mpirun's local rank).
/// Errors when no group is initialized (as PyTorch).
Backend get_backend();
int get_rank();
int get_world_size();
int get_local_rank();
int get_local_world_size();
/// Ends the default group (waits for its queued collectives); init_process_group() may be
/// called again afterwards. A group still live at exit is destroyed then.
void destroy_process_group();

/// A queued collective (torch.distributed.Work).
class Work {
 public:
  struct State;
  Work() = default;  // a completed Work
  explicit Work(std::shared_ptr<State> s) : state_(std::move(s)) {}
  /// Blocks until the collective is done; rethrows its focus::Error if it failed.
  void wait() const;
  /// True once done (or failed: wait() then throws).
  bool is_completed() const;
  /// Internal (the communication thread's record, for DistributedDataParallel's counters).
  const std::shared_ptr<State>& state() const { return state_; }

 private:
  std::shared_ptr<State> state_;
};

/// Reduces `tensor` over all ranks in place: every rank ends with the result.
Work all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::SUM, bool async_op = false);
/// Copies src's `tensor` into every other rank's `tensor` (same shape and dtype everywhere).
Work broadcast(const Tensor& tensor, int src, bool async_op = false);
/// outputs[r] receives rank r's input: world_size tensors of the input's shape and dtype.
Work all_gather(const std::vector<Tensor>& outputs, const Tensor& input, bool async_op = false);
/// output (world_size * input.numel() elements, the ranks' inputs concatenated along dim 0
/// or flat) receives every rank's input, rank 0 first.
Work all_gather_into_tensor(const Tensor& output, const Tensor& input, bool async_op = false);
/// inputs: world_size tensors of output's shape; rank r's output receives the reduction
/// over ranks of their inputs[r].
Work reduce_scatter(const Tensor& output, const std::vector<Tensor>& inputs, ReduceOp op = ReduceOp::SUM,
                    bool async_op = false);
/// input: world_size * output.numel() elements (concatenated along dim 0 or flat); rank r's
/// output receives the reduction of the ranks' r-th chunks.
Work reduce_scatter_tensor(const Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::SUM,
                           bool async_op = false);
/// Blocks until every rank has reached the barrier.
void barrier();

/// Object collectives for small host data (names, shapes, settings): every rank receives
/// src's bytes (broadcast_bytes), or the list of every rank's bytes (all_gather_bytes).
std::string broadcast_bytes(const std::string& bytes, int src);
std::vector<std::string> all_gather_bytes(const std::string& bytes);

/// Ends the whole job now: prints message on stderr (prefixed with this rank) and calls
/// MPI_Abort, which makes mpirun stop every rank; a single process just exits with code.
/// For a rank that caught an error the others cannot know about.
[[noreturn]] void abort_job(const std::string& message, int code = 1);

}  // namespace focus::distributed
