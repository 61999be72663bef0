"""Run the Milvus standalone server of the PyPI package `milvus` (embedded etcd, local storage).

Started by scripts/milvus.sh with .venv-milvus's Python, inside a network namespace of its own
(only a loopback there, so every Milvus component, etcd included, listens on loopback only):
`milvus_server.py DATA_DIR READY_FILE`. Writes READY_FILE once the server answers its health
check, and stops the server on SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from milvus import MilvusServer  # type: ignore[import-not-found]

COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")


def main() -> int:
    data_dir, ready = Path(sys.argv[1]), Path(sys.argv[2])
    server = MilvusServer()
    server.set_base_dir(str(data_dir))
    for component in COMPONENTS:
        server.config.set(f"{component}.ip", "127.0.0.1")
    server.config.set("proxy_port", 19530)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    server.start()
    ready.write_text(f"{time.monotonic() - started:.1f}\n")
    while not stopping and server.server_proc is not None and server.server_proc.poll() is None:
        time.sleep(0.2)
    code = server.server_proc.poll() if server.server_proc is not None else 0
    server.stop()
    return 0 if stopping else int(code or 1)


if __name__ == "__main__":
    sys.exit(main())
