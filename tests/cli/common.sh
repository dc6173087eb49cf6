# Sourced by the CLI tests: paths, a scratch directory and small assertions.
set -u
: "${GLORA:?run through make check}"
: "${top_srcdir:?run through make check}"
: "${top_builddir:?run through make check}"
FIX="$top_srcdir/tests/fixtures/ref"
FASHION=/usr/share/datasets/fashion-mnist
T=$(mktemp -d "${TMPDIR:-/tmp}/glora-cli.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect STATUS CMD...: runs CMD, keeps stdout/stderr in $T/out, $T/err.
expect() {
    local want=$1; shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want: $(head -3 "$T/err")"
}
# has FILE PATTERN: FILE ($T/out or $T/err) contains the extended regex.
has() { grep -Eq -- "$2" "$1" || fail "$(basename "$1") lacks /$2/: $(head -3 "$1")"; }
# one_line: stderr is exactly one error line (plus an optional hint).
one_line() {
    local n; n=$(grep -vc '^hint: ' "$T/err")
    [ "$n" -eq 1 ] || fail "expected one error line, got $n: $(cat "$T/err")"
    has "$T/err" '^glora: error: '
}
# search_fixture DIR [SEED]: a small random backbone, supernet and IDX data
# set in DIR (tests/test_search_mkfixture), for the search, MPI, hardening
# and fault tests; exits the test if it cannot be made.
MK="$top_builddir/tests/test_search_mkfixture"
search_fixture() {
    [ -x "$MK" ] || { echo "no $MK (make check builds it)"; exit 1; }
    "$MK" "$@" >/dev/null || { echo "$MK $* failed"; exit 1; }
}
# wait_until COND [PID] [SECONDS]: polls the shell condition COND every 10 ms
# until it holds, the process PID (when given) has exited, or SECONDS
# (default 10) have passed; "true" returns at once.
wait_until() {
    local n=0 max=$((${3:-10} * 100))
    until eval "$1"; do
        [ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || return 0
        [ $n -lt $max ] || return 0
        sleep 0.01
        n=$((n + 1))
    done
}
# kill_now PID: SIGKILL and reap the background process PID.
kill_now() { kill -9 "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
# lines FILE: its number of lines, 0 while it does not exist.
lines() { cat "$1" 2>/dev/null | wc -l; }
finish() { [ "$failures" -eq 0 ] && echo "all checks passed" && exit 0; exit 1; }
