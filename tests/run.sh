#!/bin/sh
# Builds gnnrec three times and runs every test in each: release; AddressSanitizer + UBSan;
# ThreadSanitizer (a race fails the run: halt_on_error, exit code 66; tests/tsan_omp.c lets it
# follow OpenMP's parallel regions, so nothing is suppressed). Prints how long each stage took.
# Real-data tests read ../shared/data and skip (with a message) when it is absent.
set -e
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
t0=$(date +%s)
took=""
stage_done() {
    t=$(date +%s)
    took="$took $1 $((t - t0)) s;"
    echo "tests/run.sh: $1 stage took $((t - t0)) s"
    t0=$t
}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
stage_done release

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DGNNREC_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
stage_done asan

# Passive OpenMP waiting: threads spinning at a region's end, slowed down by TSan, would take the
# cores from the threads doing the work.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Release -DGNNREC_SANITIZE=thread >/dev/null
cmake --build build-tsan -j"$jobs"
TSAN_OPTIONS="halt_on_error=1 exitcode=66" OMP_WAIT_POLICY=passive \
    ctest --test-dir build-tsan --output-on-failure -j"$jobs"
stage_done tsan
echo "tests/run.sh: all stages passed:$took"
