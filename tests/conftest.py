"""Shared fixtures: where the real photos are, and embeddings computed once per run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedworker import EmbeddingCache

REPO = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("FACESEARCH_FACES_DIR", REPO.parent / "shared" / "faces")).resolve()
# The models installed by `make test` (./data/models) serve every test, whatever its data folder
# (a service looks for them in <data dir>/models otherwise).
os.environ.setdefault("FACESEARCH_MODELS_DIR", str(REPO / "data" / "models"))


def _need_faces() -> Path:
    if not (FACES_DIR / "MANIFEST.md").is_file():
        pytest.skip(
            f"real face photos not found at {FACES_DIR}: put the shared data there "
            "(../shared/faces beside the repo) or set FACESEARCH_FACES_DIR"
        )
    return FACES_DIR


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The shared photo folder; tests using it skip with a message when it is absent."""
    return _need_faces()


@pytest.fixture(scope="session")
def dlib_pipeline() -> object:
    """The real dlib pipeline, built once per test session."""
    from facesearch.pipeline import FacePipeline, build_pack

    return FacePipeline(build_pack("dlib"))


@pytest.fixture(scope="session")
def embedding_cache(faces_dir: Path) -> Iterator[EmbeddingCache]:
    """Session-wide cache of real dlib embeddings of shared photos."""
    yield EmbeddingCache(faces_dir)


# --- the SQL database: SQLite, and PostgreSQL when scripts/pg.sh started one ----------------


@pytest.fixture(params=["sqlite", "postgresql", pytest.param("milvus", marks=pytest.mark.milvus)])
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """None (the default SQLite file in the data folder), then a PostgreSQL schema of its own:
    the tests that take this fixture run on both (PostgreSQL skips with a message when absent).

    In modules that set ``MILVUS = True`` they run a third time on SQLite with Milvus as the
    index (``FACESEARCH_INDEX_URL`` set for the test and the processes it starts, fresh
    collections); elsewhere that run is deselected."""
    if request.param == "sqlite":
        yield None
        return
    if request.param == "milvus":
        from milvusutil import emptied_after

        with emptied_after(request.getfixturevalue("milvus_session_url")) as url:
            monkeypatch.setenv("FACESEARCH_INDEX_URL", url)
            yield None
        return
    from pgutil import fresh_schema, need_postgres

    with fresh_schema(need_postgres()) as url:
        yield url


@pytest.fixture(scope="session")
def milvus_session_url() -> Iterator[str]:
    """Milvus collections of this test session (a fresh prefix), dropped at its end; tests get
    them emptied (milvusutil.emptied_after). Skips with a message when Milvus is not running."""
    from milvusutil import fresh_prefix, need_milvus

    with fresh_prefix(need_milvus()) as url:
        yield url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the Milvus run of `database_url` only in the modules that ask for it."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_milvus = callspec is not None and callspec.params.get("database_url") == "milvus"
        module = getattr(item, "module", None)
        (drop if on_milvus and not getattr(module, "MILVUS", False) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# --- figures: what passing tests printed (accuracy, recall, recovery counts) ------------------

_FIGURES: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and report.capstdout.strip():
        _FIGURES.append((report.nodeid, report.capstdout.strip()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the tests measured, so a CI log carries them (not only on failure)."""
    if not _FIGURES:
        return
    terminalreporter.section("figures printed by passing tests")
    for nodeid, text in _FIGURES:
        terminalreporter.write_line(nodeid)
        for line in text.splitlines()[:20]:
            terminalreporter.write_line(f"    {line[:300]}")
