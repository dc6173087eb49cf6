#!/bin/sh
# Splits read from image files (list files, image folders) through the one
# data layer: fashion images as PNGs give the IDX pipeline's bytes exactly
# (fine-tuning, and configs/fashion1k-images.yaml against
# configs/quickstart.yaml made small); the whole pipeline runs on generated
# 64x64 RGB images (a 2-block ViT of patch 16); bad inputs are one-line
# errors naming the file and line.
. "$top_srcdir/tests/cli/common.sh"
IMGDATA="$top_builddir/glora-imgdata"
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
    echo "skip: $FASHION missing (scripts/install-deps installs dataset-fashion-mnist)"
    exit 77
fi
F="$FASHION"

# 1. The same 64 + 32 fashion images as IDX and as PNG list files: the
#    fine-tuned models are the same bytes, evaluation the same counts.
expect 0 "$IMGDATA" idx "$F/train-images-idx3-ubyte.gz" "$F/train-labels-idx1-ubyte.gz" 0 64 "$T/fm" train800
expect 0 "$IMGDATA" idx "$F/train-images-idx3-ubyte.gz" "$F/train-labels-idx1-ubyte.gz" 64 32 "$T/fm" val200
[ "$(wc -l <"$T/fm/train800.txt")" -eq 64 ] || fail "train800.txt does not list 64 images"
expect 0 "$GLORA" init --set arch.dim=32 --set arch.depth=2 --set arch.heads=2 --set arch.mlp_hidden=64 \
    --seed 3 -o "$T/init28.safetensors"
TR="--model $T/init28.safetensors --epochs 2 --batch 16 --threads 2"
expect 0 "$GLORA" finetune $TR --train-images "$F/train-images-idx3-ubyte.gz" \
    --train-labels "$F/train-labels-idx1-ubyte.gz" --set data.train.count=64 \
    --val-images "$F/train-images-idx3-ubyte.gz" --val-labels "$F/train-labels-idx1-ubyte.gz" \
    --set data.val.start=64 --set data.val.count=32 -o "$T/idx.safetensors"
expect 0 "$GLORA" finetune $TR --set data.train.list="$T/fm/train800.txt" \
    --set data.val.list="$T/fm/val200.txt" --set data.size=28 -o "$T/png.safetensors"
cmp -s "$T/idx.safetensors" "$T/png.safetensors" || fail "fine-tuning on the PNGs differs from the IDX run"
expect 0 "$GLORA" eval --model "$T/idx.safetensors" --images "$F/train-images-idx3-ubyte.gz" \
    --labels "$F/train-labels-idx1-ubyte.gz" --start 64 --count 32 --json
a=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
expect 0 "$GLORA" eval --model "$T/idx.safetensors" --set data.list="$T/fm/val200.txt" --json \
    --set data.cache="$T/cache"
b=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "eval: $a right on IDX, $b on the PNGs"
ls "$T"/cache/images-*.cache >/dev/null 2>&1 || fail "data.cache left no cache file"
expect 0 "$GLORA" eval --model "$T/idx.safetensors" --set data.list="$T/fm/val200.txt" --json \
    --set data.cache="$T/cache"
c=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ "$b" = "$c" ] || fail "eval from the cache: $c right, $b without"
# start, count, kshot and kshot_seed on a list file select what they select
# on the IDX pair (a list's order is the file's): the same fine-tuned bytes.
K="--set data.train.start=8 --set data.train.count=48 --set data.train.kshot=2 --set data.train.kshot_seed=7"
expect 0 "$GLORA" finetune $TR --train-images "$F/train-images-idx3-ubyte.gz" \
    --train-labels "$F/train-labels-idx1-ubyte.gz" $K -o "$T/idx-k.safetensors"
expect 0 "$GLORA" finetune $TR --set data.train.list="$T/fm/train800.txt" --set data.size=28 $K \
    -o "$T/png-k.safetensors"
cmp -s "$T/idx-k.safetensors" "$T/png-k.safetensors" || fail "start/count/kshot on the PNG list differ from IDX"
cmp -s "$T/idx-k.safetensors" "$T/idx.safetensors" && fail "start/count/kshot changed nothing"
# A shifted eval of a list works under the default data.max_memory (a
# shift needs the whole split, so it is not streamed) and counts as IDX.
expect 0 "$GLORA" eval --model "$T/idx.safetensors" --images "$F/train-images-idx3-ubyte.gz" \
    --labels "$F/train-labels-idx1-ubyte.gz" --start 64 --count 32 --set data.shift=inverted --json
a=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
expect 0 "$GLORA" eval --model "$T/idx.safetensors" --set data.list="$T/fm/val200.txt" --set data.shift=inverted --json
b=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "inverted eval: $a right on IDX, $b on the PNGs"

# 2. The pipeline on generated 64x64 RGB images: 4 classes, a 2-block ViT.
for s in train:48 val:16 test:16; do
    expect 0 "$IMGDATA" synth "$T/rgb" "${s%%:*}" "${s#*:}" 64 4 "$(echo "${s%%:*}" | cksum | cut -c1-6)"
done
expect 0 "$GLORA" init --set arch.img_size=64 --set arch.in_chans=3 --set arch.patch=16 --set arch.dim=32 \
    --set arch.depth=2 --set arch.heads=2 --set arch.mlp_hidden=64 --set arch.num_classes=4 \
    --seed 5 -o "$T/init64.safetensors"
cat >"$T/run.yaml" <<YAML
run:
  name: rgb
  dir: $T/runs
  backbone: $T/init64.safetensors
  stages: [supernet, search, retrain, merge, eval]
  val: {list: $T/rgb/val.txt}
  test: {list: $T/rgb/test.txt}
  size: 64
  mean: imagenet
  std: imagenet
supernet:
  glora: {rank: 2}
  data: {train: {list: $T/rgb/train.txt}, size: 64, mean: imagenet, std: imagenet}
  train: {epochs: 2, batch: 16}
search:
  data: {list: $T/rgb/val.txt, mean: imagenet, std: imagenet}
  search: {population: 6, parents: 2, mutations: 2, crossovers: 2, generations: 2, max_params: 3K}
retrain:
  data: {train: {list: $T/rgb/train.txt}, size: 64, mean: imagenet, std: imagenet}
  train: {epochs: 2, batch: 16}
YAML
expect 0 "$GLORA" run "$T/run.yaml" --threads 2
R="$T/runs/rgb"
for f in supernet.safetensors search/best.json adapter.safetensors merged.safetensors summary.json; do
    [ -s "$R/$f" ] || fail "run left no $f"
done
# no cache key anywhere in run.yaml: the decoded splits (train, val, test)
# were cached beside the run, one file each, shared by the stages
n=$(ls "$R"/image-cache/images-*.cache 2>/dev/null | wc -l)
[ "$n" -eq 3 ] || fail "the run cached $n decoded splits in $R/image-cache, expected 3 (train, val, test)"
# The finished run evaluated again with max_memory under its val and test
# splits' pixels (3 images): both are read in pieces, model by model, and
# give the same accuracies; a shifted copy needs the whole test split.
grep '"method"' "$R/summary.json" >"$T/rows-whole"
expect 0 "$GLORA" run "$T/run.yaml" --threads 2 --set max_memory=36864
grep '"method"' "$R/summary.json" >"$T/rows-pieces"
[ "$(grep -c test_accuracy "$T/rows-whole")" -eq 3 ] || fail "run summary rows: $(cat "$T/rows-whole")"
cmp -s "$T/rows-whole" "$T/rows-pieces" || fail "the run's evaluation in pieces differs: $(cat "$T/rows-whole" "$T/rows-pieces")"
expect 1 "$GLORA" run "$T/run.yaml" --threads 2 --set max_memory=36864 --set 'test_shifts=[inverted]'
has "$T/err" "over data.max_memory"
E="--set data.list=$T/rgb/test.txt --set data.mean=imagenet --set data.std=imagenet --json"
expect 0 "$GLORA" eval --model "$T/init64.safetensors" --adapter "$R/adapter.safetensors" $E
a=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
expect 0 "$GLORA" eval --model "$R/merged.safetensors" $E
b=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "adapter got $a right, the merged model $b"
# under data.max_memory (3 images' pixels) eval streams pieces: the same count
expect 0 "$GLORA" eval --model "$R/merged.safetensors" $E --set data.max_memory=36864
c=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ "$b" = "$c" ] || fail "streamed eval got $c right, the whole split $b"
has "$T/out" '"n": 16'
expect 1 "$GLORA" eval --model "$R/merged.safetensors" $E --set data.max_memory=1000
one_line; has "$T/err" "max_memory .* holds not one"
# the same split as an image folder (class folders by label)
for c in 0 1 2 3; do mkdir -p "$T/folder/c$c"; done
while read -r p l; do cp "$T/rgb/$p" "$T/folder/c$l/"; done <"$T/rgb/test.txt"
expect 0 "$GLORA" eval --model "$R/merged.safetensors" --set data.folder="$T/folder" \
    --set data.mean=imagenet --set data.std=imagenet --json
has "$T/out" '"n": 16'

# NOAH's few-shot layout: <task>/annotations/train_meta.list.num_shot_K.seed_S
# (and val_meta.list, test_meta.list) naming images relative to another
# folder, given as root: the same images and count as the plain list.
mkdir -p "$T/noah/fgvc/annotations" || fail "noah folder"
sed 's#^images/##' "$T/rgb/test.txt" >"$T/noah/fgvc/annotations/train_meta.list.num_shot_4.seed_0"
expect 0 "$GLORA" eval --model "$R/merged.safetensors" --set data.list="$T/noah/fgvc/annotations/train_meta.list.num_shot_4.seed_0" \
    --set data.root="$T/rgb/images" --set data.mean=imagenet --set data.std=imagenet --json
has "$T/out" '"n": 16'
d=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ "$b" = "$d" ] || fail "NOAH-style list with root: $d right, the plain list $b"
expect 1 "$GLORA" eval --model "$R/merged.safetensors" --set data.list="$T/noah/fgvc/annotations/train_meta.list.num_shot_4.seed_0"
one_line; has "$T/err" "train_meta.list.num_shot_4.seed_0' line 1: image '.*annotations/test/000000.png' is missing"

# 2b. configs/fashion1k-images.yaml against configs/quickstart.yaml, both as
#    committed with only the amounts of work made small (sed: 64 train800,
#    32 val200, 200 test images, 2 epochs, a small search): the supernet,
#    search pick, retrained adapter, merged model and every accuracy of the
#    PNG run are the IDX run's, bit for bit. The shared backbone is a random
#    vit-tiny-28 put where the configs look for it (the pretrain stage is then
#    skipped); the PNG task is written as scripts/make-image-data writes it.
Q="$T/qs"
mkdir -p "$Q/data" "$Q/runs" && ln -s "$F" "$Q/data/fashion-mnist" || fail "quickstart workspace"
D="$Q/data/fashion1k"
expect 0 "$IMGDATA" idx "$F/train-images-idx3-ubyte.gz" "$F/train-labels-idx1-ubyte.gz" 0 64 "$D" train800
expect 0 "$IMGDATA" idx "$F/train-images-idx3-ubyte.gz" "$F/train-labels-idx1-ubyte.gz" 64 32 "$D" val200
expect 0 "$IMGDATA" idx "$F/t10k-images-idx3-ubyte.gz" "$F/t10k-labels-idx1-ubyte.gz" 0 200 "$D" test
expect 0 "$GLORA" init --set arch.preset=vit-tiny-28 --seed 1 -o "$Q/runs/vit-tiny-28-mnist.safetensors"
small() {
    sed -e 's/epochs: 200/epochs: 2/; s/epochs: 100/epochs: 2/; s/population: 50/population: 4/' \
        -e 's/parents: 10/parents: 2/; s/mutations: 25/mutations: 2/; s/crossovers: 25/crossovers: 2/' \
        -e 's/generations: 20/generations: 2/; s/count: 800/count: 64/g; s/start: 800/start: 64/g' \
        -e 's/count: 200/count: 32/g' "$top_srcdir/configs/$1.yaml" >"$Q/$1.yaml"
    grep -q 'epochs: 200\|generations: 20\|count: 800\|start: 800' "$Q/$1.yaml" && fail "the sed left a full-size setting in $1"
}
small quickstart
small fashion1k-images
(cd "$Q" && "$GLORA" run quickstart.yaml --set test.count=200 --threads 2 >"$T/out" 2>"$T/err") ||
    fail "quickstart.yaml (small): $(tail -2 "$T/err")"
(cd "$Q" && "$GLORA" run fashion1k-images.yaml --set test.count=200 --threads 2 >"$T/out" 2>"$T/err") ||
    fail "fashion1k-images.yaml (small): $(tail -2 "$T/err")"
for f in supernet.safetensors search/best.json adapter.safetensors merged.safetensors; do
    [ -s "$Q/runs/quickstart/$f" ] || fail "the quickstart run left no $f"
    cmp -s "$Q/runs/quickstart/$f" "$Q/runs/fashion1k-images/$f" || fail "$f: the PNG run differs from the IDX run"
done
grep '"method"' "$Q/runs/quickstart/summary.json" >"$T/qs-rows"
grep '"method"' "$Q/runs/fashion1k-images/summary.json" >"$T/im-rows"
[ "$(grep -c test_accuracy "$T/qs-rows")" -eq 3 ] || fail "quickstart summary rows: $(cat "$T/qs-rows")"
cmp -s "$T/qs-rows" "$T/im-rows" || fail "summary rows differ: $(cat "$T/qs-rows" "$T/im-rows")"
[ -e "$Q/runs/quickstart/image-cache" ] && fail "an IDX-only run made an image cache"
ls "$Q"/runs/fashion1k-images/image-cache/images-*.cache >/dev/null 2>&1 || fail "the PNG run cached nothing"

# 3. Bad inputs: one line naming the file (and the line).
printf 'images/train/000000.png 1\nimages/train/000001.png\n' >"$T/rgb/nolabel.txt"
expect 1 "$GLORA" eval --model "$R/merged.safetensors" --set data.list="$T/rgb/nolabel.txt"
one_line; has "$T/err" "nolabel.txt' line 2: no label"
printf 'images/train/000000.png 1\nimages/train/nope.png 0\n' >"$T/rgb/missing.txt"
expect 1 "$GLORA" eval --model "$R/merged.safetensors" --set data.list="$T/rgb/missing.txt"
one_line; has "$T/err" "missing.txt' line 2: image '.*nope.png' is missing"
printf 'images/train/000000.png 9\n' >"$T/rgb/range.txt"
expect 1 "$GLORA" eval --model "$R/merged.safetensors" --set data.list="$T/rgb/range.txt"
one_line; has "$T/err" "label 9 .*beyond the model's 4 classes"
head -c 300 "$T/rgb/images/train/000000.png" >"$T/rgb/images/train/cut.png"
printf 'images/train/cut.png 0\n' >"$T/rgb/cut.txt"
expect 1 "$GLORA" eval --model "$R/merged.safetensors" --set data.list="$T/rgb/cut.txt"
one_line; has "$T/err" "cut.png'"
mkdir -p "$T/folder/c4"
expect 1 "$GLORA" eval --model "$R/merged.safetensors" --set data.folder="$T/folder"
one_line; has "$T/err" "folder/c4'.*no .jpg"
expect 1 "$GLORA" eval --model "$R/merged.safetensors" --set data.list="$T/rgb/test.txt" --set data.mean=vivid
one_line; has "$T/err" "data.mean' must be a number, 3 numbers"
finish
