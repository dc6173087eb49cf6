#!/bin/sh
# The cross-validated search (search.cv_folds) through glora run, on a tiny
# model and 144 real labelled images: every file is there; the folds are a
# partition of the pooled images into equal folds; best.json's accuracy is
# the pooled accuracy computed by hand (glora eval of every image with the
# supernet of its fold); a second invocation skips everything; a run stopped
# after every epoch of every training (the folds' included) and continued
# over five invocations, at another thread count, ends with the same bits;
# search.cv_folds 0 is the plain search; the mistakes are one-line errors.
. "$top_srcdir/tests/cli/common.sh"
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
    echo "skip: $FASHION missing (scripts/install-deps installs dataset-fashion-mnist)"
    exit 77
fi
# Small plain IDX files cut from Fashion-MNIST (loaded in no time): the
# first 348 training images and the first 200 test images.
byte() { printf "\\$(printf %03o "$1")"; }
idx_header() { # idx_header 3|1 N: an IDX header of N 28x28 images (3) or labels (1)
    byte 0; byte 0; byte 8; byte "$1"
    byte $(($2 >> 24 & 255)); byte $(($2 >> 16 & 255)); byte $(($2 >> 8 & 255)); byte $(($2 & 255))
    if [ "$1" = 3 ]; then byte 0; byte 0; byte 0; byte 28; byte 0; byte 0; byte 0; byte 28; fi
}
cut_idx() { # cut_idx SOURCE N OUT: the first N images and labels of SOURCE-{images-idx3,labels-idx1}-ubyte.gz
    { idx_header 3 "$2"; zcat "$1-images-idx3-ubyte.gz" | tail -c +17 | head -c $(($2 * 784)); } >"$3-images"
    { idx_header 1 "$2"; zcat "$1-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$2"; } >"$3-labels"
}
cut_idx "$FASHION/train" 348 "$T/train"
cut_idx "$FASHION/t10k" 200 "$T/test"
expect 0 "$GLORA" init --set arch.dim=32 --set arch.depth=2 --set arch.heads=2 --set arch.mlp_hidden=64 \
    --seed 3 -o "$T/init.safetensors"
TRAIN="images: $T/train-images, labels: $T/train-labels"
cat >"$T/run.yaml" <<YAML
run:
  name: cv
  dir: $T/runs
  backbone: $T/init.safetensors
  stages: [supernet, search, retrain, merge, eval]
  val: {$TRAIN, start: 300, count: 48}
  test: {images: $T/test-images, labels: $T/test-labels}
supernet:
  glora: {rank: 2}
  data:
    train: {$TRAIN, start: 0, count: 96}
  train: {epochs: 4, batch: 16, lr: 1.0e-2}
search:
  data: {$TRAIN, start: 300, count: 48}
  search: {population: 8, parents: 3, mutations: 3, crossovers: 3, generations: 2, max_params: 6K,
           extra_budgets: [3K], cv_folds: 3, seed: 7}
retrain:
  data:
    train: {$TRAIN, start: 0, count: 96}
  train: {epochs: 1, batch: 16}
YAML
expect 0 "$GLORA" run "$T/run.yaml" --threads 2
R="$T/runs/cv"
for f in supernet.safetensors cv/folds.json cv/supernet-fold1.safetensors cv/supernet-fold2.safetensors \
         cv/supernet-fold3.safetensors cv/supernet-fold3.safetensors.metrics.jsonl search/best.json \
         search/best-under-3K.json search/checkpoint.json adapter.safetensors merged.safetensors summary.json; do
    [ -s "$R/$f" ] || fail "run left no $f"
done
[ -e "$R/cv/supernet-fold4.safetensors" ] && fail "3 folds, but a fourth supernet"
for f in 1 2 3; do has "$T/err" "cv fold $f/3: supernet on the other folds' 96 images, validated on this fold's 48"; done
has "$T/err" 'cv: 3 folds of 144 labelled images'
has "$T/err" 'search: .*144 images in 3 folds'
has "$T/out" '^best: cross-validated accuracy'
has "$T/out" 'GLoRA subnet, retrained'
# The folds: 144 images, three of 48, each image in one fold.
grep -q '"images": 144,' "$R/cv/folds.json" || fail "folds.json: not 144 images: $(head -5 "$R/cv/folds.json")"
grep -q '"sizes": \[48, 48, 48\]' "$R/cv/folds.json" || fail "folds.json: sizes are not 48, 48, 48"
{ tr -d ' \n' <"$R/cv/folds.json" | sed 's/.*"fold":\[\([0-9,]*\)\].*/\1/' | tr ',' '\n'; echo; } >"$T/fold"
[ "$(wc -l <"$T/fold")" -eq 144 ] || fail "folds.json: $(wc -l <"$T/fold") fold entries, not 144"
for f in 0 1 2; do [ "$(grep -cx $f "$T/fold")" -eq 48 ] || fail "fold $f does not hold 48 images"; done
[ "$(grep -cvx '[012]' "$T/fold")" -eq 0 ] || fail "folds.json: a fold outside 0..2"
# By hand: the pooled images (train 0..95, then val 300..347) cut into one
# IDX file per fold, each evaluated with the supernet trained without it,
# under best.json.
i=0
while read -r f; do
    if [ $i -lt 96 ]; then at=$i; else at=$((300 + i - 96)); fi
    tail -c +$((17 + at * 784)) "$T/train-images" | head -c 784 >>"$T/fold$f.px"
    tail -c +$((9 + at)) "$T/train-labels" | head -c 1 >>"$T/fold$f.lb"
    i=$((i + 1))
done <"$T/fold"
right=0
for f in 0 1 2; do
    { idx_header 3 48; cat "$T/fold$f.px"; } >"$T/fold$f-images"
    { idx_header 1 48; cat "$T/fold$f.lb"; } >"$T/fold$f-labels"
    expect 0 "$GLORA" eval --model "$T/init.safetensors" --adapter "$R/cv/supernet-fold$((f + 1)).safetensors" \
        --subnet "$R/search/best.json" --images "$T/fold$f-images" --labels "$T/fold$f-labels" --json
    c=$(sed -n 's/.*"correct": \([0-9]*\), "n": 48,.*/\1/p' "$T/out")
    [ -n "$c" ] || fail "eval of fold $f: $(cat "$T/out")"
    right=$((right + ${c:-0}))
done
val=$(sed -n 's/.*"val_accuracy":[[:space:]]*\([0-9.]*\).*/\1/p' "$R/search/best.json")
awk -v r="$right" -v v="$val" 'BEGIN { exit !(r / 144 - v < 1e-9 && v - r / 144 < 1e-9) }' ||
    fail "best.json says $val; the folds' supernets get $right of 144 right under it"
# A second invocation does nothing again.
expect 0 "$GLORA" run "$T/run.yaml"
has "$T/err" 'search: done before'
# Stopped after 3 epochs of every training (the supernet's and each
# fold's), continued at one thread: five invocations, then the same bits.
sed 's/name: cv$/name: again/' "$T/run.yaml" >"$T/again.yaml"
n=0
while [ ! -f "$T/runs/again/summary.json" ] && [ $n -lt 8 ]; do
    expect 0 "$GLORA" run "$T/again.yaml" --threads 1 --set supernet.run.stop_after=3
    n=$((n + 1))
done
[ $n -eq 5 ] || fail "the stopped run took $n invocations, expected 5 (supernet, 3 folds, the rest)"
for f in cv/supernet-fold1.safetensors cv/supernet-fold2.safetensors cv/supernet-fold3.safetensors \
         search/best.json search/best-under-3K.json search/pareto.json adapter.safetensors; do
    cmp -s "$R/$f" "$T/runs/again/$f" || fail "$f differs between the run and the one stopped after every epoch"
done
sed 's/ cv_folds: 3,//' "$T/run.yaml" >"$T/plain.yaml"
grep -q cv_folds "$T/plain.yaml" && fail "the plain config still sets cv_folds"
expect 0 "$GLORA" run "$T/plain.yaml" --set "supernet=$R/supernet.safetensors" --set 'stages=[search]' --name plain
has "$T/out" '^best: val accuracy'
expect 0 "$GLORA" run "$T/plain.yaml" --set "supernet=$R/supernet.safetensors" --set 'stages=[search]' --name zero \
    --set search.search.cv_folds=0
[ -e "$T/runs/zero/cv" ] && fail "search.cv_folds 0 made a cv directory"
for f in best.json pareto.json best-under-3K.json; do
    cmp -s "$T/runs/plain/search/$f" "$T/runs/zero/search/$f" || fail "search.cv_folds 0 changed $f"
done
sed 's/"seconds": [0-9.e+-]*//g' "$T/runs/plain/search/checkpoint.json" >"$T/c1"
sed 's/"seconds": [0-9.e+-]*//g' "$T/runs/zero/search/checkpoint.json" >"$T/c2"
cmp -s "$T/c1" "$T/c2" || fail "search.cv_folds 0 changed the checkpoint (its identity)"
# Mistakes, each one line, before any fold trains.
refused() { # refused NAME CONFIG ARGS...: glora run on the run's own supernet fails
    n=$1 c=$2
    shift 2
    expect 1 "$GLORA" run "$c" --name "$n" --set "supernet=$R/supernet.safetensors" --set 'stages=[search]' "$@"
    [ "$(grep -c '^glora: error' "$T/err")" -eq 1 ] || fail "run '$n': expected one error: $(cat "$T/err")"
    has "$T/err" "stage 'search' failed"
    [ -e "$T/runs/$n/cv/supernet-fold1.safetensors" ] && fail "the refused run '$n' trained a fold"
}
refused big "$T/run.yaml" --set search.search.cv_folds=64 --set search.data.count=10 \
    --set supernet.data.train.count=20
has "$T/err" "search.cv_folds.*is 64, more than the 30 labelled images"
refused batch "$T/run.yaml" --set search.search.cv_folds=2 --set supernet.train.batch=80
has "$T/err" "search.cv_folds.*would train on 72 images, fewer than the supernet's train.batch 80"
refused overlap "$T/run.yaml" --set search.data.start=50
has "$T/err" "search.cv_folds.*share examples"
refused official "$T/run.yaml" --set search.search.preset=official
has "$T/err" "search.cv_folds.*search.preset official"
sed '/^supernet:/,/^search:/{/^search:/!d}' "$T/run.yaml" >"$T/nosn.yaml"
refused nosn "$T/nosn.yaml"
has "$T/err" "search.cv_folds.*supernet section"
expect 1 "$GLORA" search --model "$T/init.safetensors" --supernet "$R/supernet.safetensors" \
    --set data.images="$T/train-images" --set data.labels="$T/train-labels" \
    --set data.count=48 --set search.cv_folds=2 --output "$T/alone"
one_line; has "$T/err" "search.cv_folds.*needs the supernets of the folds"
finish
