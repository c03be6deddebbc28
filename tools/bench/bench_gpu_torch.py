#!/usr/bin/env python3
"""PyTorch side of tools/bench/bench_gpu: the same measurements on the same device, the same method.

Run by bench_gpu (popen of --python, default python3: on the GPU machine the python3 that
holds PyTorch) in two modes:

  prepare --config NAME --steps N [--batch B] --out FILE [--seed 1337]
      writes the initial GPT weights (bench_gpt_torch.py's model and initialization) and N
      training batches to one safetensors file that both sides train from.
  run --device cuda|cpu --sections abcdefgh [sizes and repetitions, as bench_gpu's flags]
      [--gpt name=FILE,...] [--amp-gpt name=FILE,...] [--attn L:B:H,...] [--attn-hd 64,128]
      [--attn-check FILE]
      prints "R <name> <seconds per call>" lines (timings), "V <name> <value>", "X <name>
      <why>" for a figure it could not take, "J {json}" per GPT run and "I <key> <value>"
      lines of information. Sections run in the order given.

Sections beyond bench_gpu's a-e: f, the GPT step under torch.autocast(bfloat16) (float32
master weights, fused AdamW, F.scaled_dot_product_attention); h, the same step through
torch.compile (compile time reported apart; bench_gpu runs it in a process of its own);
g, attention forward and forward+backward in bfloat16 with the flash backend forced
(torch.nn.attention.sdpa_kernel, or torch.backends.cuda.sdp_kernel on 2.0-2.2), and the
correctness check of focus's flash kernels: --attn-check names the file focus wrote (inputs,
its output and gradients), compared with torch's flash and a float64 reference.

Timing as bench_gpu: warm-up calls, then the median over repetitions of the time per call,
each repetition a loop of calls between two torch.cuda.synchronize() calls. PyTorch runs at
its best eager setting: F.scaled_dot_product_attention in the GPT (--attention sdpa, the
default; --attention math is bench_gpt_torch.py's written-out attention, the same math as
focus's), fused AdamW on CUDA, and out= variants beside the allocating ones in (c).
Runs with Debian's torch 1.13 on the CPU too (the smoke run); what 1.13 lacks falls back.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpt_torch as bg  # noqa: E402  (the model, the batches and safetensors I/O)

CONFIGS = dict(bg.CONFIGS)
# GPT-2 small's shape (nanoGPT's vocabulary padded to 50304), float32.
CONFIGS["gpt2"] = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, batch=8, vocab_size=50304)


# ---- timing --------------------------------------------------------------------------------
class Timer:
    def __init__(self, args, device):
        self.args = args
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def median(self, fn):
        """As bench_gpu's median_time."""
        a = self.args
        t0 = time.perf_counter()
        fn()
        self.sync()
        first = time.perf_counter() - t0
        for _ in range(1, 1 if first > 1.0 else a.warmup):
            fn()
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        one = max(time.perf_counter() - t0, 1e-9)
        k = min(max(1, math.ceil(a.min_sample / one)), 1000000)
        reps = a.reps
        if one * k * reps > a.max_measure:
            reps = max(3, int(a.max_measure / (one * k)))
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            self.sync()
            samples.append((time.perf_counter() - t0) / k)
        return statistics.median(samples)


def emit(name, seconds):
    print(f"R {name} {seconds:.9g}", flush=True)


def measure(name, fn):
    try:
        emit(name, fn())
    except Exception as e:  # an op this torch cannot run here (bf16 on an old CPU torch, OOM)
        msg = str(e).strip().splitlines()[0][:110] if str(e).strip() else type(e).__name__
        print(f"X {name} {msg}", flush=True)
        print(f"  torch {name}: unavailable: {msg}", file=sys.stderr, flush=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def set_precision(p):
    # The one switch (torch.backends.cuda.matmul.allow_tf32 follows it); mixing it with the
    # newer fp32_precision attributes is refused by recent torch.
    torch.set_float32_matmul_precision(p)


# ---- (a) - (d) -----------------------------------------------------------------------------
def bench_matmul(a, dev, tm):
    for n in a.sizes:
        x = torch.randn(n, n, device=dev)
        y = torch.randn(n, n, device=dev)
        set_precision("highest")
        measure(f"mm.f32.{n}", lambda: tm.median(lambda: torch.mm(x, y)))
        set_precision("high")
        measure(f"mm.tf32.{n}", lambda: tm.median(lambda: torch.mm(x, y)))
        set_precision("highest")
        x16, y16 = x.bfloat16(), y.bfloat16()
        measure(f"mm.bf16.{n}", lambda: tm.median(lambda: torch.mm(x16, y16)))


def per_op(a, tm, loop):
    loop(max(1, a.overhead_ops // 10))
    tm.sync()
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        loop(a.overhead_ops)
        tm.sync()
        samples.append((time.perf_counter() - t0) / a.overhead_ops)
    return statistics.median(samples)


def bench_overhead(a, dev, tm):
    x, y = torch.ones(1, device=dev), torch.ones(1, device=dev)
    leaf = torch.ones(1, device=dev, requires_grad=True)

    def nograd(n):
        for _ in range(n):
            z = x + y  # noqa: F841

    def on_leaf(n):
        for _ in range(n):
            z = leaf + y  # noqa: F841

    def chain(n):
        z = leaf
        for i in range(n):
            z = z + y
            if i % 100 == 99:
                z = leaf

    measure("add1.nograd", lambda: per_op(a, tm, nograd))
    measure("add1.leaf", lambda: per_op(a, tm, on_leaf))
    measure("add1.chain", lambda: per_op(a, tm, chain))


def bench_elementwise(a, dev, tm):
    n = a.elems
    x, y = torch.randn(n, device=dev), torch.randn(n, device=dev)
    out = torch.empty(n, device=dev)
    measure("ew.add", lambda: tm.median(lambda: torch.add(x, y)))
    measure("ew.mul", lambda: tm.median(lambda: torch.mul(x, y)))
    measure("ew.gelu", lambda: tm.median(lambda: F.gelu(x)))
    measure("ew.copy", lambda: tm.median(lambda: x.clone()))
    measure("ew.add.out", lambda: tm.median(lambda: torch.add(x, y, out=out)))
    measure("ew.mul.out", lambda: tm.median(lambda: torch.mul(x, y, out=out)))
    measure("ew.gelu.out", lambda: tm.median(lambda: torch._C._nn.gelu(x, out=out)))
    measure("ew.copy.out", lambda: tm.median(lambda: out.copy_(x)))


def bench_fused(a, dev, tm):
    rows, cols = a.rows, a.cols
    x = torch.randn(rows, cols, device=dev, requires_grad=True)
    g = torch.randn(rows, cols, device=dev)
    w = torch.ones(cols, device=dev, requires_grad=True)
    bias = torch.zeros(cols, device=dev, requires_grad=True)
    target = torch.randint(0, cols, (rows,), device=dev)

    def clear():
        x.grad = None
        w.grad = None
        bias.grad = None

    def softmax_fb():
        clear()
        torch.softmax(x, -1).backward(g)

    def layer_norm_fb():
        clear()
        F.layer_norm(x, (cols,), w, bias).backward(g)

    def cross_entropy_fb():
        clear()
        F.cross_entropy(x, target).backward()

    measure("softmax.fwd", lambda: tm.median(lambda: torch.softmax(x, -1)))
    measure("softmax.fb", lambda: tm.median(softmax_fb))
    measure("layer_norm.fwd", lambda: tm.median(lambda: F.layer_norm(x, (cols,), w, bias)))
    measure("layer_norm.fb", lambda: tm.median(layer_norm_fb))
    measure("cross_entropy.fwd", lambda: tm.median(lambda: F.cross_entropy(x, target)))
    measure("cross_entropy.fb", lambda: tm.median(cross_entropy_fb))


# ---- (g) attention -------------------------------------------------------------------------
def flash_context():
    """(context factory forcing the flash backend, None) or (None, why not)."""
    if not hasattr(F, "scaled_dot_product_attention"):
        return None, f"no F.scaled_dot_product_attention in torch {torch.__version__}"
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return (lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)), None
    except ImportError:
        pass
    if hasattr(torch.backends.cuda, "sdp_kernel"):  # torch 2.0 - 2.2
        return (lambda: torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False,
                                                       enable_mem_efficient=False)), None
    return None, f"no sdpa_kernel in torch {torch.__version__}"


def attention_math(q, k, v, causal):
    """The written-out attention (any torch): softmax(q k^T / sqrt(d) + causal mask) v."""
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if causal:
        L, S = q.size(-2), k.size(-2)
        mask = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        att = att.masked_fill(~mask, float("-inf"))
    low = q.dtype in (torch.float16, torch.bfloat16)
    return torch.softmax(att.float() if low else att, dim=-1).to(q.dtype) @ v


def attn_name(impl, pas, L, hd, causal):
    return f"attn.{impl}.{pas}.{L}.{hd}.{'c' if causal else 'n'}"


def bench_attention(a, dev, tm):
    ctx, why = flash_context()
    for cfg in a.attn.split(","):
        if not cfg:
            continue
        L, B, H = (int(v) for v in cfg.split(":"))
        for hd in a.attn_hd:
            q, k, v, g = (torch.randn(B, H, L, hd, device=dev, dtype=a.attn_dt) for _ in range(4))
            for t in (q, k, v):
                t.requires_grad_(True)
            for causal in (False, True):
                def clear():
                    q.grad = k.grad = v.grad = None

                if ctx is not None:
                    def fwd():
                        with ctx(), torch.no_grad():
                            F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                    def fb():
                        clear()
                        with ctx():
                            F.scaled_dot_product_attention(q, k, v, is_causal=causal).backward(g)

                    measure(attn_name("flash", "fwd", L, hd, causal), lambda: tm.median(fwd))
                    measure(attn_name("flash", "fb", L, hd, causal), lambda: tm.median(fb))
                else:
                    for pas in ("fwd", "fb"):
                        print(f"X {attn_name('flash', pas, L, hd, causal)} {why}", flush=True)
                    # The written-out attention instead, so that this torch still runs the section.
                    def mfb():
                        clear()
                        attention_math(q, k, v, causal).backward(g)

                    measure(attn_name("math", "fb", L, hd, causal), lambda: tm.median(mfb))
            del q, k, v, g
    if a.attn_check:
        try:
            attention_check(a, dev, ctx, why)
        except Exception as e:
            print(f"X attn.check {first_line(e)}", flush=True)


def first_line(e):
    return str(e).strip().splitlines()[0][:110] if str(e).strip() else type(e).__name__


def attention_check(a, dev, ctx, why):
    """Compares focus's flash output and gradients (written by bench_gpu) with torch's flash
    and a float64 reference on the same bfloat16 inputs. Prints, per case and tensor, the
    largest absolute difference over the reference's largest magnitude:
    V attn.check.<case>.<tensor>.<ft|fr|tr> (f = focus, t = torch flash, r = reference)."""
    tensors, meta = bg.st_load(a.attn_check)
    cases = [c for c in meta.get("cases", "").split(";") if c]
    for i, case in enumerate(cases):
        causal = case.split(",")[2] == "1"
        pre = f"c{i}."
        inp = {n: torch.from_numpy(tensors[pre + n]).to(dev) for n in ("q", "k", "v", "dout")}
        ref = {}
        x = [inp[n].double().requires_grad_(True) for n in ("q", "k", "v")]
        o = attention_math(*x, causal)
        o.backward(inp["dout"].double())
        ref = {"out": o.detach(), "dq": x[0].grad, "dk": x[1].grad, "dv": x[2].grad}
        got_t = None
        if ctx is not None:
            y = [inp[n].to(a.attn_dt).requires_grad_(True) for n in ("q", "k", "v")]
            with ctx():
                o = F.scaled_dot_product_attention(*y, is_causal=causal)
            o.backward(inp["dout"].to(a.attn_dt))
            got_t = {"out": o.detach(), "dq": y[0].grad, "dk": y[1].grad, "dv": y[2].grad}
        else:
            print(f"X attn.check.{i}.torch {why}", flush=True)
        for n in ("out", "dq", "dk", "dv"):
            r = ref[n]
            scale = max(float(r.abs().max()), 1e-30)
            f = torch.from_numpy(tensors[pre + n]).to(dev).double()
            print(f"V attn.check.{i}.{n}.fr {float((f - r).abs().max()) / scale:.6g}", flush=True)
            if got_t is not None:
                t = got_t[n].double()
                print(f"V attn.check.{i}.{n}.tr {float((t - r).abs().max()) / scale:.6g}", flush=True)
                print(f"V attn.check.{i}.{n}.ft {float((f - t).abs().max()) / scale:.6g}", flush=True)
    print(f"I attn_check {len(cases)} cases", flush=True)


# ---- (e) GPT -------------------------------------------------------------------------------
def sdpa_forward(self, x):
    """bench_gpt_torch.CausalSelfAttention.forward with PyTorch's fused attention."""
    B, T, C = x.shape
    q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
    k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
    q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
    v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class GPT(bg.GPT):
    """bench_gpt_torch's GPT, with its positions made on the device of the tokens."""

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, dtype=torch.long, device=idx.device)))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def prepare(a):
    c = dict(CONFIGS[a.config], bias=True, dropout=0.0)
    if a.batch:
        c["batch"] = a.batch
    torch.manual_seed(a.seed)
    model = bg.GPT(c)
    x, y = bg.make_batches(c, a.steps, a.seed)
    tensors = dict(model.state_dict())
    tensors["batch.x"], tensors["batch.y"] = x, y
    meta = {k: c[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")}
    meta.update(config=a.config, batch=c["batch"], bias="1", dropout="0", lr=bg.LR, beta1=bg.BETA1,
                beta2=bg.BETA2, eps=bg.EPS, weight_decay=bg.WEIGHT_DECAY, seed=a.seed)
    bg.st_save(a.out, tensors, meta)
    print(f"I params {sum(p.numel() for p in model.parameters())}", flush=True)


def train_gpt(a, name, path, dev, tm, mode="f32"):
    """One training run from a prepared file. mode: f32 (float32, TF32 off: the parity run),
    amp (forward and loss under torch.autocast bfloat16, float32 master weights) or compile
    (amp through torch.compile; the first step, which compiles, is timed apart)."""
    key = {"f32": name, "amp": f"amp:{name}", "compile": f"compile:{name}"}[mode]
    if mode == "compile" and not hasattr(torch, "compile"):
        print(f"X gpt.{key} torch.compile not available in torch {torch.__version__}", flush=True)
        return
    set_precision("highest")
    tensors, meta = bg.st_load(path)
    c = {k: int(meta[k]) for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")}
    c.update(bias=meta.get("bias", "1") == "1", dropout=0.0)
    model = GPT(c)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("batch.")})
    model.to(dev)
    xs = torch.from_numpy(tensors["batch.x"]).to(dev)
    ys = torch.from_numpy(tensors["batch.y"]).to(dev)
    del tensors
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": bg.WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    kw, adamw = {}, "default"
    if tm.cuda:
        kw, adamw = {"fused": True}, "fused"
    try:
        opt = torch.optim.AdamW(groups, lr=bg.LR, betas=(bg.BETA1, bg.BETA2), eps=bg.EPS, **kw)
    except (TypeError, RuntimeError):  # torch without fused AdamW
        opt, adamw = torch.optim.AdamW(groups, lr=bg.LR, betas=(bg.BETA1, bg.BETA2), eps=bg.EPS), "default"
    fwd = model
    if mode == "compile":
        fwd = torch.compile(model)
    steps, B, T = xs.shape[0], xs.shape[1], xs.shape[2]

    def step(s):
        if mode == "f32":
            _, loss = fwd(xs[s], ys[s])
        else:
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                _, loss = fwd(xs[s], ys[s])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    losses = []
    first = 0
    compile_s = None
    if mode == "compile":  # the step that compiles (forward and backward graphs), timed apart
        t0 = time.perf_counter()
        losses.append(step(0))
        tm.sync()
        compile_s = time.perf_counter() - t0
        print(f"  torch compile {name}: first step {compile_s:.1f} s", file=sys.stderr, flush=True)
        first = 1
    warmup = min(max(a.gpt_warmup, first), steps - 1)
    tm.sync()
    if tm.cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    s = first
    while s < steps:
        if s == warmup:
            tm.sync()
            t0 = time.perf_counter()
        if s >= warmup + 2 and time.perf_counter() - t0 > a.gpt_budget:
            break
        losses.append(step(s))
        s += 1
    tm.sync()
    timed = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    # nanoGPT's estimate_mfu / PaLM appendix B: 6 N (N without the position embedding) plus
    # 12 n_layer n_embd T for attention's two products, per token.
    fpt = 6 * (n_params - model.wpe.weight.numel()) + 12 * c["n_layer"] * c["n_embd"] * T
    out = {
        "config": key,
        "framework": "torch",
        "mode": mode,
        "steps": s,
        "timed_steps": s - warmup,
        "seconds": timed,
        "tokens_per_s": B * T * (s - warmup) / timed if timed > 0 and s > warmup else 0.0,
        "losses": [float(l) for l in losses],
        "params": n_params,
        "batch": B,
        "context": T,
        "flops_per_token": fpt,
        "note": f"attention {a.attention_used}, AdamW {adamw}" + (", bf16 autocast" if mode != "f32" else ""),
    }
    if compile_s is not None:
        out["compile_s"] = compile_s
    if tm.cuda:
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
    else:
        out["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("J " + json.dumps(out), flush=True)
    del model, fwd, opt, xs, ys, losses
    if tm.cuda:
        torch.cuda.empty_cache()


def run_gpts(a, spec, dev, tm, mode):
    for item in spec.split(","):
        if not item:
            continue
        name, path = item.split("=", 1)
        key = {"f32": name, "amp": f"amp:{name}", "compile": f"compile:{name}"}[mode]
        t0 = time.perf_counter()
        try:
            train_gpt(a, name, path, dev, tm, mode)
        except Exception as e:
            print(f"X gpt.{key} {first_line(e)}", flush=True)
            print(f"  torch gpt {key}: {type(e).__name__}: {str(e)[:2000]}", file=sys.stderr, flush=True)
        print(f"torch gpt {key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        if tm.cuda:
            torch.cuda.empty_cache()


def run(a):
    dev = torch.device(a.device)
    tm = Timer(a, dev)
    print(f"I torch {torch.__version__}", flush=True)
    if dev.type == "cuda":
        print(f"I device {torch.cuda.get_device_name(0)}", flush=True)
    torch.manual_seed(0)
    a.attention_used = a.attention
    if a.attention == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        a.attention_used = "math (no F.scaled_dot_product_attention in this torch)"
    elif a.attention == "sdpa":
        bg.CausalSelfAttention.forward = sdpa_forward
    t_start = time.perf_counter()
    sections = {"a": bench_matmul, "b": bench_overhead, "c": bench_elementwise, "d": bench_fused,
                "g": bench_attention}
    for letter in a.sections:  # in the order given
        t0 = time.perf_counter()
        if letter in sections:
            fn = sections[letter]
            try:
                fn(a, dev, tm)
            except Exception as e:  # the inputs could not be made (out of memory, ...)
                print(f"  torch section {letter}: {e}", file=sys.stderr, flush=True)
            print(f"torch {fn.__name__}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        elif letter == "e" and a.gpt:
            run_gpts(a, a.gpt, dev, tm, "f32")
        elif letter == "f" and a.amp_gpt:
            run_gpts(a, a.amp_gpt, dev, tm, "amp")
        elif letter == "h" and a.amp_gpt:
            run_gpts(a, a.amp_gpt, dev, tm, "compile")
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print(f"torch: {time.perf_counter() - t_start:.1f} s in all", file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("prepare")
    q.add_argument("--config", choices=sorted(CONFIGS), required=True)
    q.add_argument("--steps", type=int, required=True)
    q.add_argument("--batch", type=int, default=0, help="0: the config's own")
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=1337)
    r = sub.add_parser("run")
    r.add_argument("--device", default="cuda")
    r.add_argument("--sections", default="abcde")  # any of abcdefgh, in order
    r.add_argument("--sizes", default="4096,8192", type=lambda s: [int(v) for v in s.split(",") if v])
    r.add_argument("--elems", type=int, default=1 << 28)
    r.add_argument("--rows", type=int, default=16384)
    r.add_argument("--cols", type=int, default=4096)
    r.add_argument("--overhead-ops", type=int, default=20000)
    r.add_argument("--warmup", type=int, default=3)
    r.add_argument("--reps", type=int, default=10)
    r.add_argument("--min-sample", type=float, default=0.02)
    r.add_argument("--max-measure", type=float, default=4.0)
    r.add_argument("--gpt", default="", help="name=FILE,... (files from prepare)")
    r.add_argument("--gpt-warmup", type=int, default=3)
    r.add_argument("--gpt-budget", type=float, default=15.0)
    r.add_argument("--attention", choices=("sdpa", "math"), default="sdpa")
    r.add_argument("--amp-gpt", default="", help="name=FILE,... (files from prepare): sections f, h")
    r.add_argument("--attn", default="1024:4:16,4096:1:16", help="L:B:H,... (L = S)")
    r.add_argument("--attn-hd", default="64,128", type=lambda s: [int(v) for v in s.split(",") if v])
    r.add_argument("--attn-check", default="", help="the file of focus's flash results to compare")
    r.add_argument("--attn-dtype", choices=("bf16", "f32"), default="bf16")
    a = p.parse_args()
    if a.mode == "run":
        a.attn_dt = torch.bfloat16 if a.attn_dtype == "bf16" else torch.float32
    prepare(a) if a.mode == "prepare" else run(a)


if __name__ == "__main__":
    main()
