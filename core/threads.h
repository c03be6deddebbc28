#pragma once
/// Thread settings: one pool of threads (backends/cpu/thread_pool.h) runs every CPU kernel
/// and every matrix product; OpenBLAS itself is held to one thread, so nothing else spins.

namespace focus {
/// Sets the number of threads CPU work may use (the calling thread included); n >= 1.
/// Process-wide, as torch.set_num_threads: safe to call from any thread at any time; each op
/// reads it once when it starts (an op already running keeps its split).
void set_num_threads(int n);
/// Current setting: the last set_num_threads, else FOCUS_NUM_THREADS if set, else the
/// number of cores this process may run on (its CPU affinity mask).
int get_num_threads();
}  // namespace focus
