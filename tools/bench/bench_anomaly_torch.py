#!/usr/bin/python3
"""PyTorch side of tools/bench/bench_anomaly: the same three figures with
torch.autograd.set_detect_anomaly off or on (check_nan=True, PyTorch's default).

  bench_anomaly_torch.py --mode off|on [--threads 1] [--steps 20] [--warmup 3] [--ops 10000]

prints `R gpt_step_ms X`, `R add_us X` and `R chain_us X` (medians; each also as CPU time,
`R gpt_step_cpu_ms X`, ...), as bench_anomaly's workers: the small GPT of bench_gpt_torch.py (4 layers, 4 heads, width 128, context 64,
batch 12, vocab 65) trained with AdamW on random batches; z = leaf + y on 1-element tensors;
forward and backward of a chain z = z * 1.0001 of 100 nodes, per node.
"""
import argparse
import os
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpt_torch import CONFIGS, GPT, make_optimizer, set_threads  # noqa: E402


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["off", "on"], default="off")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--ops", type=int, default=10000)
    a = p.parse_args()
    set_threads(a.threads)
    warnings.simplefilter("ignore")  # detect_anomaly's "this mode will increase the runtime"
    torch.autograd.set_detect_anomaly(a.mode == "on")
    torch.manual_seed(1)
    c = dict(CONFIGS["small"], dropout=0.0, bias=True)
    model = GPT(c)
    opt = make_optimizer(model)
    g = torch.Generator().manual_seed(1)
    times, cpu = [], []
    for s in range(a.warmup + a.steps):
        x = torch.randint(0, 65, (c["batch"], c["block_size"]), generator=g)
        y = torch.randint(0, 65, (c["batch"], c["block_size"]), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    print(f"R gpt_step_ms {1e3 * median(times):.6f}")
    print(f"R gpt_step_cpu_ms {1e3 * median(cpu):.6f}")

    leaf = torch.ones(1, requires_grad=True)
    one = torch.ones(1)
    add, add_cpu = [], []
    for r in range(6):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.ops):
            z = leaf + one
        if r:
            add.append(1e6 * (time.perf_counter() - t0) / a.ops)
            add_cpu.append(1e6 * (time.process_time() - c0) / a.ops)
    print(f"R add_us {median(add):.6f}")
    print(f"R add_cpu_us {median(add_cpu):.6f}")

    chains = max(1, a.ops // 100)
    chain, chain_cpu = [], []
    for r in range(6):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(chains):
            z = leaf
            for _ in range(100):
                z = z * 1.0001
            z.backward()
        if r:
            chain.append(1e6 * (time.perf_counter() - t0) / (100 * chains))
            chain_cpu.append(1e6 * (time.process_time() - c0) / (100 * chains))
    print(f"R chain_us {median(chain):.6f}")
    print(f"R chain_cpu_us {median(chain_cpu):.6f}")


if __name__ == "__main__":
    main()
