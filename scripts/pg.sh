#!/bin/sh
# A throwaway PostgreSQL cluster for the tests, in a folder of the checkout (.pg/), listening on
# 127.0.0.1 only, on a free port: `scripts/pg.sh start` prints nothing but writes .pg/url (the
# SQLAlchemy URL the tests read), `scripts/pg.sh stop` stops it and removes the folder.
# Debian's PostgreSQL 15 (postgresql-15); initdb refuses to run as root, so as root the cluster is
# created and run as the `postgres` user. Without PostgreSQL it says so and exits 0: the
# PostgreSQL tests then skip with that message.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.pg"
BIN=""
for candidate in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
        BIN=$candidate
        break
    fi
done

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "${1:-}" in
start)
    if [ -z "$BIN" ]; then
        echo "pg: PostgreSQL is not installed (apt-get install postgresql-15): its tests skip" >&2
        exit 0
    fi
    if [ -f "$DIR/url" ] && as_owner "$BIN/pg_ctl" -D "$(cat "$DIR/cluster-path")" status >/dev/null 2>&1; then
        exit 0  # already running
    fi
    sh "$0" stop
    mkdir -p "$DIR"
    CLUSTER="$DIR/cluster"
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "pg: running as root and there is no postgres user to run the server: its tests skip" >&2
            exit 0
        fi
        chown postgres "$DIR"
        if ! runuser -u postgres -- test -w "$DIR"; then
            # The checkout is not reachable by the postgres user (a private home folder):
            # the cluster goes to a private temporary folder instead, found again by `stop`.
            CLUSTER=$(mktemp -d /tmp/facesearch-pg.XXXXXX)
            chown postgres "$CLUSTER"
            CLUSTER="$CLUSTER/cluster"
        fi
    fi
    echo "$CLUSTER" >"$DIR/cluster-path"
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$BIN/initdb" -D "$CLUSTER" -U facesearch --auth=trust --encoding=UTF8 --no-locale >"$DIR/initdb.log" 2>&1 || {
        echo "pg: initdb failed (see $DIR/initdb.log): the PostgreSQL tests skip" >&2
        exit 0
    }
    as_owner "$BIN/pg_ctl" -D "$CLUSTER" -l "$CLUSTER.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=on -c max_connections=200" start >/dev/null || {
        echo "pg: the server did not start (see $CLUSTER.log): the PostgreSQL tests skip" >&2
        exit 0
    }
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U facesearch facesearch
    echo "postgresql+psycopg://facesearch@127.0.0.1:$PORT/facesearch" >"$DIR/url.tmp"
    mv "$DIR/url.tmp" "$DIR/url"
    echo "pg: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT ($DIR)"
    ;;
stop)
    if [ -f "$DIR/cluster-path" ]; then
        CLUSTER=$(cat "$DIR/cluster-path")
        if [ -n "$BIN" ] && [ -d "$CLUSTER" ]; then
            as_owner "$BIN/pg_ctl" -D "$CLUSTER" -m fast -w stop >/dev/null 2>&1 || true
        fi
        case "$CLUSTER" in
        /tmp/facesearch-pg.*) rm -rf "$(dirname "$CLUSTER")" ;;
        esac
    fi
    rm -rf "$DIR"
    ;;
url)
    cat "$DIR/url" 2>/dev/null || true
    ;;
*)
    echo "usage: scripts/pg.sh start|stop|url" >&2
    exit 2
    ;;
esac
