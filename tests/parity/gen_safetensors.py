"""Reference files for parity_safetensors: tensors of every dtype written from PyTorch.

safetensors_torch: one tensor per dtype (values from a fixed formula, see below), a
non-contiguous source, empty and 0-d tensors, and metadata. f16/bf16 also come with their
bit patterns as int32 ("<name>_bits") so C++ can check them without half-float kernels.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def main(out):
    torch.manual_seed(0)
    base = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    t = {
        "f32": (base * 0.5 - 2.0).float(),
        "f64": base / 3.0,
        "i64": (base.long() - 6) * (1 << 33),
        "i32": (base.int() - 6) * 1000,
        "u8": (base.int() * 21).to(torch.uint8),
        "bool": (base.long() % 3 == 0),
        "f16": (base * 0.25 - 1.0).half(),
        "bf16": (base * 0.25 - 1.0).bfloat16(),
        "f32_special": torch.tensor([float("nan"), float("inf"), float("-inf"), -0.0, 1e-45, 3.4e38]),
        "f32_transposed": (base * 0.5 - 2.0).float().t(),  # non-contiguous in torch
        "randn": torch.randn(2, 3, 5),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(3.25, dtype=torch.float64),
    }
    t["randn_f64"] = t["randn"].double()
    t["f16_bits"] = t["f16"].view(torch.int16).int() & 0xFFFF
    t["bf16_bits"] = t["bf16"].view(torch.int16).int() & 0xFFFF
    st.save(os.path.join(out, "safetensors_torch.safetensors"), t,
            metadata={"format": "pt", "source": "gen_safetensors.py"})


if __name__ == "__main__":
    main(sys.argv[1])
