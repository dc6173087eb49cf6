#!/bin/sh
# scripts/leak-tau against hand-computed Kendall taus, and scripts/leak-analysis
# end to end on a small random supernet and search: the specs it writes from
# the checkpoint's encodings score, on the supernet's weights, exactly the
# accuracy the search gave them; its refusals of overlapping splits.
. "$top_srcdir/tests/cli/common.sh"
TAU="$top_srcdir/scripts/leak-tau"
LEAK="$top_srcdir/scripts/leak-analysis"

# x 1..5 against y 3 1 2 5 4: of the 10 pairs, (1,2) (1,3) (4,5) are
# discordant, the other 7 concordant: tau = (7 - 3) / 10; S = 4 and
# var S = 5*4*15/18 = 16.667, z = 4 / 4.0825 = 0.980, p = erfc(0.980/sqrt 2).
printf '1 3\n2 1\n3 2\n4 5\n5 4\n' >"$T/a"
expect 0 "$TAU" "$T/a"
has "$T/out" '^n=5 concordant=7 discordant=3 ties_x=0 ties_y=0 tau_b=0\.4000 z=0\.980 p=0\.327'
# Ties: x 1 1 2 3, y 1 2 2 3: C = 4, D = 0, one pair tied on x, one on y:
# tau_b = 4 / sqrt((6 - 1)(6 - 1)) = 0.8 (scipy.stats.kendalltau's value).
printf '# comment\n1 1\n1 2\n\n2 2\n3 3\n' | "$TAU" >"$T/out" 2>"$T/err" || fail "leak-tau on stdin failed"
has "$T/out" 'concordant=4 discordant=0 ties_x=1 ties_y=1 tau_b=0\.8000 z=1\.530'
# Reversed order: tau -1; a constant column: nan.
printf '1 4\n2 3\n3 2\n4 1\n' | "$TAU" >"$T/out" 2>&1; has "$T/out" 'tau_b=-1\.0000'
printf '1 4\n2 4\n3 4\n' | "$TAU" >"$T/out" 2>&1; has "$T/out" 'tau_b=nan'
printf '1 2\n3 x\n' >"$T/bad"
expect 2 "$TAU" "$T/bad"; has "$T/err" "^leak-tau: error: $T/bad: line 2: expected two numbers"
printf '1 2\n' >"$T/one"
expect 2 "$TAU" "$T/one"; has "$T/err" 'need at least 2'

# A finished run in the shape glora run leaves: config.yaml, supernet, search/.
search_fixture "$T/fx"
mkdir -p "$T/run"
cp "$T/fx/supernet.safetensors" "$T/run/"
cat >"$T/run/config.yaml" <<EOF
run:
  name: run
  dir: $T
  backbone: $T/fx/backbone.safetensors   # a comment
  seed: 5
  val:
    images: $T/fx/images-idx3-ubyte
    labels: $T/fx/labels-idx1-ubyte
    start: 100
    count: 100
  test: {images: $T/fx/images-idx3-ubyte, labels: $T/fx/labels-idx1-ubyte, start: 250, count: 50}
retrain:
  retrain: {init: inherit}
  data:
    train: {images: $T/fx/images-idx3-ubyte, labels: $T/fx/labels-idx1-ubyte, start: 0, count: 100}
  train: {epochs: 2, batch: 20, lr: 1.0e-3}
  seed: 5
EOF
cat >"$T/search.yaml" <<EOF
model: {backbone: $T/fx/backbone.safetensors, adapter: $T/run/supernet.safetensors}
data: {images: $T/fx/images-idx3-ubyte, labels: $T/fx/labels-idx1-ubyte, start: 100, count: 100}
output: {dir: $T/run/search}
search: {population: 8, parents: 3, mutations: 3, crossovers: 3, generations: 2, seed: 3, max_params: 4K, extra_budgets: [2K]}
EOF
expect 0 "$GLORA" search "$T/search.yaml" --threads 1

L() { "$LEAK" "$T/run" --glora "$GLORA" --threads 1 "$@"; }
expect 0 L --out "$T/leak" --top 2 --pareto 1 --random 2 --fresh-start 200 --fresh-count 50
[ "$(grep -c '^| top0[1-2] (gen [0-9]*) | ' "$T/leak/tables.md")" -eq 2 ] || fail "leak-analysis: not 2 top rows"
[ "$(grep -c '^| par01 (gen [0-9]*) | ' "$T/leak/tables.md")" -eq 1 ] || fail "leak-analysis: no pareto row"
[ "$(grep -c '^| rand0[1-2] (gen 0) | ' "$T/leak/tables.md")" -eq 2 ] || fail "leak-analysis: not 2 random rows"
has "$T/leak/tables.md" '^\| inherited val \| trained val \| all \| n=5 concordant='
has "$T/leak/tables.md" '^\| winner-best \| '
has "$T/leak/tables.md" '^\| winner-best-under-2K \| '
has "$T/leak/tables.md" '^\| run best \| 4000 \| '
has "$T/leak/tables.md" 'retrained alone 2 epochs .* seed 5'
[ "$(ls "$T/leak/adapters/"*.safetensors | wc -l)" -eq 5 ] || fail "leak-analysis: not 5 subnets retrained"
# The best candidate is best.json, and every spec written from an encoding
# scores on the supernet's weights what the search scored it.
tr -d ' \t\n' <"$T/run/search/best.json" | sed 's/.*"layers"://' >"$T/l1"
tr -d ' \t\n' <"$T/leak/specs/top01.json" | sed 's/.*"layers"://' >"$T/l2"
cmp -s "$T/l1" "$T/l2" ||
    fail "leak-analysis: top01's layers are not best.json's"
# (tables.md: | name (gen G) | params | search's val | inherited val | ...)
awk -F' *[|] *' '/^[|] (top|par|rand)[0-9]/ { n++; if ($4 != $5) { print "FAIL: leak-analysis: " $2 " scores " $5 " on val, the search gave it " $4; bad = 1 } }
    END { if (n != 5) print "FAIL: leak-analysis: " n " subnet rows, expected 5"; exit bad || n != 5 }' "$T/leak/tables.md" >&2 ||
    fail "leak-analysis: inherited val scores differ from the search's"
# A second run reuses what exists: no new score lines, no retraining.
n=$(wc -l <"$T/leak/scores.tsv")
expect 0 L --out "$T/leak" --top 2 --pareto 1 --random 2 --fresh-start 200 --fresh-count 50
[ "$(wc -l <"$T/leak/scores.tsv")" -eq "$n" ] || fail "leak-analysis: a rerun scored again"
# Random draws only (nothing chosen before them), select part only: no retraining.
expect 0 L --out "$T/leak3" --only select --top 0 --pareto 0 --random 2 --fresh-start 200 --fresh-count 50
[ "$(cut -f1 "$T/leak3/chosen.tsv" | tr '\n' ' ')" = "rand01 rand02 " ] || fail "leak-analysis --top 0 --pareto 0: $(cut -f1 "$T/leak3/chosen.tsv")"
has "$T/leak3/tables.md" '^\| mean of the 2 random \| '
[ ! -e "$T/leak3/adapters/"*.safetensors ] || fail "leak-analysis --only select retrained"
# The fresh split must not share examples with val or train.
expect 1 L --out "$T/leak2" --fresh-start 150 --fresh-count 100
has "$T/err" 'fresh split \(150\+100\) overlaps val \(100\+100\)'
expect 1 L --out "$T/leak2" --fresh-start 50 --fresh-count 20
has "$T/err" 'overlaps train \(0\+100\)'
expect 1 L --out "$T/leak2" --only tau,speed
has "$T/err" "--only 'speed'"
# scripts/suite-compare: a variant's runs against the default's, rows only
# where every directory finished, means by hand: (70+72)/2 = 71.00 etc.
CMP="$top_srcdir/scripts/suite-compare"
summary() { # DIR RUN ROWS...: a summary.json with these "method|params|test" rows
    local d="$1/$2"; shift 2; mkdir -p "$d"
    { echo '{ "rows": ['; for r in "$@"; do
        IFS='|' read -r m p a <<EOR
$r
EOR
        echo "    {\"method\": \"$m\", \"params\": $p, \"val_accuracy\": 0.5, \"test_accuracy\": $a},"
      done; echo '] }'; } >"$d/summary.json"
}
for t in fashion-1k mnist-1k; do
    summary "$T/base" "suite-$t-lora4-s42" "LoRA r=4|49152|0.700000"
    summary "$T/base" "suite-$t-full-s42" "full fine-tuning|1198592|0.720000"
done
summary "$T/base" suite-fashion-1k-glora-s42 "GLoRA subnet, supernet weights|20000|0.700000" "GLoRA searched, budget 49K|20000|0.690000"
summary "$T/base" suite-mnist-1k-glora-s42 "GLoRA subnet, supernet weights|30000|0.720000" "GLoRA searched, budget 49K|30000|0.710000"
summary "$T/var" suite-fashion-1k-glora-s42 "GLoRA subnet, supernet weights|40000|0.740000" "GLoRA searched, budget 49K|40000|0.750000"
expect 0 "$CMP" "$T/base" "$T/var"
has "$T/out" '^\| fashion-1k \| 42 \| 70\.00 \| 72\.00 \| 70\.00 \| 69\.00 \| 20000 \| 74\.00 \| 75\.00 \| 40000 \|$'
grep -q 'mnist-1k' "$T/out" && fail "suite-compare: a row that the variant did not finish"
has "$T/out" '^\| mean of 1 \| \| 70\.00 \| 72\.00 \| 70\.00 \| 69\.00 \| 20000 \| 74\.00 \| 75\.00 \| 40000 \|$'
summary "$T/var" suite-mnist-1k-glora-s42 "GLoRA subnet, supernet weights|30000|0.760000" "GLoRA searched, budget 49K|30000|0.770000"
expect 0 "$CMP" "$T/base" "$T/var"
has "$T/out" '^\| mean of 2 \| \| 70\.00 \| 72\.00 \| 71\.00 \| 70\.00 \| 25000 \| 75\.00 \| 76\.00 \| 35000 \|$'
expect 1 "$CMP" "$T/base" "$T/nope"
has "$T/err" "suite-compare: error: '$T/nope': no such directory"
expect 0 "$CMP" --help
has "$T/out" 'scripts/suite-compare BASE VARIANT'
finish
