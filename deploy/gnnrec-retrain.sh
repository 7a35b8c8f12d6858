#!/usr/bin/env bash
# gnnrec-retrain: the scheduled retrain job. Trains a new version of one model from the store's
# interaction log (`gnnrec train --from-log`), which the quality gate publishes or refuses, and
# records the outcome for the scheduler (exit code), the operator (a log file) and Prometheus
# (node_exporter's textfile collector). Run by gnnrec-retrain.service (the timer) or cron, as
# the gnnrec user; docs/operations.md has the installation.
#
# Exit codes (sysexits-style, so a scheduler can tell them apart):
#   0   a new version was published
#   3   the quality gate refused the new model: nothing published, the live version stays
#   75  another retrain holds the lock (EX_TEMPFAIL): this run did nothing
#   1   anything else: bad data, store error, bad settings, timeout, stopped by a signal
#
# Settings come from the environment, else from $GNNREC_RETRAIN_CONFIG
# (/etc/default/gnnrec-retrain, a shell fragment of VAR=value lines), else the defaults below;
# a variable set in the environment wins over the file.
#   GNNREC                    the gnnrec binary (/usr/local/bin/gnnrec)
#   GNNREC_DB                 the store (/var/lib/gnnrec/store.sqlite)
#   GNNREC_MODEL_NAME         the model to retrain (main)
#   GNNREC_SPLIT              the gate's holdout (time:0.1)
#   GNNREC_SINCE              train on events from this time on (empty: the whole log)
#   GNNREC_BASE_FILE          a base interaction file trained on with the log (empty: none)
#   GNNREC_WARM_START         1: start from the live version's tensors (0)
#   GNNREC_REFIT_EPOCHS       epochs on all the data, the holdout included, once past the gate
#                             (10; 0: publish the evaluated model, whose users' newest items
#                             are then neither learned nor excluded as seen)
#   GNNREC_GATE_TOLERANCE     recall@20 the new model may lose to the live one (0.01; off: no
#                             gate, every trained model is published)
#   GNNREC_TRAIN_ARGS         more `gnnrec train` options, split at spaces ("--epochs 200")
#   GNNREC_REPORT_DIR         where last.json and last.html go (/var/lib/gnnrec/reports; empty: none)
#   GNNREC_RETRAIN_LOG        the log file (/var/log/gnnrec/retrain.log; empty: stderr)
#   GNNREC_LOCK_FILE          the lock every retrain takes (/var/lib/gnnrec/retrain.lock)
#   GNNREC_TEXTFILE_DIR       node_exporter's textfile directory
#                             (/var/lib/prometheus/node-exporter; empty: no metrics)
#   GNNREC_RETRAIN_TIMEOUT    stop a run after this long, timeout(1) syntax (23h; 0: never)
set -euo pipefail

settings=(GNNREC GNNREC_DB GNNREC_MODEL_NAME GNNREC_SPLIT GNNREC_SINCE GNNREC_BASE_FILE
    GNNREC_WARM_START GNNREC_REFIT_EPOCHS GNNREC_GATE_TOLERANCE GNNREC_TRAIN_ARGS GNNREC_REPORT_DIR
    GNNREC_RETRAIN_LOG GNNREC_LOCK_FILE GNNREC_TEXTFILE_DIR GNNREC_RETRAIN_TIMEOUT)
config=${GNNREC_RETRAIN_CONFIG:-/etc/default/gnnrec-retrain}
if [[ -r $config ]]; then
    # The environment wins: remember what it sets, read the file, put it back.
    from_env=$(declare -p "${settings[@]}" 2>/dev/null || true)
    # shellcheck source=/dev/null
    . "$config"
    eval "$from_env"
fi
GNNREC=${GNNREC:-/usr/local/bin/gnnrec}
GNNREC_DB=${GNNREC_DB:-/var/lib/gnnrec/store.sqlite}
GNNREC_MODEL_NAME=${GNNREC_MODEL_NAME:-main}
GNNREC_SPLIT=${GNNREC_SPLIT:-time:0.1}
GNNREC_SINCE=${GNNREC_SINCE:-}
GNNREC_BASE_FILE=${GNNREC_BASE_FILE:-}
GNNREC_WARM_START=${GNNREC_WARM_START:-0}
GNNREC_REFIT_EPOCHS=${GNNREC_REFIT_EPOCHS:-10}
GNNREC_GATE_TOLERANCE=${GNNREC_GATE_TOLERANCE:-0.01}
GNNREC_TRAIN_ARGS=${GNNREC_TRAIN_ARGS:-}
GNNREC_REPORT_DIR=${GNNREC_REPORT_DIR-/var/lib/gnnrec/reports}
GNNREC_RETRAIN_LOG=${GNNREC_RETRAIN_LOG-/var/log/gnnrec/retrain.log}
GNNREC_LOCK_FILE=${GNNREC_LOCK_FILE:-/var/lib/gnnrec/retrain.lock}
GNNREC_TEXTFILE_DIR=${GNNREC_TEXTFILE_DIR-/var/lib/prometheus/node-exporter}
GNNREC_RETRAIN_TIMEOUT=${GNNREC_RETRAIN_TIMEOUT:-23h}

name=$GNNREC_MODEL_NAME
now() { printf '%(%s)T' -1; }
started=$(now)

# Every line of the log starts with the time and the model; the trainer's output goes through
# stamp as it is printed, so `tail -f` follows a run.
stamp() {
    local line
    while IFS= read -r line || [[ -n $line ]]; do
        printf '%(%Y-%m-%dT%H:%M:%S%z)T [%s] %s\n' -1 "$name" "$line"
    done
}
log() { printf '%s\n' "$*" | stamp >&3; }

# fd 3 is the log; the log file is opened once for the run (appending), stderr if it can't be.
if [[ -n $GNNREC_RETRAIN_LOG ]] && { exec 3>>"$GNNREC_RETRAIN_LOG"; } 2>/dev/null; then
    :
else
    [[ -z $GNNREC_RETRAIN_LOG ]] ||
        echo "gnnrec-retrain: cannot append to $GNNREC_RETRAIN_LOG; logging to stderr" >&2
    exec 3>&2
fi

# One retrain at a time, whatever started it (timer, cron, an operator): flock on a lock file.
# Opened read-only so that a lock file created by another user (root) still works. The lock is
# the kernel's: it goes away with the last process holding the descriptor (the trainer inherits
# it, so a trainer still running after this script was killed keeps later runs out).
if ! { : >>"$GNNREC_LOCK_FILE"; } 2>/dev/null && [[ ! -r $GNNREC_LOCK_FILE ]]; then
    log "error: cannot create the lock file $GNNREC_LOCK_FILE"
    echo "gnnrec-retrain: cannot create the lock file $GNNREC_LOCK_FILE" >&2
    exit 1
fi
exec 9<"$GNNREC_LOCK_FILE"
if ! flock -n 9; then
    log "another retrain holds $GNNREC_LOCK_FILE: not starting (exit 75)"
    echo "gnnrec-retrain: another retrain is running (lock $GNNREC_LOCK_FILE held); exit 75" >&2
    exit 75
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gnnrec-retrain.XXXXXX")
trap 'rm -rf "$work"' EXIT

# metric NAME HELP VALUE: one gauge of the textfile, labelled with the model.
metric() {
    printf '# HELP gnnrec_retrain_%s %s\n# TYPE gnnrec_retrain_%s gauge\n' "$1" "$2" "$1"
    printf 'gnnrec_retrain_%s{model="%s"} %s\n' "$1" "$name" "$3"
}

# The previous run's value of a metric in the textfile (0 when there is none), to carry the last
# success and the last published version over a run that neither succeeds nor publishes.
previous() {
    local prom=$GNNREC_TEXTFILE_DIR/gnnrec_retrain_$name.prom value
    value=$(sed -n "s/^gnnrec_retrain_$1{[^}]*} \\([0-9][0-9.e+]*\\)\$/\\1/p" "$prom" 2>/dev/null |
        tail -n 1) || true
    printf '%s' "${value:-0}"
}

# write_textfile EXIT_CODE VERSION: the outcome for node_exporter, written to a temporary file in
# the same directory (ignored by the collector: it reads *.prom) and renamed over the old one,
# so a scrape sees the previous file or this one, never half of one. Readable by all: node_exporter
# runs as another user, and the service's UMask would make it 0640.
write_textfile() {
    local code=$1 version=$2 ended last_success tmp
    [[ -n $GNNREC_TEXTFILE_DIR ]] || return 0
    ended=$(now)
    last_success=$(previous last_success_timestamp_seconds)
    [[ $code -ne 0 ]] || last_success=$ended
    [[ -n $version ]] || version=$(previous published_version)
    tmp=$GNNREC_TEXTFILE_DIR/.gnnrec_retrain_$name.prom.$$
    if ! { {
        metric last_run_timestamp_seconds "When the last retrain run ended (Unix time)." "$ended"
        metric last_success_timestamp_seconds \
            "When a retrain last published a version (Unix time; 0: never)." "$last_success"
        metric last_exit_code "Exit code of the last retrain run (0 published, 3 gate refused, 1 failed)." "$code"
        metric duration_seconds "How long the last retrain run took." "$((ended - started))"
        metric published_version "The version the last successful retrain published." "$version"
    } >"$tmp" && chmod 0644 "$tmp"; } 2>/dev/null || ! mv -f "$tmp" "$GNNREC_TEXTFILE_DIR/gnnrec_retrain_$name.prom" 2>/dev/null; then
        rm -f "$tmp" 2>/dev/null
        log "warning: cannot write the textfile in $GNNREC_TEXTFILE_DIR"
    fi
}

# finish CODE MESSAGE: log, record, tell the scheduler. Success goes to stdout (the journal;
# crontab.example discards it), everything else to stderr (cron mails it).
finish() {
    local code=$1 message=$2 version=${3:-}
    log "$message (exit $code, $(($(now) - started)) s)"
    write_textfile "$code" "$version"
    if [[ $code -eq 0 ]]; then
        echo "gnnrec-retrain: $message"
    else
        echo "gnnrec-retrain: $message" >&2
    fi
    exit "$code"
}

cmd=("$GNNREC" train --db "$GNNREC_DB" --name "$name" --from-log --split "$GNNREC_SPLIT" --quiet)
[[ -z $GNNREC_SINCE ]] || cmd+=(--since "$GNNREC_SINCE")
[[ -z $GNNREC_BASE_FILE ]] || cmd+=(--train "$GNNREC_BASE_FILE")
[[ $GNNREC_WARM_START != 1 ]] || cmd+=(--warm-start)
[[ $GNNREC_REFIT_EPOCHS == 0 ]] || cmd+=(--refit-epochs "$GNNREC_REFIT_EPOCHS")
[[ $GNNREC_GATE_TOLERANCE == off ]] || cmd+=(--gate-tolerance "$GNNREC_GATE_TOLERANCE")
if [[ -n $GNNREC_REPORT_DIR ]]; then
    if mkdir -p "$GNNREC_REPORT_DIR" 2>/dev/null; then
        cmd+=(--report "$GNNREC_REPORT_DIR/last.json" --report-html "$GNNREC_REPORT_DIR/last.html")
    else
        log "warning: cannot create $GNNREC_REPORT_DIR: no report this run"
    fi
fi
read -r -a extra <<<"$GNNREC_TRAIN_ARGS"
cmd+=(${extra[@]+"${extra[@]}"})
if [[ $GNNREC_RETRAIN_TIMEOUT != 0 ]]; then
    # TERM at the limit, KILL a minute later if the trainer is still there (exit 124 or 137).
    cmd=(timeout --kill-after=60 "$GNNREC_RETRAIN_TIMEOUT" "${cmd[@]}")
fi

if [[ ! -x $GNNREC ]] && ! command -v "$GNNREC" >/dev/null; then
    finish 1 "failed: $GNNREC is not an executable"
fi

log "starting: ${cmd[*]}"
# The trainer runs in the background, its output through a FIFO into stamp, so that a signal to
# this script (systemctl stop, Ctrl-C) is passed on to it and its outcome still recorded.
mkfifo "$work/out"
tee "$work/output" <"$work/out" | stamp >&3 &
logger_pid=$!
"${cmd[@]}" >"$work/out" 2>&1 </dev/null 3>&- &
trainer_pid=$!
signal=""
interrupted=0
# A background job of a script ignores SIGINT, so whatever stopped the script, the trainer (or
# timeout(1), which passes it on) gets SIGTERM.
for sig in TERM INT HUP; do
    # shellcheck disable=SC2064 # $sig and $trainer_pid are meant to be expanded now
    trap "signal=$sig; interrupted=1; kill -TERM $trainer_pid 2>/dev/null || true" "$sig"
done
while :; do
    interrupted=0
    rc=0
    wait "$trainer_pid" || rc=$?
    [[ $interrupted -eq 1 ]] || break # else a trapped signal cut the wait short: wait again
done
wait "$logger_pid" || true

version=$(sed -n -E 's/^published [^ ]+ (v|version )([0-9]+).*/\2/p' "$work/output" | tail -n 1)
# The trainer's last word, for the one-line outcome (its "gnnrec train: " prefix dropped).
last=$(grep -v '^[[:space:]]*$' "$work/output" | tail -n 1 | sed 's/^gnnrec[a-z ]*: //' || true)
gate=$(grep 'gate:' "$work/output" | tail -n 1 | sed 's/^gnnrec[a-z ]*: //' || true)
case $rc in
0)
    [[ -n $version ]] || log "warning: gnnrec exited 0 without a 'published NAME vN' line"
    finish 0 "published $name v${version:-?}" "$version"
    ;;
3) finish 3 "the quality gate refused the new model; the live version stays: ${gate:-$last}" ;;
2) finish 1 "failed: gnnrec train refused its arguments (check the settings): $last" ;;
124 | 137)
    [[ -n $signal ]] || finish 1 "failed: timed out after $GNNREC_RETRAIN_TIMEOUT"
    finish 1 "failed: stopped by SIG$signal"
    ;;
*)
    [[ -z $signal ]] || finish 1 "failed: stopped by SIG$signal (gnnrec exit $rc)"
    finish 1 "failed: gnnrec exit $rc: $last"
    ;;
esac
