#!/bin/sh
# Measures glora's MPI scaling on this machine (docs/PERFORMANCE.md, "MPI"):
# the search (one generation of `population` candidates) and supernet
# training (two epochs, timed apart), for vit-tiny-28 and a ViT-B/16-shaped
# model (B/16's layers, depth 2), as 1 rank x 1 thread, 1 rank x 2 threads
# and 2 ranks x 1 thread. Times are glora's own (history.jsonl /
# metrics.jsonl "seconds": the generation or the epoch, without process
# start and loading). Training's first epoch ("train1") also pays the first
# touch of every working buffer, once per rank (and per thread); its second
# ("train2") is the steady state a long run sees. With GLORA_COMM_STATS=1
# the 2-rank runs also report their communication. About 3 minutes at
# REPEAT=2 on an idle 2-core machine.
#   [MODELS="tiny b16"] [SHARDS=2] bench/mpi-scaling.sh [REPEAT]   (from a build with --with-mpi)
set -eu
cd "$(dirname "$0")/.."
G=${GLORA:-$PWD/build/glora}
MPIRUN=${MPIRUN:-mpirun}
REPEAT=${1:-2}
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d "${TMPDIR:-/tmp}/glora-mpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI2="$MPIRUN -q -np 2 --oversubscribe --bind-to none -x GLORA_COMM_STATS=1"
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
        1x2) OMP_NUM_THREADS=2 "$@" --threads 2 ;;
        2x1) OMP_NUM_THREADS=1 $MPI2 "$@" --threads 1 ;;
    esac
}
sum_seconds() { grep -o '"seconds": [0-9.e+-]*' "$1" | awk '{s += $2} END {printf "%.3f", s}'; }
# epoch_seconds FILE N: the seconds of epoch N in a metrics.jsonl
epoch_seconds() { grep "\"epoch\": $2," "$1" | grep -o '"seconds": [0-9.e+-]*' | awk '{printf "%.3f", $2}'; }
min() { echo "$*" | awk '{m = $1; for (i = 2; i <= NF; i++) if ($i < m) m = $i; print m}'; }

for model in ${MODELS:-tiny b16}; do
    if [ $model = tiny ]; then
        TR="--set data.train.count=640 --batch 64"; SR="--set search.population=50 --set data.count=200"
    else
        TR="--set data.train.count=48 --batch 16"; SR="--set search.population=8 --set data.count=16"
        IMG="$T/b16-images"; LAB="$T/b16-labels"
    fi
    # Training: two epochs of supernet training, SHARDS (default 2) shards per batch.
    for mode in 1x1 1x2 2x1; do
        best1= best2=
        for i in $(seq "$REPEAT"); do
            rm -f "$T/sn-$model.safetensors"*
            run $mode "$G" supernet --model "$T/$model.safetensors" --train-images "$IMG" --train-labels "$LAB" \
                $TR --set train.shards=${SHARDS:-2} --epochs 2 --rank 4 -o "$T/sn-$model.safetensors" \
                >"$T/out" 2>"$T/err" || { cat "$T/err"; exit 1; }
            best1=$(min $best1 "$(epoch_seconds "$T/sn-$model.safetensors.metrics.jsonl" 1)")
            best2=$(min $best2 "$(epoch_seconds "$T/sn-$model.safetensors.metrics.jsonl" 2)")
            grep '^comm rank 0' "$T/err" | sed "s/^/  train $model $mode: /" || true
        done
        echo "train1 $model $mode  $best1 s"
        echo "train2 $model $mode  $best2 s"
    done
    # Search: generation 0 of `population` candidates on the supernet.
    for mode in 1x1 1x2 2x1; do
        best=
        for i in $(seq "$REPEAT"); do
            rm -rf "$T/s"
            run $mode "$G" search --model "$T/$model.safetensors" --supernet "$T/sn-$model.safetensors" \
                --set data.images="$IMG" --set data.labels="$LAB" $SR --set search.generations=0 \
                --set search.parents=2 --set search.mutations=1 --set search.crossovers=1 \
                --output "$T/s" >"$T/out" 2>"$T/err" || { cat "$T/err"; exit 1; }
            s=$(sum_seconds "$T/s/history.jsonl")
            grep '^comm rank 0' "$T/err" | sed "s/^/  search $model $mode: /" || true
            best=$(min $best "$s")
        done
        echo "search $model $mode  $best s"
    done
done
