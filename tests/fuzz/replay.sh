#!/bin/sh
# Replays through every fuzz harness (built as tests/fuzz/replay_<name>): the
# seeds it generates, its committed corpus (tests/fuzz/corpus/<name>/) and
# every input a fuzzer ever crashed it with (tests/fuzz/regress/<name>/).
# Any crash, abort or sanitizer report fails the test.
set -u
: "${top_srcdir:?run through make check}" "${top_builddir:?run through make check}"
T=$(mktemp -d "${TMPDIR:-/tmp}/glora-replay.XXXXXX")
trap 'rm -rf "$T"' EXIT
failed=0
# Every harness: tests/fuzz/fuzz_<name>.c (fuzz_util.c is the helpers).
harnesses=$(cd "$top_srcdir/tests/fuzz" && ls fuzz_*.c | sed -e 's/^fuzz_//' -e 's/\.c$//' | grep -vx util)
for h in $harnesses; do
    bin="$top_builddir/tests/fuzz/replay_$h"
    mkdir -p "$T/$h"
    "$bin" --seed "$T/$h" || { echo "FAIL: $h: writing seeds"; failed=1; continue; }
    set -- "$T/$h"
    for d in "$top_srcdir/tests/fuzz/corpus/$h" "$top_srcdir/tests/fuzz/regress/$h"; do
        [ -d "$d" ] && set -- "$@" "$d"
    done
    if out=$("$bin" "$@" 2>"$T/$h.err"); then
        echo "$h: $out"
    else
        echo "FAIL: $h (status $?):"; tail -30 "$T/$h.err"; failed=1
    fi
done
exit $failed
