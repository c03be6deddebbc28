#!/usr/bin/python3
"""PyTorch side of tools/bench/bench_gpt: a nanoGPT-style model identical to models/gpt.

Run by bench_gpt (popen of /usr/bin/python3 with Debian's python3-torch 1.13) in two modes:

  prepare --config small|medium --out FILE [--steps N] [--seed S]
      builds the PyTorch model (seeded), writes its initial weights (state_dict names) and
      `steps` random training batches (`batch.x`, `batch.y`: int64 [steps, B, T]) to one
      safetensors file; the model configuration goes to the file's __metadata__.
  train --data FILE --threads T [--loss-steps 10] [--warmup 3]
      loads that file, trains with AdamW on its batches and prints one line
      `J {json}` with the per-step losses, tokens/s over the steps after the warm-up, the
      process's peak RSS (ru_maxrss) and the parameter count.

Both frameworks see the same weights and the same batches; dropout is 0.
"""
import argparse
import ctypes
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # name: n_layer, n_head, n_embd, block_size (context), batch, vocab
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, block_size=16, batch=4, vocab_size=65),
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12, vocab_size=65),
    "medium": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8, vocab_size=65),
}

# AdamW hyperparameters shared with bench_gpt.cpp (nanoGPT's, at a constant lr): weight
# decay on the matrices (Linear and Embedding weights), none on biases and LayerNorms.
LR, BETA1, BETA2, EPS, WEIGHT_DECAY = 3e-4, 0.9, 0.95, 1e-8, 0.1


# ---- model (nanoGPT's, with PyTorch 1.13's attention written out) -------------------------
# Also the model of char_gpt_torch.py: c may set "dropout" (default 0: no dropout modules at
# all) and "bias" (Linear and LayerNorm biases).
def _dropout(c):
    p = c.get("dropout", 0.0)
    return nn.Dropout(p) if p > 0 else nn.Identity()


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.n_embd = c["n_head"], c["n_embd"]
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.attn_dropout = _dropout(c)
        self.resid_dropout = _dropout(c)
        T = c["block_size"]
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T),
                             persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # [B, nh, T, hs]
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=c["bias"])
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=c["bias"])
        self.dropout = _dropout(c)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch 1.13's has no bias=False); nn.LayerNorm's names."""

    def __init__(self, n, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = LayerNorm(c["n_embd"], c["bias"])
        self.attn = CausalSelfAttention(c)
        self.ln_2 = LayerNorm(c["n_embd"], c["bias"])
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """State_dict names as models/gpt/gpt.h: wte, wpe, h.<i>.{ln_1, attn.c_attn, attn.c_proj,
    ln_2, mlp.c_fc, mlp.c_proj}, ln_f, lm_head (no weight tying)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["block_size"], c["n_embd"])
        self.drop = _dropout(c)
        self.h = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = LayerNorm(c["n_embd"], c["bias"])
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        # nanoGPT's initialization (models/gpt does the same)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        for n, p in self.named_parameters():
            if n.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c["n_layer"]))

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, dtype=torch.long)))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


class ModuleGPT(nn.Module):
    """The same GPT assembled from PyTorch's own modules, the way users build one:
    token and position nn.Embedding, an nn.TransformerEncoder of pre-norm GELU
    nn.TransformerEncoderLayers (batch_first, the float causal mask of
    generate_square_subsequent_mask), nn.LayerNorm and an nn.Linear head. Names: tok, pos,
    encoder.layers.<i>.{self_attn.in_proj_*, self_attn.out_proj, linear1, linear2, norm1,
    norm2}, ln_f, head. Initialised like GPT (normal 0.02, zero biases)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        C = c["n_embd"]
        self.tok = nn.Embedding(c["vocab_size"], C)
        self.pos = nn.Embedding(c["block_size"], C)
        layer = nn.TransformerEncoderLayer(C, c["n_head"], 4 * C, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c["n_layer"], enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, c["vocab_size"], bias=False)
        for n, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif "norm" not in n and "ln_f" not in n:
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, dtype=torch.long))
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        x = self.encoder(x, mask=mask)
        logits = self.head(self.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


MODELS = {"gpt": GPT, "modules": ModuleGPT}


def make_optimizer(model):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=(BETA1, BETA2), eps=EPS)


# ---- data ----------------------------------------------------------------------------------
def make_batches(c, steps, seed):
    """Random windows of a synthetic token stream with structure (an order-1 Markov chain
    with a few likely successors per token), so the loss falls while training."""
    rng = np.random.default_rng(seed)
    V, B, T = c["vocab_size"], c["batch"], c["block_size"]
    succ = rng.integers(0, V, size=(V, 4))
    n = max(100_000, steps * B * (T + 1))
    stream = np.empty(n, dtype=np.int64)
    stream[0] = 0
    choice = rng.integers(0, 4, size=n)
    noise = rng.random(n) < 0.1
    rand_tok = rng.integers(0, V, size=n)
    for i in range(1, n):
        stream[i] = rand_tok[i] if noise[i] else succ[stream[i - 1], choice[i]]
    starts = rng.integers(0, n - T - 1, size=(steps, B))
    idx = starts[..., None] + np.arange(T + 1)
    win = stream[idx]
    return win[..., :-1].copy(), win[..., 1:].copy()


# ---- safetensors (numpy; the format of core/safetensors.h) ---------------------------------
_DT = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64", np.dtype("int32"): "I32"}
_NP = {v: k for k, v in _DT.items()}


def st_save(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, a in tensors.items():
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a)
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DT[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        b0, b1 = e["data_offsets"]
        out[name] = np.frombuffer(data[base + b0 : base + b1], dtype=_NP[e["dtype"]]).reshape(e["shape"]).copy()
    return out, meta


# ---- threads -------------------------------------------------------------------------------
def set_threads(t):
    torch.set_num_threads(t)
    # torch.set_num_threads does not reach Debian's generic BLAS (OpenBLAS, pthreads)
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line and line.split()[-1].startswith("/")}
    for path in sorted(paths):
        try:
            ctypes.CDLL(path).openblas_set_num_threads(t)
            return
        except (OSError, AttributeError):
            continue


# ---- modes ---------------------------------------------------------------------------------
def prepare(args):
    c = dict(CONFIGS[args.config], bias=True, dropout=0.0)
    torch.manual_seed(args.seed)
    model = MODELS[args.model](c)
    x, y = make_batches(c, args.steps, args.seed)
    tensors = {k: v for k, v in model.state_dict().items()}
    tensors["batch.x"], tensors["batch.y"] = x, y
    meta = {k: c[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")}
    meta.update(model=args.model, config=args.config, batch=c["batch"], bias="1", dropout="0", lr=LR, beta1=BETA1, beta2=BETA2,
                eps=EPS, weight_decay=WEIGHT_DECAY, seed=args.seed)
    st_save(args.out, tensors, meta)
    print(f"I params {sum(p.numel() for p in model.parameters())}", flush=True)


def train(args):
    set_threads(args.threads)
    tensors, meta = st_load(args.data)
    c = {k: int(meta[k]) for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")}
    c.update(bias=meta.get("bias", "1") == "1", dropout=0.0)
    model = MODELS[meta.get("model", "gpt")](c)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("batch.")})
    xs, ys = torch.from_numpy(tensors["batch.x"]), torch.from_numpy(tensors["batch.y"])
    del tensors
    opt = make_optimizer(model)
    steps = xs.shape[0] if args.steps <= 0 else min(args.steps, xs.shape[0])
    losses, times = [], []
    for s in range(steps):
        t0 = time.perf_counter()
        _, loss = model(xs[s], ys[s])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = loss.item()
        times.append(time.perf_counter() - t0)
        losses.append(lv)
    timed = times[args.warmup :]
    tokens = xs.shape[1] * xs.shape[2]
    out = {
        "framework": "torch",
        "version": torch.__version__,
        "threads": args.threads,
        "steps": steps,
        "losses": losses,
        "step_s": times,
        "tokens_per_s": tokens * len(timed) / sum(timed) if timed else 0.0,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "params": sum(p.numel() for p in model.parameters()),
        "tokens_per_step": tokens,
    }
    print("J " + json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--config", choices=sorted(CONFIGS), required=True)
    p.add_argument("--model", choices=sorted(MODELS), default="gpt")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seed", type=int, default=1337)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--steps", type=int, default=0, help="0: every batch in the file")
    t.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    prepare(args) if args.mode == "prepare" else train(args)


if __name__ == "__main__":
    main()
