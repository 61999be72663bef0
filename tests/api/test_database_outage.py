"""#16.5: what a PostgreSQL outage does to requests: 503 DATABASE_UNAVAILABLE with nothing
acknowledged, never a 500, and the server serves again once the database is back (the pool
checks each connection before use)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelpers import fake_app, new_key
from fastapi.testclient import TestClient

from fakes import person_photo
from pgutil import fresh_schema, need_postgres
from relay import Forwarder

pytestmark = pytest.mark.integration


@pytest.fixture
def relayed_pg() -> Iterator[tuple[Forwarder, str]]:
    with fresh_schema(need_postgres()) as url:
        fwd = Forwarder(url)
        try:
            yield fwd, fwd.url(url)
        finally:
            fwd.cut()


def test_database_outage_is_503_and_loses_nothing_acknowledged(
    relayed_pg: tuple[Forwarder, str], tmp_path: Path
) -> None:
    fwd, url = relayed_pg
    app = fake_app(tmp_path, database_url=url)
    with TestClient(app) as http:
        h = {"X-API-Key": new_key(app, "admin")}
        assert http.post("/v1/collections", headers=h, json={"name": "staff"}).status_code == 201

        def enrol(ext: str) -> tuple[int, dict]:
            r = http.post(
                "/v1/collections/staff/persons",
                headers=h,
                data={"external_id": ext},
                files={"images": ("p.png", person_photo(10, 20 + len(ext)))},
            )
            return r.status_code, r.json()

        assert enrol("alice")[0] == 201
        fwd.cut()
        started = time.perf_counter()
        status, body = enrol("bob")
        assert status == 503 and body["error"]["code"] == "DATABASE_UNAVAILABLE", body
        r = http.post(
            "/v1/collections/staff/identify", headers=h, files={"image": ("q.png", person_photo(10, 25))}
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
        refused_s = time.perf_counter() - started
        fwd.restore()
        deadline = time.monotonic() + 30
        while (r := http.get("/v1/collections/staff/persons", headers=h)).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.5)
        names = {p["external_id"] for p in r.json()["data"]["persons"]}
        assert names == {"alice"}  # bob was refused, not half-written
        assert enrol("bob")[0] == 201  # and can be sent again
    print(
        f"two requests refused with DATABASE_UNAVAILABLE in {refused_s * 1000:.0f} ms "
        "while PostgreSQL was away"
    )
