"""Parity reference for models/gpt: a tiny GPT (tools/bench/bench_gpt_torch.py's model, the
one the benchmark trains) and 3 AdamW steps. Writes OUTDIR/gpt_train.safetensors with

  init.<name>     the initial weights (PyTorch state_dict names = focus's)
  batch.x/y       int64 [3, B, T] training batches
  loss            float32 [3]: the loss at each step (before its update)
  grad0.<name>    the gradients of the first step
  logits          float32 [B, T, V]: the model's logits on batch 0 after the 3 updates
  final.<name>    the weights after the 3 updates
"""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "tools", "bench"))
import st  # noqa: E402
import bench_gpt_torch as bg  # noqa: E402


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    c = dict(bg.CONFIGS["tiny"], bias=True, dropout=0.0)
    model = bg.GPT(c)
    x, y = bg.make_batches(c, 3, 0)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    t = {f"init.{k}": v.clone() for k, v in model.state_dict().items()}
    t["batch.x"], t["batch.y"] = xs, ys
    opt = bg.make_optimizer(model)
    losses = []
    for s in range(3):
        _, loss = model(xs[s], ys[s])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s == 0:
            for k, p in model.named_parameters():
                t[f"grad0.{k}"] = p.grad.clone()
        opt.step()
        losses.append(loss.item())
    t["loss"] = torch.tensor(losses, dtype=torch.float32)
    with torch.no_grad():
        logits, _ = model(xs[0], ys[0])
    t["logits"] = logits
    for k, v in model.state_dict().items():
        t[f"final.{k}"] = v
    st.save(os.path.join(out, "gpt_train.safetensors"), t)


if __name__ == "__main__":
    main()
