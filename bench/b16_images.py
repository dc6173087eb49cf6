#!/usr/bin/python3
"""PyTorch's logits of the random ViT-B/16 that tests/ref/make_vit_fixtures.py
wrote (DIR/model.safetensors) on JPEG files preprocessed as the official GLoRA
code does: PIL open, convert('RGB'), Resize((224, 224), bicubic) (torchvision
calls PIL's resize for PIL images), ToTensor, Normalize with ImageNet's mean
and std. Writes the JPEGs (odd sizes, a grey one) to DIR/jpegs/ and the
logits as JSON lines {"path", "logits"} to DIR/torch.jsonl; then, given
glora's JSON lines (glora predict --logits), prints the largest difference
relative to the largest |logit|, per file and overall.

    /usr/bin/python3 bench/b16_images.py write DIR [--depth 12 --dim 768 --heads 12 --classes 21843]
    /usr/bin/python3 bench/b16_images.py compare DIR GLORA.jsonl [--max 1e-4]

Used by bench/check-vit-b16 (not a test).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
import make_vit_fixtures as ref  # noqa: E402
import st  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
# (width, height, mode): VTAB-like photos, portrait, upscaled small, grey.
SIZES = [(500, 375, "RGB"), (375, 500, "RGB"), (224, 224, "RGB"), (37, 23, "RGB"), (640, 480, "L"),
         (301, 199, "RGB")]


def write_jpegs(d):
    rng = np.random.default_rng(20261202)
    paths = []
    os.makedirs(os.path.join(d, "jpegs"), exist_ok=True)
    for i, (w, h, mode) in enumerate(SIZES):
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        a = np.stack([128 + 100 * np.sin(x / (9 + 3 * i) + i), 255 * x / max(w - 1, 1),
                      255 * y / max(h - 1, 1)], -1) + rng.normal(0, 20, (h, w, 3))
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        if mode == "L":
            img = img.convert("L")
        p = os.path.join(d, "jpegs", "%02d_%dx%d.jpg" % (i, w, h))
        img.save(p, quality=90)
        paths.append(p)
    return paths


def preprocess(path):
    img = Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC)
    a = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def cmd_write(a):
    paths = write_jpegs(a.dir)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in st.load(os.path.join(a.dir, "model.safetensors"))[0].items()}
    model = ref.VisionTransformer(224, 16, 3, a.dim, a.depth, a.heads, 4 * a.dim, a.classes).eval()
    model.load_state_dict(sd)
    x = torch.stack([preprocess(p) for p in paths])
    with torch.no_grad():
        logits = model(x)
    with open(os.path.join(a.dir, "torch.jsonl"), "w") as f:
        for p, l in zip(paths, logits):
            f.write(json.dumps({"path": p, "logits": [float(v) for v in l]}) + "\n")
    print("wrote %d JPEGs and PyTorch's logits to %s" % (len(paths), a.dir))


def cmd_compare(a):
    ref_lines = [json.loads(l) for l in open(os.path.join(a.dir, "torch.jsonl"))]
    got = [json.loads(l) for l in open(a.glora)]
    assert [r["path"] for r in ref_lines] == [g["path"] for g in got], "paths differ"
    worst = 0.0
    for r, g in zip(ref_lines, got):
        t, x = np.array(r["logits"], np.float64), np.array(g["logits"], np.float64)
        rel = np.abs(t - x).max() / np.abs(t).max()
        same = int(np.argmax(t)) == g["class"]
        worst = max(worst, rel)
        print("  %-28s max rel diff %.3g, top-1 %s" % (os.path.basename(r["path"]), rel,
                                                        "same" if same else "DIFFERS"))
    print("%s: max relative difference to PyTorch + PIL %.3g (limit %g)" % (a.glora, worst, a.max))
    return 0 if worst <= a.max else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--dim", type=int, default=768)
    w.add_argument("--depth", type=int, default=12)
    w.add_argument("--heads", type=int, default=12)
    w.add_argument("--classes", type=int, default=21843)
    c = sub.add_parser("compare")
    c.add_argument("dir")
    c.add_argument("glora")
    c.add_argument("--max", type=float, default=1e-4)
    a = ap.parse_args()
    sys.exit(cmd_write(a) if a.cmd == "write" else cmd_compare(a))


if __name__ == "__main__":
    main()
