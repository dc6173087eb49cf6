"""Writes the PyTorch reference fixtures that glora's C tests compare against.

Regenerate (deterministic; same bytes on every run with the same torch):

    /usr/bin/python3 tests/ref/make_fixtures.py     (from the top of the source tree)

Output: tests/fixtures/ref/ (see the README.md written there). Everything is
computed in float64 from the float32 values that are stored, and stored as
float32, so the fixtures are accurate references for a float32 engine.
Before writing, the script checks the reference against itself (merged plain
ViT == unmerged supernet, autograd == finite differences, torch AdamW == the
AdamW formula) and refuses to write anything if a check fails.
"""

import argparse
import json
import os
import random
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import glora_ref as G  # noqa: E402
import st  # noqa: E402

SEED = 20261124
IMG, IN_CHANS, PATCH, DIM, DEPTH, HEADS, MLP, CLASSES = 8, 3, 4, 24, 2, 3, 48, 7
RANK, NEW_CLASSES, BATCH = 4, 5, 4
SMOOTHING = 0.1
ADAMW = {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 1e-4}
TRAIN_CONFIGS = ("sub_rank", "all_lora4")


def uniform(layers, **cfg):
    return {name: dict(cfg) for name in layers}


def make_configs(rng, layers):
    """About eight configurations covering every choice of every tensor."""
    space = G.official_space(RANK)
    cfgs = [
        ("all_none", uniform(layers, A="none", B="none", C="none", D="none", E="none")),
        ("all_lora4", uniform(layers, A="lora_4", B="lora_4", C="lora_4", D="vector", E="vector")),
        ("all_vector", uniform(layers, A="vector", B="vector", C="vector", D="vector", E="vector")),
        ("all_scalar", uniform(layers, A="scalar", B="scalar", C="none", D="scalar", E="scalar")),
    ]
    # Sub-rank slices mixed with other kinds, a different choice on each layer.
    a = ["lora_1", "lora_2", "lora_3", "vector", "lora_2", "scalar", "lora_3", "none"]
    b = ["lora_3", "scalar", "lora_1", "lora_2", "none", "lora_3", "vector", "lora_1"]
    c = ["lora_2", "lora_3", "none", "lora_1", "vector", "lora_1", "lora_3", "lora_2"]
    sub = {}
    for i, name in enumerate(layers):
        sub[name] = {"A": a[i % 8], "B": b[i % 8], "C": c[i % 8],
                     "D": rng.choice(space["D"]), "E": rng.choice(space["E"])}
    cfgs.append(("sub_rank", sub))
    for k in range(3):
        cfgs.append(("mixed_%d" % (k + 1), G.random_config(rng, layers, RANK)))
    return cfgs


def check_coverage(cfgs):
    want = {"A": {"lora_1", "lora_2", "lora_3", "lora_4", "vector", "scalar", "none"},
            "C": {"lora_1", "lora_2", "lora_3", "lora_4", "vector", "none"},
            "D": {"vector", "scalar", "none"}}
    want["B"], want["E"] = want["A"], want["D"]
    for t in G.TENSORS:
        seen = {cfg[t] for _, c in cfgs for cfg in c.values()}
        missing = want[t] - seen
        if missing:
            raise SystemExit("configs miss %s choices %s" % (t, sorted(missing)))
        for choice in seen:
            G.parse_choice(choice, t)


def factored_linear(params, name, cfg, h):
    """The adapted layer computed term by term without ever forming W' (LoRA
    products applied as two thin matmuls, vector/scalar terms as output scales
    or input sums): an independent route to check the merged form against."""
    w0, b0 = params[name + ".weight"], params[name + ".bias"]
    ad = G.adapter_of(params, name)
    base = h @ w0.t()
    y = base + b0
    ka, ra = G.parse_choice(cfg["A"], "A")
    if ka == "lora":     # x (W0 * (Ad Au))^T, row by row of the rank
        for j in range(ra):
            y = y + (h * ad["Au"][j]) @ (w0 * ad["Ad"][:, j:j + 1]).t()
    elif ka == "vector":
        y = y + base * ad["Ad"][:, 0]
    elif ka == "scalar":
        y = y + base * ad["Ad"][0, 0]
    kb, rb = G.parse_choice(cfg["B"], "B")
    if kb == "lora":
        y = y + (h @ ad["Bu"][:rb].t()) @ ad["Bd"][:, :rb].t()
    elif kb == "vector":
        y = y + h.sum(-1, keepdim=True) * ad["Bd"][:, 0]
    elif kb == "scalar":
        y = y + h.sum(-1, keepdim=True) * ad["Bd"][0, 0]
    kc, rc = G.parse_choice(cfg["C"], "C")
    if kc == "lora":
        y = y + w0 @ (ad["Cd"][:, :rc] @ ad["Cu"][:rc, 0])
    elif kc == "vector":
        y = y + w0 @ ad["Cd"][:, 0]
    for t, scale in (("D", b0), ("E", None)):
        k, _ = G.parse_choice(cfg[t], t)
        v = ad[t] if k == "vector" else ad[t][0] if k == "scalar" else None
        if v is not None:
            y = y + (v * scale if scale is not None else v)
    return y


def configs_json(cfgs):
    """{"configs": [{"name", "layers": {layer: {A..E}}}]}, one layer a line."""
    items = []
    for name, cfg in cfgs:
        rows = ",\n".join('    %s: %s' % (json.dumps(layer), json.dumps(c))
                          for layer, c in cfg.items())
        items.append('  {"name": %s, "layers": {\n%s\n  }}' % (json.dumps(name), rows))
    text = '{"configs": [\n' + ",\n".join(items) + "\n]}\n"
    if json.loads(text) != {"configs": [{"name": n, "layers": c} for n, c in cfgs]}:
        raise SystemExit("configs.json does not read back")
    return text


def to64(d):
    return {k: v.to(torch.float64) for k, v in d.items()}


def max_abs(a, b):
    return float((a - b).abs().max())


def grads_of(loss_fn, params, names):
    """d loss / d params[n] for n in names; zeros where a tensor is unused."""
    leaves = {k: (v.clone().requires_grad_(k in names)) for k, v in params.items()}
    loss = loss_fn(leaves)
    got = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
    # Some gradients are exactly zero in exact arithmetic but come out as
    # float64 round-off (~1e-17): a uniform shift of the residual stream (scalar
    # B or E on attn.proj / mlp.fc2) is removed by every LayerNorm downstream.
    # Store the exact value, 0, not the noise.
    out = {}
    for n, g in zip(names, got):
        g = torch.zeros_like(leaves[n]) if g is None else g
        out[n] = torch.where(g.abs() < 1e-12, torch.zeros_like(g), g)
    return loss.detach(), out


def finite_difference_check(loss_fn, params, grads, names, gen, per_tensor=2, h=1e-6):
    """Central differences on a few random entries of each tensor (float64)."""
    worst = 0.0
    for n in names:
        flat = params[n].reshape(-1)
        for _ in range(per_tensor):
            i = int(torch.randint(flat.numel(), (1,), generator=gen))
            p_hi = dict(params)
            p_lo = dict(params)
            hi = flat.clone()
            lo = flat.clone()
            hi[i] += h
            lo[i] -= h
            p_hi[n] = hi.reshape(params[n].shape)
            p_lo[n] = lo.reshape(params[n].shape)
            with torch.no_grad():
                fd = (loss_fn(p_hi) - loss_fn(p_lo)) / (2 * h)
            g = grads[n].reshape(-1)[i]
            err = abs(float(fd - g)) / max(1.0, abs(float(g)))
            worst = max(worst, err)
            if err > 1e-6:
                raise SystemExit("finite differences disagree on %s[%d]: fd %.10g autograd %.10g"
                                 % (n, i, float(fd), float(g)))
    return worst


def adamw_by_hand(p, g, steps):
    b1, b2 = ADAMW["betas"]
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    out = []
    for t in range(1, steps + 1):
        p = p * (1 - ADAMW["lr"] * ADAMW["weight_decay"])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        p = p - ADAMW["lr"] * mhat / (vhat.sqrt() + ADAMW["eps"])
        out.append(p)
    return out


def f32(t):
    """The float32 value that will be stored, back in float64."""
    return t.to(torch.float32).to(torch.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "ref"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    rng = random.Random(SEED)
    layers = G.adapted_layers(DEPTH)

    backbone = G.init_vit(gen, IMG, IN_CHANS, PATCH, DIM, DEPTH, HEADS, MLP, CLASSES)
    supernet = G.init_supernet(gen, backbone, RANK, NEW_CLASSES)
    x = torch.randn(BATCH, IN_CHANS, IMG, IMG, generator=gen)
    labels = torch.randint(NEW_CLASSES, (BATCH,), generator=gen)
    labels7 = torch.randint(CLASSES, (BATCH,), generator=gen)
    cfgs = make_configs(rng, layers)
    check_coverage(cfgs)
    cfg_by_name = dict(cfgs)

    bb64, sn64, x64 = to64(backbone), to64(supernet), x.to(torch.float64)
    full64 = dict(bb64)
    full64.update(sn64)  # the supernet's new head replaces the backbone's

    # ---- forward -----------------------------------------------------------
    report = []
    fwd = {"x": x, "logits.backbone": G.vit_forward(bb64, x64, HEADS)}
    worst_merge = 0.0
    worst_f32 = 0.0
    for name, cfg in cfgs:
        with torch.no_grad():
            y = G.glora_forward(full64, x64, HEADS, cfg)
            y_merged = G.vit_forward(G.merge(full64, cfg), x64, HEADS)
            y_factored = G.vit_forward(full64, x64, HEADS,
                                       lambda n, h, cfg=cfg: factored_linear(full64, n, cfg[n], h))
            y32 = G.glora_forward({**backbone, **supernet}, x, HEADS, cfg)
        worst_merge = max(worst_merge, max_abs(y, y_merged), max_abs(y, y_factored))
        worst_f32 = max(worst_f32, max_abs(y, y32.to(torch.float64)))
        fwd["logits." + name] = y
    if worst_merge > 1e-10:
        raise SystemExit("merged / term-by-term forward differs from the supernet forward by %g"
                         % worst_merge)
    # Every configuration must change the output (else a C bug could hide).
    names = [n for n, _ in cfgs]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = max_abs(fwd["logits." + a], fwd["logits." + b])
            if d < 1e-2:
                raise SystemExit("configs %s and %s give nearly the same logits (%g)" % (a, b, d))
    report.append("supernet forward vs merged plain ViT vs term-by-term layers: "
                  "max |diff| %.3g (float64)" % worst_merge)
    report.append("float32 torch vs float64 logits: max |diff| %.3g" % worst_f32)

    # ---- training step -------------------------------------------------------
    train = {"labels": labels, "labels7": labels7}
    sn_names = sorted(supernet)
    fd_gen = torch.Generator().manual_seed(SEED + 1)
    worst_fd = 0.0
    grads = {}
    for name in TRAIN_CONFIGS:
        cfg = cfg_by_name[name]

        def loss_fn(p, cfg=cfg):
            return F.cross_entropy(G.glora_forward(p, x64, HEADS, cfg), labels,
                                   label_smoothing=SMOOTHING)
        loss, g = grads_of(loss_fn, full64, sn_names)
        worst_fd = max(worst_fd, finite_difference_check(loss_fn, full64, g, sn_names, fd_gen))
        train["loss." + name] = loss.reshape(1)
        for n in sn_names:
            train["grad.%s.%s" % (name, n)] = g[n]
        grads[name] = g
        unused = [n for n in sn_names if not bool(g[n].ne(0).any())]
        report.append("config %s: loss %.6f; tensors with all-zero gradient: %d of %d"
                      % (name, float(loss), len(unused), len(sn_names)))

    bb_names = sorted(backbone)

    def loss_full(p):
        return F.cross_entropy(G.vit_forward(p, x64, HEADS), labels7)
    loss, g = grads_of(loss_full, bb64, bb_names)
    worst_fd = max(worst_fd, finite_difference_check(loss_full, bb64, g, bb_names, fd_gen))
    train["loss.full"] = loss.reshape(1)
    for n in bb_names:
        train["grad.full." + n] = g[n]
    report.append("full fine-tuning: loss %.6f" % float(loss))
    report.append("autograd vs central differences: worst relative error %.3g" % worst_fd)

    # ---- AdamW: two steps with the first config's (stored, float32) gradients
    first = TRAIN_CONFIGS[0]
    params = [torch.nn.Parameter(sn64[n].clone()) for n in sn_names]
    opt = torch.optim.AdamW(params, lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]),
                            eps=ADAMW["eps"], weight_decay=ADAMW["weight_decay"])
    worst_adam = 0.0
    for step in (1, 2):
        for p, n in zip(params, sn_names):
            p.grad = f32(grads[first][n]).clone()
        opt.step()
        for p, n in zip(params, sn_names):
            train["adamw%d.%s" % (step, n)] = p.detach().clone()
    for n in sn_names:
        hand = adamw_by_hand(sn64[n], f32(grads[first][n]), 2)
        for step in (1, 2):
            worst_adam = max(worst_adam, max_abs(hand[step - 1], train["adamw%d.%s" % (step, n)]))
    if worst_adam > 1e-12:
        raise SystemExit("torch AdamW differs from the formula by %g" % worst_adam)
    report.append("torch AdamW vs formula: max |diff| %.3g" % worst_adam)

    # ---- write ---------------------------------------------------------------
    st.save(os.path.join(out, "backbone.safetensors"), backbone, {"glora.heads": str(HEADS)})
    st.save(os.path.join(out, "supernet.safetensors"), supernet,
            {"glora.heads": str(HEADS), "glora.rank": str(RANK)})
    st.save(os.path.join(out, "forward.safetensors"), fwd)
    st.save(os.path.join(out, "train_step.safetensors"), train)
    with open(os.path.join(out, "configs.json"), "w") as f:
        f.write(configs_json(cfgs))
    meta = {
        "configs": list(TRAIN_CONFIGS),
        "trainable": "all GLoRA tensors of every adapted layer and head.weight/head.bias "
                     "(backbone frozen); unused tensors get zero gradient",
        "loss": {"kind": "cross_entropy", "label_smoothing": SMOOTHING, "reduction": "mean",
                 "labels": "labels", "classes": NEW_CLASSES},
        "full": {"kind": "cross_entropy", "label_smoothing": 0.0, "reduction": "mean",
                 "labels": "labels7", "classes": CLASSES,
                 "trainable": "every backbone tensor"},
        "adamw": dict(ADAMW, steps=2, start="supernet.safetensors",
                      grads="grad.%s.*" % first,
                      note="the same (stored float32) gradient at both steps; every tensor "
                           "steps, including those with zero gradient (weight decay applies)"),
        "input": "x in forward.safetensors",
    }
    with open(os.path.join(out, "train_step.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")

    # Round trip through our own reader.
    for fn, src in (("backbone", backbone), ("supernet", supernet)):
        t, _ = st.load(os.path.join(out, fn + ".safetensors"))
        for k, v in src.items():
            if not torch.equal(torch.from_numpy(t[k]), v):
                raise SystemExit("round trip of %s.safetensors changed %s" % (fn, k))
    for line in report:
        print(line)


if __name__ == "__main__":
    main()
