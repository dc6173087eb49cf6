"""Candidate-evaluation speed of the GLoRA search in PyTorch (the peer of
`glora bench search`).

Run (unset both OpenBLAS variables together, as bench/README.md explains):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/bench_search.py --threads 2

vit-tiny-28, rank 4, 200 validation images, N random candidates (each gene
drawn as the official get_random_cand does). Two ways, one JSON line each:

  official  the official EvolutionSearcher.evaluate: set eval_config on every
            adapted layer, model.eval(), loop over a DataLoader of the images
            (batch 256, shuffle False: what GLoRA/data/vtab.py gives the
            search, so the 200 images are one batch of 200), every layer
            building W', b' in full on each forward. Like the official code it
            does not enter torch.no_grad(); every parameter has
            requires_grad=False (evolution.py), so no graph is recorded either.
  careful   each candidate folded once into plain linears (absent terms
            skipped, no zero tensors), one batch of 200, torch.inference_mode.

With --bf16 both ways also run under torch.autocast('cpu',
dtype=torch.bfloat16) (oneDNN's bf16 kernels where the CPU has AVX512_BF16):
official-bf16 and careful-bf16 (the candidate still merged in fp32, as glora
does). --arch vit-b16: ViT-B/16 at 224x224x3 with random weights and random
images (use --images to keep it short).
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_model as P  # noqa: E402


def random_candidate(rng, nlayers, choices):
    return tuple({k: rng.choice(choices[k]) for k in "ABCDE"} for _ in range(nlayers))


def set_config(layers, cand):
    for layer, cfg in zip(layers, cand):
        layer.eval_config = cfg


def eval_official(model, layers, loader, cand):
    model.eval()
    set_config(layers, cand)
    correct = 0
    logits = []
    for xb, yb in loader:
        out = model(xb).data
        correct += int((out.argmax(dim=1) == yb).sum())
        logits.append(out)
    return correct, torch.cat(logits)


def eval_official_bf16(model, layers, loader, cand):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        c, out = eval_official(model, layers, loader, cand)
    return c, out.float()


def eval_careful(model, layers, x, y, cand, bf16=False):
    with torch.inference_mode():
        for layer, cfg in zip(layers, cand):
            layer.merge(cfg)
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x).float()
        else:
            out = model(x)
        for layer in layers:
            layer.unmerge()
        return int((out.argmax(dim=1) == y).sum()), out


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer: GLoRA candidate evaluation speed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--candidates", type=int, default=20, help="timed candidates per way")
    ap.add_argument("--warmup", type=int, default=2, help="untimed candidates first")
    ap.add_argument("--steps", type=int, help="alias of --candidates")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256,
                    help="official loader batch size (GLoRA/data/vtab.py: 256)")
    ap.add_argument("--backbone", help="glora backbone .safetensors (random weights if absent)")
    ap.add_argument("--supernet", help="glora supernet .safetensors (random if absent)")
    ap.add_argument("--data", help="directory with train-images-idx3-ubyte[.gz] "
                    "(Fashion-MNIST; val200 = examples 800..999); random images if absent")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed runs over the candidates per way; the median is reported")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--arch", choices=sorted(P.ARCHS), default="vit-tiny-28",
                    help="model with random weights when no --backbone")
    ap.add_argument("--bf16", action="store_true",
                    help="also run both ways under torch.autocast bf16")
    args = ap.parse_args()
    if args.steps:
        args.candidates = args.steps

    torch.set_num_threads(args.threads)
    model, spec, rank = P.build(args.backbone, args.supernet, seed=args.seed, arch=args.arch)
    for p in model.parameters():
        p.requires_grad = False
    layers = P.glora_layers(model)
    if args.data:
        x, y = P.load_images(args.data, 800, args.images)
    else:
        x, y = P.random_images(spec, args.images, seed=args.seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=args.batch, shuffle=False)
    rng = random.Random(args.seed)
    choices = P.official_choices(rank)
    cands = [random_candidate(rng, len(layers), choices)
             for _ in range(args.warmup + args.candidates)]

    # Both ways must score the same candidate the same way.
    for cand in cands[:2]:
        a, la = eval_official(model, layers, loader, cand)
        b, lb = eval_careful(model, layers, x, y, cand)
        diff = float((la - lb).abs().max())
        if diff > 1e-3 * max(1.0, float(la.abs().max())):
            raise SystemExit("official and careful evaluation disagree by %g" % diff)

    def evaluate(way, cand):
        if way == "official":
            eval_official(model, layers, loader, cand)
        elif way == "official-bf16":
            eval_official_bf16(model, layers, loader, cand)
        else:
            eval_careful(model, layers, x, y, cand, bf16=way == "careful-bf16")

    # The ways alternate run by run so that a burst of load on the shared
    # machine does not fall on one of them only.
    runs = {"official": [], "careful": []}
    if args.bf16:
        runs.update({"official-bf16": [], "careful-bf16": []})
    for way in runs:
        for cand in cands[:args.warmup]:
            evaluate(way, cand)
    for _ in range(max(1, args.repeat)):
        for way in runs:
            t0 = time.perf_counter()
            for cand in cands[args.warmup:]:
                evaluate(way, cand)
            runs[way].append(time.perf_counter() - t0)

    for way, times in runs.items():
        dt = statistics.median(times)
        print(json.dumps({
            "bench": "search", "impl": "pytorch-" + way,
            "images_per_s": float("%.4g" % (args.candidates * args.images / dt)),
            "candidates_per_s": round(args.candidates / dt, 2),
            "runs_images_per_s": [float("%.4g" % (args.candidates * args.images / t))
                                  for t in times],
            "threads": args.threads, "torch": torch.__version__,
            "model": args.arch if not args.backbone else os.path.basename(args.backbone),
            "rank": rank, "images": args.images,
            "batch": args.batch if way == "official" else args.images,
            "candidates": args.candidates, "warmup": args.warmup, "seconds": round(dt, 3),
            "data": "fashion-mnist val200" if args.data else "random",
            "peak_rss_mb": round(P.peak_rss_mb(), 1),
        }))


if __name__ == "__main__":
    main()
