#!/bin/sh
# The whole pipeline (glora run) on a few hundred real images with a tiny
# model: every stage's output exists, loads, and is consistent -- the merged
# model scores exactly what the retrained adapter scores, also on the shifted
# copies of the test split (run.test_shifts), a second run skips every stage,
# a finished stage whose config changed is refused, and the report draws the
# search.
. "$top_srcdir/tests/cli/common.sh"
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
    echo "skip: $FASHION missing (scripts/install-deps installs dataset-fashion-mnist)"
    exit 77
fi
F="$FASHION"
expect 0 "$GLORA" init --set arch.dim=32 --set arch.depth=2 --set arch.heads=2 --set arch.mlp_hidden=64 \
    --seed 3 -o "$T/init.safetensors"
cat >"$T/run.yaml" <<YAML
run:
  name: tiny
  dir: $T/runs
  stages: [pretrain, supernet, search, retrain, merge, eval]
  val: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 300, count: 100}
  test: {images: $F/t10k-images-idx3-ubyte.gz, labels: $F/t10k-labels-idx1-ubyte.gz, start: 0, count: 300}
  test_shifts: [inverted, blurred]
pretrain:
  model: {backbone: $T/init.safetensors}
  data:
    train: {images: $F/t10k-images-idx3-ubyte.gz, labels: $F/t10k-labels-idx1-ubyte.gz, start: 5000, count: 512}
  train: {epochs: 2, batch: 64, lr: 1.0e-3, weight_decay: 0.05}
  seed: 0
supernet:
  glora: {rank: 2}
  data:
    train: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 0, count: 256}
  train: {epochs: 2, batch: 64}
search:
  data: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 300, count: 100}
  search: {population: 8, parents: 3, mutations: 3, crossovers: 3, generations: 2, max_params: 6K, extra_budgets: [3K]}
retrain:
  data:
    train: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 0, count: 256}
  train: {epochs: 2, batch: 64}
YAML
expect 0 "$GLORA" run "$T/run.yaml" --threads 2
R="$T/runs/tiny"
for f in backbone.safetensors supernet.safetensors search/best.json search/pareto.json search/history.jsonl \
         search/checkpoint.json search/best-under-3K.json adapter.safetensors merged.safetensors summary.json config.yaml; do
    [ -s "$R/$f" ] || fail "run left no $f"
done
has "$T/out" 'GLoRA subnet, retrained'
has "$T/out" 'test acc +inverted +blurred'
# Each model file loads; the spec fits the supernet and its budget.
expect 0 "$GLORA" info "$R/backbone.safetensors" --adapter "$R/supernet.safetensors"; has "$T/out" 'rank 2'
expect 0 "$GLORA" info "$R/merged.safetensors"; has "$T/out" 'kind merged'
params=$(sed -n 's/.*"params":[[:space:]]*\([0-9]*\).*/\1/p' "$R/search/best.json" | head -1)
[ -n "$params" ] && [ "$params" -le 6000 ] || fail "best.json params '$params' not within the 6K budget"
# The merged plain ViT scores exactly what the adapter scores, on the same images.
E="--images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz --count 300 --json"
expect 0 "$GLORA" eval --model "$R/backbone.safetensors" --adapter "$R/adapter.safetensors" $E
a=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
expect 0 "$GLORA" eval --model "$R/merged.safetensors" $E
b=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "adapter got $a right, the merged model $b"
# And the summary says the same.
grep -q '"method": "GLoRA subnet, retrained"' "$R/summary.json" || fail "summary lacks the retrained row"
# Each final model is scored on the shifted copies as glora eval scores them.
grep -q '"shift_accuracy": {"inverted": [0-9.]*, "blurred": [0-9.]*}' "$R/summary.json" ||
    fail "summary lacks the accuracies on the shifted copies"
for shift in inverted blurred; do
    expect 0 "$GLORA" eval --model "$R/merged.safetensors" $E --set data.shift=$shift
    a=$(sed 's/.*"accuracy": \([0-9.]*\).*/\1/' "$T/out")
    for row in 'GLoRA subnet, retrained' 'merged into plain ViT'; do
        b=$(grep "\"method\": \"$row\"" "$R/summary.json" | sed "s/.*\"$shift\": \([0-9.]*\).*/\1/")
        [ -n "$a" ] && [ "$a" = "$b" ] || fail "glora eval gives $a on the $shift copy, the summary's '$row' $b"
    done
done
# Shifts the run cannot evaluate are refused before any stage runs.
for bad in "[clean]:found 'clean'" '[noisy, noisy]:twice' "[sepia]:found 'sepia'"; do
    expect 1 "$GLORA" run "$T/run.yaml" --name bad --set "test_shifts=${bad%%:*}"
    one_line; has "$T/err" "test_shifts.*${bad#*:}"
done
printf 'run:\n  name: notest\n  dir: %s/runs\n  stages: [eval]\n  test_shifts: [rotated]\n' "$T" >"$T/notest.yaml"
expect 1 "$GLORA" run "$T/notest.yaml"
one_line; has "$T/err" "test_shifts.*needs a test split"
[ ! -e "$T/runs/bad" ] && [ ! -e "$T/runs/notest" ] || fail "a refused run made its directory"
# The supernet under best.json scores on val what the search said.
expect 0 "$GLORA" eval --model "$R/backbone.safetensors" --adapter "$R/supernet.safetensors" \
    --subnet "$R/search/best.json" --images "$F/train-images-idx3-ubyte.gz" \
    --labels "$F/train-labels-idx1-ubyte.gz" --start 300 --count 100 --json
acc=$(sed 's/.*"accuracy": \([0-9.]*\).*/\1/' "$T/out")
val=$(sed -n 's/.*"val_accuracy":[[:space:]]*\([0-9.]*\).*/\1/p' "$R/search/best.json")
awk -v a="$acc" -v b="$val" 'BEGIN { exit !(a - b < 1e-9 && b - a < 1e-9) }' || fail "best.json says $val, eval gives $acc"
# A second run skips every stage and prints the same table.
cp "$T/out" "$T/first"
expect 0 "$GLORA" run "$T/run.yaml"
has "$T/err" 'supernet: done before'
has "$T/err" 'retrain: done before'
# run.json records the identity of each finished stage's config; a finished
# stage whose config changed is refused, not skipped (its old results would
# be reported as the new config's), before anything runs or config.yaml is
# replaced. Keys that do not change what a stage computes (train.val_every)
# may change. The run.json of earlier versions records no identities: its
# stages are skipped as before.
for st in supernet search retrain merge; do
    grep -q "\"$st\": {\"seconds\": [0-9.]*, \"config\": \"[0-9a-f]\{64\}\"}" "$R/run.json" ||
        fail "run.json records no config identity of the $st stage: $(cat "$R/run.json")"
done
cp "$R/run.json" "$T/state.before"
expect 1 "$GLORA" run "$T/run.yaml" --set retrain.seed=7
has "$T/err" "its retrain stage finished with another config than this one"
has "$T/err" "another run.name"
sed 's/max_params: 6K/max_params: 5K/' "$T/run.yaml" >"$T/run5k.yaml"
expect 1 "$GLORA" run "$T/run5k.yaml"
has "$T/err" "its search stage finished with another config"
cmp -s "$T/run.yaml" "$R/config.yaml" || fail "a refused run replaced config.yaml"
cmp -s "$T/state.before" "$R/run.json" || fail "a refused run changed run.json"
expect 0 "$GLORA" run "$T/run.yaml" --set retrain.train.val_every=5
has "$T/err" 'retrain: done before'
# The run's own files count from its directory: moved elsewhere, it is the same run.
mkdir -p "$T/moved" && cp -r "$R" "$T/moved/"
expect 0 "$GLORA" run "$T/run.yaml" --dir "$T/moved"
has "$T/err" 'merge: done before'
sed 's/, "config": "[0-9a-f]*"//g' "$T/state.before" >"$R/run.json"
expect 0 "$GLORA" run "$T/run.yaml" --set retrain.seed=7
has "$T/err" 'retrain: done before'
cp "$T/state.before" "$R/run.json"
sed 's/"config": "\([0-9a-f]*\)"/"config": "\1x"/' "$T/state.before" >"$R/run.json"
expect 1 "$GLORA" run "$T/run.yaml"; one_line; has "$T/err" "invalid config identity"
cp "$T/state.before" "$R/run.json"
# A run name is text, not JSON: summary.json escapes it.
cat >"$T/quote.yaml" <<YAML
run:
  name: 'a"b\\c'
  dir: $T/runs
  backbone: $R/backbone.safetensors
  stages: [eval]
YAML
expect 0 "$GLORA" run "$T/quote.yaml"
grep -qF '"name": "a\"b\\c"' "$T/runs/a\"b\\c/summary.json" || fail "summary.json does not escape the run name"
# A stage resumed over two invocations: run.stop_after stops the supernet
# after 3 of its 4 epochs (the run stops there, the stage unfinished, its
# seconds so far in run.json); the next invocation finishes it. The summary's
# seconds add up both invocations: at least the seconds the first one saved,
# and at least the training epochs of both (the metrics file's seconds).
for stop in 3 0; do
    cat >"$T/twice.yaml" <<YAML
run:
  name: twice
  dir: $T/runs
  backbone: $R/backbone.safetensors
  stages: [supernet, eval]
supernet:
  glora: {rank: 2}
  data:
    train: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 0, count: 1024}
  train: {epochs: 4, batch: 32}
  run: {stop_after: $stop}
YAML
    expect 0 "$GLORA" run "$T/twice.yaml" --threads 1
    if [ $stop = 3 ]; then
        has "$T/err" 'stopped after epoch 3 of 4'
        has "$T/err" 'run: stopped by run.stop_after'
        [ ! -e "$T/runs/twice/summary.json" ] || fail "a stopped run evaluated"
        s1=$(sed -n 's/.*"unfinished": {"supernet": {"seconds": \([0-9.]*\)}.*/\1/p' "$T/runs/twice/run.json")
        [ -n "$s1" ] || fail "run.json keeps no seconds of the unfinished stage: $(cat "$T/runs/twice/run.json")"
    fi
done
has "$T/err" 'resumed after epoch 3'
grep -q '"unfinished"' "$T/runs/twice/run.json" && fail "run.json still lists a finished stage as unfinished"
total=$(sed -n 's/.*"supernet": {"seconds": \([0-9.]*\), "skipped": false}.*/\1/p' "$T/runs/twice/summary.json")
epochs=$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' "$T/runs/twice/supernet.safetensors.metrics.jsonl" |
         awk '{ s += $1; n++ } END { if (n == 4) printf "%.3f", s }')
[ -n "$total" ] && [ -n "$epochs" ] || fail "no stage seconds ('$total') or not 4 epochs of metrics ('$epochs')"
awk -v t="$total" -v a="$s1" -v e="$epochs" 'BEGIN { exit !(t + 0.05 >= a && t + 0.05 >= e && t > a) }' ||
    fail "summary says the supernet took ${total}s; the first invocation alone saved ${s1}s, the 4 epochs took ${epochs}s"
# --set STAGE.KEY=VALUE reaches that stage's section (here 4 epochs -> 1);
# a key the stage does not have is refused before any stage runs.
sed 's/name: twice/name: once/; s/stop_after: 0/stop_after: 0/' "$T/twice.yaml" >"$T/once.yaml"
expect 0 "$GLORA" run "$T/once.yaml" --threads 1 --set supernet.train.epochs=1 --set=search.search.seed=3
[ "$(wc -l <"$T/runs/once/supernet.safetensors.metrics.jsonl")" -eq 1 ] ||
    fail "--set supernet.train.epochs=1 did not reach the supernet: $(cat "$T/runs/once/supernet.safetensors.metrics.jsonl")"
expect 1 "$GLORA" run "$T/once.yaml" --set supernet.train.epoch=1; one_line; has "$T/err" "train.epoch"
# glora run reads its own section of one config: without a config it asks
# for one; --section is refused.
expect 2 "$GLORA" run; one_line; has "$T/err" 'which pipeline\? give a YAML config'
expect 2 "$GLORA" run "$T/run.yaml" --section pretrain; one_line; has "$T/err" "reads its own 'run' section"
# The report draws the search.
expect 0 "$GLORA" report "$R"
grep -q '<svg' "$R/report.svg" && grep -q 'Pareto front' "$R/report.svg" || fail "report.svg is not the drawing"
finish
