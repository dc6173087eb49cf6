#!/usr/bin/python3
"""Image input speed (issue #10, item 8), two figures:

1. Decoding + preprocessing a folder of 500x375 JPEGs (squash to 224x224
   bicubic, ImageNet normalisation), glora (glora-imgdata bench: the
   streaming reader, OpenMP threads) against PIL + torchvision's ImageFolder
   with a torch DataLoader of 2 workers, alternating, side by side.
2. A cached epoch's data cost against a ViT-B/16 epoch: glora-imgdata cached
   reads the decoded split from its cache file once (what a stage does when
   it starts) and times epochs of shuffled batches normalised to floats (all
   the data work of a training epoch); the B/16 epoch is the same number of
   images at the training speed `glora bench train --arch vit-b16` measures
   (supernet step, batch --b16-batch, --b16-steps steps; skip with
   --b16-batch 0).

    /usr/bin/python3 bench/bench_images.py [--n 1000] [--dir /tmp/glora-bench-jpegs]
        [--build build] [--threads 2] [--repeat 3] [--b16-batch 8] [--b16-steps 1]

Writes the folder once (10 classes of random-scene JPEGs at quality 90),
prints one JSON line per run, then a Markdown table (medians) to paste into
docs/PERFORMANCE.md. Needs python3-pil, python3-torch and
python3-torchvision (scripts/install-deps --bench). Results on a loaded
machine are not figures: run it on a quiet one.
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


def cached_run(a, imgdata):
    out = subprocess.run([imgdata, "cached", a.dir, "224", str(a.threads), os.path.join(a.dir + ".cache"),
                          str(min(64, a.n)), "3"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def b16_run(a):
    out = subprocess.run([os.path.join(a.build, "glora"), "bench", "train", "--arch", "vit-b16", "--batch",
                          str(a.b16_batch), "--steps", str(a.b16_steps), "--repeat", "1", "--peer", "none",
                          "--json", "--threads", str(a.threads)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "%s, %d cores, load %.1f" % (cpu, os.cpu_count() or 0, os.getloadavg()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/glora-bench-jpegs")
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--b16-batch", type=int, default=8)
    ap.add_argument("--b16-steps", type=int, default=1)
    a = ap.parse_args()
    imgdata = os.path.join(a.build, "glora-imgdata")
    make_folder(a.dir, a.n)
    g, p, c = [], [], []
    for _ in range(a.repeat):
        r = json.loads(subprocess.run([imgdata, "bench", a.dir, "224", str(a.threads)], check=True,
                                      capture_output=True, text=True).stdout)
        print(json.dumps(r))
        g.append(r)
        r = torch_run(a.dir, 2)
        print(json.dumps(r))
        p.append(r)
        r = cached_run(a, imgdata)
        print(json.dumps(r))
        c.append(r)
    gm = statistics.median(r["images_per_s"] for r in g)
    pm = statistics.median(r["images_per_s"] for r in p)
    n = g[0]["images"]
    epoch = statistics.median(r["seconds_per_epoch"] for r in c)
    read = statistics.median(r["cache_read_seconds"] for r in c)
    b16 = b16_run(a) if a.b16_batch > 0 else None
    if b16:
        print(json.dumps(b16))
    print()
    print("Measured %s UTC on %s; %d x 500x375 JPEGs (quality 90), squash to 224x224 bicubic, ImageNet "
          "mean/std; medians of %d runs." % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), machine(), n,
                                             a.repeat))
    print()
    print("| what | time | rate | ratio |")
    print("|---|---:|---:|---:|")
    print("| decode + preprocess, glora (%d threads) | %.2f s | %.1f images/s | %.2fx PIL |" %
          (g[0]["threads"], n / gm, gm, gm / pm))
    print("| decode + preprocess, PIL + torchvision DataLoader (2 workers) | %.2f s | %.1f images/s | 1 |" %
          (n / pm, pm))
    print("| cached split: read once per stage (cache file, key over every image) | %.3f s | %.0f images/s | |" %
          (read, n / read))
    print("| cached epoch: shuffled batches of %d normalised to floats | %.3f s | %.0f images/s | |" %
          (min(64, n), epoch, n / epoch))
    if b16:
        t = n / b16["images_per_s"]
        print("| ViT-B/16 supernet epoch of the same %d images (batch %d, %d threads) | %.0f s | %.3f images/s "
              "| data %.3f%% of it |" % (n, b16["batch"], b16["threads"], t, b16["images_per_s"],
                                         100 * epoch / t))


if __name__ == "__main__":
    main()
