#!/usr/bin/python3
"""PyTorch side of tools/bench/bench_engine: the same measurements, the same method.

Run by bench_engine (popen of /usr/bin/python3 with Debian's python3-torch); prints
"R <name> <threads> <seconds per call>" lines that bench_engine puts beside its own, and
"I <key> <value>" lines of information. Runnable alone for a look at the raw numbers:

    /usr/bin/python3 tools/bench/bench_engine_torch.py --threads 1,2 --sections abcd
"""
import argparse
import ctypes
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def openblas_set_num_threads_fn():
    """openblas_set_num_threads of the BLAS torch loaded (torch.set_num_threads does not
    reach a generic BLAS), or None."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line and line.split()[-1].startswith("/")}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            return lib.openblas_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


def median_time(args, fn):
    """Median over args.reps repetitions of the time of one call, after a warm-up call;
    each repetition runs enough calls to last args.min_sample seconds (as bench_engine)."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    k = max(1, int(-(-args.min_sample // one)))
    samples = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        samples.append((time.perf_counter() - t0) / k)
    return statistics.median(samples)


def emit(name, threads, seconds):
    print(f"R {name} {threads} {seconds:.9g}", flush=True)


def bench_matmul(args, threads):
    for n in (256, 512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        emit(f"mm.{n}", threads, median_time(args, lambda: torch.mm(a, b)))


def per_op(args, loop):
    loop(args.overhead_ops // 10)
    samples = []
    for _ in range(3 if args.quick else 5):
        t0 = time.perf_counter()
        loop(args.overhead_ops)
        samples.append((time.perf_counter() - t0) / args.overhead_ops)
    return statistics.median(samples)


def bench_overhead(args, threads):
    x, y = torch.ones(1), torch.ones(1)
    leaf = torch.ones(1, requires_grad=True)

    def nograd(n):
        for _ in range(n):
            z = x + y

    def on_leaf(n):
        for _ in range(n):
            z = leaf + y

    def chain(n):
        z = leaf
        for i in range(n):
            z = z + y
            if i % 100 == 99:
                z = leaf

    emit("add1.nograd", threads, per_op(args, nograd))
    emit("add1.leaf", threads, per_op(args, on_leaf))
    emit("add1.chain", threads, per_op(args, chain))


def bench_bandwidth(args, threads):
    n = 1 << 24
    a, b = torch.randn(n), torch.randn(n)
    out = torch.empty(n)
    emit("add", threads, median_time(args, lambda: torch.add(a, b)))
    emit("mul", threads, median_time(args, lambda: torch.mul(a, b)))
    emit("gelu", threads, median_time(args, lambda: F.gelu(a)))
    emit("add.out", threads, median_time(args, lambda: torch.add(a, b, out=out)))
    emit("mul.out", threads, median_time(args, lambda: torch.mul(a, b, out=out)))
    emit("gelu.out", threads, median_time(args, lambda: torch._C._nn.gelu(a, out=out)))


def bench_fused(args, threads):
    rows, cols = 4096, 1024
    x = torch.randn(rows, cols, requires_grad=True)
    g = torch.randn(rows, cols)
    w = torch.ones(cols, requires_grad=True)
    bias = torch.zeros(cols, requires_grad=True)
    target = torch.randint(0, cols, (rows,))

    def clear():
        x.grad = None
        w.grad = None
        bias.grad = None

    def softmax_fb():
        clear()
        torch.softmax(x, -1).backward(g)

    def layer_norm_fb():
        clear()
        F.layer_norm(x, (cols,), w, bias).backward(g)

    def cross_entropy_fb():
        clear()
        F.cross_entropy(x, target).backward()

    emit("softmax.fwd", threads, median_time(args, lambda: torch.softmax(x, -1)))
    emit("softmax.fb", threads, median_time(args, softmax_fb))
    emit("layer_norm.fwd", threads, median_time(args, lambda: F.layer_norm(x, (cols,), w, bias)))
    emit("layer_norm.fb", threads, median_time(args, layer_norm_fb))
    emit("cross_entropy.fwd", threads, median_time(args, lambda: F.cross_entropy(x, target)))
    emit("cross_entropy.fb", threads, median_time(args, cross_entropy_fb))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--sections", default="abcd")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--min-sample", type=float, default=0.05)
    p.add_argument("--overhead-ops", type=int, default=100000)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.reps, args.min_sample, args.overhead_ops = 3, 0.02, 20000

    set_blas_threads = openblas_set_num_threads_fn()
    print(f"I torch {torch.__version__} (python {sys.version.split()[0]}, "
          f"openblas_set_num_threads {'found' if set_blas_threads else 'NOT found'})", flush=True)
    torch.manual_seed(0)
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        if set_blas_threads:
            set_blas_threads(threads)
        print(f"torch, {threads} thread(s)...", file=sys.stderr, flush=True)
        if "a" in args.sections:
            bench_matmul(args, threads)
        if "b" in args.sections:
            bench_overhead(args, threads)
        if "c" in args.sections:
            bench_bandwidth(args, threads)
        if "d" in args.sections:
            bench_fused(args, threads)


if __name__ == "__main__":
    main()
