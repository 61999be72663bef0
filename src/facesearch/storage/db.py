"""Engines and migrations.

``create_engine_for(url)`` gives an Engine for SQLite (the default) or PostgreSQL.
For SQLite every connection gets WAL, ``synchronous=FULL`` (acknowledged = on disk),
foreign keys, ``secure_delete`` (deleted thumbnails and embeddings are zeroed on
disk) and a 30 s busy timeout; SQLAlchemy emits ``BEGIN`` itself, and transactions
run with the execution option ``WRITE_OPTION`` start with ``BEGIN IMMEDIATE`` so that
concurrent writers queue on the busy timeout instead of failing with "database is
locked". ``migrate(engine)`` runs Alembic to head from a Config built in code.

For PostgreSQL (``postgresql+psycopg://...``, psycopg 3): a connection pool of
``PG_POOL_SIZE`` connections (plus ``PG_MAX_OVERFLOW`` at peaks, each checked before use and
recycled after ``PG_POOL_RECYCLE_S``), and every session gets ``statement_timeout`` and
``lock_timeout`` (``PG_STATEMENT_TIMEOUT_MS``, ``PG_LOCK_TIMEOUT_MS``) so that no request
waits forever on a stuck statement or lock. Write transactions take the transaction-level
advisory lock ``PG_WRITE_LOCK`` first: writes are serialised across every process that shares
the database, exactly as SQLite's ``BEGIN IMMEDIATE`` serialises them, so the checks made
inside a write transaction (face limits, the same photo twice, a taken name) hold for
concurrent requests on several servers, and READ COMMITTED never reports a serialisation
failure to retry. Reads do not take it and run concurrently.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: The newest revision in ``migrations/versions`` (a test checks it against Alembic's head): a
#: database already there is opened without importing Alembic, ~0.15 s off every CLI command.
HEAD_REVISION = "0007"

#: Execution option marking a transaction that will write (``BEGIN IMMEDIATE`` on SQLite).
WRITE_OPTION = "facesearch_write"

_BUSY_TIMEOUT_MS = 30_000
# Any constant: PostgreSQL processes running migrate() at once queue on this lock.
_PG_MIGRATION_LOCK = 0x66616365
#: The advisory lock every PostgreSQL write transaction takes first (any constant but the above).
PG_WRITE_LOCK = 0x66617772
#: The advisory-lock class (first key) of the per-collection locks (``Store.collection_lock``).
PG_COLLECTION_LOCKS = 0x6663
#: The advisory-lock class of the shared index's change-log applier (``Store.index_lock``).
PG_INDEX_LOCK = 0x6669
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 20
PG_POOL_RECYCLE_S = 1800
PG_STATEMENT_TIMEOUT_MS = 30_000
PG_LOCK_TIMEOUT_MS = 30_000


def _is_memory(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or db.startswith("file::memory:") or url.query.get("mode") == "memory"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy takes over BEGIN (see _on_sqlite_begin); the driver must not emit its own.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA secure_delete=ON")
    finally:
        cur.close()


def _on_sqlite_begin(conn: Connection) -> None:
    immediate = bool(conn.get_execution_options().get(WRITE_OPTION))
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine_for(url: str, *, echo: bool = False) -> Engine:
    """An Engine for ``url``: SQLite (folder created, pragmas set) or any other SQLAlchemy URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _postgresql_engine(parsed, echo)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000}
    if _is_memory(parsed):
        engine = create_engine(parsed, echo=echo, connect_args=connect_args, poolclass=StaticPool)
    else:
        assert parsed.database is not None
        if not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo, connect_args=connect_args)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _postgresql_engine(url: URL, echo: bool) -> Engine:
    """Pooled, with per-session timeouts added to any ``options`` the URL already has."""
    timeouts = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} -c lock_timeout={PG_LOCK_TIMEOUT_MS}"
    given = url.query.get("options")
    options = " ".join([*([given] if isinstance(given, str) else list(given or ())), timeouts])
    return create_engine(
        url.difference_update_query(["options"]),
        echo=echo,
        pool_pre_ping=True,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_recycle=PG_POOL_RECYCLE_S,
        connect_args={"options": options},
    )


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged migrations (no alembic.ini needed).

    With ``url`` it also works for Alembic commands run by hand, for example
    ``command.revision(alembic_config("sqlite:///data/facesearch.db"), "msg", autogenerate=True)``.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it already is there.

    Runs in one transaction (SQLite and PostgreSQL both have transactional DDL), serialised
    against other processes migrating the same database at the same time.
    """
    if _at_head(engine):
        return
    from alembic import command

    cfg = alembic_config()
    with engine.connect() as conn:
        conn = conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


def _at_head(engine: Engine) -> bool:
    """Whether the database records exactly ``HEAD_REVISION`` (False when it has no version
    table yet, or any other revision: then Alembic runs and decides)."""
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:
        return False
    return list(versions) == [HEAD_REVISION]


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
