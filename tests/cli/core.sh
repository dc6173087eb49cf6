#!/bin/sh
# The core commands end to end: help, init, info, eval, merge, and the one-line
# errors users get for bad files, configs and usage.
. "$top_srcdir/tests/cli/common.sh"

expect 0 "$GLORA" --help;                 has "$T/out" 'merge'
expect 2 "$GLORA";                        has "$T/err" 'usage'
expect 2 "$GLORA" frobnicate;             one_line; has "$T/err" "unknown command 'frobnicate'"
for c in info init eval merge; do
    expect 0 "$GLORA" $c --help;          has "$T/out" "usage: glora $c"
done
expect 0 "$GLORA" eval --help;            has "$T/out" 'data.images'
expect 2 "$GLORA" eval --frob;            one_line; has "$T/err" "unknown option '--frob'"
expect 2 "$GLORA" eval --threads 0;       one_line

# glora re-executes itself once with GOMP_SPINCOUNT (libgomp prints its
# settings at each start), but not when the user binds threads: the new
# process would inherit the one CPU libgomp bound the first thread to.
E="env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY -u OMP_PROC_BIND -u OMP_PLACES -u GOMP_CPU_AFFINITY OMP_DISPLAY_ENV=true"
expect 0 $E "$GLORA" --version
[ "$(grep -c 'OPENMP DISPLAY ENVIRONMENT BEGIN' "$T/err")" -eq 2 ] || fail "glora did not re-execute itself once: $(grep -c BEGIN "$T/err") starts"
expect 0 $E OMP_PROC_BIND=close OMP_PLACES=cores "$GLORA" --version
[ "$(grep -c 'OPENMP DISPLAY ENVIRONMENT BEGIN' "$T/err")" -eq 1 ] || fail "glora re-executed itself with OMP_PROC_BIND set"

# init + info: vit-tiny-28 and ViT-B/16 shapes.
expect 0 "$GLORA" init -o "$T/tiny.safetensors" --seed 1
expect 0 "$GLORA" info "$T/tiny.safetensors"
has "$T/out" '28x28x1 images, patch 7 \(17 tokens\), dim 128, depth 6, 4 heads, MLP 512, 10 classes'
expect 0 "$GLORA" init --preset vit-b16 --set arch.num_classes=10 -o "$T/b16.safetensors"
expect 0 "$GLORA" info "$T/b16.safetensors"
has "$T/out" '224x224x3 images, patch 16 \(197 tokens\), dim 768, depth 12, 12 heads, MLP 3072, 10 classes'
has "$T/out" 'adapted layers: 48'
# Same seed, same bytes.
expect 0 "$GLORA" init -o "$T/tiny2.safetensors" --seed 1
cmp -s "$T/tiny.safetensors" "$T/tiny2.safetensors" || fail "init is not deterministic"

# eval of a backbone on real images (accuracy of an untrained net is ~chance).
if [ -f "$FASHION/t10k-images-idx3-ubyte.gz" ]; then
    expect 0 "$GLORA" eval --model "$T/tiny.safetensors" --images "$FASHION/t10k-images-idx3-ubyte.gz" \
        --labels "$FASHION/t10k-labels-idx1-ubyte.gz" --start 100 --count 300 --json
    has "$T/out" '"n": 300'
    # The same through a YAML config with an override.
    cat >"$T/eval.yaml" <<YAML
model:
  backbone: $T/tiny.safetensors
data:
  images: $FASHION/t10k-images-idx3-ubyte.gz
  labels: $FASHION/t10k-labels-idx1-ubyte.gz
  count: 100
YAML
    expect 0 "$GLORA" eval "$T/eval.yaml" --set data.start=100 --json
    has "$T/out" '"n": 100'
    # Domain-shifted copies: a shift changes what the model sees.
    expect 0 "$GLORA" eval --model "$T/tiny.safetensors" --images "$FASHION/t10k-images-idx3-ubyte.gz" \
        --labels "$FASHION/t10k-labels-idx1-ubyte.gz" --count 100 --set data.shift=inverted --json
    has "$T/out" '"n": 100'
    expect 2 "$GLORA" eval --frob-shift; one_line
    expect 1 "$GLORA" eval --set data.shift=sideways --model x; one_line; has "$T/err" 'data.shift'
    # One file for several commands: --section reads one top-level map.
    { echo "other:"; echo "  anything: 1"; echo "ev:"; sed 's/^/  /' "$T/eval.yaml"; } >"$T/run.yaml"
    expect 0 "$GLORA" eval "$T/run.yaml" --section ev --json
    has "$T/out" '"n": 100'
    expect 1 "$GLORA" eval "$T/run.yaml" --section nope; one_line; has "$T/err" "no section 'nope'"
    printf '  bogus: 1\n' >>"$T/run.yaml"
    expect 1 "$GLORA" eval "$T/run.yaml" --section ev; one_line; has "$T/err" "line 1[0-9].*bogus"
    # A model of another shape is refused with both shapes named.
    expect 1 "$GLORA" eval --model "$FIX/backbone.safetensors" --images "$FASHION/t10k-images-idx3-ubyte.gz" \
        --labels "$FASHION/t10k-labels-idx1-ubyte.gz" --count 10
    one_line; has "$T/err" '28x28x1.*8x8x3'
    # ViT-B/16 shape on resized grey images (bilinear to 224x224, grey repeated).
    expect 0 "$GLORA" eval --model "$T/b16.safetensors" --images "$FASHION/t10k-images-idx3-ubyte.gz" \
        --labels "$FASHION/t10k-labels-idx1-ubyte.gz" --count 2 --batch 2 --set data.resize=yes --json
    has "$T/out" '"n": 2'
else
    echo "skipping eval on Fashion-MNIST: $FASHION missing (scripts/install-deps installs it)"
fi

# Config errors name the key and the line.
printf 'model:\n  backbone: x\n  hedas: 4\n' >"$T/bad.yaml"
expect 1 "$GLORA" eval "$T/bad.yaml";     one_line; has "$T/err" "line 3.*model.hedas"
printf 'eval:\n  batch: many\n' >"$T/bad2.yaml"
expect 1 "$GLORA" eval "$T/bad2.yaml";    one_line; has "$T/err" "line 2.*eval.batch"
expect 1 "$GLORA" eval --set eval.batch=0 --model x; one_line; has "$T/err" "eval.batch"

# Bad model files: one line naming the file.
head -c 100 "$FIX/backbone.safetensors" >"$T/trunc.safetensors"
expect 1 "$GLORA" info "$T/trunc.safetensors"; one_line; has "$T/err" "trunc.safetensors"
printf 'not a model' >"$T/junk.safetensors"
expect 1 "$GLORA" info "$T/junk.safetensors";  one_line; has "$T/err" "junk.safetensors"
expect 1 "$GLORA" info "$T/missing.safetensors"; one_line; has "$T/err" "missing.safetensors"
expect 1 "$GLORA" info "$FIX/backbone.safetensors" --heads 5; one_line

# merge: a supernet under a spec (official spellings accepted) into a plain ViT.
expect 0 "$GLORA" merge --model "$FIX/backbone.safetensors" --adapter "$FIX/supernet.safetensors" \
    --subnet "$FIX/spec_sub_rank.json" -o "$T/merged.safetensors"
expect 0 "$GLORA" info "$T/merged.safetensors"
has "$T/out" 'kind merged'
has "$T/out" '5 classes'
"$GLORA" info "$T/merged.safetensors" --tensors | grep -q '\.Ad ' && fail "merged model still holds GLoRA tensors"
expect 1 "$GLORA" merge --model "$FIX/backbone.safetensors" --adapter "$FIX/supernet.safetensors" -o "$T/m2.safetensors"
one_line; has "$T/err" 'no subnet spec'
[ -e "$T/m2.safetensors" ] && fail "a failed merge left an output file"
sed 's/LoRA_3/LoRA_9/' "$FIX/spec_sub_rank.json" >"$T/badspec.json"
expect 1 "$GLORA" merge --model "$FIX/backbone.safetensors" --adapter "$FIX/supernet.safetensors" \
    --subnet "$T/badspec.json" -o "$T/m3.safetensors"
one_line; has "$T/err" "badspec.json.*rank 9"
ls "$T" | grep -q '\.tmp\.' && fail "a temporary file was left behind"
finish
