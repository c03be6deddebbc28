"""Checks a file written by focus (tests/core parity_safetensors), from Python:
`check_focus_file.py FILE`. Exit 0 when every tensor and the metadata are as expected.

Reads with st.py (a plain numpy reader, independent of focus), then checks the values
through torch as well (bf16 through its bit patterns).
"""
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def expect(cond, what):
    if not cond:
        sys.exit(f"check_focus_file.py: {what}")


def main(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    expect(n % 8 == 0, f"header length {n} is not a multiple of 8")
    expect(buf[8:9] == b"{", "header does not start with '{'")
    t, meta = st.load_with_metadata(path)
    expect(meta == {"format": "focus", "who": "test_safetensors.cpp"}, f"metadata {meta}")
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    want = {
        "f32": (base * 0.5 - 2.0).astype(np.float32),
        "f64": base / 3.0,
        "i64": (base.astype(np.int64) - 6) * (1 << 33),
        "i32": ((base.astype(np.int64) - 6) * 1000).astype(np.int32),
        "u8": (base.astype(np.int64) * 21).astype(np.uint8),
        "bool": base.astype(np.int64) % 3 == 0,
        "f32_transposed": (base * 0.5 - 2.0).astype(np.float32).T,
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.array(3.25),
    }
    for k, w in want.items():
        expect(k in t, f"missing tensor {k}")
        expect(t[k].dtype == w.dtype, f"{k}: dtype {t[k].dtype}, want {w.dtype}")
        expect(t[k].shape == w.shape, f"{k}: shape {t[k].shape}, want {w.shape}")
        expect(np.array_equal(t[k], w), f"{k}: values {t[k]}, want {w}")
    import torch
    f16 = torch.from_numpy(t["f16"])
    expect(f16.dtype == torch.float16 and torch.equal(f16, (torch.from_numpy(base) * 0.25 - 1.0).half()), "f16 values")
    bf16 = torch.from_numpy(t["bf16"].astype(np.int16)).view(torch.bfloat16)
    expect(torch.equal(bf16, (torch.from_numpy(base) * 0.25 - 1.0).bfloat16()), f"bf16 values {bf16}")
    expect(set(t) == set(want) | {"f16", "bf16"}, f"unexpected tensors: {sorted(set(t) - set(want))}")
    print(f"check_focus_file.py: {path} ok ({len(t)} tensors)")


if __name__ == "__main__":
    main(sys.argv[1])
