#!/usr/bin/python3
"""Compares the model weights of two focus checkpoints (safetensors): every tensor whose key
starts with "model." must agree within a relative tolerance. Exit status 0 when they do.

compare_checkpoints.py A B RTOL [--skip-key-bias]: with --skip-key-bias, the middle third of
every *in_proj_bias (nn::MultiheadAttention's key bias) is left out: its gradient is zero but
for rounding noise (a constant added to every key of a query does not change the softmax),
which AdamW turns into steps of lr in either direction, so it differs between runs that
agree everywhere else."""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


def read(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__" or info["dtype"] not in DTYPES:
            continue
        a, b = info["data_offsets"]
        out[key] = np.frombuffer(data[a:b], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def main():
    a, b, rtol = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
    skip_key_bias = "--skip-key-bias" in sys.argv[4:]
    keys = [k for k in a if k.startswith("model.")]
    if not keys or sorted(keys) != sorted(k for k in b if k.startswith("model.")):
        print(f"different model keys: {sorted(keys)[:5]} vs {sorted(k for k in b if k.startswith('model.'))[:5]}")
        return 1
    worst = 0.0
    for k in keys:
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        if skip_key_bias and k.endswith("in_proj_bias") and x.ndim == 1 and x.size % 3 == 0:
            n = x.size // 3
            x, y = np.concatenate([x[:n], x[2 * n:]]), np.concatenate([y[:n], y[2 * n:]])
        # How much of the allowed difference (atol + rtol * |y|) the worst element uses.
        rel = float(np.max(np.abs(x - y) / (1e-6 + rtol * np.abs(y)))) if x.size else 0.0
        worst = max(worst, rel)
        if not np.allclose(x, y, rtol=rtol, atol=1e-6):
            print(f"{k}: differs by {rel:.3g} times the tolerance (rtol {rtol}, atol 1e-6)")
            return 1
    print(f"{len(keys)} model tensors agree within rtol {rtol}, atol 1e-6 (the worst element uses {worst:.2f} of it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
