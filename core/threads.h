#pragma once
/// Thread settings shared by the CPU kernels and OpenBLAS.

namespace focus {
/// Sets the number of threads CPU kernels (and OpenBLAS) may use; n >= 1.
void set_num_threads(int n);
/// Current setting: FOCUS_NUM_THREADS if set, else the number of cores.
int get_num_threads();
}  // namespace focus
