"""The audit log over HTTP: what is recorded, what never is, who may read it, retention."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

from apihelpers import assert_error, fake_app, new_key
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from facesearch.storage.tables import DbAudit, utcnow
from fakes import person_photo

ALICE = (10, 20)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _entries(c: TestClient, h: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    r = c.get("/v1/audit", headers=h, params=query)
    assert r.status_code == 200, r.text
    return list(r.json()["data"]["entries"])


def test_searches_enrolments_deletions_and_key_changes_are_recorded(tmp_path: Path) -> None:
    app = fake_app(tmp_path)
    with TestClient(app) as c:
        admin_key = new_key(app, "admin")
        h = {"X-API-Key": admin_key}
        admin_id = app.state.service.store.verify_api_key(admin_key).id
        c.post("/v1/collections", headers=h, json={"name": "staff"})
        made = c.post("/v1/collections/staff/persons", headers=h, json={"external_id": "a", "images_base64": [
            _b64(person_photo(*ALICE))]}).json()["data"]  # fmt: skip
        found = c.post(
            "/v1/collections/staff/identify", headers=h, files={"image": ("p.png", person_photo(*ALICE, 1))}
        )
        bad = c.post("/v1/collections/staff/identify", headers=h, files={"image": ("p.png", b"not a photo")})
        created = c.post("/v1/keys", headers=h, json={"name": "door", "role": "reader"}).json()["data"]
        c.delete(f"/v1/keys/{created['id']}", headers=h)
        c.delete("/v1/collections/staff/persons/a", headers=h)
        c.get("/v1/collections/staff/persons", headers=h)  # plain reads are not audited
        entries = _entries(c, h)
        ops = [e["operation"] for e in entries]
        assert ops == ["create_collection", "create_person", "identify", "identify"] + [
            "create_key",
            "revoke_key",
            "delete_person",
        ]
        coll_id = made["collection_id"]
        assert all(e["key_id"] == admin_id for e in entries)
        assert [e["collection_id"] for e in entries] == [
            coll_id,
            coll_id,
            coll_id,
            coll_id,
            None,
            None,
            coll_id,
        ]
        hit = entries[2]
        assert hit["summary"]["matches"] == [[made["id"], found.json()["data"]["matches"][0]["similarity"]]]
        assert hit["request_id"] == found.headers["x-request-id"] and hit["client"] and hit["status"] == 200
        assert (entries[3]["status"], entries[3]["outcome"]) == (bad.status_code, "IMAGE_DECODE_FAILED")
        assert entries[4]["summary"] == {"key_id": created["id"], "role": "reader", "collections": None}
        assert entries[6]["summary"] == {"id": made["id"], "deleted": True}
        # Never a key, never a photo: the audit table holds neither the new key nor image bytes.
        with app.state.service.store.engine.connect() as conn:
            dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM audit_log")))
        assert created["key"] not in dump and admin_key not in dump and "base64" not in dump
        # Filters: operation, key, collection, time.
        assert [e["operation"] for e in _entries(c, h, operation="identify")] == ["identify", "identify"]
        assert len(_entries(c, h, key=admin_id)) == 7 and _entries(c, h, key="key_other") == []
        assert len(_entries(c, h, collection="staff")) == 5
        assert _entries(c, h, since=(utcnow() + timedelta(minutes=1)).isoformat()) == []
        page = c.get("/v1/audit", headers=h, params={"limit": 3}).json()["data"]
        rest = _entries(c, h, cursor=page["next_cursor"])
        assert [e["id"] for e in page["entries"] + rest] == [e["id"] for e in entries]
        assert_error(
            c.get("/v1/audit", headers=h, params={"since": "2026-01-01T00:00:00"}), 422, "VALIDATION_ERROR"
        )


def test_refused_attempts_name_their_key_and_only_admins_read(tmp_path: Path) -> None:
    app = fake_app(tmp_path)
    with TestClient(app) as c:
        h = {"X-API-Key": new_key(app, "admin")}
        c.post("/v1/collections", headers=h, json={"name": "staff"})
        c.post("/v1/collections", headers=h, json={"name": "other"})
        reader_key = new_key(app, "reader")
        reader = {"X-API-Key": reader_key}
        assert_error(c.post("/v1/collections/staff/persons", headers=reader, json={}), 403, "FORBIDDEN")
        assert_error(c.get("/v1/audit", headers=reader), 403, "FORBIDDEN")
        assert_error(c.get("/v1/audit", headers={"X-API-Key": new_key(app, "writer")}), 403, "FORBIDDEN")
        refused = _entries(c, h, operation="create_person")[0]
        assert refused["outcome"] == "FORBIDDEN" and refused["status"] == 403
        assert refused["key_id"] == app.state.service.store.verify_api_key(reader_key).id
        # An admin limited to one collection reads that collection's entries only.
        limited = {"X-API-Key": new_key(app, "admin", ["staff"])}
        assert_error(c.get("/v1/audit", headers=limited), 403, "FORBIDDEN")
        assert_error(c.get("/v1/audit", headers=limited, params={"collection": "other"}), 403, "FORBIDDEN")
        assert [e["operation"] for e in _entries(c, limited, collection="staff")] == [
            "create_collection",
            "create_person",
        ]


def test_entries_past_the_retention_are_purged(tmp_path: Path) -> None:
    app = fake_app(tmp_path, audit_retention_days=30)
    with TestClient(app) as c:
        h = {"X-API-Key": new_key(app, "admin")}
        c.post("/v1/collections", headers=h, json={"name": "old"})
        c.post("/v1/collections", headers=h, json={"name": "new"})
        store = app.state.service.store
        with store._write() as s:
            s.execute(update(DbAudit).where(DbAudit.id == 1).values(at=utcnow() - timedelta(days=31)))
        assert [e["summary"]["name"] for e in _entries(c, h)] == ["new"]
