"""Pack migrations over HTTP: started by an admin, run by the server's background thread while
identify keeps answering, followed to the switch."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

from apihelpers import assert_error, new_key
from fastapi.testclient import TestClient

from facesearch.api.app import create_app
from facesearch.config import Settings
from facesearch.service import FaceSearch
from fakes import person_photo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))
from test_migrations import KEY, packs  # noqa: E402

ALICE, BOB = (10, 20), (30, 40)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_migration_over_http(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_pack="fake", source_key=KEY, workers=0)
    app = create_app(service=FaceSearch(settings, packs=packs()))
    with TestClient(app) as c:
        h = {"X-API-Key": new_key(app, "admin")}
        reader = {"X-API-Key": new_key(app, "reader")}
        c.post("/v1/collections", headers=h, json={"name": "staff", "settings": {"keep_source": True}})
        for ext, colour in (("alice", ALICE), ("bob", BOB)):
            body = {"external_id": ext, "images_base64": [_b64(person_photo(*colour, b)) for b in (0, 4)]}
            assert c.post("/v1/collections/staff/persons", headers=h, json=body).status_code == 201
        assert_error(
            c.post("/v1/collections/staff/migrations", headers=reader, json={"pack": "fake2"}),
            403,
            "FORBIDDEN",
        )
        assert_error(
            c.post("/v1/collections/staff/migrations", headers=h, json={"pack": "fake"}),
            422,
            "VALIDATION_ERROR",
        )
        assert_error(
            c.post("/v1/collections/staff/migrations", headers=h, json={"pack": "nope"}),
            422,
            "VALIDATION_ERROR",
        )
        r = c.post("/v1/collections/staff/migrations", headers=h, json={"pack": "fake2"})
        assert r.status_code == 202, r.text
        mid = r.json()["data"]["id"]
        assert r.json()["data"]["state"] == "running" and r.json()["data"]["total"] == 4
        photo = {"image_base64": _b64(person_photo(*ALICE, 1))}
        deadline = time.monotonic() + 30
        while True:
            found = c.post("/v1/collections/staff/identify", headers=reader, json=photo).json()["data"]
            assert [m["external_id"] for m in found["matches"]] == ["alice"]  # answering all along
            st = c.get(f"/v1/collections/staff/migrations/{mid}", headers=reader).json()["data"]
            if st["state"] != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (st["state"], st["done"], st["total"], st["failed"]) == ("done", 4, 4, {})
        assert st["result"]["faces"] == 4 and st["finished_at"]
        assert c.get("/v1/collections/staff", headers=h).json()["data"]["pack"] == "fake2"
        found = c.post("/v1/collections/staff/identify", headers=reader, json=photo).json()["data"]
        assert [m["external_id"] for m in found["matches"]] == ["alice"]
        listed = c.get("/v1/collections/staff/migrations", headers=reader).json()["data"]["migrations"]
        assert [m["id"] for m in listed] == [mid]
        assert_error(c.delete(f"/v1/collections/staff/migrations/{mid}", headers=h), 409, "CONFLICT")
        assert_error(c.get("/v1/collections/staff/migrations/mig_nope", headers=h), 404, "NOT_FOUND")
        ops = [e["operation"] for e in c.get("/v1/audit", headers=h).json()["data"]["entries"]]
        assert "start_migration" in ops
        # A collection whose faces have no sources cannot migrate without dropping them.
        c.post("/v1/collections", headers=h, json={"name": "plain"})
        body = {"external_id": "x", "images_base64": [_b64(person_photo(*BOB))]}
        c.post("/v1/collections/plain/persons", headers=h, json=body)
        refused = assert_error(
            c.post("/v1/collections/plain/migrations", headers=h, json={"pack": "fake2"}),
            422,
            "VALIDATION_ERROR",
        )
        assert refused["details"]["without_source"] == 1
