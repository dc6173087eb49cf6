#!/usr/bin/env python3
"""Cost model of glora under MPI (docs/PERFORMANCE.md, "MPI").

Predicts the speed-up of the search (one generation) and of supernet training
(one step) at N ranks from per-rank costs measured on one machine
(bench/mpi-scaling.sh, glora bench comm) and from the network's latency and
bandwidth. It simulates what the code does, rank by rank:

search, one generation of C candidates on I images (search/distribute.c):
  rank r owns the contiguous run [ceil(r*C*I/N), ceil((r+1)*C*I/N)) of the
  candidate-major (candidate, image) pairs; it merges the weights of every
  candidate its run touches, embeds the images of its run and runs
  (pairs) image forwards; then a sum of C counts (allreduce) and a status
  check; before it, rank 0 breeds and broadcasts the candidates and after it
  ranks them and writes the checkpoint and outputs (serial).
training, one step of batch B in S shards (src/train/loop.c):
  rank r computes shards [ceil(r*S/N), ceil((r+1)*S/N)) (B/S images each,
  forward + backward); every rank merges the weights for the step's path and
  runs clipping + AdamW (replicated, serial); the shard gradients (G floats)
  go through the ordered fold -- a chain over the ranks that own shards, in
  segments of about G / (chain length) floats (2^12..2^18), pipelined --
  then a broadcast of the sum.

Standard library only; no arguments prints the tables of the docs.
"""
import math
import sys

SEG = 1 << 18  # most floats per fold message (fold_segment in src/util/comm.c)


def span(n, r, size):
    return (-(-r * n // size), -(-(r + 1) * n // size))


def tree(n_ranks, alpha, nbytes, beta):
    """Binomial-tree collective of nbytes (broadcast or small allreduce)."""
    if n_ranks == 1:
        return 0.0
    return math.ceil(math.log2(n_ranks)) * (alpha + nbytes / beta)


def bcast_large(n_ranks, alpha, nbytes, beta):
    """Large broadcast (scatter + allgather, as MPI libraries do): ~2x bytes."""
    if n_ranks == 1:
        return 0.0
    return math.ceil(math.log2(n_ranks)) * alpha + 2.0 * nbytes / beta


def search_gen(m, n, net):
    C, I = m["cands"], m["images"]
    worst = 0.0
    for r in range(n):
        lo, hi = span(C * I, r, n)
        if lo == hi:
            continue
        cand_touched = (hi - 1) // I - lo // I + 1
        t = (hi - lo) * m["t_img"] + cand_touched * m["t_merge"] + min(hi - lo, I) * m["t_embed"]
        worst = max(worst, t)
    genes = C * m["layers"] * 10  # bytes of a generation's candidates
    comm = 0.0
    if n > 1:
        comm = tree(n, net["alpha"], 16, net["beta"]) + tree(n, net["alpha"], genes, net["beta"])
        comm += 2 * tree(n, net["alpha"], 8 * C, net["beta"])  # counts (reduce + bcast)
        comm += 2 * tree(n, net["alpha"], 4, net["beta"])      # status check
    return worst + comm + m["t_serial_search"], comm


def train_step(m, n, net):
    B, S, G = m["batch"], m["shards"], m["grad_floats"]
    owners = [r for r in range(n) if span(S, r, n)[0] < span(S, r, n)[1]]
    per_shard = (B / S) * m["t_img_train"]
    worst = max((span(S, r, n)[1] - span(S, r, n)[0]) * per_shard for r in owners)
    comm = 0.0
    if n > 1:
        seg = min(max(math.ceil(G / len(owners)), 1 << 12), SEG)  # fold_segment in comm.c
        k = math.ceil(G / seg)
        seg_time = net["alpha"] + seg * 4 / net["beta"]
        comm += (k + len(owners) - 1) * seg_time      # the chain, pipelined
        comm += bcast_large(n, net["alpha"], G * 4, net["beta"])
        comm += 2 * tree(n, net["alpha"], 5 * B / max(1, len(owners)), net["beta"])  # losses, flags
    return worst + m["t_serial_train"] + comm, comm


# Per-rank costs, in seconds of one core. This machine was shared with other
# jobs (load average ~20 on 2 vCPUs) while measured, so absolute times were
# 5-20x slow and noisy; the model takes from the measurements only ratios
# measured side by side in one process (merge vs forward, /tmp harness of
# docs/PERFORMANCE.md "MPI": min of repeated calls, 1 thread) and sizes
# (gradient floats from GLORA_COMM_STATS), and takes absolute compute from
# the unloaded figures: vit-tiny-28 forward 0.5 ms/image/core (search fitness
# 4000 images/s on 2 threads, Summary table); ViT-B/16 forward 0.3 s/image/core
# (17.6 GFLOP at ~60 GFLOP/s, 2/3 of this CPU's GEMM peak per core).
# Training an image (forward + backward through the frozen weights, adapter
# gradients) is taken as 2.5 forwards.
TINY_FWD, B16_FWD = 0.5e-3, 0.3
MODELS = {
    "vit-tiny-28": dict(
        cands=100, images=200, layers=24,
        t_img=TINY_FWD,
        t_merge=1.7 * TINY_FWD,   # measured ratio: merge 0.5 ms vs forward 0.3 ms (1 thread)
        t_embed=0.03 * TINY_FWD,  # patch embedding: ~3% of the forward's FLOPs
        t_serial_search=0.010,    # assumed: breeding, ranking, checkpoint + outputs (fsync) per generation
        batch=64, shards=64,
        t_img_train=2.5 * TINY_FWD,
        grad_floats=135_000,      # measured: the fold moved 540 KB per step
        # the step's replicated work, measured in training (CPU time per step,
        # docs "Where the 2-rank training step lost time"): merge of the
        # sampled LoRA layers 0.3 ms + clip 0.1 + AdamW 0.75 + batch 0.1
        t_serial_train=1.25e-3,
    ),
    "ViT-B/16": dict(
        cands=100, images=200, layers=48,
        t_img=B16_FWD,
        t_merge=0.37 * B16_FWD,   # measured ratio: merge 2.25 s vs forward 6.1 s (1 thread, loaded)
        t_embed=0.01 * B16_FWD,
        t_serial_search=0.05,     # assumed
        batch=64, shards=64,
        t_img_train=2.5 * B16_FWD,
        grad_floats=6 * 275_000,  # measured at depth 2 (1.1 MB per step), x6 for depth 12
        # merge + clip + AdamW on 1.65M floats; training merges only the layers
        # whose A is a LoRA (the row form reads W0 for the rest): a quarter of
        # them in expectation under the official space's uniform sampling
        t_serial_train=0.25 * 0.37 * B16_FWD + 0.005,
    ),
}

NETS = {
    "cluster (2 us, 10 GB/s)": dict(alpha=2e-6, beta=10e9),
    "slow network (20 us, 1 GB/s)": dict(alpha=20e-6, beta=1.0e9),
}


def table(out=sys.stdout):
    for net_name, net in NETS.items():
        out.write(f"\nnetwork: {net_name}\n")
        out.write(f"{'model':<12} {'work':<8} {'N':>5} {'speed-up':>9} {'efficiency':>10} {'comm %':>7}\n")
        for name, m in MODELS.items():
            for work, f in (("search", search_gen), ("train", train_step)):
                t1, _ = f(m, 1, net)
                for n in (2, 8, 32, 64, 512):
                    tn, comm = f(m, n, net)
                    s = t1 / tn
                    out.write(f"{name:<12} {work:<8} {n:>5} {s:>9.1f} {s / n:>10.2f} {100 * comm / tn:>7.1f}\n")


if __name__ == "__main__":
    table()
