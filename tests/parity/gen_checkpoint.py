"""Reference files for parity_checkpoint: focus checkpoints written from PyTorch, and the
helpers check_focus_checkpoint.py uses to read focus checkpoints into PyTorch.

checkpoint_torch:      a focus-format checkpoint (see optim/checkpoint.h) of a PyTorch model
                       trained 5 steps with AdamW: model.* = model.state_dict(), optimizer.* =
                       the AdamW state_dict flattened as focus stores it, step, rng.default.
checkpoint_torch_ref:  x, y: a batch; out: the model's eval output on x; after.<name>: the
                       weights after one more AdamW step on mse(model(x), y) in eval mode.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

GROUP_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "momentum", "dampening", "nesterov",
              "initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


def make_model():
    """Same as tests/parity/test_checkpoint.cpp's model."""
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(16, 3), torch.nn.Dropout(0.1))


def flatten_optimizer(sd):
    """torch optimizer.state_dict() -> focus's flat layout (optim/optimizer.h)."""
    out = {}
    for i, s in sd["state"].items():
        for k, v in s.items():
            out[f"state.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(float(v))
    for g, group in enumerate(sd["param_groups"]):
        out[f"param_groups.{g}.params"] = np.array(group["params"], dtype=np.int64)
        for k in GROUP_KEYS:
            if k not in group or group[k] is None:
                continue
            v = group[k]
            if isinstance(v, bool):
                out[f"param_groups.{g}.{k}"] = np.array(v)
            elif isinstance(v, (tuple, list)):
                out[f"param_groups.{g}.{k}"] = np.array(v, dtype=np.float64)
            else:
                out[f"param_groups.{g}.{k}"] = np.array(float(v), dtype=np.float64)
    return out


def unflatten_optimizer(flat, template):
    """focus's flat layout -> a torch optimizer.state_dict(), other keys from template."""
    sd = {"state": {}, "param_groups": [dict(g) for g in template["param_groups"]]}
    for key, v in flat.items():
        parts = key.split(".")
        if parts[0] == "state":
            sd["state"].setdefault(int(parts[1]), {})[parts[2]] = torch.from_numpy(np.array(v))
        elif parts[0] == "param_groups":
            g, name = int(parts[1]), parts[2]
            if name == "params":
                sd["param_groups"][g]["params"] = [int(i) for i in v]
            elif name == "betas":
                sd["param_groups"][g]["betas"] = (float(v[0]), float(v[1]))
            elif v.dtype == np.bool_:
                sd["param_groups"][g][name] = bool(v)
            else:
                sd["param_groups"][g][name] = float(v)
        else:
            raise ValueError(f"unexpected optimizer key {key}")
    return sd


def main(out):
    torch.manual_seed(3)
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        x, y = torch.randn(8, 6), torch.randn(8, 3)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    ckpt = {f"model.{k}": v for k, v in model.state_dict().items()}
    ckpt.update({f"optimizer.{k}": v for k, v in flatten_optimizer(opt.state_dict()).items()})
    ckpt["step"] = np.array(5, dtype=np.int64)
    ckpt["rng.default"] = np.array([0, 0], dtype=np.int64)
    st.save(os.path.join(out, "checkpoint_torch.safetensors"), ckpt,
            metadata={"format": "focus-checkpoint", "version": "1", "optimizer": "AdamW"})

    model.eval()
    x, y = torch.randn(4, 6), torch.randn(4, 3)
    ref = {"x": x, "y": y}
    with torch.no_grad():
        ref["out"] = model(x)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    ref.update({f"after.{k}": v for k, v in model.state_dict().items()})
    st.save(os.path.join(out, "checkpoint_torch_ref.safetensors"), ref)


if __name__ == "__main__":
    main(sys.argv[1])
