#!/usr/bin/python3
"""Parity references for LoRA adapters (tests/parity/test_lora.cpp).

Usage: /usr/bin/python3 gen_lora.py OUTDIR

Writes OUTDIR/lora_linear_<f32|f64>.safetensors: PEFT's lora.Linear forward written out by
hand in PyTorch, y = F.linear(x, W, b) + (x @ A^T @ B^T) * scaling with scaling = lora_alpha / r
(r = 3, lora_alpha = 7, no dropout), and its gradients for sum(y * gy):
  weight, bias, lora_A [r, in], lora_B [out, r], x, gy   inputs
  y, grad.x, grad.lora_A, grad.lora_B                   results
  merged                                                 W + scaling * B @ A (PEFT's merge)

and an adapter saved the way PEFT saves one, for Sequential(Linear(4, 6), ReLU(), Linear(6, 3))
with target_modules ["0", "2"], r = 2, lora_alpha = 6:
  OUTDIR/lora_peft_adapter/adapter_model.safetensors   base_model.model.<0|2>.lora_<A|B>.weight
                                                        (lora_B in float16, as a half model saves)
  OUTDIR/lora_peft_adapter/adapter_config.json         PEFT 0.13's layout (sorted, indent 2)
  OUTDIR/lora_peft_base.safetensors                     the base state_dict, x and the adapted y
"""
import json
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
    peft_adapter(out)


def peft_adapter(out):
    torch.manual_seed(23)
    base = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    r, alpha = 2, 6
    adapter, factors = {}, {}
    for name, layer in (("0", base[0]), ("2", base[2])):
        a = torch.randn(r, layer.in_features) * 0.5
        b = (torch.randn(layer.out_features, r) * 0.5).half()  # PEFT saves in the adapter's dtype
        adapter[f"base_model.model.{name}.lora_A.weight"] = a
        adapter[f"base_model.model.{name}.lora_B.weight"] = b
        factors[name] = (a, b.float())
    x = torch.randn(5, 4)
    with torch.no_grad():
        def adapted(name, layer, h):
            a, b = factors[name]
            return layer(h) + (h @ a.t() @ b.t()) * (alpha / r)
        y = adapted("2", base[2], torch.relu(adapted("0", base[0], x)))
    d = os.path.join(out, "lora_peft_adapter")
    os.makedirs(d, exist_ok=True)
    st.save(os.path.join(d, "adapter_model.safetensors"), adapter, {"format": "pt"})
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "tiny-mlp", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
        "lora_dropout": 0.1, "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": None,
        "peft_type": "LORA", "r": r, "rank_pattern": {}, "revision": None, "target_modules": ["2", "0"],
        "task_type": None, "use_dora": False, "use_rslora": False,
    }
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    st.save(os.path.join(out, "lora_peft_base.safetensors"),
            {**{k: v for k, v in base.state_dict().items()}, "x": x, "y": y})


if __name__ == "__main__":
    main()
