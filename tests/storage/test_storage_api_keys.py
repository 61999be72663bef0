"""API keys: only hashes stored, verification, revocation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from facesearch.errors import NotFound, ValidationError
from facesearch.storage import Store
from facesearch.storage._collections import hash_key
from facesearch.storage.tables import DbApiKey


@pytest.mark.sqlite_only
def test_only_the_hash_is_stored(store: Store, db_path: Path) -> None:
    staff = store.create_collection("staff")
    record, key = store.create_api_key("ci", "writer", ["staff"])
    assert key.startswith("fs_") and len(key) > 40
    assert record.id.startswith("key_") and record.prefix == key[:8] and record.collections == (staff.id,)
    assert record.allows(staff.id) and not record.allows("staff")  # bound to the id, not the name
    store.close()  # checkpoint the WAL into the file
    files = [db_path, db_path.with_name(db_path.name + "-wal")]
    blob = b"".join(f.read_bytes() for f in files if f.exists())
    assert key.encode() not in blob
    assert key[8:].encode() not in blob
    assert hash_key(key).encode() in blob


def test_verify_and_revoke(store: Store) -> None:
    record, key = store.create_api_key("admin", "admin")
    assert record.collections is None and record.allows("anything")
    assert store.verify_api_key("fs_wrong") is None
    assert store.verify_api_key("") is None
    got = store.verify_api_key(key)
    assert got is not None and got.id == record.id and got.role == "admin"
    assert got.last_used_at is not None
    assert store.count_api_keys() == 1
    revoked = store.revoke_api_key(record.id)
    assert revoked.revoked and store.revoke_api_key(record.id).revoked_at == revoked.revoked_at
    assert store.verify_api_key(key) is None
    assert store.count_api_keys() == 0 and store.count_api_keys(active_only=False) == 1
    assert store.list_api_keys(include_revoked=False) == []
    assert [k.id for k in store.list_api_keys()] == [record.id]
    with pytest.raises(NotFound):
        store.revoke_api_key("key_missing")


def test_last_used_updated_at_most_once_a_minute(store: Store) -> None:
    record, key = store.create_api_key("r", "reader")
    first = store.verify_api_key(key)
    assert first is not None and first.last_used_at is not None
    again = store.verify_api_key(key)
    assert again is not None and again.last_used_at == first.last_used_at
    stale = first.last_used_at - timedelta(minutes=2)
    with store.engine.begin() as conn:
        conn.execute(update(DbApiKey).values(last_used_at=stale))
    later = store.verify_api_key(key)
    assert later is not None and later.last_used_at is not None and later.last_used_at > first.last_used_at
    assert record.collections is None


@pytest.mark.parametrize("refs", [[], ["nope"], [""], "staff"])
def test_limits_must_name_existing_collections(store: Store, refs: object) -> None:
    store.create_collection("staff")
    with pytest.raises((NotFound, ValidationError)):
        store.create_api_key("x", "reader", refs)  # type: ignore[arg-type]
    assert store.list_api_keys() == []


def test_migration_0002_binds_stored_names_to_ids(tmp_path: Path) -> None:
    """Keys stored by 0001 held names: the upgrade turns them into today's ids."""
    from alembic import command
    from sqlalchemy import text

    from facesearch.storage import create_engine_for
    from facesearch.storage.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine_for(url)
    with engine.begin() as conn:
        for uid, name in (("col_a", "tenant1"), ("col_b", "tenant2")):
            conn.execute(
                text(
                    "INSERT INTO collections"
                    " (uid, name, title, description, kind, pack, settings, created_at)"
                    " VALUES (:u, :n, '', '', 'internal', 'dlib', '{}', CURRENT_TIMESTAMP)"
                ),
                {"u": uid, "n": name},
            )
        conn.execute(
            text(
                "INSERT INTO api_keys (uid, name, prefix, key_hash, role, collections, created_at)"
                " VALUES ('key_1', 'k', 'fs_x', 'h1', 'reader', :c, CURRENT_TIMESTAMP)"
            ),
            {"c": '["tenant1", "gone", "tenant2", "tenant1"]'},
        )
    command.upgrade(alembic_config(url), "head")
    (record,) = Store(engine).list_api_keys()
    assert record.collections == ("col_a", "col_b")
    assert record.reaches == (("col_a", "tenant1"), ("col_b", "tenant2"))
    engine.dispose()


def test_bad_role_refused(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        store.create_api_key("x", "root")
    assert info.value.details["field"] == "role"


def test_the_first_key_is_created_once_by_concurrent_callers(store: Store, database_url: str) -> None:
    """Servers starting at once on one database (#16.2) make one first admin key between them."""
    from concurrent.futures import ThreadPoolExecutor

    from facesearch.storage import open_store

    others = [open_store(database_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            made = list(pool.map(lambda s: s.create_first_api_key("admin (first run)"), others))
    finally:
        for s in others:
            s.close()
    assert sum(m is not None for m in made) == 1
    assert [k.role for k in store.list_api_keys()] == ["admin"]
    assert store.create_first_api_key("again") is None
