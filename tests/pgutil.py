"""The PostgreSQL the tests may use: `scripts/pg.sh start` (run by `make test`) writes its URL to
.pg/url; FACESEARCH_TEST_POSTGRES_URL overrides it. Each test gets a schema of its own."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def postgres_url() -> str | None:
    """The test server's URL, or None."""
    url = os.environ.get("FACESEARCH_TEST_POSTGRES_URL")
    if url:
        return url
    path = REPO / ".pg" / "url"
    return path.read_text().strip() if path.is_file() else None


def need_postgres() -> str:
    url = postgres_url()
    if url is None:
        pytest.skip(
            "PostgreSQL is not running for the tests: `scripts/pg.sh start` (make test runs it; it needs "
            "Debian's postgresql-15) or set FACESEARCH_TEST_POSTGRES_URL"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'facesearch[postgresql]'")
    return url


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A URL whose connections use a new, empty schema; the schema is dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = "t_" + secrets.token_hex(6)
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        admin.dispose()
