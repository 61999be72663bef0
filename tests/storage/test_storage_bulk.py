"""bulk_fill: persons, faces and change-log rows written straight to SQL read back like enrolled ones."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.domain import Collection
from facesearch.errors import ValidationError
from facesearch.storage import Store
from facesearch.storage.bulk import bulk_fill

# bulk_fill (the bench galleries) writes explicit ids: on SQLite and on PostgreSQL, whose id
# sequences it moves on (an ordinary insert after a bulk fill must not collide).


def test_bulk_fill_writes_persons_faces_and_log(store: Store, coll: Collection) -> None:
    vecs = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    owner = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 3])
    before = store.last_seq()
    made = bulk_fill(store, coll.id, vecs, owner, batch_size=4)
    assert len(made.person_ids) == 4 and len(made.face_ids) == 10
    assert (made.first_seq, made.last_seq) == (before + 1, before + 10) == (before + 1, store.last_seq())
    got = store.get_collection(coll.id)
    assert (got.person_count, got.face_count) == (4, 10)
    changes = store.changes_since(before)
    assert [c.op for c in changes] == ["add_face"] * 10
    assert [c.face_id for c in changes] == made.face_ids.tolist()
    assert [c.person_id for c in changes] == made.person_ids[owner].tolist()
    assert all(c.groups == ("default",) for c in changes)
    np.testing.assert_array_equal(np.stack([c.embedding for c in changes]), vecs)
    assert all(c.payload == {"pack": "dlib", "dim": 8} for c in changes)
    person = store.get_person(coll.id, int(made.person_ids[3]))
    assert person.external_id == "bulk-3" and len(person.faces) == 1
    assert person.name == "" and person.metadata == {} and person.groups == ("default",)
    assert person.created_at.tzinfo is not None and person.faces[0].created_at.tzinfo is not None
    assert abs((person.faces[0].created_at - person.created_at).total_seconds()) < 60
    np.testing.assert_array_equal(store.person_embeddings(int(made.person_ids[0])), vecs[[0, 3, 6]])
    batch = next(store.all_faces_for_index())
    np.testing.assert_array_equal(batch.face_ids, made.face_ids)


def test_bulk_fill_after_ordinary_rows_and_twice(store: Store, coll: Collection) -> None:
    rng = np.random.default_rng(1)
    store.create_person(coll.id, "alice", "Alice", None, ())
    first = bulk_fill(store, coll.id, rng.standard_normal((3, 4)), [0, 0, 1], external_prefix="a-")
    second = bulk_fill(store, coll.id, rng.standard_normal((2, 4)), [0, 1], external_prefix="b-")
    assert second.face_ids.min() > first.face_ids.max()
    assert second.person_ids.min() > first.person_ids.max()
    assert second.first_seq == first.last_seq + 1
    assert store.get_collection(coll.id).face_count == 5
    assert store.get_person(coll.id, int(first.person_ids[1])).external_id == "a-1"
    later = store.create_person(coll.id, "carol", "Carol", None, ())  # the sequences moved on
    assert store.get_person(coll.id, later.id).external_id == "carol"


def test_bulk_fill_refuses_bad_input(store: Store, coll: Collection) -> None:
    with pytest.raises(ValidationError):
        bulk_fill(store, coll.id, np.zeros((2, 4)), [0])
    with pytest.raises(ValidationError):
        bulk_fill(store, coll.id, np.full((1, 4), np.nan), [0])
    bulk_fill(store, coll.id, np.zeros((1, 4)), [0])
    with pytest.raises(ValidationError):
        bulk_fill(store, coll.id, np.zeros((1, 5)), [0], external_prefix="x-")
    with pytest.raises(ValidationError):
        bulk_fill(store, coll.id, np.zeros((1, 4)), [0])  # bulk-0 is taken
