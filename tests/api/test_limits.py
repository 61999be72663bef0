"""The request body size limit: declared, streamed, and under-limit pass-through."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from facesearch.api.errors import install_error_handlers, success
from facesearch.api.limits import BodySizeLimitMiddleware

LIMIT = 1000


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, object]:
        body = await request.body()
        return success({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    @app.post("/upload")
    async def upload(image: Annotated[UploadFile, File()]) -> dict[str, object]:
        return success({"size": len(await image.read())})

    @app.get("/ping")
    def ping() -> dict[str, object]:
        return success("pong")

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app())


def chunks(total: int, size: int = 100) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"a" * min(size, total - start)


def assert_413(r: object) -> None:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "PAYLOAD_TOO_LARGE"
    assert err["details"] == {"limit_bytes": LIMIT}
    assert r.headers["x-request-id"]


def test_declared_length_over_limit(client: TestClient) -> None:
    assert_413(client.post("/echo", content=b"a" * (LIMIT + 1)))


def test_chunked_body_over_limit(client: TestClient) -> None:
    r = client.post("/echo", content=chunks(LIMIT * 3))
    assert "content-length" not in r.request.headers
    assert_413(r)


def test_multipart_over_limit_is_413_not_400(client: TestClient) -> None:
    files = {"image": ("a.jpg", b"\xff" * (LIMIT * 2), "image/jpeg")}
    assert_413(client.post("/upload", files=files))


def test_under_limit_passes_intact(client: TestClient) -> None:
    body = bytes(range(256)) * 3
    for content in (body, iter([body[:100], body[100:]])):
        r = client.post("/echo", content=content)
        assert r.status_code == 200
        assert r.json()["data"] == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    exact = client.post("/echo", content=b"z" * LIMIT)
    assert exact.status_code == 200 and exact.json()["data"]["size"] == LIMIT
    assert client.get("/ping").json() == {"success": True, "data": "pong"}


def run_asgi(
    app: object, headers: list[tuple[bytes, bytes]], parts: list[bytes]
) -> tuple[list[Message], int]:
    """Drive an ASGI app by hand: the sent messages and how many body parts it pulled."""
    sent: list[Message] = []
    pulled = 0

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        if pulled <= len(parts):
            return {"type": "http.request", "body": parts[pulled - 1], "more_body": pulled < len(parts)}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return sent, pulled


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_streaming_stops_reading_once_over() -> None:
    parts = [b"x" * 400] * 10
    sent, pulled = run_asgi(BodySizeLimitMiddleware(reading_app, LIMIT), [], parts)
    assert pulled == 3  # 1200 bytes > 1000: the rest is never read
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]


def test_declared_over_limit_reads_nothing() -> None:
    sent, pulled = run_asgi(
        BodySizeLimitMiddleware(reading_app, LIMIT), [(b"content-length", b"5000")], [b"x" * 5000]
    )
    assert pulled == 0
    assert sent[0]["status"] == 413


def test_streaming_under_limit_reaches_app() -> None:
    sent, pulled = run_asgi(BodySizeLimitMiddleware(reading_app, LIMIT), [], [b"x" * 300] * 3)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"900"
