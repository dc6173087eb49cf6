#!/bin/sh
# The options beyond the official algorithm (docs/config.md, "The search and
# the retrain"): search.fitness loglik / accuracy+loss (the same for 1 and 2
# threads, the losses in the checkpoint, resumed after a kill to the same
# files), search.fill_budget (every candidate near its budget),
# search.preset official (refuses a key set to another value), and
# retrain.early_stop (held-out scores in the metrics, the best epoch's
# weights in the output, a retrain stopped and resumed -- also one epoch
# ahead of its early-stop state -- ending with the same bits),
# retrain.average (0: the retrained weights, 1: the supernet's subnet
# exactly, 0.5, the default: every float the midpoint, rounded once; threads
# and a resume change nothing; the validation reported is the output's;
# the default does nothing with init=fresh, a value set is refused there,
# as is one outside [0, 1]), and a run
# without retraining whose merge folds the supernet's subnet.
. "$top_srcdir/tests/cli/common.sh"

search_fixture "$T/fx"

cat >"$T/search.yaml" <<EOF
model:
  backbone: $T/fx/backbone.safetensors
  adapter: $T/fx/supernet.safetensors
data:
  images: $T/fx/images-idx3-ubyte
  labels: $T/fx/labels-idx1-ubyte
  start: 100
  count: 100
search:
  population: 10
  parents: 3
  mutations: 3
  crossovers: 3
  generations: 4
  seed: 5
  max_params: 4K
  extra_budgets: [2K]
EOF
norm() {
    for f in checkpoint.json history.jsonl pareto.json best.json best-under-2K.json; do
        [ -f "$1/$f" ] || { echo "missing $f"; continue; }
        echo "== $f"
        sed -e 's/"seconds": [-0-9.e+]*/"seconds": 0/g' "$1/$f"
    done
}

# ---- search.fitness ----
for fit in loglik accuracy+loss; do
    expect 0 "$GLORA" search "$T/search.yaml" --threads 1 --set search.fitness=$fit --output "$T/f1-$fit"
    expect 0 "$GLORA" search "$T/search.yaml" --threads 2 --set search.fitness=$fit --output "$T/f2-$fit"
    norm "$T/f1-$fit" >"$T/a.txt"
    norm "$T/f2-$fit" >"$T/b.txt"
    cmp -s "$T/a.txt" "$T/b.txt" || { diff "$T/a.txt" "$T/b.txt" | head -5 >&2; fail "fitness $fit: 1 and 2 threads differ"; }
    grep -q "\"fitness\": \"$fit\"" "$T/f1-$fit/checkpoint.json" || fail "fitness $fit: not in the checkpoint's options"
    # Every candidate carries its mean loss after the encoding.
    n5=$(grep -Ec '^ *\[[0-9]+, [0-9]+, [0-9.e-]+, "[^"]*", [0-9.e+-]+\],?$' "$T/f1-$fit/checkpoint.json")
    [ "$n5" -ge 40 ] || fail "fitness $fit: $n5 candidates with a loss in the checkpoint"
    grep -q '"best_loss": ' "$T/f1-$fit/history.jsonl" || fail "fitness $fit: history lacks best_loss"
done
# The default is loglik: the same files as with the key given.
expect 0 "$GLORA" search "$T/search.yaml" --threads 1 --output "$T/def"
norm "$T/def" >"$T/b.txt"
norm "$T/f1-loglik" >"$T/a.txt"
cmp -s "$T/a.txt" "$T/b.txt" || { diff "$T/a.txt" "$T/b.txt" | head -5 >&2; fail "the default search is not loglik's"; }
# The fitnesses rank differently from accuracy (else they would not be worth a key).
expect 0 "$GLORA" search "$T/search.yaml" --threads 1 --set search.fitness=accuracy --output "$T/acc"
grep -q '"fitness"' "$T/acc/checkpoint.json" && fail "an accuracy search writes a fitness key"
cmp -s "$T/acc/best.json" "$T/f1-loglik/best.json" && cmp -s "$T/acc/best.json" "$T/f1-accuracy+loss/best.json" &&
    echo "note: all three fitnesses chose the same subnet on the fixture"
# Killed and resumed under loglik: the same files.
"$GLORA" search "$T/search.yaml" --threads 2 --set search.fitness=loglik --output "$T/k" >/dev/null 2>&1 &
pid=$!
wait_until '[ "$(lines "$T/k/history.jsonl")" -ge 2 ]' $pid 4
kill_now $pid
expect 0 "$GLORA" search "$T/search.yaml" --resume --threads 1 --set search.fitness=loglik --output "$T/k"
norm "$T/k" >"$T/k.txt"
norm "$T/f1-loglik" >"$T/a.txt"
cmp -s "$T/a.txt" "$T/k.txt" || { diff "$T/a.txt" "$T/k.txt" | head -5 >&2; fail "loglik search killed and resumed differs"; }
# A resume under another fitness is refused, naming the key.
expect 1 "$GLORA" search "$T/search.yaml" --resume --set search.fitness=accuracy --output "$T/k"
one_line; has "$T/err" 'search.fitness'
expect 1 "$GLORA" search "$T/search.yaml" --set search.fitness=likelihood --output "$T/bad"
one_line; has "$T/err" 'search.fitness'

# ---- search.fill_budget ----
expect 0 "$GLORA" search "$T/search.yaml" --threads 2 --set search.fill_budget=true --output "$T/fill"
# Each candidate within [0.9 x 4000, 4000] or [0.9 x 2000, 2000].
sed -n 's/^ *\[[0-9]*, \([0-9]*\), .*/\1/p' "$T/fill/checkpoint.json" >"$T/params"
[ "$(wc -l <"$T/params")" -ge 40 ] || fail "fill_budget: only $(wc -l <"$T/params") candidates"
awk '!(($1 >= 3600 && $1 <= 4000) || ($1 >= 1800 && $1 <= 2000)) { bad++ } END { exit bad > 0 }' "$T/params" ||
    fail "fill_budget: candidates under 90% of their budget: $(awk '$1 < 1800 || ($1 > 2000 && $1 < 3600)' "$T/params" | head -3)"
awk '$1 <= 2000 { s++ } $1 > 2000 { l++ } END { exit !(s > 0 && l > 0) }' "$T/params" ||
    fail "fill_budget: a budget tier found no candidate"
p=$(sed -n 's/.*"params":[[:space:]]*\([0-9]*\).*/\1/p' "$T/fill/best.json" | head -1)
[ -n "$p" ] && { [ "$p" -ge 3600 ] || [ "$p" -ge 1800 -a "$p" -le 2000 ]; } || fail "fill_budget: best.json has $p parameters"
expect 1 "$GLORA" search "$T/search.yaml" --set search.fill_budget=true --set search.max_params=0 --output "$T/bad"
one_line; has "$T/err" 'search.fill_budget'

# ---- search.preset official ----
expect 1 "$GLORA" search "$T/search.yaml" --set search.preset=official --output "$T/bad"
one_line; has "$T/err" "search.population.*official"
expect 0 "$GLORA" search --help
has "$T/out" 'search.preset'
has "$T/out" 'search.fitness'
has "$T/out" 'search.fill_budget'

# ---- retrain.early_stop ----
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
    echo "retrain part skipped: $FASHION missing"
    finish
fi
F="$FASHION"
expect 0 "$GLORA" init --set arch.dim=32 --set arch.depth=2 --set arch.heads=2 --set arch.mlp_hidden=64 \
    --seed 3 -o "$T/init.safetensors"
cat >"$T/run.yaml" <<YAML
run:
  name: tiny
  dir: $T/runs
  stages: [pretrain, supernet, search, eval]
  val: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 300, count: 100}
pretrain:
  model: {backbone: $T/init.safetensors}
  data:
    train: {images: $F/t10k-images-idx3-ubyte.gz, labels: $F/t10k-labels-idx1-ubyte.gz, start: 5000, count: 256}
  train: {epochs: 1, batch: 64, lr: 1.0e-3}
  seed: 0
supernet:
  glora: {rank: 2}
  data:
    train: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 0, count: 192}
  train: {epochs: 2, batch: 64}
search:
  data: {images: $F/train-images-idx3-ubyte.gz, labels: $F/train-labels-idx1-ubyte.gz, start: 300, count: 100}
  search: {population: 6, parents: 2, mutations: 2, crossovers: 2, generations: 1, max_params: 6K}
YAML
expect 0 "$GLORA" run "$T/run.yaml" --threads 2
R="$T/runs/tiny"
[ -f "$R/search/best.json" ] || fail "the run made no search"
RT="--model $R/backbone.safetensors --adapter $R/supernet.safetensors --subnet $R/search/best.json
    --train-images $F/train-images-idx3-ubyte.gz --train-labels $F/train-labels-idx1-ubyte.gz
    --set data.train.start=0 --set data.train.count=192 --batch 32 --epochs 4 --lr 3e-3
    --set retrain.early_stop=true --set retrain.holdout=64"
expect 0 "$GLORA" retrain $RT --threads 2 -o "$T/es/a.safetensors"
has "$T/err" 'early stop: kept epoch [0-4] of 4'
[ "$(grep -c '"holdout_accuracy": [0-9.]*, "holdout_loss": [0-9.e+-]*' "$T/es/a.safetensors.metrics.jsonl")" -eq 4 ] ||
    fail "the metrics lack the held-out scores: $(head -2 "$T/es/a.safetensors.metrics.jsonl")"
[ -f "$T/es/a.safetensors.early.safetensors" ] || fail "no early-stop state"
best=$(sed -n 's/.*kept epoch \([0-9]*\) of.*/\1/p' "$T/err")
# The output is the best epoch's weights: the same held-out accuracy as the
# state says (scored again by glora eval on the held-out images would need
# their indices; the state's tensors equal the output's instead).
expect 0 "$GLORA" eval --model "$R/backbone.safetensors" --adapter "$T/es/a.safetensors" \
    --images $F/train-images-idx3-ubyte.gz --labels $F/train-labels-idx1-ubyte.gz --start 300 --count 100 --json
has "$T/out" '"accuracy": '
# With threads 1: the same bits.
expect 0 "$GLORA" retrain $RT --threads 1 -o "$T/es1/a.safetensors"
cmp -s "$T/es/a.safetensors" "$T/es1/a.safetensors" || fail "early stop: 1 and 2 threads give different outputs"
# Stopped after each epoch and resumed: the same output.
for stop in 1 1 1 0; do
    expect 0 "$GLORA" retrain $RT --threads 2 --stop-after $stop --resume -o "$T/esr/a.safetensors"
done
cmp -s "$T/es/a.safetensors" "$T/esr/a.safetensors" || fail "early stop: stopped and resumed differs"
# Killed between the checkpoint and the state: the state one epoch behind.
expect 0 "$GLORA" retrain $RT --threads 2 --stop-after 1 -o "$T/esw/a.safetensors"
cp "$T/esw/a.safetensors.early.safetensors" "$T/esw/state1"
expect 0 "$GLORA" retrain $RT --threads 2 --stop-after 1 --resume -o "$T/esw/a.safetensors"
cp "$T/esw/state1" "$T/esw/a.safetensors.early.safetensors"
expect 0 "$GLORA" retrain $RT --threads 2 --resume -o "$T/esw/a.safetensors"
cmp -s "$T/es/a.safetensors" "$T/esw/a.safetensors" || fail "early stop: resumed one epoch ahead of its state differs"
# Two epochs behind is refused.
expect 0 "$GLORA" retrain $RT --threads 2 --stop-after 1 -o "$T/esx/a.safetensors"
cp "$T/esx/a.safetensors.early.safetensors" "$T/esx/state1"
expect 0 "$GLORA" retrain $RT --threads 2 --stop-after 2 --resume -o "$T/esx/a.safetensors"
cp "$T/esx/state1" "$T/esx/a.safetensors.early.safetensors"
expect 1 "$GLORA" retrain $RT --threads 2 --resume -o "$T/esx/a.safetensors"
one_line; has "$T/err" 'early-stop state'
# Without early stop the output differs (all 4 epochs, all 192 images) unless epoch 4 won.
expect 0 "$GLORA" retrain $RT --threads 2 --set retrain.early_stop=false -o "$T/plain/a.safetensors"
[ "$best" = 4 ] || ! cmp -s "$T/es/a.safetensors" "$T/plain/a.safetensors" || fail "early stop changed nothing"
# A holdout that leaves less than a batch is refused.
expect 1 "$GLORA" retrain $RT --set retrain.holdout=170 -o "$T/bad/a.safetensors"
one_line; has "$T/err" 'retrain.holdout'

# ---- retrain.average: the output is a * the supernet's weights + (1 - a) * the retrained ----
RA="$(echo "$RT" | sed 's/--set retrain.early_stop=true --set retrain.holdout=64//')"
# (0.5 is the default: "plain" above is the default retrain without early stopping)
expect 0 "$GLORA" retrain $RA --threads 2 --set retrain.average=0 -o "$T/av0/a.safetensors"
cmp -s "$T/plain/a.safetensors" "$T/av0/a.safetensors" && fail "retrain.average=0 gives the default's output"
expect 0 "$GLORA" retrain $RA --threads 2 --set retrain.average=1 -o "$T/av1/a.safetensors"
has "$T/err" 'retrain.average: the output is 1 x'
# a = 1 gives back the supernet's weights exactly: the same merged model.
expect 0 "$GLORA" merge --model "$R/backbone.safetensors" --adapter "$T/av1/a.safetensors" -o "$T/av1/m.safetensors"
expect 0 "$GLORA" merge --model "$R/backbone.safetensors" --adapter "$R/supernet.safetensors" \
    --subnet "$R/search/best.json" -o "$T/av1/sn.safetensors"
cmp -s "$T/av1/m.safetensors" "$T/av1/sn.safetensors" || fail "retrain.average=1 is not the supernet's subnet"
expect 0 "$GLORA" retrain $RA --threads 1 --set retrain.average=0.5 -o "$T/avh/a.safetensors"
# Every float of a = 0.5 is the midpoint of a = 0's and a = 1's, rounded
# once to float (od prints each float with the fewest digits that name it;
# the three files share one header, the tensors in the same places).
floats() {
    n=$(od -A n -t u8 -N 8 "$1" | tr -d ' ')
    od -A n -t f4 -v -j $((8 + n)) "$1" | tr -s ' ' '\n' | sed '/^$/d'
}
hdr=$(od -A n -t u8 -N 8 "$T/avh/a.safetensors" | tr -d ' ')
for f in av0 av1; do
    cmp -s -n $((8 + hdr)) "$T/avh/a.safetensors" "$T/$f/a.safetensors" || fail "the $f output's header differs"
done
floats "$T/av0/a.safetensors" >"$T/avh/f0"
floats "$T/av1/a.safetensors" >"$T/avh/f1"
floats "$T/avh/a.safetensors" >"$T/avh/fh"
paste "$T/avh/f0" "$T/avh/f1" "$T/avh/fh" | awk '
    function abs(v) { return v < 0 ? -v : v }
    { m = 0.5 * $1 + 0.5 * $2; d = abs($3 - m)
      # a float rounding of m, and the printed decimals are each within half
      # a float step of the float they name
      if (d > 6.0e-8 * (abs($1) / 2 + abs($2) / 2 + 2 * abs(m)) + 1e-38) { bad++; if (bad < 4) print "float " NR ": " $3 " is not the midpoint of " $1 " and " $2 }
      if ($1 != $2) moved++ }
    END { print NR " floats, " moved + 0 " moved by the retrain, " bad + 0 " off"; exit bad > 0 || moved == 0 || NR < 1000 }' \
    >"$T/avh/check" || fail "retrain.average=0.5: $(cat "$T/avh/check")"
# Threads and a stop and resume do not change it.
expect 0 "$GLORA" retrain $RA --threads 2 --set retrain.average=0.5 -o "$T/avh2/a.safetensors"
cmp -s "$T/avh/a.safetensors" "$T/avh2/a.safetensors" || fail "retrain.average: 1 and 2 threads differ"
cmp -s "$T/avh/a.safetensors" "$T/plain/a.safetensors" || fail "retrain.average: 0.5 is not the default"
# The validation accuracy reported is the output's (after the average).
V="--set data.val.images=$F/train-images-idx3-ubyte.gz --set data.val.labels=$F/train-labels-idx1-ubyte.gz
   --set data.val.start=300 --set data.val.count=100"
expect 0 "$GLORA" retrain $RA $V --threads 2 -o "$T/avv/a.safetensors"
said=$(sed -n "s/^wrote .*validation \([0-9.]*\)%)$/\1/p" "$T/err")
expect 0 "$GLORA" eval --model "$R/backbone.safetensors" --adapter "$T/avv/a.safetensors" \
    --images $F/train-images-idx3-ubyte.gz --labels $F/train-labels-idx1-ubyte.gz --start 300 --count 100 --json
got=$(sed 's/.*"accuracy": \([0-9.]*\).*/\1/' "$T/out")
[ -n "$said" ] && awk -v a="$said" -v b="$got" 'BEGIN { exit !(a / 100 - b < 1e-9 && b - a / 100 < 1e-9) }' ||
    fail "retrain.average: the retrain reported validation '$said'%, the output scores $got"
for stop in 2 0; do
    expect 0 "$GLORA" retrain $RA --threads 2 --set retrain.average=0.5 --stop-after $stop --resume -o "$T/avr/a.safetensors"
done
cmp -s "$T/avh/a.safetensors" "$T/avr/a.safetensors" || fail "retrain.average: stopped and resumed differs"
expect 0 "$GLORA" retrain $RA --init fresh -o "$T/avf0/a.safetensors" # the default: nothing to average
has "$T/err" "^wrote"
grep -q 'retrain.average' "$T/err" && fail "a fresh retrain averaged: $(cat "$T/err")"
expect 1 "$GLORA" retrain $RA --set retrain.average=0.5 --init fresh -o "$T/avf/a.safetensors"
one_line; has "$T/err" 'retrain.average.*needs retrain.init=inherit'
expect 1 "$GLORA" retrain $RA --set retrain.average=1.5 -o "$T/avf/a.safetensors"
one_line; has "$T/err" 'retrain.average'

# ---- no retraining: merge folds the supernet's subnet ----
# (the same sections: a finished stage whose config changed is refused)
sed -e 's/^  stages: .*/  stages: [supernet, search, merge, eval]/' \
    -e 's/^  name: tiny$/&\n  label: GLoRA without retraining/' "$T/run.yaml" >"$T/noretrain.yaml"
grep -q 'stages: \[supernet, search, merge, eval\]' "$T/noretrain.yaml" || fail "noretrain.yaml: $(head -5 "$T/noretrain.yaml")"
expect 0 "$GLORA" run "$T/noretrain.yaml"
[ -f "$R/merged.safetensors" ] || fail "no merged model without retraining"
[ -f "$R/adapter.safetensors" ] && fail "a run without retrain made an adapter"
a=$(grep '"method": "GLoRA subnet, supernet weights"' "$R/summary.json" | sed 's/.*"val_accuracy": \([0-9.]*\).*/\1/')
b=$(grep '"method": "merged into plain ViT"' "$R/summary.json" | sed 's/.*"val_accuracy": \([0-9.]*\).*/\1/')
[ -n "$a" ] && [ "$a" = "$b" ] || fail "the merged supernet subnet scores $b on val, the supernet under the subnet $a"
# (run.label does not rename the supernet's row, which tables look up by name)

finish
