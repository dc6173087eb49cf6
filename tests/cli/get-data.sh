#!/bin/sh
# scripts/get-data --check on IDX files made here (it never fetches or
# installs anything with --check): a missing file, a valid gzip file, a
# truncated one, one whose CRC is wrong, one with too few bytes, one with the
# wrong magic number; each named with its reason, exit status 1.
. "$top_srcdir/tests/cli/common.sh"
GD="$top_srcdir/scripts/get-data"
D="$T/data"
mkdir -p "$D/mnist" "$D/fashion-mnist"

# labels N BYTES: an IDX label header (magic 0x801) for N items, then BYTES zeros.
labels() {
    printf '\000\000\010\001'
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)))"
    head -c "$2" /dev/zero
}

F="$D/fashion-mnist"
labels 60000 60000 | gzip -c >"$F/train-labels-idx1-ubyte.gz"
# The same stream cut short, and whole but with its CRC-32 (the trailer's
# first 4 bytes) changed: gzip -dc fails on both.
labels 10000 10000 | gzip -c >"$T/good.gz"
size=$(wc -c <"$T/good.gz")
head -c $((size - 20)) "$T/good.gz" >"$F/t10k-labels-idx1-ubyte.gz"
{ head -c $((size - 8)) "$T/good.gz"; printf '\377\377\377\377'; tail -c 4 "$T/good.gz"; } \
    >"$F/train-images-idx3-ubyte.gz"
# Complete gzip, 5 labels instead of 10000.
labels 10000 5 | gzip -c >"$F/t10k-images-idx3-ubyte.gz"
# Plain MNIST labels with the images' magic number.
{ printf '\000\000\010\003'; labels 60000 60000 | tail -c +5; } >"$D/mnist/train-labels-idx1-ubyte"

GLORA_DATA=$D expect 1 "$GD" --check
has "$T/out" "mnist/train-images-idx3-ubyte: missing"
has "$T/out" "mnist/train-labels-idx1-ubyte: header 000008030000ea60, expected 000008010000ea60"
has "$T/out" "fashion-mnist/t10k-labels-idx1-ubyte.gz: not a valid gzip file"
has "$T/out" "fashion-mnist/train-images-idx3-ubyte.gz: not a valid gzip file"
has "$T/out" "fashion-mnist/t10k-images-idx3-ubyte.gz: header 0000080100002710[0-9a-f]*, expected 00000803"
! grep -q 'train-labels-idx1-ubyte.gz' "$T/out" || fail "the valid train-labels-idx1-ubyte.gz was reported"
has "$T/out" "missing or invalid files above"
# The right header with too few labels: judged by its size.
labels 10000 5 | gzip -c >"$F/t10k-labels-idx1-ubyte.gz"
GLORA_DATA=$D expect 1 "$GD" --check
has "$T/out" "fashion-mnist/t10k-labels-idx1-ubyte.gz: 13 bytes of IDX data, expected 10008"
# Nothing was written by a check.
[ ! -e "$D/mnist/train-images-idx3-ubyte" ] || fail "--check wrote a file"
finish
