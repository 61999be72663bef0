#!/bin/sh
# A throwaway Milvus 2.3 standalone server for the tests, in a folder of the checkout (.milvus/):
# `scripts/milvus.sh start` writes .milvus/url (milvus://127.0.0.1:PORT, read by the tests),
# `scripts/milvus.sh stop` stops it and removes the folder.
#
# The server is the PyPI package `milvus==2.3.5` (the real Milvus standalone binary with embedded
# etcd and local storage) in a virtual environment of its own, .venv-milvus, because its pins
# (protobuf<5, setuptools<70, marshmallow<3.20, environs<10) clash with the project's. Milvus 2.3
# listens on every interface and cannot be told otherwise, so it runs in a network namespace of
# its own (`unshare -n`, root or user namespaces) whose only interface is a loopback; socat carries
# 127.0.0.1:PORT of this machine to its port 19530 through a Unix socket in .milvus/. Without a
# namespace or socat it says so and exits 0: the Milvus tests then skip with that message.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.milvus"
VENV="$ROOT/.venv-milvus"
PINS="milvus==2.3.5 setuptools<70 protobuf>=4.25,<5 marshmallow<3.20 environs<10"

skip() {
    echo "milvus: $1: the Milvus tests skip" >&2
    exit 0
}

stop_pid() {
    if [ -f "$1" ]; then
        pid=$(cat "$1")
        kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        rm -f "$1"
    fi
}

case "${1:-}" in
start)
    if [ -f "$DIR/url" ] && [ -f "$DIR/server.pid" ] && kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
        exit 0  # already running
    fi
    sh "$0" stop
    if ! command -v socat >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get install -y -q socat >/dev/null 2>&1 || skip "socat is missing and apt-get install socat failed"
        else
            skip "socat is missing (apt-get install socat)"
        fi
    fi
    if [ "$(id -u)" -eq 0 ]; then NS="unshare -n"; else NS="unshare -r -n"; fi
    $NS true 2>/dev/null || skip "no network namespace here ($NS refused), and Milvus would listen on every interface"
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import milvus" 2>/dev/null; then
        python3 -m venv "$VENV" || skip "python3 -m venv failed"
        # shellcheck disable=SC2086
        "$VENV/bin/python" -m pip install --quiet $PINS >"$ROOT/.venv-milvus.log" 2>&1 ||
            skip "pip install $PINS failed (see .venv-milvus.log)"
    fi
    mkdir -p "$DIR"
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    SOCK="$DIR/proxy.sock"
    # In the namespace: loopback up, the socket bridge to Milvus's port, then the server.
    setsid $NS sh -c "ip link set lo up 2>/dev/null || true
        socat UNIX-LISTEN:'$SOCK',fork TCP:127.0.0.1:19530 &
        exec '$VENV/bin/python' '$ROOT/scripts/milvus_server.py' '$DIR/data' '$DIR/ready'" \
        >"$DIR/server.log" 2>&1 &
    echo $! >"$DIR/server.pid"
    i=0
    while [ ! -f "$DIR/ready" ]; do
        if ! kill -0 "$(cat "$DIR/server.pid")" 2>/dev/null; then
            tail -5 "$DIR/server.log" >&2 || true
            sh "$0" stop
            skip "the server stopped while starting (see the log above)"
        fi
        i=$((i + 1))
        if [ $i -gt 1200 ]; then
            sh "$0" stop
            skip "the server did not start in 120 s"
        fi
        sleep 0.1
    done
    setsid socat TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:"$SOCK" >"$DIR/bridge.log" 2>&1 &
    echo $! >"$DIR/bridge.pid"
    echo "milvus://127.0.0.1:$PORT" >"$DIR/url"
    echo "milvus: Milvus 2.3.5 standalone on 127.0.0.1:$PORT (started in $(cat "$DIR/ready" | tr -d '\n') s)" >&2
    ;;
stop)
    stop_pid "$DIR/bridge.pid"
    stop_pid "$DIR/server.pid"
    rm -rf "$DIR"
    ;;
*)
    echo "usage: scripts/milvus.sh start|stop" >&2
    exit 2
    ;;
esac
