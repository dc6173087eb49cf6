#!/bin/sh
# Fault injection, short version (scripts/faults runs more kill points and
# repeats): a tiny `glora run` (supernet, search, retrain, merge, eval) killed
# with SIGKILL at points inside every stage and resumed gives the same bytes
# as an uninterrupted run, its summary counting the killed invocations'
# seconds; every command that writes, given a full disk (a full tmpfs, when
# one can be mounted; hardening.sh has the file-size-limit case) or a
# read-only output directory, fails with one line, leaves the previous files
# intact and no temporary behind.
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
    # The supernet's seconds so far, which run.json keeps from its last
    # checkpoint: the summary's supernet seconds must include the most seen
    # (they used to count only the invocation that finished the stage).
    s=$(sed -n 's/.*"unfinished": {"supernet": {"seconds": \([0-9.]*\)}.*/\1/p' "$R/run.json" 2>/dev/null)
    [ -n "$s" ] && saved=$(awk -v a="$s" -v b="${saved:-0}" 'BEGIN { print (a > b ? a : b) }')
}
R=$T/runs/k
kills=0 saved=
kill_when k 'true'
kill_when k '[ -e "$R/supernet.safetensors.ckpt" ]'                      # supernet: after epoch 1
kill_when k '[ -e "$R/supernet.safetensors.metrics.jsonl" ] && [ $(wc -l <"$R/supernet.safetensors.metrics.jsonl") -ge 2 ]'
kill_when k '[ -e "$R/search/checkpoint.json" ]'                          # search: after generation 0
kill_when k '[ -e "$R/search/history.jsonl" ] && [ $(wc -l <"$R/search/history.jsonl") -ge 3 ]'
kill_when k '[ -e "$R/adapter.safetensors.ckpt" ]'                         # retrain: after epoch 1
kill_when k '[ -e "$R/adapter.safetensors.metrics.jsonl" ] && [ $(wc -l <"$R/adapter.safetensors.metrics.jsonl") -ge 2 ]'
kill_when k '[ -e "$R/adapter.safetensors" ]'                              # merge
kill_when k '[ -e "$R/merged.safetensors" ]'                               # eval
if [ "$KILLS" = long ]; then
    for ms in 5 20 50 100 200 400 700 1000 1500 2500; do
        kill_when k "[ \$n -ge $ms ]"
        kill_when k "[ \$n -ge $((ms + 3)) ]"
    done
fi
# Temporaries a writer killed mid-write leaves (whether or not a kill above
# left any): removed when the run starts again, in the run directory and in
# search/ (the find below).
head -c 1048576 /dev/zero >"$R/adapter.safetensors.ckpt.tmp.Qq1Ww2"
echo '{' >"$R/run.json.tmp.Qq1Ww2"
mkdir -p "$R/search" && echo '{' >"$R/search/checkpoint.json.tmp.Qq1Ww2"
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
total=$(sed -n 's/.*"supernet": {"seconds": \([0-9.]*\), "skipped": [a-z]*}.*/\1/p' "$R/summary.json")
if [ -n "$saved" ] && [ -n "$total" ]; then
    echo "supernet: ${total}s in the summary, ${saved}s saved by a killed invocation"
    awk -v t="$total" -v s="$saved" 'BEGIN { exit !(t + 0.05 >= s) }' ||
        fail "summary: supernet took ${total}s, but killed invocations had saved ${saved}s of it"
else
    echo "note: no supernet seconds saved before the kills ('$saved') or none in the summary ('$total')"
fi

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
for kind in pretrain finetune retrain; do
    sed -e "s#output: .*#output: $M/$kind.safetensors#" -e '/^glora:/d' "$T/train.yaml" >"$T/$kind.yaml"
done
echo "model: {backbone: $D/backbone.safetensors, adapter: $D/supernet.safetensors}" >>"$T/retrain.yaml"
sed -i '/^model: {backbone: [^,]*}$/d' "$T/retrain.yaml"
V="$top_srcdir/tests/fixtures/vit"
IM="$top_srcdir/tests/fixtures/image"
mkdir -p "$T/data/fashion-mnist"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "$FASHION/$f.gz" ] && ln -sf "$FASHION/$f.gz" "$T/data/fashion-mnist/$f.gz"
done
# Every command that writes a file, each with its own output on the tmpfs.
cmds() {
    echo "init -o $M/init.safetensors --seed 4 --threads 1"
    echo "merge --model $D/backbone.safetensors --adapter $D/supernet.safetensors --subnet $T/runs/ref/search/best.json -o $M/merged.safetensors --threads 1"
    echo "supernet $T/train.yaml --threads 1"
    echo "pretrain $T/pretrain.yaml --threads 1"
    echo "finetune $T/finetune.yaml --threads 1"
    echo "retrain $T/retrain.yaml --subnet $T/runs/ref/search/best.json --threads 1"
    echo "search $T/search.yaml --resume --threads 1"
    echo "run $T/run.yaml --dir $M --name ref --threads 1"
    echo "convert $V/model.npz -o $M/conv.safetensors --threads 1"
    echo "predict --model $FIX/backbone.safetensors $IM/rgb_37x23.png --set data.resize=squash -o $M/pred.jsonl --threads 1"
    echo "report $M/ref -o $M/report.svg"
    # make-task needs Fashion-MNIST (dataset-fashion-mnist); skipped without it.
    [ -f "$FASHION/train-images-idx3-ubyte.gz" ] &&
        echo "make-task size-1k --data $T/data --out $M/suite --train 300 --test 100"
}
mkdir -p "$M/ref" && cp -r "$T/runs/ref/." "$M/ref/"
# The loops read the list from a file, not a pipe: a loop at the end of a
# pipe runs in a subshell, whose fail() calls would not reach finish.
cmds >"$T/cmds"
while read -r c; do
    # shellcheck disable=SC2086
    "$GLORA" $c >/dev/null 2>"$T/err" </dev/null || fail "'$c' failed before any fault: $(cat "$T/err")"
done <"$T/cmds"
snapshot() { (cd "$M" && find . -type f ! -name filler | sort | xargs sha256sum); }
faulted() {
    while read -r c; do
        snapshot >"$T/before"
        # shellcheck disable=SC2086
        "$GLORA" $c >/dev/null 2>"$T/err" </dev/null
        st=$?
        [ $st -eq 1 ] || fail "$1: '$c' exited $st, expected 1: $(head -3 "$T/err")"
        [ "$(grep -c '^glora: error: ' "$T/err")" -eq 1 ] || fail "$1: '$c': expected one error line: $(head -5 "$T/err")"
        snapshot >"$T/after"
        cmp -s "$T/before" "$T/after" || fail "$1: '$c' changed its previous outputs: $(diff "$T/before" "$T/after" | head -4)"
        find "$M" -name '*.tmp.*' | grep -q . && fail "$1: '$c' left a temporary: $(find "$M" -name '*.tmp.*')"
        echo "$1: $(grep '^glora: error: ' "$T/err")"
    done <"$T/cmds"
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

