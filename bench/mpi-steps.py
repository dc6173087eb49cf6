#!/usr/bin/env python3
"""Summarises GLORA_STEP_STATS files (docs/PERFORMANCE.md, "MPI").

    GLORA_STEP_STATS=/tmp/st glora supernet ...        (or under mpirun -x)
    bench/mpi-steps.py /tmp/st [more prefixes...]

Each prefix names the files <prefix>.<rank> that one training run wrote
(one per rank; src/train/loop.c). Times are ms per step, medians over the
steps after the first (whose first touches are not the steady state):

  shard cpu / wall   forward + backward of the rank's shards: the thread's
                     CPU time and the wall time around them
  wall-cpu           the guest kernel ran something else meanwhile
  fold, gather       wall time in the gradient fold (+ its broadcast) and
                     the loss gathers: on a rank that finished its shard
                     first, mostly waiting for the other
  data               the rank's share of the batch (u8 images to floats, CPU)
  replicated         subnet draw + merge + clip/AdamW (CPU), on every rank
  between            rank-side work between steps (callbacks, printing)

With two or more workers (ranks, or the threads of one rank: slots 0 and 1),
per step: how much their shard CPU time differs on the same work (same
subnet, same shapes), and the step's imbalance: the slowest worker's shard
wall time minus the mean, i.e. what a perfectly balanced step would not have
waited. With two or more ranks, also the fold's wall time on the rank that
finished its shards last: the communication and adding that nobody waited
out, which is all that overlapping the fold with the backward could hide.
Standard library only.
"""
import glob
import statistics as st
import sys


def load(path):
    with open(path) as f:
        lines = f.read().split("\n")
    head = lines[0].split("\t")
    return [dict(zip(head, map(float, l.split("\t")))) for l in lines[1:] if l]


def steady(rows):
    return [r for r in rows if not (r["epoch"] == 1 and r["step"] == 1)]


def shard_cpu(r):
    return r["fwd0_cpu"] + r["bwd0_cpu"] + r["fwd1_cpu"] + r["bwd1_cpu"]


def workers(rows_by_rank, k):
    """(shard cpu, shard wall) of every worker of step k: each rank's slots."""
    out = []
    for rows in rows_by_rank:
        r = rows[k]
        for s in (0, 1):
            c, w = r["fwd%d_cpu" % s] + r["bwd%d_cpu" % s], r["fwd%d_wall" % s] + r["bwd%d_wall" % s]
            if c > 0:
                out.append((c, w))
    return out


def med(v):
    return st.median(v) if v else float("nan")


def summary(prefix):
    files = sorted(glob.glob(glob.escape(prefix) + ".[0-9]*"), key=lambda p: int(p.rsplit(".", 1)[1]))
    if not files:
        sys.exit("mpi-steps: no files %s.<rank>" % prefix)
    ranks = [steady(load(f)) for f in files]
    print("%s: %d rank(s), %d steady steps" % (prefix, len(ranks), len(ranks[0])))
    print("  rank  shard cpu  shard wall  wall-cpu  data  fold  gather  replicated  between  faults  vcpu moves")
    for i, rows in enumerate(ranks):
        print("  %4d  %9.2f  %10.2f  %8.2f  %4.2f  %4.2f  %6.2f  %10.2f  %7.2f  %6d  %d" % (
            i, med([shard_cpu(r) for r in rows]), med([r["shards_wall"] for r in rows]),
            med([r["fwd0_wall"] + r["bwd0_wall"] - r["fwd0_cpu"] - r["bwd0_cpu"] for r in rows]),
            med([r["data_cpu"] for r in rows]), med([r["fold_wall"] for r in rows]),
            med([r["gather_wall"] for r in rows]),
            med([r["subnet_cpu"] + r["merge_cpu"] + r["opt_cpu"] for r in rows]),
            med([r["between"] for r in rows]), sum(r["minflt"] for r in rows),
            sum(r["cpu_start"] != r["cpu_end"] for r in rows)))
    n = min(len(r) for r in ranks)
    per = [workers(ranks, k) for k in range(n)]
    per = [w for w in per if len(w) >= 2]
    if not per:
        return
    spread = [(max(c for c, _ in w) - min(c for c, _ in w)) / st.mean(c for c, _ in w) for w in per]
    imb = [max(x for _, x in w) - st.mean(x for _, x in w) for w in per]
    first = sum(w[0][0] > max(c for c, _ in w[1:]) for w in per)
    m = len(per)
    step = sum(max(r[k]["step_wall"] for r in ranks) for k in range(n))
    print("  shard cpu, slowest - fastest worker on the same step: median %.1f%%, 90th pct %.1f%% of the shard;"
          " worker 0 slowest in %d of %d steps" % (100 * med(spread), 100 * sorted(spread)[m * 9 // 10], first, m))
    print("  imbalance (slowest worker's shard wall - mean): median %.2f ms, total %.1f ms = %.1f%% of the"
          " steps' %.1f ms" % (med(imb), sum(imb), 100 * sum(imb) / step, step))
    if len(ranks) >= 2:
        last = []
        for k in range(n):
            # the rank whose shards ended last waits least in the fold
            j = min(range(len(ranks)), key=lambda i: ranks[i][k]["fold_wall"])
            last.append(ranks[j][k]["fold_wall"])
        print("  fold on the rank that finished last (not waiting): median %.2f ms per step" % med(last))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) > 1 else 2)
    for p in sys.argv[1:]:
        summary(p)
