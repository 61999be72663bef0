"""The store's corrections and unknown faces: transactions, cascades, and bytes wiped on delete."""

from __future__ import annotations

import numpy as np
import pytest
from storage_helpers import BOX, vec

from facesearch.domain import Collection
from facesearch.errors import Conflict, NotFound
from facesearch.storage import Store
from facesearch.storage._unknowns import NewUnknown


def _unknown(seed: int, thumbnail: bytes | None = None) -> NewUnknown:
    return NewUnknown("dlib", vec(seed), BOX, {"face_size": 100}, thumbnail, "identify", "r" * 32)


def test_merge_is_one_transaction_and_leaves_a_redirect(store: Store, coll: Collection) -> None:
    a = store.create_person(coll.id, "a")
    b = store.create_person(coll.id, "b", groups=["g"])
    store.add_face(coll.id, b.id, "dlib", vec(2), BOX)
    store.set_distinct(coll.id, a.id, b.id)
    with pytest.raises(Conflict):
        store.merge_persons(coll.id, a.id, b.id)
    assert store.get_person(coll.id, b.id).faces  # nothing moved
    store.set_distinct(coll.id, a.id, b.id, distinct=False)
    seq = store.last_seq()
    merged = store.merge_persons(coll.id, a.id, b.id)
    assert len(merged.faces) == 1 and merged.groups == ("g",)
    ops = [c.op for c in store.changes_since(seq)]
    assert ops == ["remove_face", "remove_person", "set_groups", "add_face"]
    c = store.create_person(coll.id, "c")
    store.merge_persons(coll.id, c.id, a.id)  # the first merged id now points at the last target
    with pytest.raises(NotFound) as err:
        store.get_person(coll.id, b.id)
    assert err.value.details["merged_into"] == c.id
    store.delete_person(coll.id, c.id)
    with pytest.raises(NotFound) as err:
        store.get_person(coll.id, b.id)
    assert "merged_into" not in err.value.details  # the redirect went with its target


def test_naming_unknowns_turns_them_into_faces(store: Store, coll: Collection) -> None:
    ids = store.add_unknowns(coll.id, [_unknown(i) for i in range(3)], 30)
    person, added = store.name_unknowns(coll.id, ids, external_id="x", max_faces=2)
    assert added == 2 and len(person.faces) == 2 and store.unknown_count(coll.id) == 0
    assert all(f.quality["from_unknown"] in ids for f in person.faces)
    got = store.embeddings_by_person([store.person_pk(coll.id, person.id)])
    assert next(iter(got.values())).shape == (2, 128)
    assert np.allclose(store.unknowns_for_clustering(coll.id, 10).vectors.shape, (0, 0))


@pytest.mark.sqlite_only
def test_deleted_negatives_and_unknown_faces_are_wiped(
    store: Store, coll: Collection, db_path: object
) -> None:
    p = store.create_person(coll.id, "a")
    negative_marker = b"NEGATIVE-MARKER-" * 20
    unknown_marker = b"UNKNOWN-MARKER-" * 20
    store.add_negative(coll.id, p.id, "dlib", vec(1), negative_marker)
    ids = store.add_unknowns(coll.id, [_unknown(2, unknown_marker)], 30)
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = open(str(db_path), "rb").read()
    assert negative_marker in data and unknown_marker in data
    store.delete_person(coll.id, p.id)
    assert store.delete_unknowns(coll.id, ids) == 1
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = open(str(db_path), "rb").read()
    assert negative_marker not in data and unknown_marker not in data  # secure_delete zeroes freed pages
