"""The Milvus the tests may use: `scripts/milvus.sh start` (run by `make test`) writes its URL to
.milvus/url; FACESEARCH_TEST_MILVUS_URL overrides it. Each test gets collections of its own
(a fresh name prefix), dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]


def milvus_url() -> str | None:
    url = os.environ.get("FACESEARCH_TEST_MILVUS_URL")
    if url:
        return url
    path = REPO / ".milvus" / "url"
    return path.read_text().strip() if path.is_file() else None


def need_milvus() -> str:
    url = milvus_url()
    if url is None:
        pytest.skip(
            "Milvus is not running for the tests: `scripts/milvus.sh start` (make test runs it; it "
            "installs milvus==2.3.5 into .venv-milvus) or set FACESEARCH_TEST_MILVUS_URL"
        )
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        pytest.skip("pymilvus is not installed: pip install 'facesearch[milvus]'")
    return url


def drop_prefix(url: str, prefix: str | None = None) -> None:
    """Drop every Milvus collection whose name starts with ``prefix``_ (default: the URL's)."""
    from pymilvus import MilvusClient

    parts = urlsplit(url)
    if prefix is None:
        prefix = dict(parse_qsl(parts.query))["prefix"]
    client = MilvusClient(uri=f"http://{parts.hostname}:{parts.port}")
    try:
        for name in client.list_collections():
            if name.startswith(prefix + "_"):
                client.drop_collection(name)
    finally:
        client.close()


@contextmanager
def fresh_prefix(url: str) -> Iterator[str]:
    """A milvus:// URL whose collections are new (a random prefix), dropped afterwards."""
    prefix = "t" + secrets.token_hex(5)
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}prefix={prefix}"
    finally:
        drop_prefix(url, prefix)


@contextmanager
def emptied_after(url: str) -> Iterator[str]:
    """``url`` for one test; afterwards its index is emptied (every partition dropped, cursor 0),
    cheaper than new collections for every test (creating and loading one takes seconds)."""
    from facesearch.index import open_index

    try:
        yield url
    finally:
        index = open_index(url, None)
        try:
            for partition in index.partitions():
                index.drop_partition(partition)
            index.applied_seq = 0
            index.barrier()  # type: ignore[attr-defined]
        finally:
            index.close()
