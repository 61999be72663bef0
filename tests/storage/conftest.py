"""Fixtures for the SQL store tests: a fresh SQLite database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch.domain import Collection
from facesearch.storage import Store, open_store
from pgutil import fresh_schema, need_postgres


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "facesearch.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, db_path: Path) -> Iterator[str]:
    """Every store test runs on SQLite and on PostgreSQL (a schema of its own per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{db_path}"
        return
    marker = request.node.get_closest_marker("sqlite_only")
    if marker is not None:
        pytest.skip(f"SQLite only: {marker.args[0] if marker.args else 'reads the SQLite file itself'}")
    with fresh_schema(need_postgres()) as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(database_url)
    yield s
    s.close()


@pytest.fixture
def coll(store: Store) -> Collection:
    return store.create_collection("staff", title="Staff", kind="internal", pack="dlib")
