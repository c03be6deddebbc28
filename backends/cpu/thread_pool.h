#pragma once
/// focus's one pool of CPU threads: every parallel loop of the CPU kernels and every
/// multi-threaded matrix product (focus splits the GEMMs; OpenBLAS itself always runs on one
/// thread) run on it, so no two pools ever spin against each other on the same cores.
///
/// The calling thread takes part; get_num_threads() - 1 workers are started on first use.
/// A worker that finds no work spins for a short while (kSpinMicros) so that the next op of a
/// training step starts without a wake-up, then sleeps on a futex (no CPU used while the
/// program does something else). One job runs at a time: a call made from inside a job, or
/// from another thread while a job runs, runs inline on the calling thread (the same tasks,
/// so the same results; never a wait for the other thread's job, so never a deadlock).
#include <cstdint>

namespace focus::cpu {

/// Microseconds an idle worker spins before it sleeps (see docs/PERFORMANCE.md for the
/// measured wake-up latencies that chose it).
inline constexpr int kSpinMicros = 300;

/// Runs task(ctx, i) for every i in [0, ntasks) on up to nthreads threads (the caller
/// included) and returns when all have run. Tasks are claimed in order from a shared
/// counter, so which thread runs a task varies, but the tasks themselves do not.
/// task must not throw.
void run_parallel(int64_t ntasks, int nthreads, void (*task)(void* ctx, int64_t i), void* ctx);

/// Index of the calling thread within the running job: 0 for the caller, 1.. for workers;
/// 0 outside any job. Always < the job's nthreads.
int thread_index();

/// True while the calling thread runs a task of the pool (nested parallel loops run inline).
bool in_parallel();

}  // namespace focus::cpu
