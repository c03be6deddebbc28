#!/usr/bin/python3
"""Parity references for LoRA adapters (tests/parity/test_lora.cpp).

Usage: /usr/bin/python3 gen_lora.py OUTDIR

Writes OUTDIR/lora_linear_<f32|f64>.safetensors: PEFT's lora.Linear forward written out by
hand in PyTorch, y = F.linear(x, W, b) + (x @ A^T @ B^T) * scaling with scaling = lora_alpha / r
(r = 3, lora_alpha = 7, no dropout), and its gradients for sum(y * gy):
  weight, bias, lora_A [r, in], lora_B [out, r], x, gy   inputs
  y, grad.x, grad.lora_A, grad.lora_B                   results
  merged                                                 W + scaling * B @ A (PEFT's merge)
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

R, ALPHA = 3, 7.0


def main():
    out = sys.argv[1]
    torch.manual_seed(17)
    for tag, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        base = torch.nn.Linear(6, 5).to(dtype)
        a = (torch.randn(R, 6, dtype=dtype) * 0.4).requires_grad_(True)
        b = (torch.randn(5, R, dtype=dtype) * 0.4).requires_grad_(True)
        x = torch.randn(2, 4, 6, dtype=dtype, requires_grad=True)
        scaling = ALPHA / R
        y = base(x) + (x @ a.t() @ b.t()) * scaling
        gy = torch.randn(y.shape, dtype=dtype)
        y.backward(gy)
        with torch.no_grad():
            merged = base.weight + scaling * (b @ a)
        st.save(os.path.join(out, f"lora_linear_{tag}.safetensors"), {
            "weight": base.weight.detach(), "bias": base.bias.detach(), "lora_A": a.detach(), "lora_B": b.detach(),
            "x": x.detach(), "gy": gy, "y": y.detach(), "grad.x": x.grad, "grad.lora_A": a.grad,
            "grad.lora_B": b.grad, "merged": merged})


if __name__ == "__main__":
    main()
