#!/bin/bash
# Checks the operator's files in deploy/ without root or a running systemd:
# - the scripts parse (bash -n, sh -n) and are shellcheck-clean (when shellcheck is installed);
# - the systemd units pass `systemd-analyze verify` (when systemd-analyze exists; the binaries
#   they name are replaced by stand-ins in a scratch directory), carry the hardening options, keep
#   an exposure score of at most 2.5 (`systemd-analyze security --offline`), and the single server
#   unit and the template differ only in the port;
# - the nginx site passes `nginx -t` inside a wrapper config (when nginx is installed, or
#   $NGINX_BIN names a binary);
# - gnnrec-retrain.sh against a fake gnnrec ($GNNREC): a second run while one holds the lock exits
#   75 without training; exit codes 0, 3 and 1 as documented (2, other codes, a timeout and
#   SIGTERM give 1); settings from the environment and the defaults file become train options;
#   the textfile for node_exporter is replaced by a rename, holds the five gauges with the right
#   values, and keeps the last success and version across failed runs; every log line is
#   timestamped;
# - the Docker entrypoint trains the demo only when the store is absent, then serves;
# - the Dockerfile's runtime packages provide every library the gnnrec binary names (dpkg,
#   apt-cache: the packages or their dependencies).
# shellcheck disable=SC2015 # `check && ok || bad`: ok always succeeds
set -u
src=${GNNREC_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
dep=$src/deploy
retrain=$dep/gnnrec-retrain.sh
tmp=$(mktemp -d)
bg_pids=()
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
check() { # description command...: passes when the command succeeds
    local what=$1
    shift
    if "$@"; then ok; else bad "$what"; fi
}

# --- the scripts: syntax and shellcheck -----------------------------------------------------
check "bash -n gnnrec-retrain.sh" bash -n "$retrain"
check "bash -n gnnrec-retrain.default" bash -n "$dep/gnnrec-retrain.default"
check "sh -n docker-entrypoint.sh" sh -n "$dep/docker-entrypoint.sh"
check "gnnrec-retrain.sh is executable" test -x "$retrain"
check "docker-entrypoint.sh is executable" test -x "$dep/docker-entrypoint.sh"
if command -v shellcheck >/dev/null; then
    check "shellcheck gnnrec-retrain.sh" shellcheck "$retrain"
    check "shellcheck docker-entrypoint.sh" shellcheck "$dep/docker-entrypoint.sh"
    check "shellcheck test_deploy.sh" shellcheck "$0"
    # Its variables are read by the script that sources it: SC2034 (unused) does not apply.
    check "shellcheck gnnrec-retrain.default" shellcheck -s bash -e SC2034 "$dep/gnnrec-retrain.default"
else
    echo "SKIP: shellcheck: not installed (apt-get install shellcheck)"
fi

# --- systemd units --------------------------------------------------------------------------
units=(gnnrec-serve.service gnnrec-serve@.service gnnrec-retrain.service)
hardening=(NoNewPrivileges=true ProtectSystem=strict ProtectHome=true PrivateTmp=true
    PrivateDevices=true ProtectKernelTunables=true ProtectKernelModules=true
    ProtectKernelLogs=true ProtectControlGroups=true
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" RestrictNamespaces=true
    LockPersonality=true MemoryDenyWriteExecute=true SystemCallFilter=@system-service
    CapabilityBoundingSet= User=gnnrec ReadWritePaths=/var/lib/gnnrec)
for u in "${units[@]}"; do
    for h in "${hardening[@]}"; do
        grep -qxF -e "$h" "$dep/$u" && ok || bad "$u lacks $h"
    done
done
for u in gnnrec-serve.service gnnrec-serve@.service; do
    grep -q -- '--token-file %d/token' "$dep/$u" && ok || bad "$u: no --token-file from the credential"
    grep -qxF 'LoadCredential=token:/etc/gnnrec/token' "$dep/$u" && ok || bad "$u: no LoadCredential"
done
# One server or several: the same unit but for the port.
strip_unit() { grep -v -e '^#' -e '^Description=' "$1" | sed 's/%i/8080/g'; }
check "gnnrec-serve@.service is gnnrec-serve.service on port %i" \
    diff <(strip_unit "$dep/gnnrec-serve.service") <(strip_unit "$dep/gnnrec-serve@.service")
grep -q '^Persistent=true' "$dep/gnnrec-retrain.timer" && grep -q '^RandomizedDelaySec=' \
    "$dep/gnnrec-retrain.timer" && grep -q '^OnCalendar=' "$dep/gnnrec-retrain.timer" && ok ||
    bad "gnnrec-retrain.timer: OnCalendar, Persistent, RandomizedDelaySec"
grep -q '^Type=oneshot' "$dep/gnnrec-retrain.service" && ok || bad "gnnrec-retrain.service: not oneshot"
# The timer and cron run the same script.
grep -q '^ExecStart=/usr/local/bin/gnnrec-retrain$' "$dep/gnnrec-retrain.service" && ok ||
    bad "gnnrec-retrain.service does not run /usr/local/bin/gnnrec-retrain"
grep -qE '^[^#].* gnnrec /usr/local/bin/gnnrec-retrain( |$)' "$dep/crontab.example" && ok ||
    bad "crontab.example does not run /usr/local/bin/gnnrec-retrain as gnnrec"

if command -v systemd-analyze >/dev/null; then
    mkdir -p "$tmp/sd/bin" "$tmp/sd/units"
    printf '#!/bin/sh\n' >"$tmp/sd/bin/gnnrec"
    cp "$tmp/sd/bin/gnnrec" "$tmp/sd/bin/gnnrec-retrain"
    chmod +x "$tmp/sd/bin/"*
    for f in "$dep"/*.service "$dep"/*.timer; do
        sed "s#/usr/local/bin/#$tmp/sd/bin/#g" "$f" >"$tmp/sd/units/${f##*/}"
    done
    # verify exits 0 on a misspelt key or a bad value and only prints them: any output fails.
    for u in gnnrec-serve.service gnnrec-serve@8081.service gnnrec-retrain.timer; do
        out=$(cd "$tmp/sd/units" && systemd-analyze verify --man=no "./$u" 2>&1)
        rc=$?
        [ "$rc" -eq 0 ] && [ -z "$out" ] && ok || bad "systemd-analyze verify $u: exit $rc: $out"
    done
    if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
        for u in gnnrec-serve.service gnnrec-retrain.service; do
            score=$(cd "$tmp/sd/units" && systemd-analyze security --offline=true "./$u" 2>/dev/null |
                sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
            awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.5) }' && ok ||
                bad "$u: exposure ${score:-unknown}, want <= 2.5"
        done
    else
        echo "SKIP: exposure score: systemd-analyze has no security --offline"
    fi
else
    echo "SKIP: systemd-analyze verify: systemd-analyze not installed"
fi

# --- nginx ----------------------------------------------------------------------------------
nginx_bin=${NGINX_BIN:-$(command -v nginx || true)}
if [ -n "$nginx_bin" ] && [ -x "$nginx_bin" ]; then
    mkdir -p "$tmp/ngx"
    # nginx -t binds the listening sockets: a Unix socket instead of port 80 needs no root and
    # meets no other server on the port. Logs and temporary files in the scratch directory.
    sed -e "s#/var/log/nginx/#$tmp/ngx/#g" -e "s#^    listen 80;#    listen unix:$tmp/ngx/site.sock;#" \
        -e '/^    listen \[::\]:80;/d' "$dep/nginx.conf" >"$tmp/ngx/site.conf"
    grep -q "listen unix:" "$tmp/ngx/site.conf" || bad "nginx.conf: no 'listen 80;' line to replace"
    cat >"$tmp/ngx/wrapper.conf" <<EOF
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log;
events {}
http {
    client_body_temp_path $tmp/ngx/body;
    proxy_temp_path $tmp/ngx/proxy;
    fastcgi_temp_path $tmp/ngx/fastcgi;
    uwsgi_temp_path $tmp/ngx/uwsgi;
    scgi_temp_path $tmp/ngx/scgi;
    include $tmp/ngx/site.conf;
}
EOF
    # (nginx reads $NGINX itself, as inherited sockets.)
    if env -u NGINX "$nginx_bin" -t -q -p "$tmp/ngx" -e "$tmp/ngx/error.log" -c "$tmp/ngx/wrapper.conf" \
        2>"$tmp/ngx/t.err"; then ok; else bad "nginx -t: $(cat "$tmp/ngx/t.err")"; fi
else
    echo "SKIP: nginx -t: nginx not installed (or set NGINX_BIN=/path/to/nginx)"
fi
grep -qx '    client_max_body_size 1m;' "$dep/nginx.conf" && ok || bad "nginx.conf: body limit is not 1m"

# --- the retrain script, against a fake gnnrec ----------------------------------------------
# The fake records its arguments, prints what `gnnrec train` prints, and exits $FAKE_RC; with
# $FAKE_HOLD it first says it started and waits (at most 10 s) for that file to exist.
fake=$tmp/fake-gnnrec
cat >"$fake" <<'EOF'
#!/bin/bash
printf '%s\n' "$*" >>"$FAKE_ARGS"
echo "epoch 1 loss 0.69" >&2
if [ -n "${FAKE_HOLD:-}" ]; then
    : >"$FAKE_HOLD.started"
    trap 'echo "fake: SIGTERM" >&2; exit 143' TERM
    for _ in $(seq 200); do
        [ -e "$FAKE_HOLD" ] && break
        sleep 0.05 9<&- &
        wait $!
    done
fi
case ${FAKE_RC:-0} in
0) echo "${FAKE_PUBLISHED:-published demo v7}" ;;
3)
    echo "gnnrec train: gate: recall@20 on the 40 test users both versions know: new 0.1012, live v6 0.1400, tolerance 0.01: refused, nothing published" >&2
    echo "report written" >&2
    ;;
1) echo "data.csv:3: expected user,item" >&2 ;;
esac
exit "${FAKE_RC:-0}"
EOF
chmod +x "$fake"
r=$tmp/retrain
mkdir -p "$r/textfile"
export GNNREC=$fake FAKE_ARGS=$r/args GNNREC_RETRAIN_CONFIG=$r/none GNNREC_DB=$r/store.sqlite
export GNNREC_MODEL_NAME=demo GNNREC_REPORT_DIR=$r/reports GNNREC_RETRAIN_LOG=$r/retrain.log
export GNNREC_LOCK_FILE=$r/retrain.lock GNNREC_TEXTFILE_DIR=$r/textfile
prom=$r/textfile/gnnrec_retrain_demo.prom
run_retrain() { # expected_rc description [VAR=value ...]: runs the script with those settings
    local want=$1 what=$2
    shift 2
    env "$@" "$retrain" >"$r/out" 2>"$r/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else
        bad "retrain $what: exit $rc, want $want; stderr: $(head -c 300 "$r/err")"
    fi
}
gauge() { sed -n "s/^gnnrec_retrain_$1{model=\"demo\"} \\([0-9]*\\)\$/\\1/p" "$prom"; }
expect_gauge() { # name value description
    local got
    got=$(gauge "$1")
    [ "$got" = "$2" ] && ok || bad "$3: gnnrec_retrain_$1 is '$got', want '$2'"
}

# Two overlapping runs: the second exits 75 at once, trains nothing, leaves the textfile alone.
FAKE_HOLD=$r/release FAKE_RC=0 "$retrain" >"$r/first.out" 2>"$r/first.err" &
first=$!
bg_pids+=("$first")
for _ in $(seq 200); do
    [ -e "$r/release.started" ] && break
    sleep 0.05
done
check "first retrain started the trainer" test -e "$r/release.started"
run_retrain 75 "while another holds the lock"
grep -q "another retrain is running" "$r/err" && ok || bad "exit 75 without its message: $(cat "$r/err")"
[ "$(wc -l <"$r/args")" -eq 1 ] && ok || bad "the refused run started gnnrec"
check "the refused run wrote no textfile" test ! -e "$prom"
: >"$r/release"
wait "$first"
rc=$?
bg_pids=()
[ "$rc" -eq 0 ] && ok || bad "first retrain: exit $rc, want 0: $(cat "$r/first.err")"
grep -q "published demo v7" "$r/first.out" && ok || bad "published line not on stdout"

# The options the settings give.
args=$(head -n 1 "$r/args")
want="train --db $r/store.sqlite --name demo --from-log --split time:0.1 --quiet --refit-epochs 10"
want="$want --gate-tolerance 0.01"
want="$want --report $r/reports/last.json --report-html $r/reports/last.html"
[ "$args" = "$want" ] && ok || bad "default options: '$args', want '$want'"
printf 'GNNREC_MODEL_NAME=fromfile\nGNNREC_SPLIT=time:0.2\nGNNREC_WARM_START=1\n' >"$r/defaults"
run_retrain 0 "with settings" GNNREC_RETRAIN_CONFIG="$r/defaults" GNNREC_SINCE=2024-01-01 \
    GNNREC_BASE_FILE=/data/base.csv GNNREC_GATE_TOLERANCE=0.02 GNNREC_TRAIN_ARGS="--epochs 5  --model mf" \
    GNNREC_REPORT_DIR=
args=$(tail -n 1 "$r/args")
want="train --db $r/store.sqlite --name demo --from-log --split time:0.2 --quiet --since 2024-01-01"
want="$want --train /data/base.csv --warm-start --refit-epochs 10 --gate-tolerance 0.02 --epochs 5"
want="$want --model mf"
[ "$args" = "$want" ] && ok || bad "options from settings: '$args', want '$want'"
run_retrain 0 "without the gate" GNNREC_GATE_TOLERANCE=off GNNREC_REFIT_EPOCHS=0 GNNREC_REPORT_DIR=
args=$(tail -n 1 "$r/args")
want="train --db $r/store.sqlite --name demo --from-log --split time:0.1 --quiet"
[ "$args" = "$want" ] && ok || bad "GNNREC_GATE_TOLERANCE=off: '$args', want '$want'"

# Exit codes.
run_retrain 3 "gate refused" FAKE_RC=3
grep -q "new 0.1012, live v6 0.1400" "$r/err" && ok || bad "gate refusal without the numbers: $(cat "$r/err")"
run_retrain 1 "failed" FAKE_RC=1
grep -q "data.csv:3" "$r/err" && ok || bad "failure without the reason: $(cat "$r/err")"
run_retrain 1 "usage error (2)" FAKE_RC=2
run_retrain 1 "other exit code (7)" FAKE_RC=7
run_retrain 1 "timed out" FAKE_RC=0 FAKE_HOLD="$r/never" GNNREC_RETRAIN_TIMEOUT=0.3
grep -q "timed out" "$r/err" && ok || bad "timeout not reported: $(cat "$r/err")"
run_retrain 1 "no gnnrec binary" GNNREC="$r/missing"
rm -f "$r/stop.started"
FAKE_HOLD=$r/stop "$retrain" >"$r/out" 2>"$r/err" &
stopped=$!
bg_pids+=("$stopped")
for _ in $(seq 200); do
    [ -e "$r/stop.started" ] && break
    sleep 0.05
done
kill -TERM "$stopped"
wait "$stopped"
rc=$?
bg_pids=()
[ "$rc" -eq 1 ] && ok || bad "SIGTERM: exit $rc, want 1"
grep -q "stopped by SIGTERM" "$r/err" && ok || bad "SIGTERM not reported: $(cat "$r/err")"
expect_gauge last_exit_code 1 "after SIGTERM"

# The textfile: written by rename (a new inode, no temporary left), the five gauges with HELP
# and TYPE, the last success and version carried over a failed run.
cat >"$prom" <<'EOF'
gnnrec_retrain_last_success_timestamp_seconds{model="demo"} 1000
gnnrec_retrain_published_version{model="demo"} 5
EOF
inode=$(stat -c %i "$prom")
t0=$(date +%s)
run_retrain 1 "failed, after an earlier success" FAKE_RC=1
t1=$(date +%s)
[ "$(stat -c %i "$prom")" != "$inode" ] && ok || bad "textfile rewritten in place, not renamed"
[ "$(find "$r/textfile" -type f | wc -l)" -eq 1 ] && ok || bad "temporary files left: $(ls -A "$r/textfile")"
expect_gauge last_exit_code 1 "failed run"
expect_gauge last_success_timestamp_seconds 1000 "failed run keeps the last success"
expect_gauge published_version 5 "failed run keeps the version"
last_run=$(gauge last_run_timestamp_seconds)
[ "${last_run:-0}" -ge "$t0" ] && [ "${last_run:-0}" -le "$t1" ] && ok || bad "last run '$last_run' not in [$t0, $t1]"
[ -n "$(gauge duration_seconds)" ] && ok || bad "no duration"
run_retrain 3 "gate refused, after an earlier success" FAKE_RC=3
expect_gauge last_exit_code 3 "gate refused"
expect_gauge published_version 5 "gate refused keeps the version"
run_retrain 0 "published" FAKE_RC=0
expect_gauge last_exit_code 0 "published"
expect_gauge published_version 7 "published"
[ "$(gauge last_success_timestamp_seconds)" = "$(gauge last_run_timestamp_seconds)" ] && ok ||
    bad "a success's last_success is not its last_run"
run_retrain 0 "published, said the long way" FAKE_PUBLISHED="published demo version 12 to $r/store.sqlite"
expect_gauge published_version 12 "published demo version 12 to ..."
for m in last_run_timestamp_seconds last_success_timestamp_seconds last_exit_code duration_seconds \
    published_version; do
    grep -qx "# TYPE gnnrec_retrain_$m gauge" "$prom" && grep -q "^# HELP gnnrec_retrain_$m " "$prom" &&
        ok || bad "no HELP/TYPE for $m"
done
[ "$(grep -vc '^#' "$prom")" -eq 5 ] && ok || bad "textfile holds other samples: $(cat "$prom")"
[ "$(stat -c %a "$prom")" = 644 ] && ok || bad "textfile mode $(stat -c %a "$prom"), want 644"
# A textfile directory that cannot be written costs the metrics, not the run.
run_retrain 0 "textfile directory missing" GNNREC_TEXTFILE_DIR="$r/args/not-a-dir"
grep -q "warning: cannot write the textfile" "$r/retrain.log" && ok || bad "no warning for the textfile"

# The log: every line timestamped and named; starts, trainer output and outcomes are there.
stamp_re='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{4} \[demo\] '
[ "$(grep -cvE "$stamp_re" "$r/retrain.log")" -eq 0 ] && ok || bad "log lines without a timestamp"
for pat in "starting: .*$fake train" "epoch 1 loss 0.69" "published demo v7 \\(exit 0" \
    "quality gate refused.*\\(exit 3" "another retrain holds" "stopped by SIGTERM"; do
    grep -qE -e "$pat" "$r/retrain.log" && ok || bad "log lacks /$pat/"
done
unset GNNREC FAKE_ARGS GNNREC_RETRAIN_CONFIG GNNREC_DB GNNREC_MODEL_NAME GNNREC_REPORT_DIR \
    GNNREC_RETRAIN_LOG GNNREC_LOCK_FILE GNNREC_TEXTFILE_DIR

# --- the Docker entrypoint, against a fake gnnrec -------------------------------------------
d=$tmp/docker
mkdir -p "$d"
cat >"$d/gnnrec" <<'EOF'
#!/bin/sh
printf '%s\n' "$*" >>"$FAKE_ARGS"
if [ "$1" = train ]; then : >"$4"; fi
EOF
chmod +x "$d/gnnrec"
entry() { env GNNREC="$d/gnnrec" FAKE_ARGS="$d/args" GNNREC_DB="$d/demo.sqlite" \
    GNNREC_TOKEN_FILE="$d/token" "$dep/docker-entrypoint.sh" "$@" 2>/dev/null; }
entry && ok || bad "entrypoint failed"
printf 'train --synthetic --db %s --name demo\nserve --db %s --listen 0.0.0.0:8080\n' \
    "$d/demo.sqlite" "$d/demo.sqlite" | diff - "$d/args" >/dev/null && ok ||
    bad "entrypoint, no store: $(cat "$d/args")"
: >"$d/args"
echo secret >"$d/token"
entry --threads 1 && ok || bad "entrypoint failed"
[ "$(cat "$d/args")" = "serve --db $d/demo.sqlite --listen 0.0.0.0:8080 --token-file $d/token --threads 1" ] &&
    ok || bad "entrypoint, store present: $(cat "$d/args")"
: >"$d/args"
entry models list --db x && ok || bad "entrypoint failed"
[ "$(cat "$d/args")" = "models list --db x" ] && ok || bad "entrypoint, a command: $(cat "$d/args")"

# --- the Dockerfile's runtime packages provide what the binary links ------------------------
bin=${GNNREC_BIN:-}
if [ -n "$bin" ] && [ -x "$bin" ] && command -v dpkg >/dev/null && command -v apt-cache >/dev/null &&
    command -v ldd >/dev/null && command -v readelf >/dev/null; then
    read -r -a runtime <<<"$(awk '/^FROM/ { n++ } n == 2' "$dep/Dockerfile" |
        grep -oE '\blib[a-z0-9.+-]+[0-9]\b' | sort -u | tr '\n' ' ')"
    # Installed with the runtime packages: their dependencies, recursively, taking the first of
    # alternatives (what apt installs), skipping virtual packages.
    closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "${runtime[@]}" 2>/dev/null | awk -v roots="${runtime[*]}" '
        /^[^ ]/ { pkg = $0; alt = 0; next }
        /^ *[|]?(Pre)?Depends:/ {
            d = $0; sub(/^ *[|]?(Pre)?Depends: /, "", d)
            if (!alt && d !~ /^</) deps[pkg] = deps[pkg] " " d
            alt = ($0 ~ /^ *[|]/)
        }
        END {
            n = split(roots, q, " ")
            for (i = 1; i <= n; i++) seen[q[i]] = 1
            for (i = 1; i <= n; i++) {
                m = split(deps[q[i]], ds, " ")
                for (j = 1; j <= m; j++) if (!(ds[j] in seen)) { seen[ds[j]] = 1; q[++n] = ds[j] }
            }
            if (length(deps) > 0) for (p in seen) print p
        }')
    if [ -z "$closure" ]; then
        echo "SKIP: Dockerfile libraries: apt-cache knows no packages (apt-get update)"
    else
        # The libraries the binary names itself (what theirs need, their packages bring), where
        # the loader finds them; a sanitizer build's runtime is not the image's business.
        needed=$(readelf -d "$bin" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
        for lib in $(ldd "$bin" | awk -v needed=" $needed" \
            '/=>/ && index(needed, " " $1 " ") { print $3 } /^\t\// { print $1 }'); do
            case $lib in *libasan* | *libubsan* | *libtsan* | *liblsan*) continue ;; esac
            pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
                dpkg -S "/usr$lib" 2>/dev/null)
            pkg=${pkg%%:*}
            if [ -n "$pkg" ] && printf '%s\n' "$closure" | grep -qxF "$pkg"; then ok; else
                bad "Dockerfile runtime stage lacks $lib (package '${pkg:-unknown}')"
            fi
        done
    fi
else
    echo "SKIP: Dockerfile libraries: needs GNNREC_BIN, dpkg, apt-cache, ldd and readelf"
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
