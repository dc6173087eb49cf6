#!/bin/sh
# Fault injection, short version (scripts/faults runs more kill points and
# repeats): a tiny `glora run` (supernet, search, retrain, merge, eval) killed
# with SIGKILL at points inside every stage and resumed gives the same bytes
# as an uninterrupted run; every command that writes, given a full disk (a
# file-size limit, and a full tmpfs when it can be mounted) or a read-only
# output directory, fails with one line, leaves the previous files intact
# and no temporary behind.
. "$top_srcdir/tests/cli/common.sh"

search_fixture "$T/fx"
D=$T/fx
KILLS=${FAULT_KILLS:-short}

cat >"$T/run.yaml" <<EOF
run:
  name: tiny
  dir: $T/runs
  backbone: $D/backbone.safetensors
  stages: [supernet, search, retrain, merge, eval]
  val: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 200, count: 40}
  test: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 240, count: 60}
supernet:
  glora: {rank: 2}
  data:
    train: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 0, count: 160}
  train: {epochs: 3, batch: 32}
search:
  data: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 200, count: 40}
  search: {population: 6, parents: 2, mutations: 2, crossovers: 2, generations: 3, max_params: 8K}
retrain:
  data:
    train: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 0, count: 160}
  train: {epochs: 3, batch: 32}
EOF

# The outputs of a run as sha256 sums, wall-clock figures blanked.
norm() {
    sed -E -e 's/"(seconds|images_per_s|[a-z_]*_seconds)": [-0-9.e+]+/"\1": 0/g' \
        -e 's#/runs/(ref|k)\b#/runs/RUN#g' -e 's/"(ref|k)"/"RUN"/g' -e '/"config_hash"/d' \
        -e 's/"skipped": (true|false)/"skipped": X/g' "$1"
}
sums() {
    ( cd "$1" || exit 1
      for f in supernet.safetensors search/checkpoint.json search/best.json search/pareto.json \
               adapter.safetensors merged.safetensors summary.json; do
          if [ -f "$f" ]; then
              printf '%s ' "$f"
              # the run's name and directory (ref or k), the config hash over
              # them and which stages this invocation skipped may differ
              norm "$f" | sha256sum
          else
              echo "$f missing"
          fi
      done )
}

expect 0 "$GLORA" run "$T/run.yaml" --threads 2 --name ref
sums "$T/runs/ref" >"$T/ref.sums"
grep -q missing "$T/ref.sums" && fail "the reference run is incomplete: $(grep missing "$T/ref.sums")"

# ---- SIGKILL inside every stage, then resume ----
# kill_when NAME COND: (re)starts the run named NAME and SIGKILLs it as soon as
# the shell condition COND holds (polled every 10 ms; at once for "true").
kill_when() {
    "$GLORA" run "$T/run.yaml" --threads 2 --name "$1" >/dev/null 2>&1 &
    pid=$!
    wait_until "$2" $pid 30
    kill_now $pid
    kills=$((kills + 1))
}
R=$T/runs/k
kills=0
kill_when k 'true'
kill_when k '[ -e "$R/supernet.safetensors.ckpt" ]'                      # supernet: after epoch 1
kill_when k '[ -e "$R/supernet.safetensors.metrics.jsonl" ] && [ $(wc -l <"$R/supernet.safetensors.metrics.jsonl") -ge 2 ]'
kill_when k '[ -e "$R/search/checkpoint.json" ]'                          # search: after generation 0
kill_when k '[ -e "$R/search/history.jsonl" ] && [ $(wc -l <"$R/search/history.jsonl") -ge 3 ]'
kill_when k '[ -e "$R/adapter.safetensors.ckpt" ]'                         # retrain: after epoch 1
kill_when k '[ -e "$R/adapter.safetensors" ]'                              # merge
kill_when k '[ -e "$R/merged.safetensors" ]'                               # eval
if [ "$KILLS" = long ]; then
    for ms in 5 20 50 100 200 400 700 1000 1500 2500; do
        kill_when k "[ \$n -ge $ms ]"
        kill_when k "[ \$n -ge $((ms + 3)) ]"
    done
fi
expect 0 "$GLORA" run "$T/run.yaml" --threads 2 --name k
sums "$R" >"$T/k.sums"
if diff "$T/ref.sums" "$T/k.sums" >/dev/null; then
    echo "killed $kills times, resumed to the same bytes"
else
    diff "$T/ref.sums" "$T/k.sums" >&2
    norm "$T/runs/ref/summary.json" | tr ',' '\n' >"$T/s1"; norm "$R/summary.json" | tr ',' '\n' >"$T/s2"
    diff "$T/s1" "$T/s2" >&2
    fail "a run killed $kills times and resumed differs from the reference"
fi
find "$R" -name '*.tmp.*' | grep -q . && fail "temporaries left after the resumed run: $(find "$R" -name '*.tmp.*')"

# ---- disk full and read-only outputs on every command that writes ----
# The previous outputs of every writing command sit on a small tmpfs, which
# is then filled up (disk full) or remounted read-only; each command run
# again must fail with one error line, leave those files as they were and
# no temporary behind. Needs mount (root with CAP_SYS_ADMIN); otherwise only
# the file-size-limit case of tests/cli/hardening.sh runs.
M="$T/mnt"
mkdir -p "$M"
if ! mount -t tmpfs -o size=16m tmpfs "$M" 2>/dev/null; then
    echo "note: cannot mount a tmpfs here: disk-full and read-only cases skipped"
    finish
fi
trap 'umount "$M" 2>/dev/null; rm -rf "$T"' EXIT
printf '%s\n' "model: {backbone: $D/backbone.safetensors}" "glora: {rank: 2}" "data:" \
    "  train: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 0, count: 64}" \
    "train: {epochs: 1, batch: 32}" "output: $M/sn.safetensors" >"$T/train.yaml"
printf '%s\n' "model: {backbone: $D/backbone.safetensors, adapter: $D/supernet.safetensors}" \
    "data: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 200, count: 32}" \
    "output: {dir: $M/search}" \
    "search: {population: 4, parents: 2, mutations: 1, crossovers: 1, generations: 1, max_params: 8K}" \
    >"$T/search.yaml"
cmds() {
    echo "init -o $M/init.safetensors --seed 4"
    echo "merge --model $D/backbone.safetensors --adapter $D/supernet.safetensors --subnet $T/runs/ref/search/best.json -o $M/merged.safetensors"
    echo "supernet $T/train.yaml"
    echo "search $T/search.yaml --resume"
    echo "run $T/run.yaml --dir $M --name ref"
}
mkdir -p "$M/ref" && cp -r "$T/runs/ref/." "$M/ref/"
cmds | while read -r c; do
    # shellcheck disable=SC2086
    "$GLORA" $c --threads 1 >/dev/null 2>"$T/err" </dev/null || fail "'$c' failed before any fault: $(cat "$T/err")"
done
snapshot() { (cd "$M" && find . -type f ! -name filler | sort | xargs sha256sum); }
faulted() {
    cmds | while read -r c; do
        snapshot >"$T/before"
        # shellcheck disable=SC2086
        "$GLORA" $c --threads 1 >/dev/null 2>"$T/err" </dev/null
        st=$?
        [ $st -eq 1 ] || fail "$1: '$c' exited $st, expected 1: $(head -3 "$T/err")"
        [ "$(grep -c '^glora: error: ' "$T/err")" -eq 1 ] || fail "$1: '$c': expected one error line: $(head -5 "$T/err")"
        snapshot >"$T/after"
        cmp -s "$T/before" "$T/after" || fail "$1: '$c' changed its previous outputs: $(diff "$T/before" "$T/after" | head -4)"
        find "$M" -name '*.tmp.*' | grep -q . && fail "$1: '$c' left a temporary: $(find "$M" -name '*.tmp.*')"
        echo "$1: $(grep '^glora: error: ' "$T/err")"
    done
}
# Disk full: a filler takes all the space left.
head -c 20000000 /dev/zero >"$M/filler" 2>/dev/null
faulted "disk full"
rm -f "$M/filler"
# Read-only.
mount -o remount,ro "$M" || fail "cannot remount read-only"
faulted "read-only"
umount "$M"
finish

