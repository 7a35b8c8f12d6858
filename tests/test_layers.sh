#!/bin/bash
# The layers point one way: engine <- storage <- {trainer, server} <- cli (docs/architecture.md).
# Checked on the built libraries: no library references a symbol of a layer above it or beside
# it (the server never the trainer's trn_ names, and the other way round), and OpenBLAS is used
# only by the trainer's dense layers (and the bench): not by engine, storage or server. Needs binutils' nm; the libraries sit next to GNNREC_BIN.
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
# OpenBLAS: the trainer (its dense layers) may call it, and so the gnnrec binary links it; the
# engine, the storage and the server must not.
for m in engine storage server; do
    lib=$dir/libgnnrec_$m.a
    if nm "$lib" | awk '$1 == "U" {print $2}' | grep -qE '^(cblas_|openblas_)'; then
        echo "FAIL: $(basename "$lib") calls OpenBLAS"
        fails=$((fails + 1))
    fi
done
if ! nm "$dir/libgnnrec_trainer.a" | awk '$1 == "U" {print $2}' | grep -q '^cblas_sgemm$'; then
    echo "FAIL: libgnnrec_trainer.a does not call cblas_sgemm: update this check"
    fails=$((fails + 1))
fi
[ "$fails" -eq 0 ] && echo "layers: ok"
[ "$fails" -eq 0 ]
