#!/bin/sh
# Extra Debian packages the benchmarks need: the PyTorch and FastAPI peers, GNU time for peak
# memory, wrk and nginx for the serving benchmark.
set -e
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends time python3 python3-numpy python3-torch \
    python3-fastapi python3-uvicorn wrk nginx-light >/dev/null
echo "bench deps: installed"
