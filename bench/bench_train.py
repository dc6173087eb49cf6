"""Supernet training speed of the official GLoRA code path in PyTorch (the
peer of `glora bench train`).

Run (unset both OpenBLAS variables together, as bench/README.md explains):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/bench_train.py --threads 2

vit-tiny-28, rank 4, batch 64, AdamW (lr 1e-3, wd 1e-4) over the GLoRA tensors
and the head, backbone frozen; in every step every layer draws its
configuration uniformly from the official 432 and builds W', b' in full (the
official SuperScalableLinear.forward); loss F.cross_entropy as in the official
engine.train. Prints one JSON line; with --bf16 a second one,
pytorch-official-bf16, the same steps with the forward (and so its backward)
under torch.autocast('cpu', dtype=torch.bfloat16). --arch vit-b16: ViT-B/16
at 224x224x3, random weights and images (use a small --batch and --steps).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_model as P  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer: GLoRA supernet training speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--backbone", help="glora backbone .safetensors (random weights if absent)")
    ap.add_argument("--supernet", help="glora supernet .safetensors (random if absent)")
    ap.add_argument("--data", help="directory with train-images-idx3-ubyte[.gz] "
                    "(Fashion-MNIST; train800 is used); random images if absent")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs of --steps each; the median is reported")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--arch", choices=sorted(P.ARCHS), default="vit-tiny-28",
                    help="model with random weights when no --backbone")
    ap.add_argument("--classes", type=int,
                    help="classes of the head (default: the arch's; glora bench train uses 10)")
    ap.add_argument("--bf16", action="store_true",
                    help="also time the steps under torch.autocast bf16")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    P.random.seed(args.seed)
    model, spec, rank = P.build(args.backbone, args.supernet, classes=args.classes, seed=args.seed,
                                arch=args.arch)
    if args.data:
        x, y = P.load_images(args.data, 0, 800)
    else:
        x, y = P.random_images(spec, 800, seed=args.seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=args.batch, shuffle=True, drop_last=True)

    # The official selection: a parameter trains if its name holds one of
    # A B C D E or "head" (supernet.py); the rest is frozen.
    trainable = []
    for n, p in model.named_parameters():
        p.requires_grad = any(k in n for k in ["A", "B", "C", "D", "E", "head"])
        if p.requires_grad:
            trainable.append(p)
    opt = torch.optim.AdamW(trainable, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
    model.train()

    def batches():
        while True:
            for b in loader:
                yield b
    it = batches()

    def step(bf16=False):
        xb, yb = next(it)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(xb)
        loss = F.cross_entropy(out.float(), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss)

    for bf16 in ([False, True] if args.bf16 else [False]):
        report(args, step, bf16, rank, trainable)


def report(args, step, bf16, rank, trainable):
    for _ in range(args.warmup):
        step(bf16)
    runs = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step(bf16)
        runs.append(args.steps * args.batch / (time.perf_counter() - t0))
    dt = args.steps * args.batch / statistics.median(runs)
    print(json.dumps({
        "bench": "train", "impl": "pytorch-official" + ("-bf16" if bf16 else ""),
        "images_per_s": float("%.4g" % statistics.median(runs)),
        "runs_images_per_s": [float("%.4g" % r) for r in runs],
        "threads": args.threads, "torch": torch.__version__,
        "model": args.arch if not args.backbone else os.path.basename(args.backbone),
        "rank": rank, "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
        "seconds": round(dt, 3), "last_loss": round(loss, 4),
        "trainable_tensors": len(trainable),
        "data": "fashion-mnist train800" if args.data else "random",
        "peak_rss_mb": round(P.peak_rss_mb(), 1),
    }))


if __name__ == "__main__":
    main()
