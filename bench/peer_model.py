"""The PyTorch peer for glora's benchmarks: a timm-style ViT with GLoRA
supernet layers that re-create the official code path (github
Arnav0400/ViT-Slim, GLoRA/layer.py and utils.set_glora), plus loading of
glora's safetensors files and of the protocol's IDX images.

What is kept from the official code, because it is what costs time:
  - every adapted nn.Linear (attn.qkv, attn.proj, mlp.fc1, mlp.fc2; never the
    head) becomes a supernet layer holding Ad, Au, Bd, Bu, Cd, Cu, D, E;
  - its forward picks the layer configuration (eval_config when set, else
    random.choice over the 432 official configurations, per layer per call),
    builds A..E (a zero tensor for "none", as the official code does), then the
    full W' = W0 + W0*A + B and b' = b0 + b0*D + E + squeeze(W0 @ C) on every
    call, and runs F.linear(x, W', b').
What differs: CPU instead of CUDA; no drop-path (glora trains without it; the
official scripts pass drop_path_rate=0.1).
"""

import gzip
import math
import os
import random
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import st  # noqa: E402

# vit-tiny-28 (the preset of glora init and pretrain)
TINY28 = {"img": 28, "in_chans": 1, "patch": 7, "dim": 128, "depth": 6, "heads": 4,
          "mlp": 512, "classes": 10}
# ViT-B/16 at 224x224x3 (random weights: the benchmarks' --arch vit-b16)
B16 = {"img": 224, "in_chans": 3, "patch": 16, "dim": 768, "depth": 12, "heads": 12,
       "mlp": 3072, "classes": 1000}
ARCHS = {"vit-tiny-28": TINY28, "vit-b16": B16}
ADAPTED = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


def official_configs(rank):
    """The 432 layer configurations, in the official enumeration order."""
    ab = ["LoRA_%d" % rank, "vector", "constant", "none"]
    c = ["LoRA_%d" % rank, "vector", "none"]
    de = ["constant", "none", "vector"]
    return [{"A": a, "B": b, "C": cc, "D": d, "E": e}
            for a in ab for b in ab for cc in c for d in de for e in de]


def official_choices(rank):
    """Per-tensor options as GLoRA/evolution.py lists them."""
    ab = ["LoRA_%d" % rank, "vector", "constant", "none"]
    return {"A": ab, "B": ab, "C": ["LoRA_%d" % rank, "vector", "none"],
            "D": ["constant", "none", "vector"], "E": ["constant", "none", "vector"]}


class SupernetLinear(nn.Linear):
    """A frozen linear with the eight GLoRA tensors, official semantics."""

    def __init__(self, in_features, out_features, rank):
        super().__init__(in_features, out_features)
        self.rank = rank
        self.configs = official_configs(rank)
        self.Ad = nn.Parameter(torch.zeros(out_features, rank))
        self.Au = nn.Parameter(torch.zeros(rank, in_features))
        self.Bd = nn.Parameter(torch.zeros(out_features, rank))
        self.Bu = nn.Parameter(torch.zeros(rank, in_features))
        self.Cd = nn.Parameter(torch.zeros(in_features, rank))
        self.Cu = nn.Parameter(torch.zeros(rank, 1))
        self.D = nn.Parameter(torch.zeros(out_features))
        self.E = nn.Parameter(torch.zeros(out_features))
        for p in (self.Au, self.Bu, self.Cu):
            nn.init.xavier_uniform_(p)
        self.eval_config = None
        self.merged = None  # (W', b') when a candidate has been folded in

    @staticmethod
    def _path(choice, xd, xu=None):
        if xu is not None:
            if "LoRA" in choice:
                r = int(choice.split("_")[1])
                return xd[:, :r] @ xu[:r, :]
            if "vector" in choice:
                return xd[:, 0].unsqueeze(1)
            if "constant" in choice:
                return xd[0, 0]
            if "none" in choice:
                return torch.zeros(xd.shape[0], xu.shape[1])
            raise ValueError(choice)
        if "vector" in choice:
            return xd
        if "constant" in choice:
            return xd[0]
        if "none" in choice:
            return torch.zeros(1)
        raise ValueError(choice)

    def forward(self, x):
        if self.merged is not None:
            return F.linear(x, self.merged[0], self.merged[1])
        cfg = self.eval_config if self.eval_config is not None else random.choice(self.configs)
        a = self._path(cfg["A"], self.Ad, self.Au)
        b = self._path(cfg["B"], self.Bd, self.Bu)
        c = self._path(cfg["C"], self.Cd, self.Cu)
        d = self._path(cfg["D"], self.D)
        e = self._path(cfg["E"], self.E)
        weight = self.weight + self.weight * a + b
        bias = self.bias + self.bias * d + e
        prompt = torch.matmul(self.weight, c).squeeze()
        return F.linear(x, weight, bias + prompt)

    @torch.no_grad()
    def merge(self, cfg):
        """Folds cfg into (W', b') once, skipping absent terms (the careful
        evaluation path); forward then is a plain linear until unmerge()."""
        w0, b0 = self.weight, self.bias
        w = w0.clone()
        b = b0.clone()
        k = cfg["A"]
        if "LoRA" in k:
            r = int(k.split("_")[1])
            w.addcmul_(w0, self.Ad[:, :r] @ self.Au[:r, :])
        elif k == "vector":
            w.addcmul_(w0, self.Ad[:, :1])
        elif k == "constant":
            w.add_(w0, alpha=float(self.Ad[0, 0]))
        k = cfg["B"]
        if "LoRA" in k:
            r = int(k.split("_")[1])
            w.addmm_(self.Bd[:, :r], self.Bu[:r, :])
        elif k == "vector":
            w.add_(self.Bd[:, :1])
        elif k == "constant":
            w.add_(float(self.Bd[0, 0]))
        k = cfg["C"]
        if "LoRA" in k:
            r = int(k.split("_")[1])
            b.add_(w0 @ (self.Cd[:, :r] @ self.Cu[:r, 0]))
        elif k == "vector":
            b.add_(w0 @ self.Cd[:, 0])
        k = cfg["D"]
        if k == "vector":
            b.addcmul_(b0, self.D)
        elif k == "constant":
            b.add_(b0, alpha=float(self.D[0]))
        k = cfg["E"]
        if k == "vector":
            b.add_(self.E)
        elif k == "constant":
            b.add_(float(self.E[0]))
        self.merged = (w, b)

    def unmerge(self):
        self.merged = None


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        bsz, tok, dim = x.shape
        qkv = self.qkv(x).reshape(bsz, tok, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) * self.scale
        att = att.softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(bsz, tok, dim))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


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
    def __init__(self, in_chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    def __init__(self, img, in_chans, patch, dim, depth, heads, mlp, classes):
        super().__init__()
        tok = (img // patch) ** 2 + 1
        self.patch_embed = PatchEmbed(in_chans, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tok, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def set_glora(model, rank):
    """Swaps every block linear for a SupernetLinear sharing W0, b0 (what the
    official set_glora does to every nn.Linear not named head)."""
    for blk in model.blocks:
        for parent, name in ((blk.attn, "qkv"), (blk.attn, "proj"), (blk.mlp, "fc1"), (blk.mlp, "fc2")):
            old = getattr(parent, name)
            new = SupernetLinear(old.in_features, old.out_features, rank)
            new.weight = old.weight
            new.bias = old.bias
            setattr(parent, name, new)


def glora_layers(model):
    return [m for m in model.modules() if isinstance(m, SupernetLinear)]


def build(backbone=None, supernet=None, rank=4, classes=None, seed=0, arch="vit-tiny-28"):
    """The supernet model: arch (vit-tiny-28 or vit-b16) with random weights,
    or the weights of glora's safetensors files. Random GLoRA tensors are
    non-zero (std 0.1) so that every term of every choice is really computed
    with."""
    torch.manual_seed(seed)
    spec = dict(ARCHS[arch])
    bb = sn = None
    if backbone:
        bb, meta = st.load(backbone)
        w = bb["patch_embed.proj.weight"]
        spec.update(dim=w.shape[0], in_chans=w.shape[1], patch=w.shape[2],
                    depth=1 + max(int(k.split(".")[1]) for k in bb if k.startswith("blocks.")),
                    mlp=bb["blocks.0.mlp.fc1.weight"].shape[0],
                    heads=int(meta.get("glora.heads", spec["heads"])),
                    classes=bb["head.weight"].shape[0])
        spec["img"] = spec["patch"] * int(round(math.sqrt(bb["pos_embed"].shape[1] - 1)))
    if supernet:
        sn, meta = st.load(supernet)
        rank = sn["blocks.0.attn.qkv.Ad"].shape[1]
        if "head.weight" in sn:
            spec["classes"] = sn["head.weight"].shape[0]
    if classes:
        spec["classes"] = classes
    model = ViT(**spec)
    if bb is not None:
        sd = {k: torch.from_numpy(v) for k, v in bb.items() if not k.startswith("head.")}
        missing = model.load_state_dict(sd, strict=False)
        if missing.unexpected_keys:
            raise SystemExit("unexpected backbone tensors: %s" % missing.unexpected_keys[:5])
    set_glora(model, rank)
    if sn is not None:
        sd = {k: torch.from_numpy(v) for k, v in sn.items()}
        missing = model.load_state_dict(sd, strict=False)
        if missing.unexpected_keys:
            raise SystemExit("unexpected supernet tensors: %s" % missing.unexpected_keys[:5])
    else:
        with torch.no_grad():
            for m in glora_layers(model):
                for p in (m.Ad, m.Au, m.Bd, m.Bu, m.Cd, m.Cu, m.D, m.E):
                    p.normal_(0.0, 0.1)
    return model, spec, rank


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_images(data_dir, first, count, prefix="train"):
    """Images first..first+count-1 of the IDX file under data_dir (plain or
    .gz), as (count, 1, H, W) float32 normalised with mean 0.5, std 0.5,
    with their labels."""
    def find(stem):
        for name in (stem, stem + ".gz"):
            p = os.path.join(data_dir, name)
            if os.path.exists(p):
                return p
        raise SystemExit("%s: no %s[.gz]" % (data_dir, stem))
    x = _read_idx(find("%s-images-idx3-ubyte" % prefix))[first:first + count]
    y = _read_idx(find("%s-labels-idx1-ubyte" % prefix))[first:first + count]
    x = (torch.from_numpy(x.astype(np.float32)) / 255.0 - 0.5) / 0.5
    return x.unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def random_images(spec, count, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, spec["in_chans"], spec["img"], spec["img"], generator=g)
    y = torch.randint(spec["classes"], (count,), generator=g)
    return x, y


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
