#!/usr/bin/python3
"""PyTorch reference for char-gpt (models/char_gpt): the same character-level GPT trained the
same way, to compare validation losses with `focus train char-gpt`.

    /usr/bin/python3 tools/bench/char_gpt_torch.py --config runs/char-gpt/config.json \
        [--text PATH] [--threads 2] [--out result.json]

Same as focus: the run's configuration (config.json written by `focus train char-gpt`, so the
two cannot drift apart: n_layer, n_head, n_embd, block_size, dropout, bias, batch_size,
steps, lr, min_lr, warmup_steps, weight_decay, beta1, beta2, grad_clip, eval_every,
eval_batches, seed), the data (the converted book, $FOCUS_DATA/moby-dick/moby-dick.txt by
default, split into Unicode characters; the vocabulary is every distinct character, most
frequent first), the split (first 90% of the characters train, last 10% validation), the
batch sampling scheme (nanoGPT's get_batch: batch_size random offsets per step, contiguous
blocks), the model (nanoGPT's GPT with models/gpt's layout and initialization), AdamW with
two groups (weight decay on the matrices only), the schedule (linear warm-up from
lr/(warmup+1), then cosine to min_lr at `steps`, nanoGPT's get_lr), gradient clipping at
grad_clip, the periodic evaluation (mean loss over eval_batches fixed validation batches
drawn once) and the final figures (validation loss over the whole validation split in
consecutive windows, every character predicted once; train loss over eval_batches fixed
training batches). Different: the random numbers (PyTorch's generators), so the initial
weights and the batches differ; the comparison is between two independent runs of the same
recipe. Needs Debian's python3-torch (1.13; only /usr/bin/python3 has it).
"""
import argparse
import collections
import json
import math
import os
import sys
import time

import torch


# The model is bench_gpt_torch.py's (nanoGPT's GPT with models/gpt's names and init; dropout
# and bias from the config); Python finds it beside this script.
from bench_gpt_torch import GPT, set_threads  # noqa: E402


# ---- data ----------------------------------------------------------------------------------
def load_ids(path, train_frac=0.9):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    counts = collections.Counter(text)
    # data::Vocab::build: most frequent first, ties by the character's UTF-8 bytes
    chars = [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode("utf-8")))]
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([stoi[ch] for ch in text], dtype=torch.long)
    n_train = int(math.floor(len(ids) * train_frac))
    return ids[:n_train].clone(), ids[n_train:].clone(), len(chars), len(text)


def get_batch(data, batch_size, block_size, gen):
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=gen)
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()])
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()])
    return x, y


@torch.no_grad()
def mean_loss(model, batches):
    model.eval()
    out = sum(model(x, y)[1].item() for x, y in batches) / len(batches)
    model.train()
    return out


@torch.no_grad()
def split_loss(model, data, block_size, batch_size):
    """char_gpt::split_loss: consecutive windows, every character but the first predicted once."""
    model.eval()
    n_pred = len(data) - 1
    n_full, rest = divmod(n_pred, block_size)
    total = 0.0
    for w in range(0, n_full, batch_size):
        b = min(batch_size, n_full - w)
        x = data[w * block_size : (w + b) * block_size].view(b, block_size)
        y = data[w * block_size + 1 : (w + b) * block_size + 1].view(b, block_size)
        total += model(x, y)[1].item() * b * block_size
    if rest:
        x = data[n_full * block_size : n_full * block_size + rest].view(1, rest)
        y = data[n_full * block_size + 1 : n_full * block_size + 1 + rest].view(1, rest)
        total += model(x, y)[1].item() * rest
    model.train()
    return total / n_pred


def get_lr(it, c):
    """nanoGPT's schedule (the LambdaLR of models/char_gpt/program.cpp)."""
    lr, min_lr, warmup, steps = c["lr"], c["min_lr"], c["warmup_steps"], c["steps"]
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it >= steps:
        return min_lr
    ratio = (it - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="config.json of a focus char-gpt run")
    ap.add_argument("--text", default=None, help="the book's text (default: $FOCUS_DATA/moby-dick/moby-dick.txt)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="override the config's steps (0: keep)")
    ap.add_argument("--out", default=None, help="write the final figures as JSON here")
    args = ap.parse_args()

    with open(args.config) as f:
        c = json.load(f)
    if args.steps > 0:
        c["steps"] = args.steps
    if c.get("dataset", "moby-dick") != "moby-dick":
        sys.exit(f"char_gpt_torch.py: only the moby-dick dataset is supported, the config says {c['dataset']!r}")
    text = args.text
    if text is None:
        root = os.environ.get("FOCUS_DATA") or os.path.expanduser("~/.cache/focus")
        text = os.path.join(root, "moby-dick", "moby-dick.txt")
    if not os.path.exists(text):
        sys.exit(f"char_gpt_torch.py: {text} not found: run `focus data fetch moby-dick` or pass --text")
    set_threads(args.threads)

    train, valid, V, n_chars = load_ids(text)
    c.update(vocab_size=V)
    seed = int(c["seed"])
    torch.manual_seed(seed)
    model = GPT(c)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_chars} characters, vocabulary {V}, train {len(train)}, valid {len(valid)}; {n_params} parameters",
          flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: get_lr(it, c) / c["lr"])
    data_gen = torch.Generator().manual_seed(seed)
    eval_gen = torch.Generator().manual_seed(seed + 1)
    B, T = c["batch_size"], c["block_size"]
    valid_batches = [get_batch(valid, B, T, eval_gen) for _ in range(c["eval_batches"])]
    train_batches = [get_batch(train, B, T, eval_gen) for _ in range(c["eval_batches"])]

    t0 = time.time()
    history = []
    model.train()
    for step in range(1, c["steps"] + 1):
        x, y = get_batch(train, B, T, data_gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        opt.step()
        sched.step()
        if step % c["eval_every"] == 0 or step == c["steps"]:
            vl = mean_loss(model, valid_batches)
            history.append((step, loss.item(), vl))
            print(f"step {step}  train(batch) {loss.item():.4f}  valid {vl:.4f} nats  "
                  f"{vl / math.log(2):.4f} bpc  {time.time() - t0:.0f}s", flush=True)
    train_time = time.time() - t0
    tl = mean_loss(model, train_batches)
    vfull = split_loss(model, valid, T, B)
    res = {
        "framework": "torch", "version": torch.__version__, "threads": args.threads, "steps": c["steps"],
        "params": n_params, "train_seconds": train_time,
        "train_loss": tl, "train_bpc": tl / math.log(2),
        "valid_loss": vfull, "valid_bpc": vfull / math.log(2),
        "valid_loss_batches": history[-1][2] if history else None,
        "history": history,
    }
    print(f"final: train {tl:.4f} nats ({tl / math.log(2):.4f} bpc), valid (whole split) {vfull:.4f} nats "
          f"({vfull / math.log(2):.4f} bpc); {train_time:.0f}s of training", flush=True)
    print("J " + json.dumps(res), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
