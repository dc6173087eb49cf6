#!/bin/sh
# glora make-task: the suite's task list, its errors, deterministic files, and
# a preset baseline run on a task whose classes differ from the backbone's head.
. "$top_srcdir/tests/cli/common.sh"

expect 0 "$GLORA" make-task --help;       has "$T/out" 'usage: glora make-task'
expect 0 "$GLORA" make-task --list
[ "$(wc -l <"$T/out")" -ge 6 ] || fail "make-task --list: fewer than 6 tasks"
has "$T/out" '^orientation-1k structured fashion-mnist mnist 8 '
has "$T/out" '^counting-1k structured mnist fashion-mnist 6 '
expect 2 "$GLORA" make-task;              one_line
expect 2 "$GLORA" make-task all --train 0; one_line; has "$T/err" "--train '0'"
expect 2 "$GLORA" make-task all --frob x; one_line; has "$T/err" "unknown option '--frob'"
expect 1 "$GLORA" make-task cifar-1k;     one_line; has "$T/err" "task 'cifar-1k': no such task .*size-1k"
expect 1 "$GLORA" make-task mnist-1k --data "$T/none" --out "$T/suite"
one_line; has "$T/err" "$T/none/mnist/train-"
[ ! -e "$T/suite/mnist-1k" ] || fail "make-task left a folder behind after failing"

if [ -f "$FASHION/t10k-images-idx3-ubyte.gz" ]; then
    mkdir -p "$T/data/fashion-mnist"
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        ln -s "$FASHION/$f.gz" "$T/data/fashion-mnist/$f.gz"
    done
    expect 0 "$GLORA" make-task size-1k --data "$T/data" --out "$T/a" --train 300 --test 100
    expect 0 "$GLORA" make-task size-1k --data "$T/data" --out "$T/b" --train 300 --test 100
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte test-images-idx3-ubyte test-labels-idx1-ubyte; do
        cmp -s "$T/a/size-1k/$f" "$T/b/size-1k/$f" || fail "make-task size-1k: $f differs between two runs"
    done
    [ "$(wc -c <"$T/a/size-1k/train-images-idx3-ubyte")" -eq $((16 + 300 * 784)) ] || fail "size-1k: train file size"
    [ "$(wc -c <"$T/a/size-1k/test-labels-idx1-ubyte")" -eq $((8 + 100)) ] || fail "size-1k: test labels size"

    # LoRA r=4 on size-1k (5 classes) from a 10-class backbone: the preset's
    # spec must take the task's head.
    expect 0 "$GLORA" init -o "$T/bb.safetensors" --seed 1
    D="$T/a/size-1k"
    cat >"$T/run.yaml" <<YAML
run:
  name: lora
  dir: $T/runs
  label: LoRA r=4
  backbone: $T/bb.safetensors
  subnet: preset:lora4
  stages: [retrain, eval]
  val: {images: $D/train-images-idx3-ubyte, labels: $D/train-labels-idx1-ubyte, start: 200, count: 100}
  test: {images: $D/test-images-idx3-ubyte, labels: $D/test-labels-idx1-ubyte}
retrain:
  retrain: {init: fresh}
  data:
    train: {images: $D/train-images-idx3-ubyte, labels: $D/train-labels-idx1-ubyte, start: 0, count: 200}
  train: {epochs: 1, batch: 50, lr: 1.0e-3}
YAML
    expect 0 "$GLORA" run "$T/run.yaml" --threads 1
    has "$T/runs/lora/summary.json" '"method": "LoRA r=4", "params": 49152'
fi
finish
