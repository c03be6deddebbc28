#pragma once
/// Thread settings: one pool of threads (backends/cpu/thread_pool.h) runs every CPU kernel
/// and every matrix product; OpenBLAS itself is held to one thread, so nothing else spins.

namespace focus {
/// Sets the number of threads CPU work may use (the calling thread included);
/// 1 <= n <= max_num_threads(). Process-wide, as torch.set_num_threads: safe to call from any
/// thread at any time; each op reads it once when it starts (an op already running keeps its
/// split).
void set_num_threads(int n);
/// The most threads set_num_threads (and FOCUS_NUM_THREADS) accepts: 4 per core this process
/// may run on, and at least 64. More only costs memory and switching, and thousands of
/// threads can exhaust a process's limits.
int max_num_threads();
/// Current setting: the last set_num_threads, else FOCUS_NUM_THREADS if set, else the
/// number of cores this process may run on (its CPU affinity mask).
int get_num_threads();
}  // namespace focus
