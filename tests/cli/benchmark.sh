#!/bin/sh
# scripts/benchmark --dry-run: which runs a suite command makes. The default
# (no --methods) runs every method of every task; --methods, --tasks and
# --seeds narrow it; a run whose summary.json exists is listed as done.
. "$top_srcdir/tests/cli/common.sh"
B="$top_srcdir/scripts/benchmark"
export GLORA
R="$T/runs"

# 8 tasks x (the GLoRA pipeline + 6 methods) for one seed.
expect 0 "$B" --suite --seeds 43 --runs "$R" --dry-run
has "$T/out" '^== 56 runs: parts suite; seeds 43'
has "$T/out" '^\[1/56\] suite-fashion-1k-glora-s43: configs/suite-glora.yaml$'
has "$T/out" '^\[56/56\] suite-fashion-sketch-1k-glora-12K-s43: configs/suite-glora-12K.yaml$'
[ "$(grep -c '^\[' "$T/out")" -eq 56 ] || fail "expected 56 listed runs: $(head -3 "$T/out")"

# Narrowed: two tasks, two seeds, the pipeline and LoRA only.
expect 0 "$B" --suite --seeds "43 44" --tasks "mnist-1k size-1k" --methods "glora lora4" \
    --runs "$R" --dry-run
has "$T/out" '^== 8 runs: parts suite; seeds 43 44'
has "$T/out" '^\[8/8\] suite-size-1k-lora4-s44: configs/suite-lora4.yaml$'
if grep -q 'linear\|full\|ssf' "$T/out"; then fail "--methods ran another method: $(cat "$T/out")"; fi

# A finished run is reported as such.
mkdir -p "$R/suite-mnist-1k-lora4-s43" && echo '{}' >"$R/suite-mnist-1k-lora4-s43/summary.json"
expect 0 "$B" --suite --seeds 43 --tasks mnist-1k --methods lora4 --runs "$R" --dry-run
has "$T/out" '^\[1/1\] suite-mnist-1k-lora4-s43: configs/suite-lora4.yaml, done before$'

# Refusals.
expect 1 "$B" --suite --methods lora9 --runs "$R" --dry-run
has "$T/err" "^benchmark: error: --methods 'lora9': not a method"
expect 1 "$B" --suite --tasks nope-1k --runs "$R" --dry-run
has "$T/err" "^benchmark: error: --tasks 'nope-1k': not a task"
[ -z "$(ls -A "$R" | grep -v '^suite-mnist-1k-lora4-s43$')" ] || fail "the dry runs left files in $R: $(ls -A "$R")"

finish
