"""Fixtures for the SQL store tests: a fresh SQLite database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch.domain import Collection
from facesearch.storage import Store, open_store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "facesearch.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{db_path}")
    yield s
    s.close()


@pytest.fixture
def coll(store: Store) -> Collection:
    return store.create_collection("staff", title="Staff", kind="internal", pack="dlib")
