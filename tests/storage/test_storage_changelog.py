"""The change log and the feed for a full index rebuild."""

from __future__ import annotations

import numpy as np
import pytest
from storage_helpers import BOX, vec

from facesearch.domain import Collection
from facesearch.errors import ValidationError
from facesearch.storage import Store


def test_empty_log(store: Store) -> None:
    assert store.last_seq() == 0 and store.changes_since(0) == []


def test_changes_are_ordered_with_embeddings(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a", groups=["g"])
    faces = [store.add_face(coll.id, p.id, "dlib", vec(i), BOX) for i in range(5)]
    store.delete_face(coll.id, faces[1].id)
    changes = store.changes_since(0)
    assert [c.op for c in changes] == ["set_groups"] + ["add_face"] * 5 + ["remove_face"]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[-1] == store.last_seq()
    adds = [c for c in changes if c.op == "add_face"]
    assert adds[1].embedding is None  # deleted since
    for i in (0, 2, 3, 4):
        emb = adds[i].embedding
        assert emb is not None and emb.dtype == np.float32 and np.array_equal(emb, vec(i))
    # Paging through the log with a limit gives the same entries.
    got, last = [], 0
    while batch := store.changes_since(last, limit=2):
        got.extend(batch)
        last = batch[-1].seq
    assert [c.seq for c in got] == seqs
    with pytest.raises(ValidationError):
        store.changes_since(0, limit=0)


def test_seqs_are_never_reused(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a")
    f = store.add_face(coll.id, p.id, "dlib", vec(1), BOX)
    before = store.last_seq()
    store.delete_face(coll.id, f.id)
    store.delete_person(coll.id, p.id)
    store.delete_collection(coll.id)
    top = store.last_seq()
    assert top == before + 3
    # Even if the newest log rows were removed (say, a compaction), seqs keep climbing.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM change_log")
    c2 = store.create_collection("again")
    store.create_person(c2.id, "b")
    assert store.last_seq() == top + 1
    # Primary keys of deleted rows are not reused either: the index keys on them.
    p3 = store.create_person(c2.id, "c")
    f3 = store.add_face(c2.id, p3.id, "dlib", vec(1), BOX)
    assert store.face_pk(f3.id) > 1 and store.collection_pk(c2.id) > 1


def test_all_faces_for_index(store: Store, coll: Collection) -> None:
    other = store.create_collection("other", pack="small")
    expected: dict[int, list[tuple[int, int]]] = {}
    for c in (coll, other):
        cpk = store.collection_pk(c.id)
        dim = 128 if c.pack == "dlib" else 16
        for j in range(3):
            p = store.create_person(c.id, f"p{j}")
            for k in range(2):
                f = store.add_face(c.id, p.id, c.pack, vec(cpk * 100 + j * 10 + k, dim), BOX)
                expected.setdefault(cpk, []).append((store.face_pk(f.id), store.person_pk(c.id, p.id)))
    batches = list(store.all_faces_for_index(batch_size=4))
    assert all(len(b.face_ids) <= 4 for b in batches)
    seen: dict[int, list[tuple[int, int]]] = {}
    for collection_id, face_ids, person_ids, vectors in batches:
        assert vectors.dtype == np.float32 and vectors.shape == (len(face_ids), vectors.shape[1])
        seen.setdefault(collection_id, []).extend(zip(face_ids.tolist(), person_ids.tolist(), strict=True))
    assert seen == expected
    first = next(iter(store.all_faces_for_index(collection_id=other.id)))
    assert first.collection_id == store.collection_pk(other.id) and first.vectors.shape == (6, 16)
    assert list(store.all_faces_for_index(collection_id=store.create_collection("empty").id)) == []


def test_all_person_groups(store: Store, coll: Collection) -> None:
    other = store.create_collection("other")
    a = store.create_person(coll.id, "a", groups=["y", "x"])
    b = store.create_person(coll.id, "b")
    c = store.create_person(other.id, "c", groups=["z"])
    pk = {p.id: store.person_pk(p.collection_id, p.id) for p in (a, b, c)}
    assert store.all_person_groups() == {pk[a.id]: ("x", "y"), pk[b.id]: ("default",), pk[c.id]: ("z",)}
    assert store.all_person_groups(other.id) == {pk[c.id]: ("z",)}


def test_rebuild_then_replay_reaches_the_same_state(store: Store, coll: Collection) -> None:
    """A toy index: full load at a seq, then replay; equals the truth."""
    p = store.create_person(coll.id, "a")
    f1 = store.add_face(coll.id, p.id, "dlib", vec(1), BOX)
    seq = store.last_seq()
    index = {int(fid) for b in store.all_faces_for_index() for fid in b.face_ids}
    f2 = store.add_face(coll.id, p.id, "dlib", vec(2), BOX)
    store.delete_face(coll.id, f1.id)
    for change in store.changes_since(seq):
        if change.op == "add_face" and change.embedding is not None and change.face_id is not None:
            index.add(change.face_id)
        elif change.op == "remove_face" and change.face_id is not None:
            index.discard(change.face_id)
    assert index == {store.face_pk(f2.id)}
