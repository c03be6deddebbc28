#!/usr/bin/python3
"""The histogram PyTorch's SummaryWriter.add_histogram writes, for tests/training/test_tensorboard.cpp.

Usage: /usr/bin/python3 torch_histogram.py '{"values": [...], "bins": "tensorflow" | N | [edges], "max_bins": M}'

Follows torch/utils/tensorboard (torch 1.13): the default bins of SummaryWriter.__init__,
numpy.histogram, then make_histogram's max_bins merge and trimming to the non-empty bins.
Prints {"min", "max", "num", "sum", "sum_squares", "bucket_limit", "bucket"} as JSON.
Needs numpy (Debian's python3-numpy).
"""
import json
import sys

try:
    import numpy as np
except ImportError:
    sys.stderr.write("torch_histogram.py: numpy is missing: apt-get install python3-numpy\n")
    sys.exit(2)


def default_bins():
    v, pos = 1e-12, []
    while v < 1e20:
        pos.append(v)
        v *= 1.1
    return [-x for x in reversed(pos)] + [0] + pos


def main():
    spec = json.loads(sys.argv[1])
    values = np.asarray(spec["values"], dtype=float).reshape(-1)
    bins = spec.get("bins", "tensorflow")
    if bins == "tensorflow":
        bins = default_bins()
    max_bins = spec.get("max_bins")
    counts, limits = np.histogram(values, bins=bins)
    n = len(counts)
    if max_bins and n > max_bins:
        sub = n // max_bins
        rem = n % sub
        if rem:
            counts = np.pad(counts, [[0, sub - rem]], mode="constant", constant_values=0)
        counts = counts.reshape(-1, sub).sum(axis=-1)
        merged = np.empty((counts.size + 1,), limits.dtype)
        merged[:-1] = limits[:-1:sub]
        merged[-1] = limits[-1]
        limits = merged
    cum = np.cumsum((counts > 0).astype(np.int32))  # np.greater(..., dtype=int32) in torch 1.13; newer numpy refuses it
    start, end = np.searchsorted(cum, [0, cum[-1] - 1], side="right")
    start, end = int(start), int(end) + 1
    counts = counts[start - 1:end] if start > 0 else np.concatenate([[0], counts[:end]])
    limits = limits[start:end + 1]
    print(json.dumps({"min": float(values.min()), "max": float(values.max()), "num": len(values),
                      "sum": float(values.sum()), "sum_squares": float(values.dot(values)),
                      "bucket_limit": [float(x) for x in limits], "bucket": [float(x) for x in counts]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
