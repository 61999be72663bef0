"""Collections: create, read, list with counts, edit, delete with everything in it."""

from __future__ import annotations

from datetime import UTC

import pytest
from storage_helpers import BOX, vec

from facesearch.domain import Collection
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage import Store


def test_create_and_get_by_uid_name_and_pk(store: Store) -> None:
    c = store.create_collection(
        "staff", "Staff", "people at work", "watchlist", "dlib", {"auto_enroll": True}
    )
    assert c.id.startswith("col_") and len(c.id) == 20
    assert c.created_at.tzinfo is not None and c.created_at.utcoffset() == UTC.utcoffset(None)
    pk = store.collection_pk("staff")
    for ref in (c.id, "staff", pk):
        got = store.get_collection(ref)
        assert got.id == c.id and got.kind == "watchlist" and got.settings == {"auto_enroll": True}
    assert store.collection_pk(c.id) == pk
    assert store.collection_pks() == {pk: "staff"}


def test_duplicate_name_conflicts(store: Store, coll: Collection) -> None:
    with pytest.raises(Conflict) as info:
        store.create_collection("staff")
    assert info.value.code == "CONFLICT"
    assert info.value.details == {"collection": "staff"}


def test_not_found(store: Store) -> None:
    for ref in ("nope", "col_doesnotexist1234", 999):
        with pytest.raises(NotFound) as info:
            store.get_collection(ref)
        assert info.value.code == "NOT_FOUND"
        assert info.value.details == {"collection": ref}


@pytest.mark.parametrize("name", ["", "col_x", "has space", "a/b", "x" * 101])
def test_bad_names_refused(store: Store, name: str) -> None:
    with pytest.raises(ValidationError):
        store.create_collection(name)


def test_bad_kind_refused(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        store.create_collection("x", kind="other")
    assert info.value.details["field"] == "kind"


def test_list_with_counts(store: Store, coll: Collection) -> None:
    other = store.create_collection("visitors")
    p1 = store.create_person(coll.id, "e1", "Ann")
    store.create_person(coll.id, "e2", "Bob")
    store.add_face(coll.id, p1.id, "dlib", vec(1), BOX)
    store.add_face(coll.id, p1.id, "dlib", vec(2), BOX)
    listed = {c.name: c for c in store.list_collections()}
    assert [c.name for c in store.list_collections()] == ["staff", "visitors"]
    assert (listed["staff"].person_count, listed["staff"].face_count) == (2, 2)
    assert (listed["visitors"].person_count, listed["visitors"].face_count) == (0, 0)
    got = store.get_collection(coll.id)
    assert (got.person_count, got.face_count) == (2, 2)
    assert store.get_collection(other.id).person_count == 0


def test_update(store: Store, coll: Collection) -> None:
    store.update_collection(coll.id, settings={"a": 1, "b": 2})
    c = store.update_collection(
        "staff", name="crew", title="Crew", description="d", kind="external", settings={"b": None, "c": 3}
    )
    assert (c.name, c.title, c.description, c.kind) == ("crew", "Crew", "d", "external")
    assert c.settings == {"a": 1, "c": 3}
    assert store.get_collection("crew").id == coll.id
    with pytest.raises(NotFound):
        store.get_collection("staff")


def test_update_name_conflict_and_pack_rules(store: Store, coll: Collection) -> None:
    store.create_collection("other")
    with pytest.raises(Conflict):
        store.update_collection(coll.id, name="other")
    assert store.update_collection(coll.id, pack="arcface").pack == "arcface"
    store.update_collection(coll.id, pack="dlib")
    p = store.create_person(coll.id, "e1")
    store.add_face(coll.id, p.id, "dlib", vec(1), BOX)
    with pytest.raises(Conflict):
        store.update_collection(coll.id, pack="arcface")
    with pytest.raises(NotFound):
        store.update_collection("missing", title="x")


def test_delete_collection_cascades_and_logs(store: Store, coll: Collection) -> None:
    keep = store.create_collection("keep")
    kp = store.create_person(keep.id, "k1", groups=["g"])
    store.add_face(keep.id, kp.id, "dlib", vec(9), BOX, thumbnail=b"keep")
    p = store.create_person(coll.id, "e1", groups=["vip", "staff"])
    f = store.add_face(coll.id, p.id, "dlib", vec(1), BOX, thumbnail=b"jpeg")
    pk = store.collection_pk(coll.id)
    before = store.last_seq()

    store.delete_collection("staff")

    with pytest.raises(NotFound):
        store.get_collection(coll.id)
    with pytest.raises(NotFound):
        store.get_face(f.id)
    assert store.get_persons_by_ids([store.person_pk(keep.id, kp.id)])  # the other one is intact
    assert store.get_face_thumbnail(store.get_person(keep.id, kp.id).faces[0].id) == b"keep"
    with store.engine.connect() as conn:
        from sqlalchemy import text

        for table in ("persons", "faces", "groups", "memberships"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1, table
    changes = store.changes_since(before)
    assert [(c.op, c.collection_id) for c in changes] == [("drop_collection", pk)]
    assert changes[0].payload == {"name": "staff", "uid": coll.id}
    with pytest.raises(NotFound):
        store.delete_collection("staff")
