"""Engine set-up and migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from facesearch.storage import Store, create_engine_for, migrate
from facesearch.storage.db import alembic_config, current_revision
from facesearch.storage.tables import Base

TABLES = {
    "collections",
    "persons",
    "groups",
    "memberships",
    "faces",
    "change_log",
    "api_keys",
    "index_cursors",
    "negatives",
    "distinct_persons",
    "person_redirects",
    "unknown_faces",
    "audit_log",
    "face_sources",
    "pack_migrations",
    "face_vectors",
}


def test_migrate_creates_every_table_and_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.db"
    engine = create_engine_for(f"sqlite:///{path}")
    migrate(engine)
    assert path.exists()
    assert TABLES <= set(inspect(engine).get_table_names())
    assert current_revision(engine) == "0007"
    engine.dispose()


def test_migrate_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    Store(engine).create_collection("c1")
    migrate(engine)
    migrate(engine)
    assert [c.name for c in Store(engine).list_collections()] == ["c1"]
    engine.dispose()


def test_migration_matches_models(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    engine.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(tmp_path / "x.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_change_log_uses_sqlite_autoincrement(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'change_log'")).scalar()
    assert sql is not None and "AUTOINCREMENT" in sql
    engine.dispose()


def test_in_memory_database_works() -> None:
    engine = create_engine_for("sqlite://")
    migrate(engine)
    store = Store(engine)
    store.create_collection("mem")
    assert store.get_collection("mem").name == "mem"
    engine.dispose()


def test_migration_renders_for_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    """Offline mode: the same revision as PostgreSQL DDL (no server or driver needed)."""
    command.upgrade(alembic_config("postgresql://u:p@localhost/facesearch"), "head", sql=True)
    sql = capsys.readouterr().out
    for table in TABLES:
        assert f"CREATE TABLE {table} (" in sql
    assert "seq SERIAL NOT NULL" in sql and "TIMESTAMP WITH TIME ZONE" in sql and "BYTEA" in sql


def test_the_head_shortcut_names_alembics_head_and_older_databases_still_upgrade(tmp_path: Path) -> None:
    import subprocess
    import sys

    from alembic.script import ScriptDirectory

    from facesearch.storage.db import HEAD_REVISION

    # A new migration must raise HEAD_REVISION, or databases would skip it.
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION
    path = tmp_path / "old.db"
    engine = create_engine_for(f"sqlite:///{path}")
    command.upgrade(alembic_config(f"sqlite:///{path}"), "0006")
    assert current_revision(engine) == "0006"
    migrate(engine)  # not at head: Alembic runs
    assert current_revision(engine) == HEAD_REVISION
    engine.dispose()
    # At head, opening the store does not import Alembic at all.
    code = (
        "import sys; from facesearch.storage import open_store; "
        f"open_store('sqlite:///{path}').close(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
