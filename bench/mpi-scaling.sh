#!/bin/sh
# Measures glora's MPI scaling on this machine (docs/PERFORMANCE.md, "MPI"):
# the search (one generation of `population` candidates) and supernet
# training, for vit-tiny-28 and a ViT-B/16-shaped model (B/16's layers,
# depth 2), as 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1
# thread. Times are glora's own (history.jsonl / metrics.jsonl "seconds":
# the generation or the epoch, without process start, loading, validation
# or checkpoints). With GLORA_COMM_STATS=1 the 2-rank runs also report
# their communication.
#
# Two ways to run:
#   [MODELS="tiny b16"] [SHARDS=2] bench/mpi-scaling.sh [REPEAT]
#       best of REPEAT runs per layout, one layout after the other; training
#       runs two epochs, timed apart: "train1" (the first, which also pays
#       the first touch of every working buffer, once per rank and thread)
#       and "train2" (the steady state). About 3 minutes at REPEAT=2 on an
#       idle 2-core machine.
#   ROUNDS=N [EPOCHS=4] [MODELS=tiny] [SHARDS=2] bench/mpi-scaling.sh
#       interleaved: N rounds of (1x1, 1x2, 2x1), so that a slow spell of
#       the machine hits every layout alike; training runs EPOCHS epochs
#       and every epoch after the first counts; prints each layout's
#       median epoch (and generation) over all rounds, and the ratios of
#       the medians. On this VM one process's epoch times wander by ~25%
#       from run to run, so the best of a few runs is a lucky one: use this
#       mode for the speed-up. About 1 minute per round at EPOCHS=4 (tiny).
# Either way:
#   BIND=core         (the default) binds each rank to a core (mpirun
#                     --bind-to core, Open MPI's own default for 1-2 ranks)
#                     and 1x2's threads (OMP_PROC_BIND=close); BIND=none
#                     leaves them to the scheduler
#   STEP_STATS=DIR    each training run also writes GLORA_STEP_STATS files
#                     DIR/<model>-<layout>-<run>.<rank>, summarised at the
#                     end by bench/mpi-steps.py (per-step phase times)
set -eu
cd "$(dirname "$0")/.."
G=${GLORA:-$PWD/build/glora}
MPIRUN=${MPIRUN:-mpirun}
REPEAT=${1:-2}
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d "${TMPDIR:-/tmp}/glora-mpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
BIND=${BIND:-core}
MPI2="$MPIRUN -q -np 2 --oversubscribe --bind-to $BIND -x GLORA_COMM_STATS=1"
[ -n "${STEP_STATS:-}" ] && mkdir -p "$STEP_STATS" && MPI2="$MPI2 -x GLORA_STEP_STATS"
IMG="$F/train-images-idx3-ubyte.gz"
LAB="$F/train-labels-idx1-ubyte.gz"

"$G" init --preset vit-tiny-28 -o "$T/tiny.safetensors" >/dev/null 2>&1
"$G" init --preset vit-b16 --set arch.depth=2 --set arch.num_classes=10 --set arch.in_chans=1 \
    -o "$T/b16.safetensors" >/dev/null 2>&1
# 48 random 224x224 grey images (IDX) for the B/16-shaped model.
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))"; \
         printf "\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
{ printf '\000\000\010\003'; be32 48; be32 224; be32 224; head -c $((48 * 224 * 224)) /dev/urandom; } >"$T/b16-images"
{ printf '\000\000\010\001'; be32 48; head -c 48 /dev/urandom | od -An -v -tu1 | tr -s ' ' '\n' |
    grep . | while read -r v; do printf "\\$(printf %03o $((v % 10)))"; done; } >"$T/b16-labels"

# run MODE CMD...: MODE is 1x1, 1x2 or 2x1 (ranks x threads)
run() {
    mode=$1; shift
    case $mode in
        1x1) OMP_NUM_THREADS=1 "$@" --threads 1 ;;
        1x2) if [ "$BIND" = none ]; then OMP_NUM_THREADS=2 "$@" --threads 2
             else OMP_NUM_THREADS=2 OMP_PROC_BIND=close OMP_PLACES=cores "$@" --threads 2; fi ;;
        2x1) OMP_NUM_THREADS=1 $MPI2 "$@" --threads 1 ;;
    esac
}
sum_seconds() { grep -o '"seconds": [0-9.e+-]*' "$1" | awk '{s += $2} END {printf "%.3f", s}'; }
# epoch_seconds FILE N: the seconds of epoch N in a metrics.jsonl
epoch_seconds() { grep "\"epoch\": $2," "$1" | grep -o '"seconds": [0-9.e+-]*' | awk '{printf "%.3f", $2}'; }
min() { echo "$*" | awk '{m = $1; for (i = 2; i <= NF; i++) if ($i < m) m = $i; print m}'; }
median() { echo "$*" | tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {if (NR % 2) printf "%.3f", v[(NR + 1) / 2];
                                                          else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }

# train MODEL MODE EPOCHS TAG: one supernet training run; $T/sn-MODEL.safetensors.metrics.jsonl
train() {
    rm -f "$T/sn-$1.safetensors"*
    GLORA_STEP_STATS=${STEP_STATS:+$STEP_STATS/$1-$2-$4} \
    run $2 "$G" supernet --model "$T/$1.safetensors" --train-images "$IMG" --train-labels "$LAB" \
        $TR --set train.shards=${SHARDS:-2} --epochs $3 --rank 4 -o "$T/sn-$1.safetensors" \
        >"$T/out" 2>"$T/err" || { cat "$T/err"; exit 1; }
    grep '^comm rank 0' "$T/err" | sed "s/^/  train $1 $2: /" || true
}
# search MODEL MODE: generation 0 of `population` candidates on the supernet; prints its seconds
search() {
    rm -rf "$T/s"
    run $2 "$G" search --model "$T/$1.safetensors" --supernet "$T/sn-$1.safetensors" \
        --set data.images="$IMG" --set data.labels="$LAB" $SR --set search.generations=0 \
        --set search.parents=2 --set search.mutations=1 --set search.crossovers=1 \
        --output "$T/s" >"$T/out" 2>"$T/err" || { cat "$T/err"; exit 1; }
    grep '^comm rank 0' "$T/err" | sed "s/^/  search $1 $2: /" >&2 || true
    sum_seconds "$T/s/history.jsonl"
}

MODES="1x1 1x2 2x1"
for model in ${MODELS:-tiny b16}; do
    if [ $model = tiny ]; then
        TR="--set data.train.count=640 --batch 64"; SR="--set search.population=50 --set data.count=200"
    else
        TR="--set data.train.count=48 --batch 16"; SR="--set search.population=8 --set data.count=16"
        IMG="$T/b16-images"; LAB="$T/b16-labels"
    fi
    if [ -n "${ROUNDS:-}" ]; then
        # Interleaved: every epoch after the first of every round counts.
        E=${EPOCHS:-4}
        tr_1x1= tr_1x2= tr_2x1= se_1x1= se_1x2= se_2x1=
        for i in $(seq "$ROUNDS"); do
            for mode in $MODES; do
                train $model $mode "$E" $i
                ep=
                for e in $(seq 2 "$E"); do
                    ep="$ep $(epoch_seconds "$T/sn-$model.safetensors.metrics.jsonl" $e)"
                done
                echo "  round $i train $model $mode epochs 2..$E:$ep s"
                eval "tr_$mode=\"\$tr_$mode $ep\""
                s=$(search $model $mode)
                echo "  round $i search $model $mode: $s s"
                eval "se_$mode=\"\$se_$mode $s\""
            done
        done
        for kind in tr se; do
            [ $kind = tr ] && name="train $model (median epoch)" || name="search $model (median generation)"
            m11=$(eval median "\$${kind}_1x1"); m12=$(eval median "\$${kind}_1x2"); m21=$(eval median "\$${kind}_2x1")
            echo "$name: 1x1 $m11 s, 1x2 $m12 s, 2x1 $m21 s; 2x1 vs 1x1 $(ratio "$m11" "$m21"), 1x2 vs 1x1 $(ratio "$m11" "$m12")"
        done
        continue
    fi
    # Training: two epochs of supernet training, SHARDS (default 2) shards per batch.
    for mode in $MODES; do
        best1= best2=
        for i in $(seq "$REPEAT"); do
            train $model $mode 2 $i
            best1=$(min $best1 "$(epoch_seconds "$T/sn-$model.safetensors.metrics.jsonl" 1)")
            best2=$(min $best2 "$(epoch_seconds "$T/sn-$model.safetensors.metrics.jsonl" 2)")
        done
        echo "train1 $model $mode  $best1 s"
        echo "train2 $model $mode  $best2 s"
    done
    # Search: generation 0 of `population` candidates on the supernet.
    for mode in $MODES; do
        best=
        for i in $(seq "$REPEAT"); do
            best=$(min $best "$(search $model $mode)")
        done
        echo "search $model $mode  $best s"
    done
done
if [ -n "${STEP_STATS:-}" ]; then
    echo "per-step phases (bench/mpi-steps.py):"
    for f in "$STEP_STATS"/*.0; do python3 bench/mpi-steps.py "${f%.0}"; done
fi
