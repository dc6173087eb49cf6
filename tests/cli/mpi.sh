#!/bin/sh
# glora under MPI (2 ranks on localhost, 1 thread each): the search, a
# supernet training, a whole small `glora run` and a cross-validated search
# (search.cv_folds) give the same files as one process (sha256 of every
# output file; the search's wall-clock "seconds" fields are blanked first,
# as they differ between any two runs); a search
# whose rank is killed is resumed under MPI and in one process; a 2-rank
# checkpoint resumes in one process; an error stops every rank with one
# message. Skipped (77) when glora was built without --with-mpi.
. "$top_srcdir/tests/cli/common.sh"
[ -n "${MPIRUN:-}" ] || { echo "built without MPI: skipped"; exit 77; }
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 GLORA_MPI_EXIT_GRACE=5
# Open MPI: no oversubscription warnings, no hwloc binding on 2 shared cores.
MPI2="$MPIRUN -q -np 2 --oversubscribe --bind-to none"
$MPI2 true >/dev/null 2>&1 || MPI2="$MPIRUN -np 2"
$MPI2 true >/dev/null 2>&1 || { echo "$MPIRUN cannot start 2 processes: skipped"; exit 77; }

search_fixture "$T/fx"

# sums DIR: sha256 of every file under DIR, one line each, with wall-clock
# fields blanked first ("seconds", "images_per_s", and the stage markers of
# glora run, which hold only the seconds a stage took) and the first path
# component under $T replaced by DIR (a search's config.yaml records its
# output.dir, and the runs compared here write to different directories).
sums() {
    (cd "$1" && for f in $(find . -type f | sort); do
        case "$f" in */stages/*) echo "$f"; continue ;; esac
        printf '%s  %s\n' "$(sed -e 's/"seconds": [-0-9.e+]*/"seconds": 0/g' -E -e "s|$T/[A-Za-z0-9.]+|DIR|g" \
            -e 's/"images_per_s": [-0-9.e+]*/"images_per_s": 0/g' "$f" | sha256sum | cut -c1-64)" "$f"
    done)
}
same() { # same DIR1 DIR2 WHAT
    sums "$1" >"$T/a.sum"; sums "$2" >"$T/b.sum"
    [ -s "$T/a.sum" ] || fail "$3: no files in $1"
    cmp -s "$T/a.sum" "$T/b.sum" || { diff "$T/a.sum" "$T/b.sum" | head -6 >&2; fail "$3"; }
}

# ---- search ----
cat >"$T/search.yaml" <<EOF
model:
  backbone: $T/fx/backbone.safetensors
  adapter: $T/fx/supernet.safetensors
data:
  images: $T/fx/images-idx3-ubyte
  labels: $T/fx/labels-idx1-ubyte
  start: 100
  count: 101
search:
  population: 9
  parents: 3
  mutations: 3
  crossovers: 3
  generations: 4
  seed: 5
  max_params: 4K
  extra_budgets: [1K]
  batch: 16
EOF
expect 0 "$GLORA" search "$T/search.yaml" --threads 1 --output "$T/s1"
expect 0 $MPI2 "$GLORA" search "$T/search.yaml" --threads 1 --output "$T/s2"
same "$T/s1" "$T/s2" "search: 2 ranks differ from 1 process"
[ "$(grep -c '^best:' "$T/out")" -eq 1 ] || fail "search: the result should be printed once: $(cat "$T/out")"
# Fewer candidates than ranks would leave a rank idle: pieces are
# (candidate, image range), so a population of 1 is split too.
expect 0 "$GLORA" search "$T/search.yaml" --set search.population=1 --set search.parents=1 \
    --set search.mutations=1 --set search.crossovers=0 --output "$T/p1"
expect 0 $MPI2 "$GLORA" search "$T/search.yaml" --set search.population=1 --set search.parents=1 \
    --set search.mutations=1 --set search.crossovers=0 --output "$T/p2"
same "$T/p1" "$T/p2" "search with population 1: 2 ranks differ from 1 process"
# The finer fitnesses: each rank's per-image losses are gathered and summed
# in image order, so the ranking and every loss in the checkpoint are the
# same bits as in one process.
for fit in loglik accuracy+loss; do
    expect 0 "$GLORA" search "$T/search.yaml" --threads 1 --set search.fitness=$fit --output "$T/fit1-$fit"
    expect 0 $MPI2 "$GLORA" search "$T/search.yaml" --threads 1 --set search.fitness=$fit --output "$T/fit2-$fit"
    same "$T/fit1-$fit" "$T/fit2-$fit" "search with fitness $fit: 2 ranks differ from 1 process"
    grep -q '"best_loss"' "$T/fit2-$fit/history.jsonl" || fail "search with fitness $fit: no losses"
done

# A rank killed: the job ends (no hang); resumed under MPI, then in one
# process, it ends with the uninterrupted result.
kill_rank() { # kill_rank DIR HISTORY_LINES: start/resume 2 ranks, SIGKILL rank 1 after LINES generations
    $MPI2 "$GLORA" search "$T/search.yaml" --resume --output "$1" >/dev/null 2>&1 &
    mp=$!
    wait_until "[ \$(lines '$1/history.jsonl') -ge $2 ]" $mp 10
    for p in $(pgrep -P $mp); do
        [ "$(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | cut -d' ' -f2)" = search ] || continue
        kill -9 "$p" 2>/dev/null
    done
    n=0
    while kill -0 $mp 2>/dev/null && [ "$n" -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
    kill -0 $mp 2>/dev/null && { fail "mpirun still runs 60 s after a rank was killed"; kill -9 $mp; }
    wait $mp 2>/dev/null
}
kill_rank "$T/k" 2
[ -f "$T/k/checkpoint.json" ] || fail "search: no checkpoint before the kill"
expect 0 $MPI2 "$GLORA" search "$T/search.yaml" --resume --output "$T/k"
same "$T/s1" "$T/k" "search killed and resumed under MPI differs"
# A checkpoint written by 2 ranks, resumed by one process (and back).
kill_rank "$T/k1" 1
expect 0 "$GLORA" search "$T/search.yaml" --resume --output "$T/k1"
has "$T/err" 'resuming after generation'
same "$T/s1" "$T/k1" "2-rank checkpoint resumed in 1 process differs"

# ---- training (data parallel, gradients folded in shard order) ----
F=$FASHION
if [ -f "$F/train-images-idx3-ubyte.gz" ]; then
    expect 0 "$GLORA" init --set arch.dim=16 --set arch.depth=1 --set arch.heads=2 \
        --set arch.mlp_hidden=32 --seed 3 -o "$T/init.safetensors"
    TR="--train-images $F/t10k-images-idx3-ubyte.gz --train-labels $F/t10k-labels-idx1-ubyte.gz
        --set data.train.count=192 --val-images $F/t10k-images-idx3-ubyte.gz
        --val-labels $F/t10k-labels-idx1-ubyte.gz --set data.val.start=256 --set data.val.count=37
        --batch 32 --epochs 3 --rank 2 --set train.shards=3"
    # Outputs go to one path (it is part of the run's identity), moved after.
    mkdir -p "$T/t"
    expect 0 "$GLORA" supernet --model "$T/init.safetensors" $TR -o "$T/t/sn.safetensors"
    mv "$T/t" "$T/t1" && mkdir -p "$T/t"
    # (with the per-step timing on, which must not change a bit)
    expect 0 env GLORA_STEP_STATS="$T/st" $MPI2 "$GLORA" supernet --model "$T/init.safetensors" $TR -o "$T/t/sn.safetensors"
    mv "$T/t" "$T/t2" && mkdir -p "$T/t"
    same "$T/t1" "$T/t2" "supernet training: 2 ranks differ from 1 process"
    for r in 0 1; do # a header, then 3 epochs of 6 steps
        [ "$(grep -c "^$r	" "$T/st.$r" 2>/dev/null)" = 18 ] && head -1 "$T/st.$r" | grep -q '^rank	epoch	step' ||
            fail "GLORA_STEP_STATS: rank $r's file $T/st.$r is not 18 steps under a header"
    done
    # Stopped by 2 ranks after an epoch, resumed by one process.
    expect 0 $MPI2 "$GLORA" supernet --model "$T/init.safetensors" $TR --stop-after 1 -o "$T/t/sn.safetensors"
    expect 0 "$GLORA" supernet --model "$T/init.safetensors" $TR --resume -o "$T/t/sn.safetensors"
    has "$T/err" 'resumed after epoch 1'
    same "$T/t1" "$T/t" "supernet: 2-rank checkpoint resumed in 1 process differs"
    # eval: images spread over ranks, the same counts.
    E="--model $T/init.safetensors --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz --count 101 --json"
    expect 0 "$GLORA" eval $E; sed 's/"images_per_s.*//' "$T/out" >"$T/e1"
    expect 0 $MPI2 "$GLORA" eval $E; sed 's/"images_per_s.*//' "$T/out" >"$T/e2"
    cmp -s "$T/e1" "$T/e2" || fail "eval: 2 ranks differ: $(cat "$T/e1" "$T/e2")"

    # ---- a whole small glora run ----
    for d in r1 r2; do
        cat >"$T/$d.yaml" <<YAML
run:
  name: tiny
  dir: $T/$d
  stages: [pretrain, supernet, search, retrain, merge, eval]
  val: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 300, count: 50}
  test: {images: $F/t10k-images-idx3-ubyte.gz, labels: $F/t10k-labels-idx1-ubyte.gz, start: 0, count: 77}
pretrain:
  model: {backbone: $T/init.safetensors}
  data:
    train: {images: $F/t10k-images-idx3-ubyte.gz, labels: $F/t10k-labels-idx1-ubyte.gz, start: 5000, count: 128}
  train: {epochs: 1, batch: 32, lr: 1.0e-3, shards: 2}
  seed: 0
supernet:
  glora: {rank: 2}
  data:
    train: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 0, count: 96}
  train: {epochs: 1, batch: 32, shards: 3}
search:
  data: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 300, count: 50}
  search: {population: 5, parents: 2, mutations: 2, crossovers: 2, generations: 1, max_params: 2K}
retrain:
  data:
    train: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 0, count: 96}
  train: {epochs: 1, batch: 32, shards: 2}
YAML
    done
    sed -i "s|$T/r2|$T/r1|" "$T/r2.yaml" && mv "$T/r1" "$T/r1.keep" 2>/dev/null
    expect 0 "$GLORA" run "$T/r1.yaml"
    mv "$T/r1" "$T/r1.one"
    expect 0 $MPI2 "$GLORA" run "$T/r2.yaml"
    has "$T/out" 'GLoRA subnet, retrained'
    same "$T/r1.one" "$T/r1" "glora run: 2 ranks differ from 1 process"
    # A cross-validated search (search.cv_folds) on that run's supernet: the
    # folds' supernets train data-parallel and the search splits (candidate,
    # pooled image) pairs over the ranks; the same files as one process.
    for how in one mpi; do
        mpi=""; [ $how = mpi ] && mpi=$MPI2
        expect 0 $mpi "$GLORA" run "$T/r2.yaml" --name cv --set "backbone=$T/r1/tiny/backbone.safetensors" \
            --set "supernet=$T/r1/tiny/supernet.safetensors" --set 'stages=[search]' --set search.search.cv_folds=2
        [ $how = one ] && mv "$T/r1/cv" "$T/cv.one"
    done
    has "$T/out" '^best: cross-validated accuracy'
    [ -s "$T/r1/cv/cv/supernet-fold2.safetensors" ] || fail "cross-validated search: no fold supernet"
    same "$T/cv.one" "$T/r1/cv" "cross-validated search: 2 ranks differ from 1 process"
else
    echo "training and run parts skipped: $F missing (dataset-fashion-mnist)"
fi

# Errors: one message, every rank stops, exit status 1.
expect 1 $MPI2 "$GLORA" search "$T/search.yaml" --set data.images=$T/nope --output "$T/e"
has "$T/err" "^glora: error: .*nope"
[ "$(grep -c '^glora: error' "$T/err")" -eq 1 ] || fail "the error should be printed once: $(cat "$T/err")"
expect 1 $MPI2 "$GLORA" search "$T/search.yaml" --output "$T/s2"
has "$T/err" '^glora: error: .*already holds a search'
[ "$(grep -c '^glora: error' "$T/err")" -eq 1 ] || fail "the error should be printed once: $(cat "$T/err")"

finish
