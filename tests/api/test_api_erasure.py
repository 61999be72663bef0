"""Erasure you can prove: after a person is deleted, none of their embedding bytes is left in the
SQLite files or the index snapshot files (once the snapshot that follows the deletion is saved)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import pytest
from apihelpers import assert_error, fake_app, new_key
from fastapi.testclient import TestClient
from sqlalchemy import select

from facesearch.service import follower
from facesearch.service.sources import new_key as new_source_key
from facesearch.storage.tables import DbFace, DbFaceSource
from fakes import person_photo

ALICE, BOB = (10, 20), (30, 40)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _files_holding(folder: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)} #{i}" for i, n in enumerate(needles) if n in data]
    return found


@pytest.mark.parametrize("index_url", ["exact://", "memory://", "memory://?small_partition=1&project=0"])
def test_a_deleted_person_leaves_no_embedding_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_url: str
) -> None:
    monkeypatch.setattr(follower, "ERASE_SNAPSHOT_DELAY_S", 0.05)
    app = fake_app(tmp_path, index_url=index_url, source_key=new_source_key())
    svc = app.state.service
    with TestClient(app) as c:
        h = {"X-API-Key": new_key(app, "admin")}
        c.post("/v1/collections", headers=h, json={"name": "staff", "settings": {"keep_source": True}})
        photos = [_b64(person_photo(*ALICE, b)) for b in (0, 4)]
        alice = c.post(
            "/v1/collections/staff/persons", headers=h, json={"external_id": "alice", "images_base64": photos}
        )
        c.post("/v1/collections/staff/persons", headers=h, json={"external_id": "bob", "images_base64": [
            _b64(person_photo(*BOB))]})  # fmt: skip
        c.post(
            "/v1/collections/staff/persons/alice/negatives",
            headers=h,
            json={"image_base64": _b64(person_photo(*BOB, 7))},
        )
        person_id = alice.json()["data"]["id"]
        vectors = svc.store.person_embeddings(person_id)
        negative = svc.store.negatives_of([svc.store.person_pk("staff", person_id)])
        needles = [np.asarray(v, "<f4").tobytes() for v in vectors]
        needles += [np.asarray(v, "<f4").tobytes() for m in negative.values() for v in m]
        bob_bytes = np.asarray(
            svc.store.person_embeddings(svc.get_person("staff", "bob").id)[0], "<f4"
        ).tobytes()
        with svc.store._read() as s:  # the sealed sources of the person's faces
            pk = svc.store.person_pk("staff", person_id)
            faces = select(DbFace.id).where(DbFace.person_id == pk)
            needles += [
                bytes(d) for d in s.scalars(select(DbFaceSource.data).where(DbFaceSource.face_id.in_(faces)))
            ]
        svc.follower.save_snapshot()
        with svc.store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert len(needles) == 5 and _files_holding(tmp_path, needles)  # the premise: they are on disk
        r = c.delete("/v1/collections/staff/persons/alice", headers=h)
        assert r.status_code == 200
        assert_error(c.get(f"/v1/collections/staff/persons/{person_id}", headers=h), 404, "NOT_FOUND")
        deadline = time.monotonic() + 10
        while _files_holding(tmp_path / "index", needles) and time.monotonic() < deadline:
            time.sleep(0.05)  # the snapshot that follows the deletion
        assert _files_holding(tmp_path, needles) == []
        assert _files_holding(tmp_path, [bob_bytes])  # what was not deleted is still there
        entry = c.get("/v1/audit", headers=h, params={"operation": "delete_person"}).json()["data"]["entries"]
        assert [e["summary"] for e in entry] == [{"id": person_id, "deleted": True}]
        found = c.post(
            "/v1/collections/staff/identify", headers=h, json={"image_base64": photos[0], "threshold": 0}
        )
        assert [m["external_id"] for m in found.json()["data"]["matches"]] == ["bob"]
