#!/bin/sh
# Installs the Debian packages gnnrec builds, runs and benchmarks with (Debian 12); with --tests,
# also what only tests use: Chromium (tests/test_report_html_chromium.py renders the HTML
# report) and shellcheck (tests/test_deploy.sh lints the retrain job). Uses sudo when not root.
# Idempotent.
set -e
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
extra=""
[ "${1:-}" = "--tests" ] && extra="chromium shellcheck"
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # $extra is a list of package names
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config ca-certificates curl \
    libopenblas-dev libsqlite3-dev sqlite3 libjansson-dev libcmocka-dev \
    libmicrohttpd-dev libuv1-dev python3 python3-numpy python3-yaml python3-jsonschema \
    $extra >/dev/null
echo "deps: installed${extra:+ (with $extra)}"
