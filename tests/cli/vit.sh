#!/bin/sh
# Real ViT checkpoints: glora convert (Google's .npz, timm safetensors),
# glora info on them, the head count's sources, and one-line errors for
# malformed archives. Fixtures: tests/fixtures/vit (tests/ref/make_vit_fixtures.py).
. "$top_srcdir/tests/cli/common.sh"
V="$top_srcdir/tests/fixtures/vit"

expect 0 "$GLORA" --help;                 has "$T/out" 'convert'
expect 0 "$GLORA" convert --help;         has "$T/out" 'usage: glora convert'; has "$T/out" 'model.arch'
expect 2 "$GLORA" convert;                one_line
expect 1 "$GLORA" convert "$V/model.npz"; one_line; has "$T/err" "'output'"

# .npz -> safetensors: the heads come from the query kernels and land in the
# metadata, so the file loads anywhere without a config.json.
mkdir -p "$T/alone"
for f in model.npz model_deflated.npz; do
    expect 0 "$GLORA" convert "$V/$f" -o "$T/alone/$f.safetensors"
    has "$T/err" 'patch 16, dim 32, depth 2, 4 heads, 10 classes'
    expect 0 "$GLORA" info "$T/alone/$f.safetensors"
    has "$T/out" '64x64x3 images, patch 16 \(17 tokens\), dim 32, depth 2, 4 heads, MLP 128, 10 classes'
    has "$T/out" 'metadata glora.heads = 4'
    has "$T/out" 'metadata glora.source = '"$f"
done
cmp -s "$T/alone/model.npz.safetensors" "$T/alone/model_deflated.npz.safetensors" ||
    # glora.source differs; the tensors must not: compare the dumps.
    { "$GLORA" info --tensors "$T/alone/model.npz.safetensors" | grep -v 'source\|sha256\|^file' >"$T/a"
      "$GLORA" info --tensors "$T/alone/model_deflated.npz.safetensors" | grep -v 'source\|sha256\|^file' >"$T/b"
      cmp -s "$T/a" "$T/b" || fail "stored and deflated .npz convert differently"; }

# info reads the .npz directly, and the timm config.json beside a model.
expect 0 "$GLORA" info "$V/model.npz"
has "$T/out" 'NumPy .npz'; has "$T/out" '4 heads'
has "$T/out" 'preprocessing of image files: size 64, resize shorter, interpolation bicubic, crop_pct 0.9, mean 0.5 0.5 0.5, std 0.5 0.5 0.5 \(from .*config.json: size, resize, interpolation, crop_pct, mean, std\)'
# The config's data.* keys override the config.json's values.
expect 0 "$GLORA" info "$V/model.npz" --set data.mean=imagenet --set data.resize=squash --set data.size=32
has "$T/out" 'size 32, resize squash, interpolation bicubic, mean 0.485 0.456 0.406, std 0.5 0.5 0.5 \(from .*config.json: interpolation, std\)'
expect 0 "$GLORA" info "$V/nohead/model.safetensors"
has "$T/out" 'dim 32, depth 2, 4 heads, MLP 128, 0 classes'
has "$T/out" 'mean 0.485 0.456 0.406, std 0.229 0.224 0.225'

# PyTorch's logits on JPEG files (jpeg.json, tests/ref/make_vit_fixtures.py:
# PIL decoding and resizing, a 500x375 photo, a portrait, a grey JPEG, a 1x1):
# glora predict on the timm file with its config.json's preprocessing
# (resize shorter, crop_pct 0.9, bicubic, mean/std 0.5), and on Google's .npz
# with the official GLoRA code's (squash, ImageNet mean/std), within 1e-4 of
# the largest |logit|.
if command -v jq >/dev/null 2>&1; then
    I="$top_srcdir/tests/fixtures/image"
    set -- $(jq -r '.files[]' "$V/jpeg.json" | sed "s#^#$I/#")
    [ $# -eq 4 ] || fail "jpeg.json names $# files"
    expect 0 "$GLORA" predict --model "$V/model.safetensors" --logits "$@"
    cp "$T/out" "$T/st.jsonl"
    expect 0 "$GLORA" predict --model "$V/model.npz" --set data.resize=squash --set data.mean=imagenet \
        --set data.std=imagenet --logits "$@"
    cp "$T/out" "$T/npz.jsonl"
    set --
    for k in shorter:st squash:npz; do
        e=$(jq -s --slurpfile r "$V/jpeg.json" --arg k "${k%%:*}" '
            ($r[0][$k] | flatten | map(fabs) | max) as $big |
            if length != ($r[0][$k] | length) then "lines: \(length)" else
            [range(length) as $i | .[$i].logits as $g | $r[0][$k][$i] | to_entries[] |
             ((.value - $g[.key]) | fabs)] | max / $big end' "$T/${k#*:}.jsonl")
        echo "JPEG -> logits, ${k%%:*} (${k#*:}): max |glora - PyTorch| / max |logit| = $e"
        awk -v e="$e" 'BEGIN {exit !(e + 0 == e && e <= 1e-4)}' || fail "${k%%:*}: glora vs PyTorch logits: $e"
    done
else
    echo "note: jq missing: the JPEG -> logits check against PyTorch is skipped"
fi

# A headless timm file (the orig_in21k / augreg_in21k layout, num_classes
# 0) trains with a new head of the task's classes; its config.json beside it
# gives the image size. A patch-32 ViT (timm's names, as glora writes them)
# loads and trains too.
IMGDATA="$top_builddir/glora-imgdata"
expect 0 "$IMGDATA" synth "$T/d" train 16 64 4 5
expect 0 "$GLORA" finetune --model "$V/nohead/model.safetensors" --set data.train.list="$T/d/train.txt" \
    --epochs 1 --batch 8 --threads 2 -o "$T/newhead.safetensors"
expect 0 "$GLORA" info "$T/newhead.safetensors"
has "$T/out" '64x64x3 images, patch 16 \(17 tokens\), dim 32, depth 2, 4 heads, MLP 128, 4 classes'
expect 0 "$GLORA" init --set arch.img_size=64 --set arch.in_chans=3 --set arch.patch=32 --set arch.dim=32 \
    --set arch.depth=1 --set arch.heads=2 --set arch.mlp_hidden=64 --set arch.num_classes=4 -o "$T/p32.safetensors"
expect 0 "$GLORA" supernet --model "$T/p32.safetensors" --set data.train.list="$T/d/train.txt" \
    --epochs 1 --batch 8 --threads 2 -o "$T/p32-sn.safetensors"
expect 0 "$GLORA" info "$T/p32.safetensors"
has "$T/out" 'patch 32 \(5 tokens\)'

# A timm file alone says nothing about heads: --arch or --heads must.
cp "$V/model.safetensors" "$T/alone/timm.safetensors"
expect 1 "$GLORA" convert "$T/alone/timm.safetensors" -o "$T/x.safetensors"
one_line; has "$T/err" 'attention heads'; has "$T/err" '^hint: .*model.arch.*vit_base_patch16_224'
expect 1 "$GLORA" info "$T/alone/timm.safetensors" --arch vit_base_patch16_224
one_line; has "$T/err" 'vit_base_patch16_224 \(dim 768'
expect 1 "$GLORA" info "$T/alone/timm.safetensors" --arch vit_nonesuch
one_line; has "$T/err" "model.arch 'vit_nonesuch'"
# eval, merge and search take model.arch too.
expect 1 "$GLORA" eval --model "$T/alone/timm.safetensors" --set model.arch=vit_nonesuch --images x --labels y
one_line; has "$T/err" "model.arch 'vit_nonesuch'"
# So do the training commands, and glora run passes run.arch to its stages.
for c in pretrain finetune supernet; do
    expect 1 "$GLORA" $c --model "$T/alone/timm.safetensors" --set model.arch=vit_nonesuch \
        --train-images x --train-labels y -o "$T/t.safetensors"
    one_line; has "$T/err" "model.arch 'vit_nonesuch'"
done
printf 'run:\n  name: arch\n  dir: %s/runs\n  backbone: %s\n  arch: vit_nonesuch\n  stages: [supernet]\nsupernet:\n  train: {epochs: 1}\n' \
    "$T" "$T/alone/timm.safetensors" >"$T/arch.yaml"
expect 1 "$GLORA" run "$T/arch.yaml"
has "$T/err" "model.arch 'vit_nonesuch'"; has "$T/err" "stage 'supernet' failed"
expect 0 "$GLORA" convert "$T/alone/timm.safetensors" --heads 4 -o "$T/x.safetensors"
expect 0 "$GLORA" info "$T/x.safetensors";  has "$T/out" '4 heads'

# Malformed archives: one line naming the file (and the entry), exit 1.
head -c 3000 "$V/model.npz" >"$T/trunc.npz"
expect 1 "$GLORA" convert "$T/trunc.npz" -o "$T/y.safetensors"
one_line; has "$T/err" "trunc.npz"; has "$T/err" 'end-of-central-directory'
printf 'PK\003\004 not really a zip' >"$T/junk.npz"
expect 1 "$GLORA" info "$T/junk.npz";      one_line; has "$T/err" 'junk.npz'
: >"$T/empty.npz"
expect 1 "$GLORA" info "$T/empty.npz";     one_line; has "$T/err" 'empty.npz'
sed 's/<f4/<i4/' "$V/model.npz" >"$T/int.npz"
expect 1 "$GLORA" convert "$T/int.npz" -o "$T/y.safetensors"
one_line; has "$T/err" "entry 'embedding/kernel.npy' in '.*int.npz': dtype '<i4'"
[ ! -e "$T/y.safetensors" ] || fail "a failed convert left an output file"
ls "$T" | grep -q 'tmp' && fail "a failed convert left a temporary file"
finish
