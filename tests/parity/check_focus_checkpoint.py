"""Reads a focus checkpoint into PyTorch: `check_focus_checkpoint.py CKPT REF`.

CKPT: written by save_checkpoint from the model of gen_checkpoint.make_model and AdamW.
REF: x, y, out (focus's eval output on x) and after.<name> (focus's weights after one more
AdamW step on mse(model(x), y) in eval mode). The model and optimizer state are loaded
into torch (strict), and torch's output and one-step weights must match focus's.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from gen_checkpoint import make_model, unflatten_optimizer  # noqa: E402


def close(a, b, what, rtol=1e-5, atol=1e-6):
    if a.shape != b.shape or not torch.allclose(a, b, rtol=rtol, atol=atol):
        sys.exit(f"check_focus_checkpoint.py: {what} differs: max |diff| {(a - b).abs().max().item()}")


def main(ckpt_path, ref_path):
    ckpt, meta = st.load_with_metadata(ckpt_path)
    ref = {k: torch.from_numpy(v) for k, v in st.load(ref_path).items()}
    if meta.get("format") != "focus-checkpoint" or meta.get("version") != "1" or meta.get("optimizer") != "AdamW":
        sys.exit(f"check_focus_checkpoint.py: metadata {meta}")
    model = make_model()
    model.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in ckpt.items() if k.startswith("model.")}, strict=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1.0, weight_decay=0.0)  # all replaced by the checkpoint
    flat = {k[10:]: v for k, v in ckpt.items() if k.startswith("optimizer.")}
    opt.load_state_dict(unflatten_optimizer(flat, opt.state_dict()))
    model.eval()
    with torch.no_grad():
        close(model(ref["x"]), ref["out"], "eval output")
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(ref["x"]), ref["y"]).backward()
    opt.step()
    for k, v in model.state_dict().items():
        close(v, ref[f"after.{k}"], f"weight {k} after one AdamW step")
    print(f"check_focus_checkpoint.py: {ckpt_path} ok (step {int(ckpt['step'])}, lr {opt.param_groups[0]['lr']})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
