#!/usr/bin/python3
"""Image input speed: decoding + preprocessing a folder of 500x375 JPEGs
(squash to 224x224 bicubic, ImageNet normalisation), glora against PIL +
torchvision with a torch DataLoader of 2 workers, side by side.

    /usr/bin/python3 bench/bench_images.py [--n 1000] [--dir /tmp/glora-bench-jpegs]
        [--imgdata build/glora-imgdata] [--threads 2] [--repeat 3]

Writes the folder once (10 classes of random-scene JPEGs at quality 90) and
prints one JSON line per run and the medians. Needs python3-pil,
python3-torch and python3-torchvision (scripts/install-deps --bench).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np
from PIL import Image


def make_folder(d, n):
    if os.path.isdir(d) and sum(len(f) for _, _, f in os.walk(d)) >= n:
        return
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(n):
        c = os.path.join(d, "class%02d" % (i % 10))
        os.makedirs(c, exist_ok=True)
        a = np.stack([128 + 100 * np.sin(x / (20 + i % 37) + i), 255 * x / 499, 255 * y / 374], -1)
        a += rng.normal(0, 15, a.shape)
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(
            os.path.join(c, "%05d.jpg" % i), quality=90)


def torch_run(d, workers):
    import torch
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
    tf = T.Compose([T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    t0 = time.perf_counter()
    ds = ImageFolder(d, transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=50, num_workers=workers)
    n, s = 0, 0.0
    for x, _ in dl:
        n += x.shape[0]
        s += float(x[0, 0, 0, 0])
    t = time.perf_counter() - t0
    return {"impl": "torch DataLoader", "workers": workers, "images": n, "seconds": round(t, 3),
            "images_per_s": round(n / t, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/glora-bench-jpegs")
    ap.add_argument("--imgdata", default="build/glora-imgdata")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    make_folder(a.dir, a.n)
    g, p = [], []
    for _ in range(a.repeat):
        out = subprocess.run([a.imgdata, "bench", a.dir, "224", str(a.threads)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out)
        print(json.dumps(r))
        g.append(r["images_per_s"])
        r = torch_run(a.dir, 2)
        print(json.dumps(r))
        p.append(r["images_per_s"])
    print(json.dumps({"glora_median_images_per_s": statistics.median(g),
                      "torch_median_images_per_s": statistics.median(p),
                      "ratio": round(statistics.median(g) / statistics.median(p), 2)}))


if __name__ == "__main__":
    main()
