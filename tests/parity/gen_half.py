#!/usr/bin/python3
"""Reference data for tests/parity/test_half.cpp (suite parity_half): a small bfloat16
network computed by PyTorch on the CPU, forward and backward, all in bfloat16.

Usage: /usr/bin/python3 gen_half.py OUTDIR

Writes OUTDIR/half_bf16_mlp.safetensors holding (every tensor bfloat16)
  x, weight [8, 6], bias [8], ln.weight [8], ln.bias [8], gy   inputs
  y         softmax(layer_norm(gelu(linear(x, weight, bias)), [8], ln.weight, ln.bias), -1)
  grad.<name>  d(sum(y * gy)) / d<name> for x and every parameter
and OUTDIR/half_bf16_mlp_f32.safetensors: the same network on the same (bfloat16) values
widened to float32, whose results were rounded once to bfloat16 (what focus computes per op).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def net(p):
    h = F.linear(p["x"], p["weight"], p["bias"])
    h = F.gelu(h)
    h = F.layer_norm(h, [8], p["ln.weight"], p["ln.bias"])
    return torch.softmax(h, -1)


def main():
    out = sys.argv[1]
    gen = torch.Generator().manual_seed(11)
    shapes = {"x": (5, 6), "weight": (8, 6), "bias": (8,), "ln.weight": (8,), "ln.bias": (8,)}
    base = {k: torch.randn(s, generator=gen).to(torch.bfloat16) for k, s in shapes.items()}
    gy = torch.randn(5, 8, generator=gen).to(torch.bfloat16)
    for tag, dt in (("", torch.bfloat16), ("_f32", torch.float32)):
        p = {k: v.to(dt).clone().requires_grad_(True) for k, v in base.items()}
        y = net(p)
        (y * gy.to(dt)).sum().backward()
        data = {k: v.detach().to(torch.bfloat16) for k, v in p.items()}
        data["gy"] = gy
        data["y"] = y.detach().to(torch.bfloat16)
        for k, v in p.items():
            data["grad." + k] = v.grad.to(torch.bfloat16)
        st.save(os.path.join(out, f"half_bf16_mlp{tag}.safetensors"), {k: v.contiguous() for k, v in data.items()})


if __name__ == "__main__":
    main()
