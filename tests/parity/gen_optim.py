#!/usr/bin/python3
"""Reference trajectories for focus's optimizers, LR schedulers and gradient clipping.

Usage: gen_optim.py OUTDIR. Writes
  optim_train_f32.safetensors / optim_train_f64.safetensors: a fixed problem (data and
      initial parameters), then for each optimizer configuration <cfg> the loss of each of
      the 50 steps (<cfg>.loss; negated for the *maximize configurations, which maximize -loss), the final parameters (<cfg>.final.<W|b|v|unused>) and the
      optimizer's state_dict flattened the way focus flattens it (<cfg>.sd.<key>).
  optim_sched.safetensors: for each scheduler configuration <cfg>, the lr of each param
      group after construction and after each step (<cfg>.lr [steps + 1, groups]) and,
      where OneCycleLR cycles it, the momentum / beta1 (<cfg>.momentum).
  optim_clip.safetensors: gradients and clip_grad_norm_ results for several norm types.
The problem and configurations must match tests/parity/test_optim.cpp.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

STEPS = 50


def problem(dtype):
    g = torch.Generator().manual_seed(1234)
    data = {
        "x": torch.randn(6, 4, generator=g, dtype=torch.float64),
        "y": torch.rand(6, 3, generator=g, dtype=torch.float64) * 1.6 - 0.8,
        "s": torch.rand(5, generator=g, dtype=torch.float64) + 0.5,
        "init.W": torch.randn(4, 3, generator=g, dtype=torch.float64) * 0.5,
        "init.b": torch.randn(3, generator=g, dtype=torch.float64) * 0.1,
        "init.v": torch.randn(5, generator=g, dtype=torch.float64),
        "init.unused": torch.randn(2, generator=g, dtype=torch.float64),
    }
    return {k: v.to(dtype) for k, v in data.items()}


def loss_fn(data, W, b, v):
    # mean((tanh(x @ W + b) - y)^2) + 0.5 * sum(s * v^2) + 0.1 * sum(v^4) / 4
    h = torch.tanh(data["x"] @ W + b)
    return ((h - data["y"]) ** 2).mean() + 0.5 * (data["s"] * v * v).sum() + 0.025 * (v ** 4).sum()


def flatten_state_dict(sd):
    """torch optimizer state_dict -> focus's flat names (see optim/optimizer.h)."""
    out = {}
    for i, s in sd["state"].items():
        for k, val in s.items():
            if val is None:
                continue
            out[f"state.{i}.{k}"] = val if torch.is_tensor(val) else torch.tensor(float(val))
    for gi, group in enumerate(sd["param_groups"]):
        for k, val in group.items():
            key = f"param_groups.{gi}.{k}"
            if k == "params":
                out[key] = torch.tensor(val, dtype=torch.int64)
            elif isinstance(val, bool):
                out[key] = torch.tensor(val)
            elif isinstance(val, (int, float)):
                out[key] = torch.tensor(float(val), dtype=torch.float64)
            elif isinstance(val, tuple):
                out[key] = torch.tensor([float(x) for x in val], dtype=torch.float64)
    return out


# name -> (optimizer class, kwargs, groups): groups None = one group of all parameters,
# else a list of (parameter names, overrides).
CONFIGS = {
    "sgd": (torch.optim.SGD, dict(lr=0.1), None),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.05, momentum=0.9), None),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True), None),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3), None),
    "sgd_wd": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01), None),
    "sgd_maximize": (torch.optim.SGD, dict(lr=0.02, momentum=0.5, weight_decay=0.1, maximize=True), None),
    "adam": (torch.optim.Adam, dict(lr=0.01), None),
    "adam_amsgrad": (torch.optim.Adam, dict(lr=0.02, amsgrad=True, betas=(0.8, 0.99)), None),
    "adam_wd": (torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, eps=1e-6), None),
    "adam_maximize": (torch.optim.Adam, dict(lr=0.01, weight_decay=0.05, maximize=True), None),
    "adamw": (torch.optim.AdamW, dict(lr=0.01), None),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=0.02, weight_decay=0.1, amsgrad=True, betas=(0.85, 0.95)), None),
    "adamw_groups": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1),
                     [(["W", "unused"], {}), (["b", "v"], dict(lr=0.03, weight_decay=0.0))]),
}


def train(data, dtype, name, cls, kwargs, groups):
    params = {k: data["init." + k].clone().requires_grad_(True) for k in ["W", "b", "v", "unused"]}
    if groups is None:
        opt = cls([params[k] for k in ["W", "b", "v", "unused"]], **kwargs)
    else:
        opt = cls([dict(params=[params[k] for k in names], **over) for names, over in groups], **kwargs)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_fn(data, params["W"], params["b"], params["v"])
        if "maximize" in name:  # maximize the negated loss: the same descent, through maximize
            loss = -loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out = {f"{name}.loss": torch.tensor(losses, dtype=torch.float64)}
    for k, p in params.items():
        out[f"{name}.final.{k}"] = p.detach().clone()
    for k, v in flatten_state_dict(opt.state_dict()).items():
        out[f"{name}.sd.{k}"] = v.detach().clone()
    return out


def gen_train(outdir):
    for dtype, suffix in [(torch.float32, "f32"), (torch.float64, "f64")]:
        data = problem(dtype)
        out = dict(data)
        for name, (cls, kwargs, groups) in CONFIGS.items():
            out.update(train(data, dtype, name, cls, kwargs, groups))
        st.save(os.path.join(outdir, f"optim_train_{suffix}.safetensors"), out)


def sched_optimizer(kind, groups):
    params = [torch.zeros(2, requires_grad=True) for _ in groups]
    pg = [dict(params=[p], lr=lr) for p, lr in zip(params, groups)]
    if kind == "sgd":
        return torch.optim.SGD(pg, lr=groups[0], momentum=0.9)
    return torch.optim.Adam(pg, lr=groups[0], betas=(0.9, 0.999))


def inv_sqrt(warmup):
    return lambda e: math.sqrt(warmup) * min((e + 1) ** -0.5, (e + 1) * warmup ** -1.5)


# name -> (optimizer kind, group lrs, steps, builder(opt) -> scheduler)
SCHEDULERS = {
    "step": ("sgd", [0.1, 0.01], 20, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    "exponential": ("sgd", [0.1], 20, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    "cosine": ("sgd", [0.1, 0.05], 35,
               lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    "linear": ("sgd", [0.1], 15,
               lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=8)),
    "linear_decay": ("adam", [0.1], 12,
                     lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=6)),
    "lambda": ("sgd", [0.1, 0.2], 20, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.95 ** e)),
    "onecycle_cos": ("sgd", [0.1, 0.05], 30,
                     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=[0.1, 0.2], total_steps=30)),
    "onecycle_linear3": ("adam", [0.1], 40,
                         lambda o: torch.optim.lr_scheduler.OneCycleLR(
                             o, max_lr=0.01, total_steps=40, pct_start=0.25, anneal_strategy="linear",
                             three_phase=True, div_factor=10.0, final_div_factor=100.0, base_momentum=0.8,
                             max_momentum=0.9)),
    "onecycle_nomom": ("adam", [0.1], 20,
                       lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, epochs=4, steps_per_epoch=5,
                                                                     cycle_momentum=False)),
    "sequential": ("sgd", [0.1, 0.02], 30,
                   lambda o: torch.optim.lr_scheduler.SequentialLR(
                       o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
                           torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20)], milestones=[5])),
    "sequential3": ("adam", [0.1], 25,
                    lambda o: torch.optim.lr_scheduler.SequentialLR(
                        o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.5, total_iters=4),
                            torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8),
                            torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5)], milestones=[4, 12])),
    # torch has no inverse-square-root scheduler: LambdaLR with the formula.
    "inverse_sqrt": ("adam", [0.001, 0.002], 30, lambda o: torch.optim.lr_scheduler.LambdaLR(o, inv_sqrt(8))),
}


def gen_sched(outdir):
    import warnings
    warnings.filterwarnings("ignore")
    out = {}
    for name, (kind, groups, steps, build) in SCHEDULERS.items():
        opt = sched_optimizer(kind, groups)
        sched = build(opt)

        def momenta():
            return [g["momentum"] if "momentum" in g else g["betas"][0] for g in opt.param_groups]

        lrs = [[g["lr"] for g in opt.param_groups]]
        moms = [momenta()]
        for _ in range(steps):
            opt.step()
            sched.step()
            lrs.append([g["lr"] for g in opt.param_groups])
            moms.append(momenta())
        out[f"{name}.lr"] = np.array(lrs, dtype=np.float64)
        out[f"{name}.momentum"] = np.array(moms, dtype=np.float64)
    st.save(os.path.join(outdir, "optim_sched.safetensors"), out)


def gen_clip(outdir):
    g = torch.Generator().manual_seed(99)
    grads = [torch.randn(4, 3, generator=g), torch.randn(7, generator=g) * 3, torch.randn(2, 2, 2, generator=g)]
    out = {f"grad.{i}": t for i, t in enumerate(grads)}
    cases = {"l2_clip": (2.0, 0.5), "l2_noclip": (2.0, 100.0), "l1": (1.0, 2.0), "inf": (math.inf, 1.5),
             "p3": (3.0, 1.0)}
    for name, (p, max_norm) in cases.items():
        params = [t.clone().requires_grad_(True) for t in grads]
        for prm, gr in zip(params, grads):
            prm.grad = gr.clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=p)
        out[f"{name}.total"] = total.detach().clone()
        for i, prm in enumerate(params):
            out[f"{name}.grad.{i}"] = prm.grad.clone()
    st.save(os.path.join(outdir, "optim_clip.safetensors"), out)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    gen_train(outdir)
    gen_sched(outdir)
    gen_clip(outdir)


if __name__ == "__main__":
    main()
