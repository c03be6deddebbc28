#pragma once
/// Anomaly detection, as torch.autograd.set_detect_anomaly / torch.autograd.detect_anomaly:
/// while it is on, every recorded node remembers the forward op that made it (op name, and
/// the shapes, dtypes and devices of its inputs and outputs), and the backward engine checks
/// what each node's backward returns. A gradient holding NaN or infinite values then raises
/// a focus::Error naming the node and its forward op, and any other error a backward raises
/// gets the same forward op appended:
///
///   {
///     autograd::DetectAnomalyGuard anomaly;   // on for this scope, for every thread
///     Tensor y = div(a, b);                   // the node records "div([4, 3] float32, ...)"
///     y.sum().backward();                     // NaN in DivBackward0's output -> focus::Error
///   }
///
/// The mode is one flag for the whole process, as PyTorch's AnomalyMode (a static bool, not
/// thread-local): turn it on before the forward pass, so the nodes record where they came
/// from. Off by default; when off, recording a node and running it each cost one test of
/// that flag. It is for debugging: when on, each gradient a node returns is read in full (on
/// a GPU, one host synchronisation per gradient), and each node keeps a short description.
/// Unlike PyTorch, which checks for NaN only, infinite values are reported too (an infinite
/// gradient is as broken, and is where the NaN of a later 0 * inf comes from); so with fp16
/// loss scaling (--amp fp16), an overflow the GradScaler would have skipped is reported.
#include <atomic>
#include <string>
#include <vector>

namespace focus {
class Node;
class Tensor;
class TensorList;
}  // namespace focus

namespace focus::autograd {

namespace anomaly_detail {
// Read on every node recorded and run: one relaxed load (a plain load on x86 and ARM).
extern std::atomic<bool> enabled;
extern std::atomic<bool> check_nan;
}  // namespace anomaly_detail

/// Turns anomaly detection on or off for the whole process (torch.autograd.set_detect_anomaly):
/// check_nan = whether the backward checks gradients for NaN/inf values (with false, nodes
/// still record their forward op, and errors raised in a backward name it).
void set_detect_anomaly(bool mode, bool check_nan = true);
/// Whether anomaly detection is on (torch.is_anomaly_enabled).
inline bool is_anomaly_enabled() { return anomaly_detail::enabled.load(std::memory_order_relaxed); }
/// Whether the backward checks gradients for NaN/inf values while anomaly detection is on
/// (torch.is_anomaly_check_nan_enabled).
inline bool is_anomaly_check_nan_enabled() { return anomaly_detail::check_nan.load(std::memory_order_relaxed); }

/// Turns anomaly detection on (torch.autograd.detect_anomaly(check_nan)) for its scope and
/// restores the previous mode and check_nan after; guards nest. The flag is process-wide, so
/// guards on several threads at once see each other's settings, as in PyTorch.
class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(bool check_nan = true);
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool prev_enabled_;
  bool prev_check_nan_;
};

/// The forward op a node was recorded by, as anomaly detection saw it:
/// "div([4, 3] float32, [4, 3] float32) -> [4, 3] float32 on cpu"; "" when the node was
/// recorded while anomaly detection was off (or is a leaf's accumulator).
std::string anomaly_forward_op(const Node& node);

namespace anomaly_detail {
/// Called by init_node while anomaly detection is on: stores node's description (forward op
/// from its name, inputs, outputs, and the node whose backward was running, if any).
void record(Node& node, TensorList inputs, TensorList outputs);
/// Called by the engine, while anomaly detection is on, after node's backward returned
/// grads: errors if one holds NaN or infinite values (when check_nan is on).
void check_gradients(const Node& node, const std::vector<Tensor>& grads);
/// Rethrows the focus::Error being handled, with node and its forward op appended.
[[noreturn]] void rethrow_with_node(const Node& node);
/// The node whose backward runs on this thread while anomaly detection is on (nodes made
/// during it, under create_graph, name it as their parent); null otherwise.
class RunningNodeScope {
 public:
  explicit RunningNodeScope(const Node* node);
  ~RunningNodeScope();
  RunningNodeScope(const RunningNodeScope&) = delete;
  RunningNodeScope& operator=(const RunningNodeScope&) = delete;

 private:
  const Node* prev_;
};
}  // namespace anomaly_detail

}  // namespace focus::autograd
