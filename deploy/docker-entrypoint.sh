#!/bin/sh
# The Docker image's entrypoint: with no arguments, trains the synthetic demo into $GNNREC_DB if
# that store does not exist yet, then serves it on $GNNREC_LISTEN (0.0.0.0:8080), with
# --token-file $GNNREC_TOKEN_FILE when that file exists (else the server, listening beyond
# loopback, keeps its write endpoints closed). Arguments that start with `-` are added to
# `gnnrec serve`; any other arguments are a gnnrec command run instead (`docker run IMAGE models
# list --db /data/demo.sqlite`).
set -eu
GNNREC=${GNNREC:-gnnrec}
db=${GNNREC_DB:-/data/demo.sqlite}
listen=${GNNREC_LISTEN:-0.0.0.0:8080}
token=${GNNREC_TOKEN_FILE:-/run/secrets/gnnrec_token}

case ${1:-} in
"" | -*) ;;
*) exec "$GNNREC" "$@" ;;
esac

if [ ! -e "$db" ]; then
    echo "gnnrec-entrypoint: $db absent: training the synthetic demo" >&2
    "$GNNREC" train --synthetic --db "$db" --name demo
fi
if [ -r "$token" ]; then
    set -- --token-file "$token" "$@"
fi
exec "$GNNREC" serve --db "$db" --listen "$listen" "$@"
