#!/bin/sh
# Installs the Debian packages gnnrec builds, tests and benchmarks with (Debian 12).
# Uses sudo when not root. Idempotent.
set -e
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config ca-certificates curl \
    libopenblas-dev libsqlite3-dev sqlite3 libjansson-dev libcmocka-dev \
    libmicrohttpd-dev libuv1-dev python3 python3-numpy python3-yaml python3-jsonschema >/dev/null
echo "deps: installed"
