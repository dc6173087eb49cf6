#!/bin/sh
# The training commands end to end on a tiny ViT and 256 Fashion-MNIST images:
# pretrain, supernet, retrain (inherit and fresh), finetune (full and linear);
# a run stopped after 2 epochs and resumed ends with the same bytes as one
# never stopped, and as one on another number of threads; the files load in
# glora eval and glora merge; one-line errors for bad settings.
. "$top_srcdir/tests/cli/common.sh"

# The t10k file only because it is the smaller one to decompress.
IMG=$FASHION/t10k-images-idx3-ubyte.gz
LAB=$FASHION/t10k-labels-idx1-ubyte.gz
[ -f "$IMG" ] || { echo "skip: $IMG not installed (Debian package dataset-fashion-mnist)"; exit 77; }

for c in pretrain finetune supernet retrain; do
    expect 0 "$GLORA" $c --help;          has "$T/out" "usage: glora $c"
done
expect 0 "$GLORA" supernet --help;        has "$T/out" 'space.A'

# A tiny backbone: depth 1, dim 16 (4 adapted layers).
expect 0 "$GLORA" init --set arch.dim=16 --set arch.depth=1 --set arch.heads=2 \
    --set arch.mlp_hidden=32 --seed 3 -o "$T/init.safetensors"
DATA="--train-images $IMG --train-labels $LAB --set data.train.count=256 \
      --val-images $IMG --val-labels $LAB --set data.val.start=256 --set data.val.count=64"
COMMON="$DATA --batch 32 --epochs 4 --threads 2"

# Pretraining: uninterrupted vs stopped after 2 epochs + resumed.
expect 0 "$GLORA" pretrain --model "$T/init.safetensors" $COMMON --lr 3e-3 -o "$T/bb.safetensors"
has "$T/err" 'epoch 4/4'
[ "$(wc -l < "$T/bb.safetensors.metrics.jsonl")" -eq 4 ] || fail "metrics file: expected 4 lines"
grep -q '"val_accuracy"' "$T/bb.safetensors.metrics.jsonl" || fail "metrics lack val_accuracy"
expect 0 "$GLORA" pretrain --model "$T/init.safetensors" $COMMON --lr 3e-3 --stop-after 2 -o "$T/bb2.safetensors"
has "$T/err" 'stopped after epoch 2 of 4'
[ -f "$T/bb2.safetensors" ] && fail "a stopped run wrote its output"
expect 0 "$GLORA" pretrain --model "$T/init.safetensors" $COMMON --lr 3e-3 --resume -o "$T/bb2.safetensors"
has "$T/err" 'resumed after epoch 2'
cmp -s "$T/bb.safetensors" "$T/bb2.safetensors" || fail "pretrain: resumed run differs from the uninterrupted one"
[ "$(wc -l < "$T/bb2.safetensors.metrics.jsonl")" -eq 4 ] || fail "resumed metrics file: expected 4 lines"
# Killed for real (SIGKILL once its first checkpoint exists), then resumed.
K="--model $T/init.safetensors $DATA --batch 32 --epochs 6 --lr 3e-3"
expect 0 "$GLORA" pretrain $K -o "$T/k1.safetensors"
"$GLORA" pretrain $K -o "$T/k2.safetensors" >/dev/null 2>&1 &
pid=$!
wait_until '[ -f "$T/k2.safetensors.ckpt" ]' $pid 60
kill_now $pid
expect 0 "$GLORA" pretrain $K --resume -o "$T/k2.safetensors"
has "$T/err" "resumed after epoch"
cmp -s "$T/k1.safetensors" "$T/k2.safetensors" || fail "pretrain: killed and resumed run differs"
# Resuming with other settings is refused.
expect 1 "$GLORA" pretrain --model "$T/init.safetensors" $COMMON --lr 1e-3 --resume -o "$T/bb2.safetensors"
one_line; has "$T/err" 'other settings'

# Supernet: resumed and single-threaded runs give the same bytes.
expect 0 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON --rank 2 -o "$T/sn.safetensors"
expect 0 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON --rank 2 --stop-after 1 -o "$T/sn2.safetensors"
expect 0 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON --rank 2 --resume --threads 1 -o "$T/sn2.safetensors"
cmp -s "$T/sn.safetensors" "$T/sn2.safetensors" || fail "supernet: resumed 1-thread run differs"
expect 0 "$GLORA" info "$T/sn.safetensors"
# In bf16 (train.precision) as well; its bytes are not fp32's.
B16="--rank 2 --set train.precision=bf16"
expect 0 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON $B16 -o "$T/sb.safetensors"
expect 0 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON $B16 --stop-after 1 -o "$T/sb2.safetensors"
expect 0 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON $B16 --resume --threads 1 -o "$T/sb2.safetensors"
cmp -s "$T/sb.safetensors" "$T/sb2.safetensors" || fail "bf16 supernet: resumed 1-thread run differs"
cmp -s "$T/sn.safetensors" "$T/sb.safetensors" && fail "bf16 supernet: the same bytes as fp32"
expect 1 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON --set train.precision=fp16 -o "$T/x.safetensors"
one_line; has "$T/err" 'train.precision'

# A subnet spec for the 4 layers, then retraining it.
layer='{"A": "lora_2", "B": "none", "C": "vector", "D": "vector", "E": "scalar"}'
cat > "$T/spec.json" <<EOF
{"format": "glora-subnet/1",
 "model": {"img_size": 28, "in_chans": 1, "patch": 7, "dim": 16, "depth": 1, "heads": 2,
           "mlp_hidden": 32, "num_classes": 10, "rank": 2},
 "supernet_sha256": "", "params": 580,
 "layers": {"blocks.0.attn.qkv": $layer, "blocks.0.attn.proj": $layer,
            "blocks.0.mlp.fc1": $layer, "blocks.0.mlp.fc2": $layer}}
EOF
expect 0 "$GLORA" eval --model "$T/bb.safetensors" --adapter "$T/sn.safetensors" --subnet "$T/spec.json" \
    --images "$IMG" --labels "$LAB" --start 256 --count 64
expect 0 "$GLORA" retrain --model "$T/bb.safetensors" --adapter "$T/sn.safetensors" \
    --subnet "$T/spec.json" $COMMON -o "$T/ad.safetensors"
expect 0 "$GLORA" eval --model "$T/bb.safetensors" --adapter "$T/ad.safetensors" \
    --images "$IMG" --labels "$LAB" --start 256 --count 64
expect 0 "$GLORA" merge --model "$T/bb.safetensors" --adapter "$T/ad.safetensors" -o "$T/merged.safetensors"
expect 0 "$GLORA" retrain --model "$T/bb.safetensors" --subnet "$T/spec.json" --init fresh $COMMON \
    -o "$T/ad-fresh.safetensors"
expect 1 "$GLORA" retrain --model "$T/bb.safetensors" --subnet "$T/spec.json" $COMMON -o "$T/x.safetensors"
one_line; has "$T/err" 'model.adapter'

# Baselines.
expect 0 "$GLORA" finetune --model "$T/bb.safetensors" $COMMON -o "$T/ft.safetensors"
expect 0 "$GLORA" finetune --model "$T/bb.safetensors" $COMMON --mode linear -o "$T/lp.safetensors"
expect 0 "$GLORA" eval --model "$T/lp.safetensors" --images "$IMG" --labels "$LAB" --start 256 --count 64

# Few-shot: 2 examples of each class.
expect 0 "$GLORA" finetune --model "$T/bb.safetensors" $DATA --set data.train.kshot=2 --batch 8 \
    --epochs 1 --mode linear -o "$T/k2shot.safetensors"
has "$T/err" '20 training images'
expect 1 "$GLORA" finetune --model "$T/bb.safetensors" $DATA --set data.train.kshot=2 -o "$T/x.safetensors"
one_line; has "$T/err" 'train.batch'

# Errors: usage (exit 2) and bad settings (exit 1, one line).
expect 2 "$GLORA" pretrain --model "$T/init.safetensors" $DATA
one_line; has "$T/err" 'output'
expect 1 "$GLORA" finetune --model "$T/bb.safetensors" $COMMON --set train.trainable=blocks.9.* -o "$T/x.safetensors"
one_line; has "$T/err" 'blocks.9'
expect 1 "$GLORA" supernet --model "$T/nope.safetensors" $COMMON -o "$T/x.safetensors"
one_line; has "$T/err" 'nope.safetensors'
expect 1 "$GLORA" supernet --model "$T/bb.safetensors" $COMMON --set 'space.C=[scalar]' -o "$T/x.safetensors"
one_line; has "$T/err" 'space.C'

finish
