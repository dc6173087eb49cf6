#!/bin/sh
# glora predict: JSON lines over a list file, an image folder and single
# files, on generated 32x32 RGB images and a tiny ViT trained briefly. Checks the
# lines parse (jq, strictly), the class is the argmax of the logits, the
# top-5 are the softmax of the logits, the predictions agree with glora
# eval's count on the same labelled list, and bad inputs are one-line errors
# naming the file.
. "$top_srcdir/tests/cli/common.sh"
IMGDATA="$top_builddir/glora-imgdata"
if ! command -v jq >/dev/null 2>&1; then
    echo "skip: jq not installed (scripts/install-deps installs it)"
    exit 77
fi
expect 0 "$IMGDATA" synth "$T/d" test 12 32 4 11
ARCH="--set arch.img_size=32 --set arch.in_chans=3 --set arch.patch=16 --set arch.dim=32 --set arch.depth=2 \
--set arch.heads=2 --set arch.mlp_hidden=64"
expect 0 "$GLORA" init $ARCH --set arch.num_classes=4 --seed 5 -o "$T/m4.safetensors"
expect 0 "$GLORA" init $ARCH --set arch.num_classes=7 --seed 6 -o "$T/m7.safetensors"
# A few epochs on 48 training images: the predictions are mixed, some right.
expect 0 "$IMGDATA" synth "$T/d" train 48 32 4 5
expect 0 "$GLORA" finetune --model "$T/m4.safetensors" --set data.train.list="$T/d/train.txt" --set data.size=32 \
    --epochs 3 --batch 8 --set train.lr=0.003 --threads 2 -o "$T/ft.safetensors"
M="--model $T/ft.safetensors --threads 2"

# strict: every line one JSON object with the format's fields, class the
# argmax of the logits (lowest index on ties), top5 the softmax of the
# logits, most likely first, min(5, classes) of them, summing to ~1 when
# they are all the classes.
check() { # FILE N CLASSES
    [ "$(wc -l <"$1")" -eq "$2" ] || fail "$1: $(wc -l <"$1") lines, expected $2"
    jq -e -s --argjson n "$2" --argjson V "$3" '
        length == $n and all(.[];
            type == "object" and (.path | type) == "string" and (.class | type) == "number" and
            (.logits | length) == $V and .class == (.logits | indices(max)[0]) and
            (.top5 | length) == ([5, $V] | min) and .top5[0].class == .class and
            (.logits | max) as $mx | ([.logits[] | (. - $mx | exp)] | add) as $s |
            . as $o | all(.top5[]; (((($o.logits[.class] - $mx) | exp) / $s) - .p | fabs) < 1e-9) and
            ([.top5[] | .p] | . == (sort | reverse)) and
            (if $V <= 5 then ((([.top5[] | .p] | add) - 1) | fabs) < 1e-9 else true end))
    ' "$1" >/dev/null || fail "$1: lines fail the format check: $(head -2 "$1")"
}

# 1. A list file, with the logits.
expect 0 "$GLORA" predict $M --list "$T/d/test.txt" --logits
cp "$T/out" "$T/list.jsonl"
check "$T/list.jsonl" 12 4
jq -e -s 'all(.[]; has("name") | not)' "$T/list.jsonl" >/dev/null || fail "a list's lines have names"
# The predictions agree with eval's count on the same labelled list.
jq -r .class "$T/list.jsonl" >"$T/pred"
awk '{print $NF}' "$T/d/test.txt" >"$T/labels"
right=$(paste "$T/pred" "$T/labels" | awk '$1 == $2 {n++} END {print n + 0}')
expect 0 "$GLORA" eval $M --list "$T/d/test.txt" --json
ev=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
[ "$right" = "$ev" ] || fail "predict gets $right of 12 right, eval counts $ev"
[ "$(sort -u "$T/pred" | wc -l)" -ge 2 ] && [ "$right" -ge 1 ] && [ "$right" -lt 12 ] ||
    fail "the predictions are too uniform to test anything: $(tr '\n' ' ' <"$T/pred")"
# Paths are the list's, joined to its folder, in order.
jq -r .path "$T/list.jsonl" >"$T/paths"
awk -v d="$T/d" '{print d "/" $1}' "$T/d/test.txt" | cmp -s - "$T/paths" || fail "paths differ from the list's"

# 2. In pieces of 3 images (data.max_memory), to a file (-o): the same lines.
expect 0 "$GLORA" predict $M --list "$T/d/test.txt" --logits --set data.max_memory=10000 -o "$T/o.jsonl"
[ -s "$T/out" ] && fail "-o still wrote to stdout"
cmp -s "$T/o.jsonl" "$T/list.jsonl" || fail "streamed predictions to -o differ"

# 3. An image folder (one sub-folder per class): names, the same predictions.
while read -r p l; do
    mkdir -p "$T/f/class$l" && cp "$T/d/$p" "$T/f/class$l/" || fail "copying $p"
done <"$T/d/test.txt"
expect 0 "$GLORA" predict $M --folder "$T/f" --logits
cp "$T/out" "$T/folder.jsonl"
check "$T/folder.jsonl" 12 4
jq -e -s 'all(.[]; .name == "class\(.class)")' "$T/folder.jsonl" >/dev/null ||
    fail "folder names are not the class folders: $(head -1 "$T/folder.jsonl")"
jq -r '"\(.path | split("/") | last) \(.class) \(.logits)"' "$T/list.jsonl" | sort >"$T/a"
jq -r '"\(.path | split("/") | last) \(.class) \(.logits)"' "$T/folder.jsonl" | sort >"$T/b"
cmp -s "$T/a" "$T/b" || fail "the folder's predictions differ from the list's"

# 4. Single files; 7 classes: five in the top 5.
f0="$T/d/images/test/000000.png"; f5="$T/d/images/test/000005.png"
expect 0 "$GLORA" predict $M "$f5" "$f0"
jq -r '"\(.path) \(.class)"' "$T/out" >"$T/a"
printf '%s %s\n%s %s\n' "$f5" "$(sed -n 6p "$T/pred")" "$f0" "$(sed -n 1p "$T/pred")" | cmp -s - "$T/a" ||
    fail "single files: $(cat "$T/a")"
expect 0 "$GLORA" predict --model "$T/m7.safetensors" "$f0" "$f5" --logits
cp "$T/out" "$T/seven.jsonl"
check "$T/seven.jsonl" 2 7

# 4b. Class names travel with the model: trained on an image folder, the
# model's metadata holds the class folders' names (glora.class_names), and
# predict prints them for a list file too; a supernet keeps them as well.
expect 0 "$GLORA" finetune --model "$T/m4.safetensors" --set data.train.folder="$T/f" --set data.size=32 \
    --epochs 1 --batch 4 --threads 2 -o "$T/named.safetensors"
expect 0 "$GLORA" info "$T/named.safetensors"
has "$T/out" 'glora.class_names = \["class0", "class1", "class2", "class3"\]'
expect 0 "$GLORA" predict --model "$T/named.safetensors" --list "$T/d/test.txt"
jq -e -s 'length == 12 and all(.[]; .name == "class\(.class)")' "$T/out" >/dev/null ||
    fail "a model trained on a folder predicts without its names: $(head -1 "$T/out")"
expect 0 "$GLORA" supernet --model "$T/m4.safetensors" --set data.train.folder="$T/f" --set data.size=32 \
    --epochs 1 --batch 4 --threads 2 -o "$T/sn.safetensors"
expect 0 "$GLORA" info "$T/sn.safetensors"
has "$T/out" 'glora.class_names = \["class0", "class1", "class2", "class3"\]'
# ... into the search's specs, and through a retraining on a list (no names)
# and the merge to the merged model's predictions.
printf 'search: {population: 4, parents: 2, mutations: 2, crossovers: 2, generations: 1}\n' >"$T/s.yaml"
expect 0 "$GLORA" search "$T/s.yaml" --model "$T/m4.safetensors" --supernet "$T/sn.safetensors" \
    --set data.folder="$T/f" --output "$T/srch" --threads 2
jq -e '.class_names == ["class0", "class1", "class2", "class3"]' "$T/srch/best.json" >/dev/null ||
    fail "best.json lacks the class names"
expect 0 "$GLORA" retrain --model "$T/m4.safetensors" --set model.adapter="$T/sn.safetensors" \
    --set subnet="$T/srch/best.json" --set data.train.list="$T/d/test.txt" --set data.size=32 --epochs 1 \
    --batch 4 --threads 2 -o "$T/ad.safetensors"
expect 0 "$GLORA" merge --model "$T/m4.safetensors" --adapter "$T/ad.safetensors" -o "$T/merged.safetensors"
expect 0 "$GLORA" predict --model "$T/merged.safetensors" "$f0"
jq -e '.name == "class\(.class)"' "$T/out" >/dev/null || fail "the merged model lost the names: $(cat "$T/out")"
# A backbone with the retrained adapter, and with the supernet and the
# search's spec: each predicts what glora eval counts for the same model,
# with the names the adapter carries.
for a in "--adapter $T/ad.safetensors" "--adapter $T/sn.safetensors --subnet $T/srch/best.json"; do
    expect 0 "$GLORA" predict --model "$T/m4.safetensors" $a --list "$T/d/test.txt" --logits
    check "$T/out" 12 4
    jq -e -s 'all(.[]; .name == "class\(.class)")' "$T/out" >/dev/null || fail "predict $a: no names"
    right=$(jq -r .class "$T/out" | paste - "$T/labels" | awk '$1 == $2 {n++} END {print n + 0}')
    expect 0 "$GLORA" eval --model "$T/m4.safetensors" $a --list "$T/d/test.txt" --json
    ev=$(sed 's/.*"correct": \([0-9]*\).*/\1/' "$T/out")
    [ -n "$ev" ] && [ "$right" = "$ev" ] || fail "predict $a gets $right of 12 right, eval counts $ev"
done
jq '.class_names = ["a", "b"]' "$T/srch/best.json" >"$T/nz.json"
expect 1 "$GLORA" eval --model "$T/m4.safetensors" --adapter "$T/sn.safetensors" --subnet "$T/nz.json" \
    --list "$T/d/test.txt" --set data.size=32
one_line; has "$T/err" "nz.json.*class_names"
# Bad names in the metadata (same length, so the header stays valid).
sed 's/\[\\"class0\\", /[\\"class0\\"; /' "$T/named.safetensors" >"$T/badnames.safetensors"
cmp -s "$T/named.safetensors" "$T/badnames.safetensors" && fail "the sed did not change the names"
expect 1 "$GLORA" predict --model "$T/badnames.safetensors" "$f0"
one_line; has "$T/err" "badnames.safetensors.*glora.class_names"

# 5. A timm config.json beside the model gives the data defaults (size 64,
# resize shorter with crop_pct 0.9, bicubic, mean/std 0.5): the same logits
# as the bare file with those keys set; keys the config sets override it.
V="$top_srcdir/tests/fixtures/vit"
mkdir -p "$T/hub" "$T/bare"
cp "$V/model.safetensors" "$V/config.json" "$T/hub/" && cp "$V/model.safetensors" "$T/bare/" || fail "copying"
expect 0 "$GLORA" predict --model "$T/hub/model.safetensors" --list "$T/d/test.txt" --logits
cp "$T/out" "$T/hub.jsonl"
check "$T/hub.jsonl" 12 10
expect 0 "$GLORA" predict --model "$T/bare/model.safetensors" --heads 4 --list "$T/d/test.txt" --logits \
    --set data.size=64 --set data.resize=shorter --set data.crop_pct=0.9 --set data.mean=0.5 --set data.std=0.5
cmp -s "$T/out" "$T/hub.jsonl" || fail "config.json defaults differ from the same keys set"
N="--set data.resize=squash --set data.mean=imagenet --set data.std=imagenet"
expect 0 "$GLORA" predict --model "$T/hub/model.safetensors" --list "$T/d/test.txt" --logits $N
cp "$T/out" "$T/hub2.jsonl"
cmp -s "$T/hub2.jsonl" "$T/hub.jsonl" && fail "data.* keys did not override config.json"
expect 0 "$GLORA" predict --model "$T/bare/model.safetensors" --heads 4 --list "$T/d/test.txt" --logits $N \
    --set data.size=64
cmp -s "$T/out" "$T/hub2.jsonl" || fail "config.json + overrides differ from the same keys set"
expect 0 "$GLORA" info "$T/hub/model.safetensors" $N
has "$T/out" 'size 64, resize squash, interpolation bicubic, mean 0.485 0.456 0.406, std 0.229 0.224 0.225 \(from .*hub/config.json: size, interpolation\)'
sed 's/"bicubic"/"lanczos"/' "$V/config.json" >"$T/hub/config.json"
expect 1 "$GLORA" predict --model "$T/hub/model.safetensors" --list "$T/d/test.txt"
one_line; has "$T/err" "hub/config.json.*interpolation 'lanczos'"
expect 0 "$GLORA" predict --model "$T/hub/model.safetensors" --list "$T/d/test.txt" --set data.interpolation=bicubic

# 6. Under MPI (2 ranks): the images spread over the ranks in whole batches,
# the lines gathered in order are the bytes of one process: a list in one
# piece and in pieces of 5 images (batches of 2, so ranks get uneven shares),
# a folder, single files; and an error on rank 1's image is one line.
printf 'not an image at all' >"$T/bad.png"
if [ -n "${MPIRUN:-}" ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    MPI2="$MPIRUN -q -np 2 --oversubscribe --bind-to none"
    $MPI2 true >/dev/null 2>&1 || MPI2="$MPIRUN -np 2"
fi
if [ -n "${MPIRUN:-}" ] && $MPI2 true >/dev/null 2>&1; then
    P="--model $T/ft.safetensors --threads 1 --logits"
    for opts in "--batch 200" "--batch 2 --set data.max_memory=15360" "--batch 5"; do
        expect 0 $MPI2 "$GLORA" predict $P --list "$T/d/test.txt" $opts -o "$T/mpi.jsonl"
        cmp -s "$T/mpi.jsonl" "$T/list.jsonl" || fail "2 ranks ($opts) differ from one process"
    done
    expect 0 $MPI2 "$GLORA" predict $P --folder "$T/f" --batch 3
    cmp -s "$T/out" "$T/folder.jsonl" || fail "2 ranks on a folder differ from one process"
    expect 0 $MPI2 "$GLORA" predict $P "$f5" "$f0" --batch 1
    "$GLORA" predict $P "$f5" "$f0" | cmp -s - "$T/out" || fail "2 ranks on files differ from one process"
    expect 1 $MPI2 "$GLORA" predict $P "$f5" "$f0" "$f5" "$T/bad.png" --batch 2 -o "$T/fail.jsonl"
    one_line; has "$T/err" 'bad\.png'
    [ -e "$T/fail.jsonl" ] && fail "a failed predict under MPI left its -o file"
else
    echo "note: built without MPI (or mpirun cannot start 2 ranks): the MPI part is skipped"
fi

# 7. Errors: one line naming the file, exit 1, no output file left.
expect 1 "$GLORA" predict $M "$T/nope.png"
one_line; has "$T/err" 'nope\.png'
printf 'not an image at all' >"$T/bad.png"
expect 1 "$GLORA" predict $M "$f0" "$T/bad.png" -o "$T/fail.jsonl"
one_line; has "$T/err" 'bad\.png'
[ -e "$T/fail.jsonl" ] && fail "a failed predict left its -o file"
printf '%s 0\nbad.png 1\n' "$f0" >"$T/bad.txt"
expect 1 "$GLORA" predict $M --list "$T/bad.txt"
one_line; has "$T/err" 'bad\.png'
expect 2 "$GLORA" predict $M
has "$T/err" 'nothing to predict'
expect 2 "$GLORA" predict $M --list "$T/d/test.txt" "$f0"
expect 0 "$GLORA" predict --help
has "$T/out" 'predict'
finish
