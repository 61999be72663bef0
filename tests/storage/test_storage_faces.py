"""Faces: stored with their log entry atomically, read back, deleted with their person."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text
from storage_helpers import BOX, vec

from facesearch.domain import Collection
from facesearch.errors import NotFound, ValidationError
from facesearch.storage import Store
from facesearch.storage.records import decode_embedding, encode_embedding


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def test_embedding_codec_roundtrip() -> None:
    v = vec(3)
    data, dim = encode_embedding(v)
    assert dim == 128 and data == np.asarray(v, dtype="<f4").tobytes()
    back = decode_embedding(data)
    assert back.dtype == np.float32 and np.array_equal(back, v)
    with pytest.raises(ValidationError):
        encode_embedding(np.array([1.0, np.nan]))
    with pytest.raises(ValidationError):
        encode_embedding(np.zeros((2, 2)))


def test_add_and_read_face(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a")
    f = store.add_face(coll.id, p.id, "dlib", vec(1), BOX, {"sharpness": 12.5}, b"\xff\xd8jpeg", "ab" * 32)
    assert f.id.startswith("fac_") and len(f.id) == 20
    assert (f.person_id, f.collection_id, f.pack, f.box, f.quality) == (
        p.id,
        coll.id,
        "dlib",
        BOX,
        {"sharpness": 12.5},
    )
    assert store.get_face(f.id) == f
    pk = store.face_pk(f.id)
    assert store.get_face(pk) == f
    assert store.get_faces_by_ids([pk, 999]) == {pk: f}
    assert store.get_face_thumbnail(f.id) == b"\xff\xd8jpeg"
    assert store.get_thumbnails_by_ids([pk]) == {pk: b"\xff\xd8jpeg"}
    assert store.face_count(coll.id) == 1 and store.person_face_count(p.id) == 1
    emb = store.person_embeddings(p.id)
    assert emb.shape == (1, 128) and emb.dtype == np.float32 and np.array_equal(emb[0], vec(1))
    assert store.find_face_by_hash(coll.id, p.id, "ab" * 32) == f
    assert store.find_face_by_hash(coll.id, None, "ab" * 32) == f
    assert store.find_face_by_hash(coll.id, p.id, "cd" * 32) is None


def test_face_without_thumbnail(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a")
    f = store.add_face(coll.id, p.id, "dlib", vec(1), BOX)
    with pytest.raises(NotFound):
        store.get_face_thumbnail(f.id)
    assert store.get_thumbnails_by_ids([store.face_pk(f.id)]) == {}


def test_add_face_checks(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a")
    other = store.create_collection("other")
    with pytest.raises(ValidationError) as info:
        store.add_face(coll.id, p.id, "arcface", vec(1), BOX)
    assert info.value.details["field"] == "pack"
    store.add_face(coll.id, p.id, "dlib", vec(1), BOX)
    with pytest.raises(ValidationError):
        store.add_face(coll.id, p.id, "dlib", vec(1, dim=64), BOX)
    with pytest.raises(NotFound):
        store.add_face(other.id, p.id, "dlib", vec(1), BOX)
    with pytest.raises(NotFound):
        store.add_face(coll.id, "per_missing", "dlib", vec(1), BOX)
    assert store.face_count(coll.id) == 1


def test_add_face_is_atomic(store: Store, coll: Collection, monkeypatch: pytest.MonkeyPatch) -> None:
    p = store.create_person(coll.id, "a")
    seq = store.last_seq()
    faces, logs = count(store, "faces"), count(store, "change_log")
    original = Store._log

    def failing_log(self: Store, *args: object, **kwargs: object) -> int:
        # The face row is flushed inside the transaction by now; other connections do not see it.
        assert count(store, "faces") == faces
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "_log", failing_log)
    with pytest.raises(RuntimeError):
        store.add_face(coll.id, p.id, "dlib", vec(1), BOX, thumbnail=b"t")
    monkeypatch.setattr(Store, "_log", original)
    assert (count(store, "faces"), count(store, "change_log")) == (faces, logs)
    assert store.last_seq() == seq and store.person_face_count(p.id) == 0
    store.add_face(coll.id, p.id, "dlib", vec(1), BOX)
    assert (count(store, "faces"), count(store, "change_log")) == (faces + 1, logs + 1)


def test_add_face_writes_log_entry(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a", groups=["vip"])
    seq = store.last_seq()
    f = store.add_face(coll.id, p.id, "dlib", vec(7), BOX)
    (change,) = store.changes_since(seq)
    assert change.op == "add_face" and change.seq == seq + 1
    assert change.face_id == store.face_pk(f.id)
    assert change.person_id == store.person_pk(coll.id, p.id)
    assert change.collection_id == store.collection_pk(coll.id)
    assert change.groups == ("vip",) and change.payload == {"pack": "dlib", "dim": 128}
    assert change.embedding is not None and np.array_equal(change.embedding, vec(7))


def test_delete_face(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a")
    f = store.add_face(coll.id, p.id, "dlib", vec(1), BOX, thumbnail=b"t")
    fpk = store.face_pk(f.id)
    other = store.create_collection("other")
    with pytest.raises(NotFound):
        store.delete_face(other.id, f.id)
    seq = store.last_seq()
    store.delete_face(coll.id, f.id)
    with pytest.raises(NotFound):
        store.get_face(f.id)
    with pytest.raises(NotFound):
        store.delete_face(coll.id, f.id)
    (change,) = store.changes_since(seq)
    assert (change.op, change.face_id, change.person_id) == (
        "remove_face",
        fpk,
        store.person_pk(coll.id, p.id),
    )
    assert store.person_embeddings(p.id).shape == (0, 0)


def test_delete_person_removes_faces_thumbnails_and_logs(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a", groups=["g"])
    keep = store.create_person(coll.id, "b")
    f1 = store.add_face(coll.id, p.id, "dlib", vec(1), BOX, thumbnail=b"one")
    f2 = store.add_face(coll.id, p.id, "dlib", vec(2), BOX, thumbnail=b"two")
    k = store.add_face(coll.id, keep.id, "dlib", vec(3), BOX, thumbnail=b"three")
    ppk, ids = store.person_pk(coll.id, p.id), [store.face_pk(f1.id), store.face_pk(f2.id)]
    seq = store.last_seq()

    store.delete_person(coll.id, p.id)

    for f in (f1, f2):
        with pytest.raises(NotFound):
            store.get_face_thumbnail(f.id)
    assert store.get_thumbnails_by_ids(ids) == {}
    assert store.get_face_thumbnail(k.id) == b"three"
    assert count(store, "faces") == 1 and count(store, "memberships") == 0
    changes = store.changes_since(seq)
    assert [(c.op, c.person_id, c.payload) for c in changes] == [("remove_person", ppk, {"face_ids": ids})]
    # The earlier add_face entries stay, but no longer carry the deleted embeddings.
    adds = [c for c in store.changes_since(0) if c.op == "add_face" and c.person_id == ppk]
    assert len(adds) == 2 and all(c.embedding is None and c.groups is None for c in adds)


@pytest.mark.sqlite_only
def test_deleted_face_bytes_are_wiped(store: Store, coll: Collection, db_path: object) -> None:
    p = store.create_person(coll.id, "a")
    marker = b"THUMBNAIL-MARKER-" * 20
    store.add_face(coll.id, p.id, "dlib", vec(1), BOX, thumbnail=marker)
    store.delete_person(coll.id, p.id)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert marker not in open(str(db_path), "rb").read()  # secure_delete zeroes freed pages
