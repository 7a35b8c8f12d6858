#!/bin/bash
# The layers point one way: engine <- storage <- {trainer, server} <- cli (docs/architecture.md).
# Checked on the built libraries: no library references a symbol of a layer above it or beside
# it (the server never the trainer's trn_ names, and the other way round), and nothing but the
# bench links OpenBLAS. Needs binutils' nm; the libraries sit next to GNNREC_BIN.
set -u
dir=$(dirname "${GNNREC_BIN:?}")
command -v nm >/dev/null || { echo "SKIP: no nm"; exit 77; }
fails=0
# library: prefixes of names it must not use
check() {
    local lib=$dir/libgnnrec_$1.a
    shift
    [ -f "$lib" ] || { echo "FAIL: $lib missing"; fails=$((fails + 1)); return; }
    for p in "$@"; do
        local hits
        hits=$(nm "$lib" | awk '$1 == "U" {print $2}' | grep -E "^${p}_" | sort -u | head -5)
        if [ -n "$hits" ]; then
            echo "FAIL: $(basename "$lib") uses ${p}_ names: $hits"
            fails=$((fails + 1))
        fi
    done
}
check engine sto trn srv cli
check storage trn srv cli
check trainer srv cli
check server trn cli
# OpenBLAS: only bench_index uses it
for lib in "$dir"/libgnnrec_*.a; do
    if nm "$lib" | awk '$1 == "U" {print $2}' | grep -qE '^(cblas_|openblas_)'; then
        echo "FAIL: $(basename "$lib") calls OpenBLAS"
        fails=$((fails + 1))
    fi
done
if ldd "$GNNREC_BIN" | grep -q openblas; then
    echo "FAIL: gnnrec links OpenBLAS, which none of its code uses"
    fails=$((fails + 1))
fi
[ "$fails" -eq 0 ] && echo "layers: ok"
[ "$fails" -eq 0 ]
