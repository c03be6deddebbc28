"""PyTorch references for nn::MultiheadAttention and the Transformer family.

`gen_transformer.py OUTDIR` writes OUTDIR/transformer_<case>.safetensors with
  p.<state_dict key>       the module's weights (random, so that every path matters)
  x.<input>                inputs (query/key/value, src/tgt/memory) and masks (m.<mask>)
  y.out, y.weights         outputs (weights only when need_weights)
  dy.out, dy.weights       the upstream gradients used for backward
  grad.p.<key>, grad.x.<input>   gradients of sum(y.out * dy.out) (+ sum(y.weights * dy.weights))
and the module's configuration in the metadata (strings), read by tests/parity/test_transformer.cpp.

Modules run in train mode with dropout 0 and grad enabled, so PyTorch takes its standard
(non-fused) path. PyTorch 1.13 (Debian) lacks is_causal and float key padding masks; the
float key padding case is referenced through the equivalent 3-D additive attn_mask (what
PyTorch 2.x computes), is_causal is tested in the unit tests against an explicit mask.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

OUT = None


def randomize(module, gen):
    """Every parameter random (LayerNorm weights around 1), so zero-initialized biases matter."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                p.copy_(0.4 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def pad_mask(n, s, pads):
    """bool [n, s], true on the last pads[i] positions of row i (true = padding)."""
    m = torch.zeros(n, s, dtype=torch.bool)
    for i, k in enumerate(pads):
        if k:
            m[i, s - k:] = True
    return m


def bool_attn_mask(shape, gen):
    """Random bool mask (true = not allowed); column 0 always allowed so no row is empty."""
    m = torch.rand(shape, generator=gen) < 0.35
    m[..., 0] = False
    return m


def causal_float(n, dtype):
    return torch.triu(torch.full((n, n), float("-inf"), dtype=dtype), 1)


def save_case(name, module, inputs, masks, run, meta, need_weights=False):
    """inputs: {name: tensor} (requires grad set here); masks: {name: tensor or None};
    run(inputs) -> (out, weights or None)."""
    gen = torch.Generator().manual_seed(1234)
    module.train()
    for t in inputs.values():
        t.requires_grad_(True)
    out, w = run(inputs)
    dy = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    loss = (out * dy).sum()
    d = {}
    if need_weights:
        dw = torch.randn(w.shape, generator=gen, dtype=w.dtype)
        loss = loss + (w * dw).sum()
        d["y.weights"] = w.detach()
        d["dy.weights"] = dw
    loss.backward()
    d["y.out"] = out.detach()
    d["dy.out"] = dy
    for k, v in module.state_dict().items():
        d["p." + k] = v
    for k, p in module.named_parameters():
        assert p.grad is not None, f"{name}: no grad for {k}"
        d["grad.p." + k] = p.grad
    for k, t in inputs.items():
        d["x." + k] = t.detach()
        d["grad.x." + k] = t.grad
    for k, m in masks.items():
        if m is not None:
            d["m." + k] = m
    meta = {k: str(v) for k, v in meta.items()}
    meta["dtype"] = "float64" if out.dtype == torch.float64 else "float32"
    st.save(os.path.join(OUT, f"transformer_{name}.safetensors"), d, metadata=meta)


# ---- MultiheadAttention ------------------------------------------------------------------

def mha_case(name, E=8, H=2, L=5, S=6, N=3, kdim=None, vdim=None, bias=True, add_bias_kv=False,
             add_zero_attn=False, batch_first=False, inputs="distinct", attn_mask=None, kpm=None,
             need_weights=True, average=True, dtype=torch.float32, unbatched=False, float_kpm=False):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(7)
    m = torch.nn.MultiheadAttention(E, H, dropout=0.0, bias=bias, add_bias_kv=add_bias_kv,
                                    add_zero_attn=add_zero_attn, kdim=kdim, vdim=vdim,
                                    batch_first=batch_first).to(dtype)
    randomize(m, gen)
    if inputs == "self":
        S = L
    kd, vd = kdim or E, vdim or E

    def shape(seq, feat):
        if unbatched:
            return (seq, feat)
        return (N, seq, feat) if batch_first else (seq, N, feat)

    ins = {"query": torch.randn(shape(L, E), generator=gen, dtype=dtype)}
    if inputs == "kv":
        ins["key"] = torch.randn(shape(S, kd), generator=gen, dtype=dtype)
    elif inputs == "distinct":
        ins["key"] = torch.randn(shape(S, kd), generator=gen, dtype=dtype)
        ins["value"] = torch.randn(shape(S, vd), generator=gen, dtype=dtype)
    nb = 1 if unbatched else N
    am = None
    if attn_mask == "bool2":
        am = bool_attn_mask((L, S), gen)
    elif attn_mask == "bool3":
        am = bool_attn_mask((nb * H, L, S), gen)
    elif attn_mask == "float2":
        am = torch.randn((L, S), generator=gen, dtype=dtype)
    elif attn_mask == "float3":
        am = torch.randn((nb * H, L, S), generator=gen, dtype=dtype)
    elif attn_mask == "causal":
        am = causal_float(L, dtype)
    kp = None
    kp_float = None
    if kpm is not None:
        kp = pad_mask(nb, S, kpm)
        if unbatched:
            kp = kp[0]
        if float_kpm:
            kp_float = torch.randn(kp.shape, generator=gen, dtype=dtype)
            kp_float = kp_float.masked_fill(kp, float("-inf"))

    def run(x):
        q = x["query"]
        k = x.get("key", q)
        v = x.get("value", k)
        if float_kpm:
            # PyTorch 2.x adds a float key padding mask to the scores: the same as a 3-D mask.
            extra = int(add_bias_kv) + int(add_zero_attn)
            f = kp_float.reshape(nb, 1, 1, S).expand(nb, H, L, S).reshape(nb * H, L, S)
            assert extra == 0 and am is None
            return m(q, k, v, need_weights=need_weights, attn_mask=f, average_attn_weights=average)
        return m(q, k, v, key_padding_mask=kp, need_weights=need_weights, attn_mask=am,
                 average_attn_weights=average)

    masks = {"attn_mask": am, "key_padding_mask": kp_float if float_kpm else kp}
    meta = dict(embed_dim=E, num_heads=H, kdim=kd, vdim=vd, bias=int(bias), add_bias_kv=int(add_bias_kv),
                add_zero_attn=int(add_zero_attn), batch_first=int(batch_first), inputs=inputs,
                need_weights=int(need_weights), average=int(average))
    save_case(name, m, ins, masks, run, meta, need_weights=need_weights)


def gen_mha():
    mha_case("mha_self", inputs="self", need_weights=True)
    mha_case("mha_kv_noweights", inputs="kv", need_weights=False)
    mha_case("mha_distinct_bf_heads", inputs="distinct", batch_first=True, average=False)
    mha_case("mha_kvdim_biaskv", kdim=5, vdim=7, add_bias_kv=True, batch_first=True, attn_mask="bool2",
             kpm=[0, 2, 1])
    mha_case("mha_self_bool_kpm", inputs="self", attn_mask="bool2", kpm=[1, 0, 2], need_weights=False)
    mha_case("mha_float3_kpm_bf", inputs="kv", attn_mask="float3", kpm=[2, 1, 0], batch_first=True,
             need_weights=False)
    mha_case("mha_float2_weights", attn_mask="float2", need_weights=True, average=False)
    mha_case("mha_bool3", inputs="self", attn_mask="bool3", need_weights=True)
    mha_case("mha_zero_attn", add_bias_kv=True, add_zero_attn=True, attn_mask="float2", kpm=[1, 0, 0])
    mha_case("mha_zero_attn_bool", inputs="self", add_zero_attn=True, attn_mask="bool2", kpm=[0, 1, 3],
             need_weights=False)
    mha_case("mha_nobias", bias=False, inputs="kv", attn_mask="causal", L=6, S=6)
    mha_case("mha_unbatched", inputs="self", unbatched=True, attn_mask="bool3", kpm=[1], need_weights=True,
             average=False)
    mha_case("mha_unbatched_bf", inputs="distinct", unbatched=True, batch_first=True, kdim=3, vdim=4,
             need_weights=False)
    mha_case("mha_float_kpm", inputs="self", kpm=[1, 0, 2], float_kpm=True, need_weights=True)
    mha_case("mha_f64", kdim=5, vdim=7, add_bias_kv=True, attn_mask="float2", kpm=[0, 1, 2],
             dtype=torch.float64, need_weights=True)
    mha_case("mha_f64_self_bf", inputs="self", batch_first=True, attn_mask="bool2", kpm=[2, 0, 1],
             dtype=torch.float64, need_weights=False)


# ---- Transformer layers ------------------------------------------------------------------

def layer_meta(E, H, ff, activation, norm_first, batch_first):
    return dict(d_model=E, nhead=H, dim_feedforward=ff, activation=activation, norm_first=int(norm_first),
                batch_first=int(batch_first))


def enc_case(name, norm_first, activation, batch_first, masks, dtype=torch.float32, E=8, H=2, ff=16, S=6, N=3):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(11)
    m = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=ff, dropout=0.0, activation=activation,
                                         batch_first=batch_first, norm_first=norm_first).to(dtype)
    randomize(m, gen)
    src = torch.randn((N, S, E) if batch_first else (S, N, E), generator=gen, dtype=dtype)
    sm = None
    if "causal" in masks:
        sm = causal_float(S, dtype)
    elif "bool" in masks:
        sm = bool_attn_mask((S, S), gen)
    elif "float3" in masks:
        sm = torch.randn((N * H, S, S), generator=gen, dtype=dtype)
    kp = pad_mask(N, S, [1, 0, 2]) if "kpm" in masks else None

    def run(x):
        return m(x["src"], src_mask=sm, src_key_padding_mask=kp), None

    save_case(name, m, {"src": src}, {"src_mask": sm, "src_key_padding_mask": kp}, run,
              layer_meta(E, H, ff, activation, norm_first, batch_first))


def dec_case(name, norm_first, activation, batch_first, masks, dtype=torch.float32, E=8, H=2, ff=16, T=5, S=6, N=3):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(13)
    m = torch.nn.TransformerDecoderLayer(E, H, dim_feedforward=ff, dropout=0.0, activation=activation,
                                         batch_first=batch_first, norm_first=norm_first).to(dtype)
    randomize(m, gen)
    tgt = torch.randn((N, T, E) if batch_first else (T, N, E), generator=gen, dtype=dtype)
    mem = torch.randn((N, S, E) if batch_first else (S, N, E), generator=gen, dtype=dtype)
    tm = causal_float(T, dtype) if "tgt_mask" in masks else None
    mm = bool_attn_mask((T, S), gen) if "memory_mask" in masks else None
    tk = pad_mask(N, T, [0, 1, 2]) if "tgt_kpm" in masks else None
    mk = pad_mask(N, S, [2, 0, 1]) if "memory_kpm" in masks else None

    def run(x):
        return m(x["tgt"], x["memory"], tgt_mask=tm, memory_mask=mm, tgt_key_padding_mask=tk,
                 memory_key_padding_mask=mk), None

    save_case(name, m, {"tgt": tgt, "memory": mem},
              {"tgt_mask": tm, "memory_mask": mm, "tgt_key_padding_mask": tk, "memory_key_padding_mask": mk}, run,
              layer_meta(E, H, ff, activation, norm_first, batch_first))


def transformer_case(name, norm_first, activation, batch_first, dtype=torch.float32, E=8, H=2, ff=16, ne=2, nd=2,
                     S=6, T=5, N=3):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(17)
    m = torch.nn.Transformer(E, H, num_encoder_layers=ne, num_decoder_layers=nd, dim_feedforward=ff, dropout=0.0,
                             activation=activation, batch_first=batch_first, norm_first=norm_first).to(dtype)
    randomize(m, gen)
    src = torch.randn((N, S, E) if batch_first else (S, N, E), generator=gen, dtype=dtype)
    tgt = torch.randn((N, T, E) if batch_first else (T, N, E), generator=gen, dtype=dtype)
    sm = bool_attn_mask((S, S), gen)
    tm = causal_float(T, dtype)
    mm = torch.randn((N * H, T, S), generator=gen, dtype=dtype)
    sk = pad_mask(N, S, [1, 0, 2])
    tk = pad_mask(N, T, [0, 2, 1])
    mk = pad_mask(N, S, [1, 0, 2])

    def run(x):
        return m(x["src"], x["tgt"], src_mask=sm, tgt_mask=tm, memory_mask=mm, src_key_padding_mask=sk,
                 tgt_key_padding_mask=tk, memory_key_padding_mask=mk), None

    meta = layer_meta(E, H, ff, activation, norm_first, batch_first)
    meta.update(num_encoder_layers=ne, num_decoder_layers=nd)
    save_case(name, m, {"src": src, "tgt": tgt},
              {"src_mask": sm, "tgt_mask": tm, "memory_mask": mm, "src_key_padding_mask": sk,
               "tgt_key_padding_mask": tk, "memory_key_padding_mask": mk}, run, meta)


def gen_layers():
    enc_case("enc_post_relu", False, "relu", False, ["causal", "kpm"])
    enc_case("enc_pre_gelu_bf", True, "gelu", True, ["bool", "kpm"])
    enc_case("enc_post_gelu_float3", False, "gelu", False, ["float3"])
    enc_case("enc_pre_relu_f64", True, "relu", False, ["causal", "kpm"], dtype=torch.float64)
    dec_case("dec_post_relu", False, "relu", False, ["tgt_mask", "memory_mask", "tgt_kpm", "memory_kpm"])
    dec_case("dec_pre_gelu_bf", True, "gelu", True, ["tgt_mask", "memory_kpm"])
    dec_case("dec_post_gelu_nomask", False, "gelu", True, [])
    dec_case("dec_pre_relu_f64", True, "relu", False, ["tgt_mask", "memory_mask", "tgt_kpm", "memory_kpm"],
             dtype=torch.float64)
    transformer_case("tf_post_relu", False, "relu", False)
    transformer_case("tf_pre_gelu_bf", True, "gelu", True)
    transformer_case("tf_post_gelu_f64", False, "gelu", False, dtype=torch.float64)


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit("usage: gen_transformer.py OUTDIR")
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    gen_mha()
    gen_layers()


if __name__ == "__main__":
    main()
