#!/bin/sh
# Hostile inputs found by issue #14, each refused with one line naming the
# file and the key: corrupted search checkpoints (out-of-range numbers,
# impossible RNG state, duplicate parents, duplicate keys, inconsistent
# history; the same checkpoint given to glora report), a subnet spec with a
# key twice, a named pipe as an input.
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
# glora report reads the same checkpoint: it drew accuracy 1e999 (inf) and a
# key twice into an SVG with "inf" coordinates; now the same checks refuse it.
for edit in '0,/^    \[0, ([0-9]+), [^,]+,/s//    [0, \1, 1e999,/' 's/^  "done":/  "generation": 0,\n  "done":/'; do
    sed -E "$edit" "$T/good.json" >"$T/s/checkpoint.json"
    expect 1 "$GLORA" report "$T" --search "$T/s" -o "$T/bad.svg"
    one_line; has "$T/err" "checkpoint.json'?: key '(candidates\[0\]\[2\]|generation)'"
    [ -e "$T/bad.svg" ] && fail "report drew a refused checkpoint"
done
cp "$T/good.json" "$T/s/checkpoint.json"
printf '[{"name": "b", "params": 5, "params": 6, "val_accuracy": 0.5}]\n' >"$T/bl.json"
expect 1 "$GLORA" report "$T" --search "$T/s" --baselines "$T/bl.json" -o "$T/bad.svg"
one_line; has "$T/err" "bl.json': key '\[0\]\.params' appears twice"
printf '[{"name": "b", "params": 5, "val_accuracy": 1e999}]\n' >"$T/bl.json"
expect 1 "$GLORA" report "$T" --search "$T/s" --baselines "$T/bl.json" -o "$T/bad.svg"
one_line; has "$T/err" "bl.json': key '\[0\]\.val_accuracy' is not a number from 0 to 1"
[ -e "$T/bad.svg" ] && fail "report drew refused baselines"
printf '[{"name": "b", "params": 5, "val_accuracy": 0.5}]\n' >"$T/bl.json"
expect 0 "$GLORA" report "$T" --search "$T/s" --baselines "$T/bl.json" -o "$T/good.svg"
# --threads, which report's help lists with every command's, is taken too.
expect 0 "$GLORA" report "$T" --search "$T/s" --threads 1 -o "$T/good.svg"
expect 2 "$GLORA" report "$T" --search "$T/s" --threads 0 -o "$T/good.svg"
one_line; has "$T/err" "--threads takes a number of threads from 1 to 1024"
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
# A pipe named .npz goes to the .npz reader (which opened it blocking).
mkfifo "$T/pipe.npz" || fail "mkfifo"
expect 1 timeout 20 "$GLORA" convert "$T/pipe.npz" -o "$T/o.safetensors"
one_line; has "$T/err" "pipe.npz'?: not a regular file"
mkfifo "$T/pipe.yaml" || fail "mkfifo"
expect 1 timeout 20 "$GLORA" search "$T/pipe.yaml"
one_line; has "$T/err" "pipe.yaml'?: not a regular file"
expect 1 "$GLORA" info "$T"
one_line; has "$T/err" "not a regular file"

# ---- training outputs: metrics kept, lock, temporaries, messages ----
D=$T/fx
cat >"$T/train.yaml" <<EOF
model: {backbone: $D/backbone.safetensors}
glora: {rank: 2}
data:
  train: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 0, count: 64}
  val: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 200, count: 32}
train: {epochs: 1, batch: 32}
output: $T/tr/sn.safetensors
EOF
# A temporary a killed predecessor left (1 MB) goes when the same output starts again.
mkdir -p "$T/tr"
head -c 1048576 /dev/zero >"$T/tr/sn.safetensors.ckpt.tmp.Ab12Cd"
expect 0 "$GLORA" supernet "$T/train.yaml" --threads 1
[ -e "$T/tr/sn.safetensors.ckpt.tmp.Ab12Cd" ] && fail "a leftover temporary of the checkpoint was not removed"
[ "$(wc -l <"$T/tr/sn.safetensors.metrics.jsonl")" -eq 1 ] || fail "metrics should have 1 line"
cp "$T/tr/sn.safetensors.metrics.jsonl" "$T/metrics.before"
# Resuming after the final checkpoint: nothing to train, no made-up accuracy.
expect 0 "$GLORA" supernet "$T/train.yaml" --threads 1 --resume
has "$T/err" "all 1 epochs were done before"
grep -q 'train accuracy 0.00%' "$T/err" && fail "a resume with nothing left printed train accuracy 0.00%"
cmp -s "$T/metrics.before" "$T/tr/sn.safetensors.metrics.jsonl" || fail "an empty resume changed the metrics"
# A fresh run that fails before its first epoch ends (file-size limit, as on a
# full disk) keeps the previous metrics.
expect 1 bash -c 'trap "" XFSZ; ulimit -f 64; exec "$@"' _ "$GLORA" supernet "$T/train.yaml" --threads 1
[ "$(grep -c '^glora: error: ' "$T/err")" -eq 1 ] || fail "expected one error line: $(cat "$T/err")"
has "$T/err" "sn.safetensors.ckpt': File too large"
cmp -s "$T/metrics.before" "$T/tr/sn.safetensors.metrics.jsonl" || fail "a failed fresh run lost the previous metrics"
ls "$T/tr" | grep -q '\.tmp\.' && fail "a failed run left a temporary: $(ls "$T/tr")"
# The metrics file cannot be opened: the message says why.
expect 1 "$GLORA" supernet "$T/train.yaml" --threads 1 --set "run.metrics=$T/nodir/m.jsonl"
one_line; has "$T/err" "nodir/m.jsonl.*No such file or directory"
# Two writers of one output: the second is refused at once, naming the first.
"$GLORA" supernet "$T/train.yaml" --threads 1 --set train.epochs=400 >/dev/null 2>&1 &
pid=$!
wait_until '[ -e "$T/tr/sn.safetensors.lock" ]'
expect 1 "$GLORA" supernet "$T/train.yaml" --threads 1
one_line; has "$T/err" "sn.safetensors' is in use by another glora \(pid $pid\)"
kill_now $pid
# The kernel released the dead holder's lock: the output is free again.
expect 0 "$GLORA" supernet "$T/train.yaml" --threads 1

# Two searches in one directory.
"$GLORA" search "$T/search.yaml" --threads 1 --output "$T/s2" --set search.generations=300 >/dev/null 2>&1 &
pid=$!
wait_until '[ -e "$T/s2/.glora.lock" ]'
expect 1 "$GLORA" search "$T/search.yaml" --threads 1 --output "$T/s2" --resume --set search.generations=300
one_line; has "$T/err" "s2' is in use by another glora \(pid $pid\)"
kill_now $pid

# Two `glora run` on one run directory (both "succeeded" and interleaved the
# metrics lines before the lock): the second is refused at once, naming the
# first, and leaves the first's metrics as they were.
cat >"$T/run.yaml" <<EOF
run:
  name: lk
  dir: $T/runs
  backbone: $D/backbone.safetensors
  stages: [supernet]
supernet:
  glora: {rank: 2}
  data:
    train: {images: $D/images-idx3-ubyte, labels: $D/labels-idx1-ubyte, start: 0, count: 64}
  train: {epochs: 400, batch: 32}
EOF
"$GLORA" run "$T/run.yaml" --threads 1 >/dev/null 2>&1 &
pid=$!
wait_until '[ "$(lines "$T/runs/lk/supernet.safetensors.metrics.jsonl")" -ge 1 ]' $pid 60
kill -STOP $pid 2>/dev/null
cp "$T/runs/lk/supernet.safetensors.metrics.jsonl" "$T/lk.metrics" 2>/dev/null || fail "the first run wrote no metrics"
expect 1 timeout 60 "$GLORA" run "$T/run.yaml" --threads 1
one_line; has "$T/err" "runs/lk' is in use by another glora \(pid $pid\)"
cmp -s "$T/lk.metrics" "$T/runs/lk/supernet.safetensors.metrics.jsonl" || fail "a refused run touched the metrics"
kill -CONT $pid 2>/dev/null
kill_now $pid

# ---- one writer per output: merge, init, convert, make-task, report ----
# hold LOCKFILE: another process (its pid in $holder) holds the flock, as a
# running glora writing that output would.
hold() {
    sh -c 'echo $$ >"$1"; exec flock "$1" sleep 60' _ "$1" &
    holder=$!
    wait_until "! flock -n '$1' true 2>/dev/null"
}
release() { kill $holder 2>/dev/null; wait $holder 2>/dev/null; rm -f "$1"; }
V="$top_srcdir/tests/fixtures/vit"
mkdir -p "$T/o"
# locked OUTPUT LOCKFILE CMD...: with LOCKFILE held, CMD fails at once with
# one line naming OUTPUT and the holder's pid, and writes no OUTPUT; once
# released, CMD succeeds and leaves no lock file (and no temporary a killed
# writer of OUTPUT left).
locked() {
    out=$1 lk=$2; shift 2
    what="$(basename "$1") $2"
    hold "$lk"
    expect 1 timeout 60 "$@"
    one_line; has "$T/err" "$(basename "$out")' is in use by another glora \(pid $holder\)"
    [ -e "$out" ] && fail "$what: wrote '$out' while another process held its lock"
    release "$lk"
    head -c 4096 /dev/zero >"$out.tmp.Zz9Yy8"
    expect 0 "$@"
    [ -e "$out" ] || fail "$what: no '$out'"
    [ -e "$lk" ] && fail "$what: left its lock file '$lk'"
    [ -e "$out.tmp.Zz9Yy8" ] && fail "$what: left a killed writer's temporary of '$out'"
}
locked "$T/o/init.safetensors" "$T/o/init.safetensors.lock" "$GLORA" init -o "$T/o/init.safetensors" --seed 3
locked "$T/o/merged.safetensors" "$T/o/merged.safetensors.lock" "$GLORA" merge --model "$FIX/backbone.safetensors" \
    --adapter "$FIX/supernet.safetensors" --subnet "$FIX/spec_sub_rank.json" -o "$T/o/merged.safetensors"
locked "$T/o/conv.safetensors" "$T/o/conv.safetensors.lock" "$GLORA" convert "$V/model.npz" -o "$T/o/conv.safetensors"
locked "$T/o/report.svg" "$T/o/report.svg.lock" "$GLORA" report "$T" --search "$T/s" -o "$T/o/report.svg"
locked "$T/o/pred.jsonl" "$T/o/pred.jsonl.lock" "$GLORA" predict --model "$FIX/backbone.safetensors" \
    "$top_srcdir/tests/fixtures/image/grey_37x23.png" --set data.resize=squash -o "$T/o/pred.jsonl"
# make-task: the lock is the output directory's; without source images it
# then fails (after the lock), leaving no lock behind.
mkdir -p "$T/suite"
hold "$T/suite/.glora.lock"
expect 1 "$GLORA" make-task orientation-1k --data "$T/nodata" --out "$T/suite"
one_line; has "$T/err" "output directory '$T/suite' is in use by another glora \(pid $holder\)"
release "$T/suite/.glora.lock"
expect 1 "$GLORA" make-task orientation-1k --data "$T/nodata" --out "$T/suite"
grep -q 'in use' "$T/err" && fail "make-task: still locked after the holder ended"
[ -e "$T/suite/.glora.lock" ] && fail "make-task: left its lock file"

# ---- a decoded-image cache with a label out of range is not used ----
# (it was, and training then refused label 2147483647 until the cache was
# deleted by hand); now it is decoded again and rewritten.
IM="$top_srcdir/tests/fixtures/image"
printf '%s 1\n%s 2\n%s 0\n' "$IM/grey_37x23.png" "$IM/rgb_37x23.png" "$IM/rgb_23x37.jpg" >"$T/imgs.txt"
expect 0 "$GLORA" init --set arch.dim=16 --set arch.depth=1 --set arch.heads=2 --set arch.mlp_hidden=16 \
    --set arch.in_chans=3 --seed 2 -o "$T/t28.safetensors"
FT="finetune --model $T/t28.safetensors --set data.train.list=$T/imgs.txt --set data.size=28 \
--set data.resize=squash --set data.cache=$T/cache --epochs 1 --batch 3 --threads 1 -o $T/ft.safetensors"
# shellcheck disable=SC2086
expect 0 "$GLORA" $FT
cp "$T/ft.safetensors" "$T/ft.ref"
cache=$(ls "$T"/cache/*.cache 2>/dev/null | head -1)
[ -n "$cache" ] || fail "finetune wrote no image cache"
# The first label (after the 64-byte header) becomes 2^31 - 1.
[ -n "$cache" ] && printf '\377\377\377\177' | dd of="$cache" bs=1 seek=64 conv=notrunc 2>/dev/null
# shellcheck disable=SC2086
expect 0 "$GLORA" $FT
cmp -s "$T/ft.ref" "$T/ft.safetensors" || fail "finetune through a repaired cache gave another model"

finish
