#!/usr/bin/python3
"""PyTorch side of tools/bench/bench_int8: y = x W^T + b in float32 (torch.nn.Linear) and with
PyTorch's dynamically quantized Linear (torch.ao.nn.quantized.dynamic.Linear built by
quantize_dynamic with per_channel_dynamic_qconfig: qint8 weights per output channel, fbgemm),
for each shape M x K x N; prints one JSON list of {"shape", "f32_us", "i8_us"} (microseconds
per product, the best of --repeats runs of a loop).

    /usr/bin/python3 tools/bench/bench_int8_torch.py --shapes 1x128x384,640x128x512 --threads 2
"""
import argparse
import json
import time

import torch
import torch.ao.quantization as tq


def best_time(fn, repeats, reps):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    rows = []
    with torch.no_grad():
        for s in a.shapes.split(","):
            m, k, n = (int(v) for v in s.split("x"))
            lin = torch.nn.Sequential(torch.nn.Linear(k, n)).eval()
            q = tq.quantize_dynamic(lin, {torch.nn.Linear: tq.per_channel_dynamic_qconfig}, dtype=torch.qint8)
            x = torch.randn(m, k)
            reps = 200 if m * k * n < 1_000_000 else 20
            rows.append({"shape": s, "f32_us": 1e6 * best_time(lambda: lin(x), a.repeats, reps),
                         "i8_us": 1e6 * best_time(lambda: q(x), a.repeats, reps)})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
