# Helpers of the shell tests (tests/test_cli.sh, tests/test_retrain.sh), sourced after they set
# $tmp: count checks, run a command and check its exit code, grep what it printed.
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
expect_rc() { # expected_rc description command...: stdout in $tmp/out, stderr in $tmp/err
    local want=$1 what=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else bad "$what: exit $rc, want $want; stderr: $(head -c 400 "$tmp/err")"; fi
}
expect_err() { # pattern description
    if grep -qE -e "$1" "$tmp/err"; then ok; else bad "$2: stderr lacks /$1/: $(head -c 300 "$tmp/err")"; fi
}
expect_out() { # pattern description
    if grep -qE -e "$1" "$tmp/out"; then ok; else bad "$2: stdout lacks /$1/: $(head -c 300 "$tmp/out")"; fi
}
# The counts, and the exit status of the test.
finish() {
    echo "$pass passed, $fails failed"
    [ "$fails" -eq 0 ]
}
