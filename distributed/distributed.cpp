// The default process group: its communication thread (every host collective runs there,
// in issue order), the watchdog that ends a job stuck in a collective, the agreement check
// before each collective, and the public collectives (distributed/distributed.h).
#include "distributed/distributed.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "autograd/node.h"
#include "backends/common/half.h"
#include "core/creation.h"
#include "core/threads.h"
#include "distributed/transport.h"

namespace focus::distributed {

using detail::NcclComm;
using detail::Transport;
using Clock = std::chrono::steady_clock;

void Work::wait() const {
  if (!state_) return;
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv.wait(lock, [&] { return state_->done; });
  if (state_->error) std::rethrow_exception(state_->error);
}

bool Work::is_completed() const {
  if (!state_) return true;
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->done;
}

std::string_view backend_name(Backend b) { return b == Backend::kNCCL ? "nccl" : "mpi"; }

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::SUM: return "sum";
    case ReduceOp::AVG: return "avg";
    case ReduceOp::MAX: return "max";
    case ReduceOp::MIN: return "min";
  }
  return "?";
}

std::chrono::milliseconds default_timeout() {
  if (const char* s = std::getenv("FOCUS_DIST_TIMEOUT"); s && *s) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    FOCUS_CHECK(end && *end == '\0' && v > 0 && v < 1e9,
                "[init_process_group] FOCUS_DIST_TIMEOUT must be a positive number of seconds, got '{}'", s);
    return std::chrono::milliseconds(static_cast<int64_t>(v * 1000.0 + 0.5));
  }
  return std::chrono::minutes(30);
}

namespace {

// Each rank's description of a collective, compared before the collective runs.
constexpr size_t kDescBytes = 160;

class Group {
 public:
  Group(Backend backend, std::unique_ptr<Transport> transport, std::unique_ptr<NcclComm> nccl,
        std::chrono::milliseconds timeout)
      : backend_(backend), transport_(std::move(transport)), nccl_(std::move(nccl)), timeout_(timeout) {
    worker_ = std::thread([this] { work_loop(); });
    watchdog_ = std::thread([this] { watch_loop(); });
  }
  ~Group() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();  // runs what is queued first
    watchdog_.join();
  }

  Backend backend() const { return backend_; }
  Transport& transport() { return *transport_; }
  NcclComm* nccl() { return nccl_.get(); }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Queues fn (run on the communication thread after the ranks agreed on desc).
  Work submit(std::string desc, std::function<void()> fn) {
    auto state = std::make_shared<Work::State>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back({std::move(desc), std::move(fn), state});
    }
    cv_.notify_all();
    return Work(state);
  }

 private:
  struct Task {
    std::string desc;
    std::function<void()> fn;
    std::shared_ptr<Work::State> state;
  };

  void check_agreement(const std::string& desc) {
    std::string mine(kDescBytes, '\0');
    std::memcpy(mine.data(), desc.data(), std::min(desc.size(), kDescBytes - 1));
    std::string all(kDescBytes * static_cast<size_t>(transport_->size()), '\0');
    transport_->all_gather(mine.data(), all.data(), static_cast<int64_t>(kDescBytes));
    bool same = true;
    std::vector<std::string> each;
    for (int r = 0; r < transport_->size(); ++r) {
      each.emplace_back(all.c_str() + static_cast<size_t>(r) * kDescBytes);
      same = same && each.back() == each.front();
    }
    if (same) return;
    std::string list;
    for (int r = 0; r < transport_->size(); ++r) list += fmt::format("{}rank {}: {}", r ? "; " : "", r, each[r]);
    const std::string op = desc.substr(0, desc.find('('));
    FOCUS_FAIL("[{}] the ranks called different collectives or passed tensors of different dtypes or shapes "
               "(collective #{}), so nothing was exchanged: {}",
               op, seq_, list);
  }

  void work_loop() {
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and drained
        task = std::move(queue_.front());
        task.state->started = Clock::now();
        queue_.pop_front();
        busy_ = true;
        current_ = task.desc;
        started_ = Clock::now();
        ++seq_;
      }
      watch_cv_.notify_all();
      std::exception_ptr error;
      try {
        check_agreement(task.desc);
        task.fn();
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_ = false;
      }
      // The tensors the task holds go before the caller hears it is done: after the last
      // collective the caller may return from main, and a tensor freed here while the statics
      // are destroyed would reach a destroyed backend.
      task.fn = nullptr;
      task.state->finish(error);
    }
  }

  void watch_loop() {
    const auto poll = std::clamp(timeout_ / 20, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      watch_cv_.wait_for(lock, poll);
      if (stop_ && queue_.empty() && !busy_) return;
      if (busy_ && Clock::now() - started_ > timeout_) {
        const std::string msg = fmt::format(
            "error: [distributed] rank {}: {} (collective #{}) did not complete within {:.3g} s: another rank failed, "
            "exited, or called a different collective; ending the job\n",
            transport_->rank(), current_, seq_, std::chrono::duration<double>(timeout_).count());
        std::fputs(msg.c_str(), stderr);
        std::fflush(stderr);
        transport_->abort(1);
      }
    }
  }

  Backend backend_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<NcclComm> nccl_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_, watch_cv_;
  std::deque<Task> queue_;
  bool stop_ = false;
  bool busy_ = false;
  std::string current_;
  Clock::time_point started_;
  uint64_t seq_ = 0;
  std::thread worker_, watchdog_;
};

std::mutex g_mu;
std::unique_ptr<Group> g_group;
bool g_atexit_registered = false;

Group& group(const char* op) {
  FOCUS_CHECK(g_group != nullptr,
              "[{}] the default process group has not been initialized; call "
              "focus::distributed::init_process_group() first",
              op);
  return *g_group;
}

void at_exit() {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_group.reset();
  }
  detail::finalize_mpi();
}

int env_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "WORLD_SIZE"}) {
    if (const char* s = std::getenv(name); s && *s) return std::atoi(s);
  }
  return 1;
}

std::string shape_str(const Tensor& t) { return fmt::format("{} {}", dtype_name(t.dtype()), t.shape()); }

void check_tensor(const char* op, const Tensor& t, const char* what) {
  FOCUS_CHECK(t.defined(), "[{}] {} is an undefined tensor", op, what);
  FOCUS_CHECK(t.is_contiguous(), "[{}] {} must be contiguous (call .contiguous() first); it has shape {} and strides {}",
              op, what, t.shape(), t.strides());
  const Device d = t.device();
  FOCUS_CHECK(d.is_cpu() || d.is_cuda(), "[{}] {} is on {}, which no backend serves", op, what, d);
}

// The checks of the collectives with a flat side: whole (world * chunk elements) and chunk,
// both contiguous, of one dtype and device.
void check_chunked(const char* op, const Tensor& output, const Tensor& input, const Tensor& whole,
                   const char* whole_name, const Tensor& chunk, const char* chunk_name, int world) {
  check_tensor(op, input, "the input");
  check_tensor(op, output, "the output");
  FOCUS_CHECK(output.dtype() == input.dtype() && output.device() == input.device(),
              "[{}] the output ({} on {}) must have the input's dtype and device ({} on {})", op,
              dtype_name(output.dtype()), output.device(), dtype_name(input.dtype()), input.device());
  FOCUS_CHECK(whole.numel() == chunk.numel() * world,
              "[{}] the {} must hold world_size ({}) x the {}'s {} elements, but it has shape {}", op, whole_name, world,
              chunk_name, chunk.numel(), whole.shape());
}

// The checks of the collectives with a list side: one tensor per rank, each of ref's shape,
// dtype and device.
void check_list(const char* op, const std::vector<Tensor>& list, const char* item, const Tensor& ref,
                const char* ref_name, int world) {
  FOCUS_CHECK(static_cast<int>(list.size()) == world, "[{}] needs one {} tensor per rank ({}), got {}", op, item, world,
              list.size());
  for (size_t r = 0; r < list.size(); ++r) {
    check_tensor(op, list[r], fmt::format("{} {}", item, r).c_str());
    FOCUS_CHECK(list[r].shape() == ref.shape() && list[r].dtype() == ref.dtype() && list[r].device() == ref.device(),
                "[{}] {} {} ({} on {}) must have the {}'s shape, dtype and device ({} on {})", op, item, r,
                shape_str(list[r]), list[r].device(), ref_name, shape_str(ref), ref.device());
  }
}

void check_reduce(const char* op, DType dtype, ReduceOp rop) {
  if (dtype == kBool)
    FOCUS_CHECK(rop == ReduceOp::MAX || rop == ReduceOp::MIN,
                "[{}] a bool tensor can be reduced with MAX (or) and MIN (and) only, not {}", op, reduce_op_name(rop));
  if (rop == ReduceOp::AVG)
    FOCUS_CHECK(is_floating(dtype), "[{}] ReduceOp::AVG needs a floating-point tensor, got {}", op, dtype_name(dtype));
}

// The CUDA path of a group: NCCL (a CPU tensor always takes the host transport).
NcclComm& nccl_for(Group& g, const char* op, const Tensor& t) {
  FOCUS_CHECK(g.nccl() != nullptr,
              "[{}] the tensor is on {}, but the process group's backend is {}, which works on CPU tensors; "
              "initialize the group with Backend::kNCCL for CUDA tensors",
              op, t.device(), backend_name(g.backend()));
  return *g.nccl();
}

// Divides n values of dtype at p by d (AVG after a SUM).
void divide(void* p, int64_t n, DType dtype, int d) {
  if (d == 1) return;
  switch (dtype) {
    case kFloat32: {
      auto* x = static_cast<float*>(p);
      for (int64_t i = 0; i < n; ++i) x[i] /= static_cast<float>(d);
      break;
    }
    case kFloat64: {
      auto* x = static_cast<double*>(p);
      for (int64_t i = 0; i < n; ++i) x[i] /= d;
      break;
    }
    case kFloat16: {
      auto* x = static_cast<uint16_t*>(p);
      for (int64_t i = 0; i < n; ++i)
        x[i] = common::float_to_half_bits(common::half_bits_to_float(x[i]) / static_cast<float>(d));
      break;
    }
    case kBFloat16: {
      auto* x = static_cast<uint16_t*>(p);
      for (int64_t i = 0; i < n; ++i)
        x[i] = common::float_to_bfloat16_bits(common::bfloat16_bits_to_float(x[i]) / static_cast<float>(d));
      break;
    }
    default: FOCUS_FAIL("[all_reduce] ReduceOp::AVG needs a floating-point tensor, got {}", dtype_name(dtype));
  }
}

// Runs a collective: queued, then waited for unless async.
Work finish(Work w, bool async_op) {
  if (!async_op) w.wait();
  return w;
}

// A NCCL collective: the ranks agree first (on the communication thread), then it is
// queued on the current stream from this thread.
Work run_nccl(Group& g, std::string desc, const std::function<void()>& enqueue) {
  g.submit(std::move(desc), [] {}).wait();
  enqueue();
  return Work();
}

}  // namespace

bool is_initialized() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_group != nullptr;
}

void init_process_group(Backend backend, std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(g_mu);
  FOCUS_CHECK(g_group == nullptr,
              "[init_process_group] the default process group is already initialized; call destroy_process_group() "
              "first");
  FOCUS_CHECK(timeout.count() > 0, "[init_process_group] timeout must be positive, got {} ms", timeout.count());
  if (backend == Backend::kNCCL)
    FOCUS_CHECK(is_nccl_available(),
                "[init_process_group] Backend::kNCCL needs a CUDA build of focus that found NCCL (and MPI for more "
                "than one rank); this build has no NCCL");
  std::unique_ptr<Transport> transport;
  if (is_mpi_available()) {
    transport = detail::make_mpi_transport();
  } else {
    const int world = env_world_size();
    FOCUS_CHECK(world <= 1,
                "[init_process_group] the environment asks for {} ranks, but this focus was built without MPI (FOCUS_MPI "
                "was OFF, or MPI was not found when focus was configured), so it runs one process only; install "
                "libopenmpi-dev (and openmpi-bin) and rebuild focus",
                world);
    transport = detail::make_local_transport();
  }
  if (!g_atexit_registered) {
    std::atexit(at_exit);
    g_atexit_registered = true;
  }
  std::unique_ptr<NcclComm> nccl;
  if (backend == Backend::kNCCL) nccl = detail::make_nccl_comm(*transport);
  const int local = transport->local_size();
  if (local > 1 && std::getenv("FOCUS_NUM_THREADS") == nullptr) {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    set_num_threads(std::max(1, static_cast<int>(hw) / local));
  }
  g_group = std::make_unique<Group>(backend, std::move(transport), std::move(nccl), timeout);
}

void destroy_process_group() {
  std::lock_guard<std::mutex> lock(g_mu);
  FOCUS_CHECK(g_group != nullptr, "[destroy_process_group] the default process group has not been initialized");
  g_group.reset();
}

Backend get_backend() { return group("get_backend").backend(); }
int get_rank() { return group("get_rank").transport().rank(); }
int get_world_size() { return group("get_world_size").transport().size(); }
int get_local_rank() { return group("get_local_rank").transport().local_rank(); }
int get_local_world_size() { return group("get_local_world_size").transport().local_size(); }

Work all_reduce(const Tensor& tensor, ReduceOp op, bool async_op) {
  Group& g = group("all_reduce");
  check_tensor("all_reduce", tensor, "the tensor");
  check_reduce("all_reduce", tensor.dtype(), op);
  std::string desc = fmt::format("all_reduce({}, {})", shape_str(tensor), reduce_op_name(op));
  tensor.bump_version();
  if (tensor.device().is_cuda()) {
    NcclComm& nc = nccl_for(g, "all_reduce", tensor);
    return run_nccl(g, std::move(desc), [&] { nc.all_reduce(tensor, op); });
  }
  const int world = g.transport().size();
  return finish(g.submit(std::move(desc),
                         [&g, tensor, op, world] {
                           void* p = tensor.data_ptr();
                           g.transport().all_reduce(p, tensor.numel(), tensor.dtype(),
                                                    op == ReduceOp::AVG ? ReduceOp::SUM : op);
                           if (op == ReduceOp::AVG) divide(p, tensor.numel(), tensor.dtype(), world);
                         }),
                async_op);
}

Work broadcast(const Tensor& tensor, int src, bool async_op) {
  Group& g = group("broadcast");
  check_tensor("broadcast", tensor, "the tensor");
  const int world = g.transport().size();
  FOCUS_CHECK(src >= 0 && src < world, "[broadcast] src {} is not a rank of this group of {}", src, world);
  std::string desc = fmt::format("broadcast({}, src={})", shape_str(tensor), src);
  tensor.bump_version();
  if (tensor.device().is_cuda()) {
    NcclComm& nc = nccl_for(g, "broadcast", tensor);
    return run_nccl(g, std::move(desc), [&] { nc.broadcast(tensor, src); });
  }
  return finish(g.submit(std::move(desc),
                         [&g, tensor, src] {
                           g.transport().broadcast(tensor.data_ptr(),
                                                   tensor.numel() * static_cast<int64_t>(tensor.element_size()), src);
                         }),
                async_op);
}

Work all_gather_into_tensor(const Tensor& output, const Tensor& input, bool async_op) {
  Group& g = group("all_gather_into_tensor");
  const char* op = "all_gather_into_tensor";
  check_chunked(op, output, input, output, "output", input, "input", g.transport().size());
  std::string desc = fmt::format("{}({})", op, shape_str(input));
  output.bump_version();
  if (input.device().is_cuda()) {
    NcclComm& nc = nccl_for(g, op, input);
    return run_nccl(g, std::move(desc), [&] { nc.all_gather(input, output); });
  }
  return finish(g.submit(std::move(desc),
                         [&g, input, output] {
                           g.transport().all_gather(input.data_ptr(), output.data_ptr(),
                                                    input.numel() * static_cast<int64_t>(input.element_size()));
                         }),
                async_op);
}

Work all_gather(const std::vector<Tensor>& outputs, const Tensor& input, bool async_op) {
  Group& g = group("all_gather");
  check_tensor("all_gather", input, "the input");
  const int world = g.transport().size();
  check_list("all_gather", outputs, "output", input, "input", world);
  // Gathered into one buffer, then copied out (on the communication thread for CPU
  // tensors, so an async all_gather stays asynchronous).
  Tensor flat = empty({input.numel() * world}, TensorOptions(input.dtype()).device(input.device()));
  if (input.device().is_cuda()) {
    all_gather_into_tensor(flat, input, false);
    NoGradGuard ng;
    for (int r = 0; r < world; ++r) outputs[r].copy_(flat.narrow(0, r * input.numel(), input.numel()).view(input.shape()));
    return Work();
  }
  for (const Tensor& o : outputs) o.bump_version();
  std::string desc = fmt::format("all_gather({})", shape_str(input));
  return finish(g.submit(std::move(desc),
                         [&g, input, outputs, flat] {
                           const int64_t nb = input.numel() * static_cast<int64_t>(input.element_size());
                           g.transport().all_gather(input.data_ptr(), flat.data_ptr(), nb);
                           for (size_t r = 0; r < outputs.size(); ++r)
                             if (nb > 0)
                               std::memcpy(outputs[r].data_ptr(), static_cast<const char*>(flat.data_ptr()) + r * nb,
                                           static_cast<size_t>(nb));
                         }),
                async_op);
}

Work reduce_scatter_tensor(const Tensor& output, const Tensor& input, ReduceOp op, bool async_op) {
  const char* name = "reduce_scatter_tensor";
  Group& g = group(name);
  const int world = g.transport().size();
  check_chunked(name, output, input, input, "input", output, "output", world);
  check_reduce(name, input.dtype(), op);
  std::string desc = fmt::format("{}({}, {})", name, shape_str(output), reduce_op_name(op));
  output.bump_version();
  if (input.device().is_cuda()) {
    NcclComm& nc = nccl_for(g, name, input);
    return run_nccl(g, std::move(desc), [&] { nc.reduce_scatter(input, output, op); });
  }
  return finish(g.submit(std::move(desc),
                         [&g, input, output, op, world] {
                           g.transport().reduce_scatter(input.data_ptr(), output.data_ptr(), output.numel(),
                                                        output.dtype(), op == ReduceOp::AVG ? ReduceOp::SUM : op);
                           if (op == ReduceOp::AVG) divide(output.data_ptr(), output.numel(), output.dtype(), world);
                         }),
                async_op);
}

Work reduce_scatter(const Tensor& output, const std::vector<Tensor>& inputs, ReduceOp op, bool async_op) {
  Group& g = group("reduce_scatter");
  check_tensor("reduce_scatter", output, "the output");
  const int world = g.transport().size();
  check_list("reduce_scatter", inputs, "input", output, "output", world);
  Tensor flat = empty({output.numel() * world}, TensorOptions(output.dtype()).device(output.device()));
  {
    NoGradGuard ng;
    for (int r = 0; r < world; ++r) flat.narrow(0, r * output.numel(), output.numel()).copy_(inputs[r].reshape({-1}));
  }
  return reduce_scatter_tensor(output, flat, op, async_op);
}

void barrier() {
  Group& g = group("barrier");
  g.submit("barrier()", [&g] { g.transport().barrier(); }).wait();
}

std::string broadcast_bytes(const std::string& bytes, int src) {
  Group& g = group("broadcast_bytes");
  const int world = g.transport().size();
  FOCUS_CHECK(src >= 0 && src < world, "[broadcast_bytes] src {} is not a rank of this group of {}", src, world);
  std::string out = bytes;
  g.submit(fmt::format("broadcast_bytes(src={})", src),
           [&g, &out, src] {
             int64_t n = static_cast<int64_t>(out.size());
             g.transport().broadcast(&n, sizeof n, src);
             out.resize(static_cast<size_t>(n));
             if (n > 0) g.transport().broadcast(out.data(), n, src);
           })
      .wait();
  return out;
}

std::vector<std::string> all_gather_bytes(const std::string& bytes) {
  Group& g = group("all_gather_bytes");
  std::vector<std::string> out;
  g.submit("all_gather_bytes()",
           [&g, &out, &bytes] {
             const int world = g.transport().size();
             const int64_t n = static_cast<int64_t>(bytes.size());
             std::vector<int64_t> sizes(static_cast<size_t>(world));
             g.transport().all_gather(&n, sizes.data(), sizeof n);
             const int64_t most = *std::max_element(sizes.begin(), sizes.end());
             std::string mine(static_cast<size_t>(most), '\0');
             std::memcpy(mine.data(), bytes.data(), bytes.size());
             std::string all(static_cast<size_t>(most * world), '\0');
             if (most > 0) g.transport().all_gather(mine.data(), all.data(), most);
             for (int r = 0; r < world; ++r) out.push_back(all.substr(static_cast<size_t>(r * most), sizes[r]));
           })
      .wait();
  return out;
}

void abort_job(const std::string& message, int code) {
  std::unique_lock<std::mutex> lock(g_mu, std::try_to_lock);
  const bool live = g_group != nullptr;
  const std::string text = live ? fmt::format("[rank {}] {}\n", g_group->transport().rank(), message) : message + "\n";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  std::fflush(stdout);
  if (live) g_group->transport().abort(code);
  std::_Exit(code);
}

namespace detail {

namespace {
class LocalTransport final : public Transport {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  void all_reduce(void*, int64_t, DType, ReduceOp) override {}
  void broadcast(void*, int64_t, int) override {}
  void all_gather(const void* in, void* out, int64_t nbytes) override {
    if (nbytes > 0 && in != out) std::memmove(out, in, static_cast<size_t>(nbytes));
  }
  void reduce_scatter(const void* in, void* out, int64_t count, DType dtype, ReduceOp) override {
    if (count > 0 && in != out) std::memmove(out, in, static_cast<size_t>(count) * dtype_size(dtype));
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override {
    std::fflush(nullptr);
    std::_Exit(code);
  }
};
}  // namespace

std::unique_ptr<Transport> make_local_transport() { return std::make_unique<LocalTransport>(); }

}  // namespace detail

}  // namespace focus::distributed
