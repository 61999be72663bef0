"""Shared helpers of the HTTP API tests: fake-pack apps, live servers, the route table, error checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from facesearch.api.app import create_app  # noqa: E402
from facesearch.config import Settings  # noqa: E402
from facesearch.service import FaceSearch  # noqa: E402
from fakes import fake_pack  # noqa: E402


def fake_service(data_dir: Path, **settings: Any) -> FaceSearch:
    """A FaceSearch on the deterministic fake pack (no models), CPU work in-process."""
    options = {"data_dir": data_dir, "default_pack": "fake", "workers": 0, **settings}
    return FaceSearch(Settings(**options), packs={"fake": fake_pack()})


def fake_app(data_dir: Path, **settings: Any) -> FastAPI:
    """The HTTP API over a fake-pack service (``app.state.service``)."""
    return create_app(service=fake_service(data_dir, **settings))


def new_key(app: FastAPI, role: str, collections: list[str] | None = None) -> str:
    """A fresh API key of that role, created straight in the app's store."""
    _, key = app.state.service.store.create_api_key(f"test {role}", role, collections)
    return str(key)


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the app's API routes (FastAPI >= 0.16x nests included routers)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return sorted((m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods)
    out = []
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute):
            out.extend((m, str(ctx.path)) for m in ctx.methods or ())
    return sorted(out)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the failure envelope with that status and code; returns its error object."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert body["success"] is False, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


@contextmanager
def staff_client(
    data_dir: Path, database_url: str | None = None
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A TestClient over the fake app with an admin key's headers and an empty collection "staff"
    (on ``database_url`` when given, else the data folder's SQLite)."""
    app = fake_app(data_dir, **({"database_url": database_url} if database_url else {}))
    with TestClient(app) as c:
        h = {"X-API-Key": new_key(app, "admin")}
        assert c.post("/v1/collections", headers=h, json={"name": "staff"}).status_code == 201
        yield c, h


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def thread_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class ServerProcess:
    """A server in a subprocess, its stdout and stderr in files."""

    def __init__(
        self, cmd: Sequence[str], workdir: Path, port: int, env: dict[str, str] | None = None
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.stdout_path = workdir / "server.stdout"
        self.stderr_path = workdir / "server.stderr"
        self._out = self.stdout_path.open("wb")
        self._err = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            list(cmd), stdout=self._out, stderr=self._err, env={**os.environ, **(env or {})}, cwd=workdir
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until ``GET /v1/health`` answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.stderr()[-3000:]}")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM (uvicorn shuts down cleanly, closing the service), then kill after 30 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()
        self._err.close()
        return int(self.proc.returncode)


def admin_key_file(data_dir: Path) -> str:
    """The first admin key ``facesearch serve`` wrote into a fresh data folder."""
    return (data_dir / "admin-key.txt").read_text(encoding="utf-8").strip()


def key_from_output(text: str, marker: str) -> str:
    """The ``fs_...`` key printed after ``marker`` in a server's or command's output."""
    for line in text.splitlines():
        if marker in line:
            return line.rsplit(" ", 1)[-1].strip()
    raise AssertionError(f"no line with {marker!r} in:\n{text}")
