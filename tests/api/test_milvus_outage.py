"""#16.5: what a Milvus outage does to requests. Searches answer 503 INDEX_UNAVAILABLE at once;
a write is committed to SQL and acknowledged (the database is the truth); when Milvus is back
the index catches up from the change log and finds what was enrolled meanwhile. A server that
cannot reach Milvus at start says so and does not start."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelpers import fake_app, fake_service, new_key
from fastapi.testclient import TestClient

from facesearch.errors import IndexUnavailable
from fakes import person_photo
from milvusutil import emptied_after
from relay import Forwarder

pytestmark = [pytest.mark.milvus, pytest.mark.integration]


@pytest.fixture
def relay(milvus_session_url: str) -> Iterator[tuple[Forwarder, str]]:
    """A relay to the test Milvus (cut to make an outage) and the URL through it."""
    with emptied_after(milvus_session_url) as url:
        fwd = Forwarder(url)
        try:
            yield fwd, fwd.url(url) + "&timeout=3"
        finally:
            fwd.cut()


def test_outage_refuses_searches_keeps_writes_and_catches_up(
    relay: tuple[Forwarder, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fwd, url = relay
    app = fake_app(tmp_path, index_url=url)
    with TestClient(app) as http:
        h = {"X-API-Key": new_key(app, "admin")}
        assert http.post("/v1/collections", headers=h, json={"name": "staff"}).status_code == 201

        def enrol(ext: str, photo: bytes) -> int:
            r = http.post(
                "/v1/collections/staff/persons",
                headers=h,
                data={"external_id": ext},
                files={"images": ("p.png", photo)},
            )
            return r.status_code

        def identify(photo: bytes) -> tuple[int, dict]:
            r = http.post("/v1/collections/staff/identify", headers=h, files={"image": ("q.png", photo)})
            return r.status_code, r.json()

        assert enrol("alice", person_photo(10, 20)) == 201
        status, body = identify(person_photo(10, 20))
        assert status == 200 and body["data"]["matches"][0]["external_id"] == "alice"

        fwd.cut()
        started = time.perf_counter()
        status, body = identify(person_photo(10, 20))
        refused_s = time.perf_counter() - started
        assert status == 503 and body["error"]["code"] == "INDEX_UNAVAILABLE"
        assert refused_s < 10  # bounded by the URL's timeout, not a hang
        health = http.get("/v1/health").json()["data"]
        assert (health["status"], health["index_state"], health["counts"]["faces"]) == (
            "degraded",
            "unavailable",
            None,
        )
        with caplog.at_level(logging.WARNING, logger="facesearch.service"):
            assert enrol("bob", person_photo(30, 40)) == 201  # committed, so acknowledged
        assert "index is behind the database" in caplog.text
        listed = http.get("/v1/collections/staff/persons", headers=h).json()["data"]["persons"]
        assert {p["external_id"] for p in listed} == {"alice", "bob"}

        fwd.restore()
        deadline = time.monotonic() + 30
        while True:
            status, body = identify(person_photo(30, 40))
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200, body
        assert body["data"]["matches"][0]["external_id"] == "bob"  # caught up from the log
        health = http.get("/v1/health").json()["data"]
        assert (health["status"], health["index_state"], health["counts"]["faces"]) == ("ok", "ok", 2)
    print(f"search refused in {refused_s * 1000:.0f} ms while Milvus was away; bob found after it came back")


def test_server_does_not_start_without_milvus(tmp_path: Path) -> None:
    fwd = Forwarder("milvus://127.0.0.1:9")  # nothing behind it
    fwd.cut()
    with pytest.raises(IndexUnavailable):
        fake_service(tmp_path, index_url=f"milvus://127.0.0.1:{fwd.port}?timeout=2")
