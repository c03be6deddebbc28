"""Tiny safetensors writer/reader on numpy, for the parity tests (no `safetensors` package).

    st.save(path, {name: np.ndarray or torch.Tensor}, metadata=None)
    st.load(path) -> {name: np.ndarray}             (bf16 comes back as uint16 bit patterns)
    st.load_with_metadata(path) -> ({name: np.ndarray}, {key: value})

Format: 8-byte little-endian header length N, N bytes of JSON padded with spaces to a
multiple of 8, then each tensor's contiguous little-endian bytes in header order.
"""
import json
import os
import struct

import numpy as np

# numpy dtype -> safetensors name. bfloat16 has no numpy dtype: see to_numpy.
_NP_TO_ST = {
    np.dtype("float32"): "F32",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
    np.dtype("float16"): "F16",
}
_ST_TO_NP = {v: k for k, v in _NP_TO_ST.items()}
_ST_TO_NP["BF16"] = np.dtype("uint16")  # raw bit patterns


def to_numpy(value):
    """(array, safetensors dtype name) for a numpy array or a torch tensor (bf16 included)."""
    try:
        import torch
    except ImportError:  # numpy-only use
        torch = None
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            # No numpy bfloat16: reinterpret the 16-bit patterns.
            return t.view(torch.int16).numpy().view(np.uint16), "BF16"
        arr = t.numpy()
    else:
        arr = np.asarray(value)
    if arr.dtype not in _NP_TO_ST:
        raise TypeError(f"st.save: unsupported dtype {arr.dtype}")
    return arr, _NP_TO_ST[arr.dtype]


def save(path, tensors, metadata=None):
    header = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("st.save: metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, value in tensors.items():
        arr, st_dtype = to_numpy(value)
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": st_dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_with_metadata(path):
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: too short")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError(f"{path}: header length {n} past the end of the file")
    if n % 8 != 0:
        raise ValueError(f"{path}: header length {n} not a multiple of 8")

    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"{path}: duplicate keys in header")
        return dict(pairs)

    header = json.loads(buf[8:8 + n].decode("utf-8"), object_pairs_hook=no_dups)
    metadata = header.pop("__metadata__", {}) or {}
    data = buf[8 + n:]
    out = {}
    end = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        if b != end:
            raise ValueError(f"{path}: tensor {name} offsets not contiguous")
        end = e
        dt = _ST_TO_NP[info["dtype"]].newbyteorder("<")
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if e - b != count * dt.itemsize:
            raise ValueError(f"{path}: tensor {name} has {e - b} bytes, shape needs {count * dt.itemsize}")
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
    if end != len(data):
        raise ValueError(f"{path}: {len(data) - end} bytes after the last tensor")
    return out, metadata


def load(path):
    return load_with_metadata(path)[0]
