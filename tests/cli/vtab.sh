#!/bin/sh
# configs/vtab-1k.yaml end to end at tiny scale: a generated VTAB-1k-style
# task (the four list files, 80x60 JPEGs under images/<split>/) linked as
# data/vtab-1k/task the way the README says, a random timm-named backbone of
# B/16's patch, image size and head count (224x224x3, patch 16, 12 heads)
# but dim 96 and depth 1, and the config with only its epochs and search
# sizes made small (sed): every stage runs (supernet on train800, search on
# val200, retrain on train800val200, merge, test), the summary has the test
# accuracy, the decoded splits were cached, and the merged model's
# predictions on test.txt (squash, ImageNet mean/std) agree with the run's
# test accuracy.
. "$top_srcdir/tests/cli/common.sh"
IMGDATA="$top_builddir/glora-imgdata"
command -v jq >/dev/null 2>&1 || { echo "skip: jq not installed"; exit 77; }
K="$T/vtab-1k/cifar"
expect 0 "$IMGDATA" synth "$K" train800 16 80 4 1 90 60
expect 0 "$IMGDATA" synth "$K" val200 8 80 4 2 90 60
expect 0 "$IMGDATA" synth "$K" test 12 80 4 3 90 60
cat "$K/train800.txt" "$K/val200.txt" >"$K/train800val200.txt"
W="$T/w"
mkdir -p "$W/data/vtab-1k" "$W/models" && ln -s "$K" "$W/data/vtab-1k/task" || fail "task link"
expect 0 "$GLORA" init --set arch.img_size=224 --set arch.in_chans=3 --set arch.patch=16 --set arch.dim=96 \
    --set arch.depth=1 --set arch.heads=12 --set arch.mlp_hidden=384 --set arch.num_classes=10 --seed 3 \
    -o "$W/models/b16.safetensors"
# Only the amounts of work change; paths, preprocessing and recipe stay.
sed -e 's/epochs: 500/epochs: 2/; s/epochs: 100/epochs: 2/; s/warmup_epochs: 10/warmup_epochs: 1/' \
    -e 's/warmup_epochs: 2/warmup_epochs: 1/; s/batch: 64/batch: 8/; s/population: 50/population: 4/' \
    -e 's/parents: 10/parents: 2/; s/mutations: 25/mutations: 2/; s/crossovers: 25/crossovers: 2/' \
    -e 's/generations: 20/generations: 2/' "$top_srcdir/configs/vtab-1k.yaml" >"$W/vtab.yaml"
grep -q 'epochs: 500\|generations: 20' "$W/vtab.yaml" && fail "the sed left a full-size setting"
cd "$W" || exit 1
expect 0 "$GLORA" run vtab.yaml --set name=tiny --set backbone=models/b16.safetensors --threads 2
[ -s runs/tiny/merged.safetensors ] || fail "no merged model: $(tail -3 "$T/err")"
acc=$(jq -r '.rows[] | select(.method | test("merged")) | .test_accuracy' runs/tiny/summary.json)
[ -n "$acc" ] || fail "no merged model's test accuracy in the summary: $(head -c 300 runs/tiny/summary.json)"
ls runs/image-cache/images-*.cache >/dev/null 2>&1 || fail "no decoded split was cached"
# The merged model on test.txt with the config's preprocessing.
expect 0 "$GLORA" predict --model runs/tiny/merged.safetensors --list data/vtab-1k/task/test.txt \
    --set data.resize=squash --set data.mean=imagenet --set data.std=imagenet
right=$(jq -r .class "$T/out" | paste - "$K/test.txt" | awk '$1 == $3 {n++} END {print n + 0}')
awk -v a="$acc" -v r="$right" 'BEGIN {exit !(a * 12 > r - 0.01 && a * 12 < r + 0.01)}' ||
    fail "predict gets $right of 12, the run's test accuracy is $acc"
finish
