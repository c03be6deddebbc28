#!/usr/bin/python3
"""Reference data for tests/parity/test_nn.cpp (suite parity_nn).

Usage: /usr/bin/python3 gen_nn.py OUTDIR

Writes OUTDIR/nn_<case>_<f32|f64>.safetensors, each holding
  model.<state_dict name>   the module's weights (PyTorch names)
  x                         the input (indices for embeddings)
  gy                        a random upstream gradient of the output
  y                         the output
  grad.x                    d(sum(y * gy)) / dx (floating inputs only)
  grad.model.<name>         d(sum(y * gy)) / d parameter
Modules 1.13 lacks (RMSNorm) are written from PyTorch 2.x's formula.
"""
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

DTYPES = {"f32": torch.float32, "f64": torch.float64}


def randomize(module, gen):
    """Random values for every parameter, so that init (ones/zeros) cannot hide a bug."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))


def run(out, name, module, x, forward=None, randomize_params=True, seed=0):
    gen = torch.Generator().manual_seed(1000 + seed)
    for tag, dt in DTYPES.items():
        m = module().to(dt) if module is not None else None
        if m is not None:
            torch.manual_seed(seed)
            if randomize_params:
                randomize(m, gen)
            m.eval() if hasattr(m, "eval") else None
        xi = x(dt)
        if xi.is_floating_point():
            xi = xi.clone().requires_grad_(True)
        y = forward(m, xi) if forward is not None else m(xi)
        gy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(dt)
        (y * gy).sum().backward()
        data = {"x": xi.detach(), "gy": gy, "y": y.detach()}
        if xi.is_floating_point():
            data["grad.x"] = xi.grad
        if m is not None:
            for k, v in m.state_dict().items():
                data["model." + k] = v
            for k, p in m.named_parameters():
                if p.grad is not None:
                    data["grad.model." + k] = p.grad
        st.save(os.path.join(out, f"nn_{name}_{tag}.safetensors"),
                {k: v.detach().contiguous() for k, v in data.items()})


class RMSNorm2x(nn.Module):
    """torch.nn.RMSNorm of PyTorch 2.x, written out: 1.13 has none."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True):
        super().__init__()
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape)) if elementwise_affine else None

    def forward(self, x):
        eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
        dims = tuple(range(-len(self.normalized_shape), 0))
        y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps)
        return y * self.weight if self.weight is not None else y


class SinusoidalPE(nn.Module):
    """The PyTorch tutorial's PositionalEncoding, batch first, table in float64."""

    def __init__(self, d_model, max_len):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x):
        return x + self.pe[: x.size(1)].to(x.dtype)


class LearnedPE(nn.Module):
    def __init__(self, max_len, d_model):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d_model))

    def forward(self, x):
        return x + self.weight[: x.size(1)]


class LayerNormNoBias(nn.Module):
    """nn.LayerNorm(bias=False) of PyTorch 2.1+: 1.13 has only the functional form."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return nn.functional.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


class Composite(nn.Module):
    """Names through ModuleList, Sequential and ModuleDict; a padded embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 8, padding_idx=0)
        self.layers = nn.ModuleList([nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.SiLU()) for _ in range(2)])
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 3), "b": nn.Linear(8, 3, bias=False)})

    def forward(self, idx):
        h = self.embed(idx)
        for layer in self.layers:
            h = h + layer(h)
        return self.heads["a"](h) + torch.tanh(self.heads["b"](h))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(42)

    def randn(*shape):
        return lambda dt: torch.randn(*shape, generator=g, dtype=torch.float64).to(dt)

    run(out, "linear", lambda: nn.Linear(5, 4), randn(2, 3, 5), seed=1)
    run(out, "linear_nobias", lambda: nn.Linear(6, 3, bias=False), randn(7, 6), seed=2)
    run(out, "linear_1d", lambda: nn.Linear(4, 2), randn(4), seed=3)
    idx = torch.tensor([[1, 2, 9, 2], [0, 5, 5, 3]], dtype=torch.int64)
    run(out, "embedding", lambda: nn.Embedding(10, 4), lambda dt: idx, seed=4)
    run(out, "embedding_pad", lambda: nn.Embedding(10, 4, padding_idx=2), lambda dt: idx, seed=5,
        randomize_params=False)
    run(out, "layernorm", lambda: nn.LayerNorm(8), randn(3, 5, 8), seed=6)
    run(out, "layernorm_2d", lambda: nn.LayerNorm([3, 4], eps=1e-3), randn(2, 3, 4), seed=7)
    run(out, "layernorm_noaffine", lambda: nn.LayerNorm(6, elementwise_affine=False), randn(4, 6), seed=8)
    run(out, "layernorm_nobias", lambda: LayerNormNoBias(6), randn(4, 6), seed=21)
    run(out, "rmsnorm", lambda: RMSNorm2x([8]), randn(3, 5, 8), seed=9)
    run(out, "rmsnorm_eps", lambda: RMSNorm2x([2, 4], eps=1e-2), randn(3, 2, 4), seed=10)
    run(out, "relu", lambda: nn.ReLU(), randn(4, 7), seed=11)
    run(out, "gelu", lambda: nn.GELU(), randn(4, 7), seed=12)
    run(out, "gelu_tanh", lambda: nn.GELU(approximate="tanh"), randn(4, 7), seed=13)
    run(out, "silu", lambda: nn.SiLU(), randn(4, 7), seed=14)
    run(out, "tanh", lambda: nn.Tanh(), randn(4, 7), seed=15)
    run(out, "softmax", lambda: nn.Softmax(dim=1), randn(3, 5, 2), seed=16)
    run(out, "dropout0", lambda: nn.Dropout(0.0), randn(3, 4), seed=17)
    run(out, "sequential",
        lambda: nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Dropout(0.0), nn.LayerNorm(16), nn.Linear(16, 3),
                              nn.Tanh()),
        randn(5, 6), seed=18)
    idx2 = torch.tensor([[0, 3, 10, 4, 0], [7, 7, 1, 0, 2]], dtype=torch.int64)
    run(out, "composite", Composite, lambda dt: idx2, seed=22)
    run(out, "sinusoidal", lambda: SinusoidalPE(12, 40), randn(2, 9, 12), seed=19)
    run(out, "learned_pos", lambda: LearnedPE(16, 6), randn(3, 5, 6), seed=20)


if __name__ == "__main__":
    main()
