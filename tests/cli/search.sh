#!/bin/sh
# glora search end to end on a small random supernet: outputs, the same
# results for 1 and 2 threads, SIGKILL at several points + --resume giving
# exactly the uninterrupted result, refusal of a changed config, and the
# one-line errors of invalid search spaces and budgets.
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
output:
  dir: $T/ref
search:
  population: 12
  parents: 4
  mutations: 4
  crossovers: 4
  generations: 6
  seed: 3
  max_params: 4K
  extra_budgets: [2K, 1K]
  space:
    ranks: [2, 1]
    override:
      fc2:
        C: [none, vector]
      block1:
        D: [none]
      block0_qkv:
        E: [vector]
EOF

# The files of a search with the wall-clock seconds blanked out.
norm() {
    for f in checkpoint.json history.jsonl pareto.json best.json best-under-2K.json \
             best-under-1K.json config.yaml; do
        [ -f "$1/$f" ] || { echo "missing $f"; continue; }
        echo "== $f"
        sed -e 's/"seconds": [-0-9.e+]*/"seconds": 0/g' -e "s|$1|DIR|g" "$1/$f"
    done
}

expect 0 "$GLORA" search "$T/search.yaml" --threads 1
has "$T/out" '^best: val accuracy'
has "$T/out" 'under 2K'
has "$T/err" 'generation 6/6'
[ "$(wc -l <"$T/ref/history.jsonl")" -eq 7 ] || fail "history.jsonl should have 7 lines"
grep -Eq '"format":[[:space:]]*"glora-subnet/1"' "$T/ref/best.json" || fail "best.json is not a subnet spec"
grep -Eq '"val_accuracy":[[:space:]]*0\.[0-9]' "$T/ref/best.json" || fail "best.json lacks val_accuracy"
grep -q '"C": "lora_2"' "$T/ref/pareto.json" || grep -q '"C": "lora_1"' "$T/ref/pareto.json" ||
    grep -q '"C": "vector"' "$T/ref/pareto.json" || fail "pareto.json lacks per-layer choices"
grep -Eq 'blocks\.[0-9]\.mlp\.fc2": \{"A": "[a-z_0-9]*", "B": "[a-z_0-9]*", "C": "(lora|scalar)' \
    "$T/ref/pareto.json" && fail "the fc2 override of C was not applied"
# The space of each layer: official at rank 2 with ranks [2, 1], then kinds,
# blocks and single layers, the most specific last.
sp() { grep -o "\"name\": \"$1\", [^}]*" "$T/ref/checkpoint.json" | sed 's/.*"space": //'; }
[ "$(sp blocks.0.attn.qkv)" = '"A=L2,L1,V,S,N B=L2,L1,V,S,N C=L2,L1,V,N D=S,V,N E=V"' ] ||
    fail "space of blocks.0.attn.qkv: $(sp blocks.0.attn.qkv)"
[ "$(sp blocks.1.mlp.fc2)" = '"A=L2,L1,V,S,N B=L2,L1,V,S,N C=N,V D=N E=S,V,N"' ] ||
    fail "space of blocks.1.mlp.fc2: $(sp blocks.1.mlp.fc2)"
[ "$(sp blocks.2.attn.proj)" = '"A=L2,L1,V,S,N B=L2,L1,V,S,N C=L2,L1,V,N D=S,V,N E=S,V,N"' ] ||
    fail "space of blocks.2.attn.proj: $(sp blocks.2.attn.proj)"
norm "$T/ref" >"$T/ref.txt"

# Same results with 2 threads.
expect 0 "$GLORA" search "$T/search.yaml" --threads 2 --output "$T/two"
norm "$T/two" >"$T/two.txt"
diff "$T/ref.txt" "$T/two.txt" >/dev/null || {
    diff "$T/ref.txt" "$T/two.txt" | head -5 >&2; fail "1 and 2 threads give different results"; }

# An existing search is not overwritten without --resume.
expect 1 "$GLORA" search "$T/search.yaml"
one_line; has "$T/err" 'already holds a search'

# SIGKILL at several points, each time resumed, then run to the end.
kill_when() { # kill_when LINES: start/resume, SIGKILL once history.jsonl has LINES lines (or at once)
    "$GLORA" search "$T/search.yaml" --resume --threads 2 --output "$T/k" >/dev/null 2>&1 &
    pid=$!
    wait_until "[ \$(lines \"\$T/k/history.jsonl\") -ge $1 ]" $pid 4
    kill_now $pid
}
kill_when 0
kill_when 1
kill_when 2
kill_when 4
kill_when 6
# A temporary a kill may leave in the middle of a write is cleaned up.
echo partial >"$T/k/checkpoint.json.tmp.AbC123"
expect 0 "$GLORA" search "$T/search.yaml" --resume --threads 1 --output "$T/k"
norm "$T/k" >"$T/k.txt"
diff "$T/ref.txt" "$T/k.txt" >/dev/null || {
    diff "$T/ref.txt" "$T/k.txt" | head -5 >&2; fail "killed and resumed search differs"; }
[ -e "$T/k/checkpoint.json.tmp.AbC123" ] && fail "a stale temporary was left in the output directory"
# Resuming a finished search changes nothing.
expect 0 "$GLORA" search "$T/search.yaml" --resume
has "$T/err" 'resuming after generation 6'
norm "$T/ref" >"$T/ref2.txt"
cmp -s "$T/ref.txt" "$T/ref2.txt" || fail "resuming a finished search changed its files"

# A changed config or supernet is refused, saying what changed.
expect 1 "$GLORA" search "$T/search.yaml" --resume --set search.population=20
one_line; has "$T/err" 'search.population'
expect 1 "$GLORA" search "$T/search.yaml" --resume --set data.start=0
one_line; has "$T/err" 'data.start'
"$MK" "$T/fx2" 7 || exit 1
expect 1 "$GLORA" search "$T/search.yaml" --resume --set "model.adapter=$T/fx2/supernet.safetensors"
one_line; has "$T/err" 'model.adapter'
# The same path with other contents: the supernet's sha256 catches it.
cp "$T/fx/supernet.safetensors" "$T/fx/supernet.orig"
cp "$T/fx2/supernet.safetensors" "$T/fx/supernet.safetensors"
expect 1 "$GLORA" search "$T/search.yaml" --resume
one_line; has "$T/err" 'supernet changed'
cp "$T/fx/supernet.orig" "$T/fx/supernet.safetensors"
# The same data path with other pixels in the split: the data's sha256 catches it.
cp "$T/fx/images-idx3-ubyte" "$T/fx/images.orig"
printf '\377\377\377\377' | dd of="$T/fx/images-idx3-ubyte" bs=1 seek=$((16 + 150 * 784)) conv=notrunc 2>/dev/null
expect 1 "$GLORA" search "$T/search.yaml" --resume
one_line; has "$T/err" 'validation data changed'
cp "$T/fx/images.orig" "$T/fx/images-idx3-ubyte"

# Invalid spaces and budgets: one line naming the key.
for bad in 'search.space.A=[lora_4]:search.space.A' \
           'search.space.A=[diagonal]:search.space.A' \
           'search.space.C=[scalar]:search.space.C' \
           'search.space.D=[]:search.space.D' \
           'search.space.E=[lora_1]:search.space.E' \
           'search.space.ranks=[3]:search.space.ranks' \
           'search.space.override.fc3.A=[none]:fc3' \
           'search.space.override.block9.A=[none]:block9' \
           'search.max_params=12Q:search.max_params' \
           'search.parents=99:search.parents'; do
    set_=${bad%:*}; key=${bad##*:}
    expect 1 "$GLORA" search "$T/search.yaml" --output "$T/bad" --set "$set_"
    one_line; has "$T/err" "$key"
done
# A budget nothing fits into.
expect 1 "$GLORA" search "$T/search.yaml" --output "$T/bad2" --set search.min_params=10M \
    --set search.max_params=11M
one_line; has "$T/err" 'search.m(in|ax)_params'
# No supernet.
expect 1 "$GLORA" search "$T/search.yaml" --output "$T/bad3" --set model.adapter=
one_line; has "$T/err" 'model.adapter'

# The benchmark driver, glora side only, on the fixture's supernet (seconds).
expect 0 "$GLORA" bench search --no-peer --candidates 2 --warmup 0 --repeat 1 --threads 1 \
    --backbone "$T/fx/backbone.safetensors" --supernet "$T/fx/supernet.safetensors" --json
has "$T/out" '"impl": "glora", "images_per_s": [0-9]'
expect 2 "$GLORA" bench search --backbone "$T/fx/backbone.safetensors"
one_line; has "$T/err" 'go together'

finish
