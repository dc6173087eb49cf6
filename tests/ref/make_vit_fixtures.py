#!/usr/bin/python3
"""Reference fixtures for loading real ViT checkpoints (tests/fixtures/vit/).

A small random ViT with timm's semantics is written twice: as a timm-named
safetensors file (what the hub's model.safetensors holds) and as a .npz with
the names and layouts of Google's original JAX/Flax code (what ViT-B_16.npz
holds), plus the logits PyTorch computes on a fixed input. The .npz layout is
checked here by a second forward pass in NumPy that uses the Google arrays as
the Flax code does (x @ kernel, einsum over [D, heads, head_dim] kernels, an
HWIO convolution), so a wrong inverse mapping cannot go unnoticed.

It also writes PyTorch's logits on the JPEG fixtures of tests/fixtures/image
preprocessed by PIL (jpeg.json; needs python3-pil).

    /usr/bin/python3 tests/ref/make_vit_fixtures.py [--out DIR]
        [--dim 32 --depth 2 --heads 4 --img 64 --patch 16 --classes 10]
        [--big]   (only model.safetensors, model.npz, io.safetensors: with
                   --out and B/16 sizes this is what bench/check-vit-b16 uses)

Deterministic (seed 20261202): a rerun writes the same weights and inputs,
byte for byte; PyTorch's outputs (io.safetensors, jpeg.json) can move in
their last bits on another machine (8e-7 of the largest logit between the
committed io.safetensors and a rerun on the 2026-12-03 machine).
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


# ---- a ViT with timm's module names and semantics ---------------------------

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """timm's VisionTransformer with global_pool='token', class token, learned
    positions, no pre-norm, final norm, head (Identity when classes == 0)."""

    def __init__(self, img, patch, chans, dim, depth, heads, hidden, classes):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes) if classes > 0 else nn.Identity()

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))

    def forward(self, x):
        return self.head(self.forward_features(x)[:, 0])


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2 and name not in ("cls_token", "pos_embed"):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


# ---- timm -> Google names and layouts (the inverse of timm's _load_weights) --

def to_google(sd, depth, heads, pre_logits_gen=None):
    g = {}
    n = lambda t: t.detach().numpy().astype(np.float32)
    D = sd["cls_token"].shape[-1]
    hd = D // heads
    g["embedding/kernel"] = n(sd["patch_embed.proj.weight"]).transpose(2, 3, 1, 0)  # OIHW -> HWIO
    g["embedding/bias"] = n(sd["patch_embed.proj.bias"])
    g["cls"] = n(sd["cls_token"])
    g["Transformer/posembed_input/pos_embedding"] = n(sd["pos_embed"])
    for i in range(depth):
        b = "Transformer/encoderblock_%d/" % i
        m = b + "MultiHeadDotProductAttention_1/"
        g[b + "LayerNorm_0/scale"] = n(sd["blocks.%d.norm1.weight" % i])
        g[b + "LayerNorm_0/bias"] = n(sd["blocks.%d.norm1.bias" % i])
        w = n(sd["blocks.%d.attn.qkv.weight" % i])
        bias = n(sd["blocks.%d.attn.qkv.bias" % i])
        for k, nm in enumerate(("query", "key", "value")):
            g[m + nm + "/kernel"] = w[k * D:(k + 1) * D].T.reshape(D, heads, hd)
            g[m + nm + "/bias"] = bias[k * D:(k + 1) * D].reshape(heads, hd)
        g[m + "out/kernel"] = n(sd["blocks.%d.attn.proj.weight" % i]).T.reshape(heads, hd, D)
        g[m + "out/bias"] = n(sd["blocks.%d.attn.proj.bias" % i])
        g[b + "LayerNorm_2/scale"] = n(sd["blocks.%d.norm2.weight" % i])
        g[b + "LayerNorm_2/bias"] = n(sd["blocks.%d.norm2.bias" % i])
        for r in range(2):
            g[b + "MlpBlock_3/Dense_%d/kernel" % r] = n(sd["blocks.%d.mlp.fc%d.weight" % (i, r + 1)]).T
            g[b + "MlpBlock_3/Dense_%d/bias" % r] = n(sd["blocks.%d.mlp.fc%d.bias" % (i, r + 1)])
    g["Transformer/encoder_norm/scale"] = n(sd["norm.weight"])
    g["Transformer/encoder_norm/bias"] = n(sd["norm.bias"])
    if "head.weight" in sd:
        g["head/kernel"] = n(sd["head.weight"]).T
        g["head/bias"] = n(sd["head.bias"])
    if pre_logits_gen is not None:  # in the original in21k files; timm 0.6.5 ignores it
        g["pre_logits/kernel"] = pre_logits_gen.standard_normal((D, D)).astype(np.float32)
        g["pre_logits/bias"] = pre_logits_gen.standard_normal(D).astype(np.float32)
    return {k: np.ascontiguousarray(v) for k, v in g.items()}


# ---- the Flax computation on the Google arrays (float64, NumPy) -------------

def google_forward(g, x, depth):
    x = x.astype(np.float64)
    k = g["embedding/kernel"].astype(np.float64)  # [P, P, C, D]
    P = k.shape[0]
    B, C, H, W = x.shape
    nh, nw = H // P, W // P
    patches = x.reshape(B, C, nh, P, nw, P).transpose(0, 2, 4, 3, 5, 1)  # B, nh, nw, y, x, C
    tok = np.einsum("bhwyxc,yxcd->bhwd", patches, k).reshape(B, nh * nw, -1) + g["embedding/bias"]
    cls = np.broadcast_to(g["cls"].astype(np.float64), (B, 1, tok.shape[-1]))
    h = np.concatenate([cls, tok], axis=1) + g["Transformer/posembed_input/pos_embedding"]

    def ln(v, pre):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-6) * g[pre + "/scale"] + g[pre + "/bias"]

    def gelu(v):
        return 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2)))

    for i in range(depth):
        b = "Transformer/encoderblock_%d/" % i
        m = b + "MultiHeadDotProductAttention_1/"
        y = ln(h, b + "LayerNorm_0")
        q, kk, v = (np.einsum("btd,dhk->bthk", y, g[m + nm + "/kernel"]) + g[m + nm + "/bias"]
                    for nm in ("query", "key", "value"))
        logits = np.einsum("bqhk,bshk->bhqs", q, kk) / math.sqrt(q.shape[-1])
        logits -= logits.max(-1, keepdims=True)
        att = np.exp(logits)
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("bhqs,bshk->bqhk", att, v)
        h = h + np.einsum("bqhk,hkd->bqd", o, g[m + "out/kernel"]) + g[m + "out/bias"]
        y = ln(h, b + "LayerNorm_2")
        y = gelu(y @ g[b + "MlpBlock_3/Dense_0/kernel"] + g[b + "MlpBlock_3/Dense_0/bias"])
        h = h + y @ g[b + "MlpBlock_3/Dense_1/kernel"] + g[b + "MlpBlock_3/Dense_1/bias"]
    feat = ln(h, "Transformer/encoder_norm")[:, 0]
    if "head/kernel" in g:
        return feat @ g["head/kernel"] + g["head/bias"], feat
    return None, feat


def config_json(arch, classes, heads, img, mean, std):
    return {
        "architecture": arch,
        "num_classes": classes,
        "num_features": 0,
        "global_pool": "token",
        "model_args": {"num_heads": heads},
        "pretrained_cfg": {
            "tag": "glora_test", "custom_load": False, "input_size": [3, img, img],
            "fixed_input_size": True, "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
            "mean": mean, "std": std, "num_classes": classes, "pool_size": None,
            "first_conv": "patch_embed.proj", "classifier": "head",
        },
    }


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


def savez(path, arrays, compressed):
    tmp = path + ".tmp.npz"
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)


# JPEG fixtures of tests/fixtures/image: a VTAB-sized photo, a portrait, a
# grey JPEG and a 1x1 image.
JPEGS = ["rgb_500x375.jpg", "rgb_23x37.jpg", "grey_37x23.jpg", "rgb_1x1.jpg"]


def jpeg_refs(model, img, out):
    """PyTorch's logits on the JPEG fixtures, preprocessed by PIL as a
    PyTorch user's pipeline does: Image.open().convert('RGB'), then timm's
    eval transform with config.json's values (Resize(floor(img / 0.9),
    bicubic), CenterCrop(img), mean = std = 0.5) and the official GLoRA
    transform (Resize((img, img), bicubic), ImageNet mean/std); ToTensor and
    Normalize in float32. Resizing goes through make_image_fixtures.transform,
    the calls torchvision makes on PIL images. Written to jpeg.json."""
    from PIL import Image
    import make_image_fixtures as mif
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "image")
    kinds = {"shorter": ("shorter", "%d/0.9" % img, [0.5] * 3, [0.5] * 3),
             "squash": ("squash", str(img), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}
    res = {"files": JPEGS}
    for name, (op, param, mean, std) in kinds.items():
        xs = []
        for f in JPEGS:
            im = mif.transform(Image.open(os.path.join(src, f)).convert("RGB"), op, param, "bicubic")
            a = mif.to_chw(im).astype(np.float32) / np.float32(255)
            m = np.array(mean, np.float32)[:, None, None]
            sd = np.array(std, np.float32)[:, None, None]
            xs.append((a - m) / sd)
        with torch.no_grad():
            logits = model(torch.from_numpy(np.stack(xs)))
        res[name] = [[float(v) for v in row] for row in logits.numpy()]
    write_json(os.path.join(out, "jpeg.json"), res)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "vit"))
    ap.add_argument("--img", type=int, default=64)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--big", action="store_true", help="only model.safetensors, model.npz, io.safetensors (no "
                    "headless / compressed copies, no float64 check: for ViT-B/16 sizes)")
    a = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20261202)
    os.makedirs(a.out, exist_ok=True)
    model = VisionTransformer(a.img, a.patch, 3, a.dim, a.depth, a.heads, 4 * a.dim, a.classes).eval()
    randomise(model, gen)
    x = torch.randn(a.batch, 3, a.img, a.img, generator=gen)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)[:, 0]
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = to_google(sd, a.depth, a.heads, np.random.default_rng(7))
    if not a.big:
        ref_logits, ref_feats = google_forward(g, x.double().numpy(), a.depth)
        err = np.abs(ref_logits - logits.double().numpy()).max() / np.abs(ref_logits).max()
        assert err < 1e-5, "Google-layout forward disagrees with the timm forward: %g" % err
        print("Google-layout NumPy forward vs timm-semantics torch forward: max rel diff %.3g" % err)
    st.save(os.path.join(a.out, "model.safetensors"), sd, {"format": "pt"})
    savez(os.path.join(a.out, "model.npz"), g, compressed=False)
    st.save(os.path.join(a.out, "io.safetensors"), {"x": x, "logits": logits, "features": feats})
    if a.big:
        return
    write_json(os.path.join(a.out, "config.json"),
               config_json("vit_glora_test_patch16_64", a.classes, a.heads, a.img, [0.5] * 3, [0.5] * 3))
    savez(os.path.join(a.out, "model_deflated.npz"), g, compressed=True)
    jpeg_refs(model, a.img, a.out)
    # timm's orig_in21k layout: no head, num_classes 0.
    nohead = os.path.join(a.out, "nohead")
    os.makedirs(nohead, exist_ok=True)
    st.save(os.path.join(nohead, "model.safetensors"), {k: v for k, v in sd.items() if not k.startswith("head.")},
            {"format": "pt"})
    write_json(os.path.join(nohead, "config.json"),
               config_json("vit_glora_test_patch16_64", 0, a.heads, a.img, [0.485, 0.456, 0.406],
                           [0.229, 0.224, 0.225]))


if __name__ == "__main__":
    main()
