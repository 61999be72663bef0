"""The request path's read cache: one data-version query per request, and never a stale answer
after a write in this process or in another one (another Store on the same database)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from storage_helpers import BOX, vec

from facesearch.domain import Collection
from facesearch.errors import Conflict
from facesearch.storage import Store, open_store
from facesearch.storage._audit import AuditEntry
from facesearch.storage.cache import ReadCache, request_scope


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET ")):
            seen.append(statement.split()[0] + " " + statement.split("FROM ")[-1].split()[0])

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


@pytest.fixture
def other(store: Store, database_url: str) -> Iterator[Store]:
    """A second Store on the same database: another server process, as far as caching goes."""
    s = open_store(database_url)
    yield s
    s.close()


def _request_path_reads(
    store: Store, coll: Collection, key: str, pk: int, face_pk: int
) -> tuple[object, ...]:
    return (
        store.verify_api_key(key),
        store.collection_info(coll.name),
        store.get_persons_by_ids([pk]),
        store.get_faces_by_ids([face_pk]),
        store.negatives_of([pk]),
        store.distinct_pairs_of([pk]),
    )


def test_a_request_reads_sql_once_when_nothing_changed(store: Store, coll: Collection) -> None:
    person = store.create_person(coll.id, "ann", name="Ann")
    face = store.add_face(coll.id, person.id, "dlib", vec(1), BOX)
    pk, face_pk = store.person_pk(coll.id, person.id), store.face_pk(face.id)
    _, key = store.create_api_key("k", "reader")
    with request_scope():
        first = _request_path_reads(store, coll, key, pk, face_pk)
    with request_scope(), statements(store) as seen:
        again = _request_path_reads(store, coll, key, pk, face_pk)
    assert again == first
    assert seen == ["SELECT data_version"]  # one query for six reads
    # Outside a request nothing is cached: every read goes to SQL.
    with statements(store) as seen:
        assert _request_path_reads(store, coll, key, pk, face_pk) == first
    assert len(seen) >= 6 and "SELECT data_version" not in seen


def test_writes_in_another_process_are_seen_by_the_next_request(
    store: Store, other: Store, coll: Collection
) -> None:
    person = store.create_person(coll.id, "ann", name="Ann")
    pk = store.person_pk(coll.id, person.id)
    record, key = store.create_api_key("k", "reader")
    with request_scope():
        assert store.get_persons_by_ids([pk])[pk].name == "Ann"
        assert store.verify_api_key(key) is not None
        assert store.negatives_of([pk]) == {} and store.distinct_pairs_of([pk]) == set()
    bob = other.create_person(coll.id, "bob")
    other.update_person(coll.id, person.id, name="Anne", groups=["g"])
    other.add_negative(coll.id, person.id, "dlib", vec(9))
    other.set_distinct(coll.id, person.id, bob.id)
    other.revoke_api_key(record.id)
    other.update_collection(coll.id, title="Renamed")
    with request_scope():
        assert store.get_persons_by_ids([pk])[pk].name == "Anne"
        assert store.get_persons_by_ids([pk])[pk].groups == ("g",)
        assert store.verify_api_key(key) is None  # revoked elsewhere: refused at once
        assert pk in store.negatives_of([pk])
        assert len(store.distinct_pairs_of([pk])) == 1
        assert store.collection_info(coll.id).title == "Renamed"


def test_a_request_reads_its_own_writes(store: Store, coll: Collection) -> None:
    person = store.create_person(coll.id, "ann", name="Ann")
    pk = store.person_pk(coll.id, person.id)
    with request_scope():
        assert store.get_persons_by_ids([pk])[pk].name == "Ann"
        store.update_person(coll.id, person.id, name="Anne")
        assert store.get_persons_by_ids([pk])[pk].name == "Anne"
        store.delete_person(coll.id, person.id)
        assert store.get_persons_by_ids([pk]) == {}


def test_the_audit_log_and_key_use_do_not_move_the_version(store: Store, coll: Collection) -> None:
    _, key = store.create_api_key("k", "reader")
    before = store.data_version()
    store.add_audit(AuditEntry("identify", "POST", "/v1/x", 200, "ok"))
    assert store.verify_api_key(key) is not None  # records its first use
    assert store.data_version() == before
    store.create_person(coll.id, "ann")
    assert store.data_version() == before + 1


def test_a_failed_write_leaves_the_version_alone(store: Store, coll: Collection) -> None:
    store.create_person(coll.id, "ann")
    before = store.data_version()
    with pytest.raises(Conflict):
        store.create_person(coll.id, "ann")  # external id taken
    assert store.data_version() == before


def test_the_cache_is_bounded_and_versioned() -> None:
    cache = ReadCache(entries=3)
    loads: list[list[int]] = []

    def load(keys: list[int]) -> dict[int, str]:
        loads.append(keys)
        return {k: f"v{k}" for k in keys if k != 2}

    assert cache.many(1, "x", [1, 2, 3], load) == {1: "v1", 3: "v3"}
    assert cache.many(1, "x", [1, 2, 3], load) == {1: "v1", 3: "v3"}  # 2 remembered as absent
    assert loads == [[1, 2, 3]]
    assert cache.many(2, "x", [1], load) == {1: "v1"} and loads[-1] == [1]  # another version
    cache.many(2, "x", [4, 5, 6], load)
    assert len(cache._values) == 3  # least recently used dropped
    assert cache.many(None, "x", [1], load) == {1: "v1"} and loads[-1] == [1]  # no caching
