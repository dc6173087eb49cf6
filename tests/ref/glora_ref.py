"""Reference GLoRA on a timm-semantics ViT, written in plain PyTorch.

The layer follows the official code (github Arnav0400/ViT-Slim, GLoRA/layer.py,
SuperScalableLinear.forward) term for term:

    W' = W0 + W0 * A + B
    b' = b0 + b0 * D + E + W0 @ C        (the prompt uses W0, not W')
    y  = F.linear(x, W', b')

with A..E cut from the stored tensors (rank R) as in include/glora/layer.h:

    tensor  lora_r                  vector               scalar     none
    A       Ad[:, :r] @ Au[:r, :]   Ad[:, 0] as (out,1)  Ad[0, 0]   0
    B       Bd[:, :r] @ Bu[:r, :]   Bd[:, 0] as (out,1)  Bd[0, 0]   0
    C       Cd[:, :r] @ Cu[:r, :]   Cd[:, 0] as (in,1)   -          0
    D       -                       D                    D[0]       0
    E       -                       E                    E[0]       0

Like the official code, "none" is a zero tensor that is still added (so an
unused stored tensor simply gets no gradient). Choices are spelled
"lora_<r>", "vector", "scalar", "none" (the official "LoRA_<r>" and
"constant" are accepted too).

The ViT is timm's VisionTransformer (class token, learned position embedding,
pre-norm blocks, LayerNorm eps 1e-6, qkv with bias, exact GELU, final norm,
head on the class token), written as functions of a dict of tensors named as
timm names them, so the same dict can be saved with st.py and read by glora.
"""

import math

import torch
import torch.nn.functional as F

LN_EPS = 1e-6
ADAPTED = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
SUFFIXES = ("Ad", "Au", "Bd", "Bu", "Cd", "Cu", "D", "E")
TENSORS = ("A", "B", "C", "D", "E")


def official_space(rank):
    """The per-tensor options of the official search space at rank R
    (GLoRA/evolution.py): 4 * 4 * 3 * 3 * 3 = 432 layer configurations."""
    ab = ["lora_%d" % rank, "vector", "scalar", "none"]
    return {"A": ab, "B": ab, "C": ["lora_%d" % rank, "vector", "none"],
            "D": ["scalar", "vector", "none"], "E": ["scalar", "vector", "none"]}


def official_configs(rank):
    """All 432 layer configurations, in the official enumeration order."""
    s = official_space(rank)
    return [{"A": a, "B": b, "C": c, "D": d, "E": e}
            for a in s["A"] for b in s["B"] for c in s["C"] for d in s["D"] for e in s["E"]]


def parse_choice(text, tensor):
    """(kind, rank) for a choice spelling; kind in lora/vector/scalar/none."""
    t = text.strip().lower()
    if t.startswith("lora_"):
        if tensor in ("D", "E"):
            raise ValueError("%s: lora is not offered for %s" % (text, tensor))
        r = int(t[5:])
        if r < 1:
            raise ValueError("%s: rank must be >= 1" % text)
        return "lora", r
    if t == "constant":
        t = "scalar"
    if t == "scalar" and tensor == "C":
        raise ValueError("%s: scalar is not offered for C" % text)
    if t in ("vector", "scalar", "none"):
        return t, 0
    raise ValueError("unknown choice '%s'" % text)


def adapted_layers(depth):
    """Names of the adapted linears, block by block, in timm order."""
    return ["blocks.%d.%s" % (i, n) for i in range(depth) for n in ADAPTED]


def _cut_ab(choice, xd, xu):
    kind, r = parse_choice(choice, "A")
    if kind == "lora":
        if r > xd.shape[1]:
            raise ValueError("rank %d above the stored rank %d" % (r, xd.shape[1]))
        return xd[:, :r] @ xu[:r, :]
    if kind == "vector":
        return xd[:, 0].unsqueeze(1)
    if kind == "scalar":
        return xd[0, 0]
    return torch.zeros(xd.shape[0], xu.shape[1], dtype=xd.dtype)


def _cut_c(choice, cd, cu):
    kind, r = parse_choice(choice, "C")
    if kind == "lora":
        if r > cd.shape[1]:
            raise ValueError("rank %d above the stored rank %d" % (r, cd.shape[1]))
        return cd[:, :r] @ cu[:r, :]
    if kind == "vector":
        return cd[:, 0].unsqueeze(1)
    return torch.zeros(cd.shape[0], cu.shape[1], dtype=cd.dtype)


def _cut_de(choice, x, tensor):
    kind, _ = parse_choice(choice, tensor)
    if kind == "vector":
        return x
    if kind == "scalar":
        return x[0]
    return torch.zeros(1, dtype=x.dtype)


def glora_weight_bias(w0, b0, ad, cfg):
    """W', b' of one layer (differentiable in the adapter tensors).
    w0 (out,in), b0 (out), ad: dict suffix -> tensor, cfg: dict A..E -> choice."""
    a = _cut_ab(cfg["A"], ad["Ad"], ad["Au"])
    b = _cut_ab(cfg["B"], ad["Bd"], ad["Bu"])
    c = _cut_c(cfg["C"], ad["Cd"], ad["Cu"])
    d = _cut_de(cfg["D"], ad["D"], "D")
    e = _cut_de(cfg["E"], ad["E"], "E")
    weight = w0 + w0 * a + b
    bias = b0 + b0 * d + e
    prompt = (w0 @ c).squeeze(1)
    return weight, bias + prompt


def adapter_of(params, layer):
    return {s: params["%s.%s" % (layer, s)] for s in SUFFIXES}


def depth_of(params):
    return 1 + max(int(k.split(".")[1]) for k in params if k.startswith("blocks."))


def _attention(x, qkv, proj, heads):
    bsz, tok, dim = x.shape
    hd = dim // heads
    q, k, v = qkv(x).reshape(bsz, tok, 3, heads, hd).permute(2, 0, 3, 1, 4)
    att = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
    att = att.softmax(dim=-1)
    out = (att @ v).transpose(1, 2).reshape(bsz, tok, dim)
    return proj(out)


def vit_forward(params, x, heads, linear=None):
    """Logits of a timm ViT. params: dict of timm-named tensors; x (B,C,H,W).
    linear(name, h) computes an adapted linear (default: the plain layer)."""
    if linear is None:
        def linear(name, h):
            return F.linear(h, params[name + ".weight"], params[name + ".bias"])
    pw = params["patch_embed.proj.weight"]
    patch = pw.shape[-1]
    h = F.conv2d(x, pw, params["patch_embed.proj.bias"], stride=patch)
    h = h.flatten(2).transpose(1, 2)
    cls = params["cls_token"].expand(h.shape[0], -1, -1)
    h = torch.cat([cls, h], dim=1) + params["pos_embed"]
    dim = h.shape[-1]
    for i in range(depth_of(params)):
        p = "blocks.%d." % i
        y = F.layer_norm(h, (dim,), params[p + "norm1.weight"], params[p + "norm1.bias"], LN_EPS)
        h = h + _attention(y, lambda t: linear(p + "attn.qkv", t),
                           lambda t: linear(p + "attn.proj", t), heads)
        y = F.layer_norm(h, (dim,), params[p + "norm2.weight"], params[p + "norm2.bias"], LN_EPS)
        y = linear(p + "mlp.fc2", F.gelu(linear(p + "mlp.fc1", y)))
        h = h + y
    h = F.layer_norm(h, (dim,), params["norm.weight"], params["norm.bias"], LN_EPS)
    return F.linear(h[:, 0], params["head.weight"], params["head.bias"])


def glora_forward(params, x, heads, config):
    """Supernet forward under one configuration (config: layer -> {A..E}),
    recomputing W', b' inside every adapted linear as the official layer does.
    params holds the backbone, the GLoRA tensors and the (new) head."""
    def linear(name, h):
        w, b = glora_weight_bias(params[name + ".weight"], params[name + ".bias"],
                                 adapter_of(params, name), config[name])
        return F.linear(h, w, b)
    return vit_forward(params, x, heads, linear)


def merge(params, config):
    """A plain ViT parameter dict with every adapted layer folded into (W', b')
    and the GLoRA tensors dropped (structural re-parameterisation)."""
    out = {k: v for k, v in params.items() if k.split(".")[-1] not in SUFFIXES}
    with torch.no_grad():
        for name, cfg in config.items():
            w, b = glora_weight_bias(params[name + ".weight"], params[name + ".bias"],
                                     adapter_of(params, name), cfg)
            out[name + ".weight"] = w.clone()
            out[name + ".bias"] = b.clone()
    return out


def random_config(rng, layers, rank):
    """One configuration of every layer drawn uniformly from the official
    space (as the official SuperScalableLinear.forward does per layer)."""
    space = official_space(rank)
    return {name: {t: rng.choice(space[t]) for t in TENSORS} for name in layers}


def init_vit(gen, img, in_chans, patch, dim, depth, heads, mlp, classes, std=0.3,
             dtype=torch.float32):
    """Random timm-named ViT parameters (non-trivial: every term matters)."""
    def n(*shape, s=std):
        return torch.randn(*shape, generator=gen, dtype=dtype) * s

    def ln(*shape):
        return 1.0 + n(*shape, s=0.1)

    tok = (img // patch) ** 2 + 1
    fan = in_chans * patch * patch
    p = {
        "patch_embed.proj.weight": n(dim, in_chans, patch, patch, s=1.0 / math.sqrt(fan)),
        "patch_embed.proj.bias": n(dim, s=0.1),
        "cls_token": n(1, 1, dim),
        "pos_embed": n(1, tok, dim),
    }
    for i in range(depth):
        b = "blocks.%d." % i
        p[b + "norm1.weight"] = ln(dim)
        p[b + "norm1.bias"] = n(dim, s=0.1)
        p[b + "attn.qkv.weight"] = n(3 * dim, dim)
        p[b + "attn.qkv.bias"] = n(3 * dim, s=0.1)
        p[b + "attn.proj.weight"] = n(dim, dim)
        p[b + "attn.proj.bias"] = n(dim, s=0.1)
        p[b + "norm2.weight"] = ln(dim)
        p[b + "norm2.bias"] = n(dim, s=0.1)
        p[b + "mlp.fc1.weight"] = n(mlp, dim)
        p[b + "mlp.fc1.bias"] = n(mlp, s=0.1)
        p[b + "mlp.fc2.weight"] = n(dim, mlp, s=std / 2)
        p[b + "mlp.fc2.bias"] = n(dim, s=0.1)
    p["norm.weight"] = ln(dim)
    p["norm.bias"] = n(dim, s=0.1)
    p["head.weight"] = n(classes, dim)
    p["head.bias"] = n(classes, s=0.1)
    return p


def init_supernet(gen, backbone, rank, classes, std=0.2, dtype=torch.float32):
    """Random (all non-zero) GLoRA tensors for every adapted layer of the
    backbone, and a new head (classes x dim)."""
    sn = {}
    for name in adapted_layers(depth_of(backbone)):
        out, inp = backbone[name + ".weight"].shape
        shapes = {"Ad": (out, rank), "Au": (rank, inp), "Bd": (out, rank), "Bu": (rank, inp),
                  "Cd": (inp, rank), "Cu": (rank, 1), "D": (out,), "E": (out,)}
        for s in SUFFIXES:
            sn["%s.%s" % (name, s)] = torch.randn(*shapes[s], generator=gen, dtype=dtype) * std
    dim = backbone["cls_token"].shape[-1]
    sn["head.weight"] = torch.randn(classes, dim, generator=gen, dtype=dtype) * 0.3
    sn["head.bias"] = torch.randn(classes, generator=gen, dtype=dtype) * 0.1
    return sn
