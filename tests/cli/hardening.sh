#!/bin/sh
# Hostile inputs found by issue #14, each refused with one line naming the
# file and the key: corrupted search checkpoints (out-of-range numbers,
# impossible RNG state, duplicate parents, duplicate keys, inconsistent
# history), a subnet spec with a key twice, a named pipe as an input.
. "$top_srcdir/tests/cli/common.sh"

MK="$top_builddir/tests/test_search_mkfixture"
[ -x "$MK" ] || { echo "no $MK"; exit 1; }
"$MK" "$T/fx" || exit 1

cat >"$T/search.yaml" <<EOF
model:
  backbone: $T/fx/backbone.safetensors
  adapter: $T/fx/supernet.safetensors
data:
  images: $T/fx/images-idx3-ubyte
  labels: $T/fx/labels-idx1-ubyte
  start: 100
  count: 50
output:
  dir: $T/s
search:
  population: 8
  parents: 3
  mutations: 3
  crossovers: 3
  generations: 3
  seed: 5
  max_params: 4K
EOF

# ---- search checkpoints ----
expect 0 "$GLORA" search "$T/search.yaml" --threads 1
cp "$T/s/checkpoint.json" "$T/good.json"
# corrupt NAME SED-SCRIPT KEY-REGEX: the checkpoint edited by SED-SCRIPT is
# refused on --resume with one line naming KEY-REGEX, the outputs untouched.
corrupt() {
    sed -E "$2" "$T/good.json" >"$T/s/checkpoint.json"
    cmp -s "$T/good.json" "$T/s/checkpoint.json" && { fail "$1: the edit changed nothing"; return; }
    expect 1 "$GLORA" search "$T/search.yaml" --resume --threads 1
    one_line; has "$T/err" "checkpoint.json'?: .*$3"
}
corrupt history-generation-1e300 's/\{"generation": 1,/{"generation": 1e300,/' "history\[1\]\.generation"
corrupt history-best-params-huge 's/"best_params": [0-9]+/"best_params": 1e300/' "history\[0\]\.best_params"
corrupt history-evaluated-negative '0,/"evaluated": [0-9]+/s//"evaluated": -3/' "history\[0\]\.evaluated"
corrupt history-best-mismatch 's/("best_accuracy": )[0-9.e-]+(.*"generation": 3)?/\10.123/' "history\[3\]"
corrupt accuracy-2.0 '0,/^    \[0, ([0-9]+), [^,]+,/s//    [0, \1, 2.0,/' "candidates\[0\]\[2\]"
corrupt accuracy-negative '0,/^    \[0, ([0-9]+), [^,]+,/s//    [0, \1, -7.5,/' "candidates\[0\]\[2\]"
corrupt accuracy-1e999 '0,/^    \[0, ([0-9]+), [^,]+,/s//    [0, \1, 1e999,/' "candidates\[0\]\[2\]"
corrupt rng-all-zero 's/"rng": \[[^]]*\]/"rng": ["0000000000000000", "0000000000000000", "0000000000000000", "0000000000000000"]/' "'rng' is all zeros"
corrupt duplicate-parents 's/"parents": \[([0-9]+), [0-9]+/"parents": [\1, \1/' "parents\[1\]"
corrupt parents-unranked 's/"parents": \[([0-9]+), ([0-9]+)/"parents": [\2, \1/' "parents"
corrupt duplicate-key 's/^  "done":/  "generation": 0,\n  "done":/' "'generation' appears twice"
corrupt generation-out-of-order '0,/^    \[1, /s//    [0, /' "candidates\[[0-9]+\]\[0\]|history\[[01]\]"
corrupt population-wrong 's/"start": [0-9]+/"start": 0/' "population"
# The good checkpoint still resumes (the refusals above did not touch it).
cp "$T/good.json" "$T/s/checkpoint.json"
expect 0 "$GLORA" search "$T/search.yaml" --resume --threads 1
cmp -s "$T/good.json" "$T/s/checkpoint.json" || fail "resuming a finished search changed its checkpoint"

# ---- subnet specs: a key twice in one layer ----
sed '0,/"A": "LoRA_1",/s//"A": "LoRA_1", "A": "none",/' "$FIX/spec_sub_rank.json" >"$T/dupA.json"
cmp -s "$FIX/spec_sub_rank.json" "$T/dupA.json" && fail "dupA.json: the edit changed nothing"
expect 1 "$GLORA" merge --model "$FIX/backbone.safetensors" --adapter "$FIX/supernet.safetensors" \
    --subnet "$T/dupA.json" -o "$T/m.safetensors"
one_line; has "$T/err" "dupA.json': key 'layers\.blocks\.0\.attn\.qkv\.A' appears twice"
sed 's/"format": "glora-subnet\/1",/&\n "format": "glora-subnet\/1",/' "$FIX/spec_sub_rank.json" >"$T/dupF.json"
expect 1 "$GLORA" merge --model "$FIX/backbone.safetensors" --adapter "$FIX/supernet.safetensors" \
    --subnet "$T/dupF.json" -o "$T/m.safetensors"
one_line; has "$T/err" "key 'format' appears twice"
[ -e "$T/m.safetensors" ] && fail "a refused spec left an output"

# ---- non-regular files: refused at once, never waited on ----
mkfifo "$T/pipe" || fail "mkfifo"
for args in "info $T/pipe" \
            "merge --model $T/pipe --adapter $FIX/supernet.safetensors --subnet $FIX/spec_sub_rank.json -o $T/m.safetensors" \
            "merge --model $FIX/backbone.safetensors --adapter $FIX/supernet.safetensors --subnet $T/pipe -o $T/m.safetensors" \
            "eval --model $FIX/backbone.safetensors --images $T/pipe --labels $T/fx/labels-idx1-ubyte"; do
    # shellcheck disable=SC2086
    expect 1 timeout 20 "$GLORA" $args
    one_line; has "$T/err" "pipe'?: not a regular file"
done
mkfifo "$T/pipe.yaml" || fail "mkfifo"
expect 1 timeout 20 "$GLORA" search "$T/pipe.yaml"
one_line; has "$T/err" "pipe.yaml'?: not a regular file"
expect 1 "$GLORA" info "$T"
one_line; has "$T/err" "not a regular file"

finish
