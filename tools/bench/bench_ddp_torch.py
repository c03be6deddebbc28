#!/usr/bin/python3
"""PyTorch side of tools/bench/bench_ddp: the medium GPT of bench_gpt_torch.py trained with
AdamW at one thread per process: one process without DDP, then DistributedDataParallel
(torch.distributed on gloo) with 1 and 2 ranks over the same global batch of 8.

  bench_ddp_torch.py [--steps 8] [--warmup 2]

Prints one line {"framework": "torch", "plain": {...}, "ddp1": {...}, "ddp2": {...}}, each with
the median step time (s) and tokens/s, as bench_ddp's workers."""
import argparse
import json
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpt_torch import CONFIGS, GPT, make_optimizer, set_threads  # noqa: E402

BATCH, T, VOCAB = 8, 256, 65


def run(rank, world, ddp, steps, warmup, init_file, out_file):
    set_threads(1)
    if ddp:
        dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world)
    c = dict(CONFIGS["medium"], bias=True)
    torch.manual_seed(1234)
    model = GPT(c)
    if ddp:
        # gloo (PyTorch 1.13) cannot broadcast bool tensors: the constant causal masks stay out.
        ignore = [n for n, b in model.named_buffers() if b.dtype == torch.bool]
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignore)
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp else model
    opt = make_optimizer(model)
    g = torch.Generator().manual_seed(99)
    per = BATCH // world
    times = []
    for s in range(warmup + steps):
        x = torch.randint(0, VOCAB, (BATCH, T), generator=g)[rank * per:(rank + 1) * per]
        y = torch.randint(0, VOCAB, (BATCH, T), generator=g)[rank * per:(rank + 1) * per]
        if ddp:
            dist.barrier()
        t0 = time.perf_counter()
        _, loss = net(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if s >= warmup:
            times.append(dt)
    times.sort()
    median = times[len(times) // 2]
    if rank == 0:
        with open(out_file, "w") as f:
            json.dump({"step_s": median, "tokens_per_s": BATCH * T / median}, f)
    if ddp:
        dist.destroy_process_group()


def config(world, ddp, steps, warmup):
    with tempfile.TemporaryDirectory() as d:
        init, out = os.path.join(d, "init"), os.path.join(d, "out.json")
        if world == 1 and not ddp:
            run(0, 1, False, steps, warmup, init, out)
        else:
            mp.spawn(run, args=(world, ddp, steps, warmup, init, out), nprocs=world, join=True)
        with open(out) as f:
            return json.load(f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    res = {"framework": "torch"}
    res["plain"] = config(1, False, a.steps, a.warmup)
    res["ddp1"] = config(1, True, a.steps, a.warmup)
    res["ddp2"] = config(2, True, a.steps, a.warmup)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
