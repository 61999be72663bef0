"""Shared plumbing of the Store: transactions, reference lookups, row -> domain conversion."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from facesearch.domain import (
    DEFAULT_GROUP,
    Box,
    Collection,
    Face,
    Group,
    Person,
    check_group_count,
    check_label,
)
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage.cache import ReadCache, scope
from facesearch.storage.db import PG_COLLECTION_LOCKS, PG_INDEX_LOCK, PG_WRITE_LOCK, WRITE_OPTION
from facesearch.storage.tables import (
    DbChange,
    DbCollection,
    DbDataVersion,
    DbFace,
    DbGroup,
    DbMembership,
    DbPerson,
    DbRedirect,
    new_uid,
)

if TYPE_CHECKING:
    from facesearch.storage.records import NewFace

# A ref is an integer primary key or a public string (a uid, or a collection's name).
Ref = int | str

_CHUNK = 500
_VERSION = select(DbDataVersion.version).where(DbDataVersion.id == 1)
#: Execution options of an ORM bulk UPDATE or DELETE that leaves the session's objects alone (the
#: store's writes never hold the rows they change as objects): every part of the store uses it.
NO_SYNC = {"synchronize_session": False}
_log = logging.getLogger(__name__)
T = TypeVar("T")


def chunks(ids: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    """Slices of ``ids`` small enough for one ``IN (...)``."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def check_json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON-serialisable dict, or ValidationError naming ``field``."""
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object", field=field)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field} is not valid JSON: {exc}", field=field) from None
    return dict(value)


def check_text(value: Any, field: str, max_len: int, *, allow_empty: bool = True) -> str:
    """A string of at most ``max_len`` characters, or ValidationError naming ``field``."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    if len(value) > max_len or (not allow_empty and not value.strip()):
        raise ValidationError(f"{field} must be 1 to {max_len} characters", field=field)
    return value


class StoreBase:
    """Sessions and helpers shared by the Store's parts."""

    if TYPE_CHECKING:  # defined by one part of the combined Store (repository.py), used by others

        def _insert_face(self, s: Session, coll: DbCollection, person: DbPerson, face: NewFace) -> DbFace: ...

        def _external_id_taken(self, s: Session, coll: DbCollection, external_id: str) -> None: ...

        def _log_groups(self, s: Session, coll_id: int, person_id: int, groups: tuple[str, ...]) -> None: ...

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._dialect = engine.dialect.name
        #: Reads of the request path, valid while the data version stays the same (cache.py).
        self.cache = ReadCache()

    # --- transactions -------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """One read-only transaction."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def _write(self, *, erases: bool = False, bump: bool = True) -> Iterator[Session]:
        """One write transaction, committed on leaving; a unique-key race becomes Conflict.
        ``erases``: the transaction deletes faces or other embeddings (see ``_wipe_wal``).
        ``bump``: raise the data version in the same transaction (every write but the few that
        change nothing a request caches: the audit log, unknown faces, a key's last use)."""
        try:
            with self._sessions.begin() as session:
                session.connection(execution_options={WRITE_OPTION: True})
                if self._dialect == "postgresql":
                    # One writer at a time across every process, as SQLite's BEGIN IMMEDIATE (db.py).
                    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK})
                yield session
                if bump:
                    session.execute(
                        update(DbDataVersion)
                        .where(DbDataVersion.id == 1)
                        .values(version=DbDataVersion.version + 1),
                        execution_options=NO_SYNC,
                    )
        except IntegrityError as exc:
            raise Conflict(
                "the change conflicts with existing data", details={"reason": str(exc.orig)}
            ) from None
        finally:
            if bump:
                self._changed()
        if erases:
            self._wipe_wal()

    def _changed(self) -> None:
        """This process wrote (or tried to): drop what is cached, and the request's version."""
        self.cache.clear()
        current = scope()
        if current is not None:
            current.pop("v", None)

    def data_version(self, *, fresh: bool = False) -> int:
        """The data version: read once per HTTP request (then remembered for it), else each call;
        ``fresh``: read it now (a check made under a lock must see what committed before it)."""
        current = scope()
        if current is not None and "v" in current and not fresh:
            return current["v"]
        with self.engine.connect() as conn:
            version = int(conn.execute(_VERSION).scalar_one())
        if current is not None:
            current["v"] = version
        return version

    def _version_for_cache(self) -> int | None:
        """The version cached reads are checked against; None outside a request (no caching)."""
        return self.data_version() if scope() is not None else None

    @contextmanager
    def collection_lock(self, collection_id: int) -> Iterator[None]:
        """Hold a lock on one collection across every process that shares this database, for a
        check that cannot sit inside one write transaction (enrol-if-unknown searches, then
        creates). PostgreSQL: a session advisory lock on a connection of its own; SQLite: an
        exclusive ``flock`` on a file beside the database (in-memory databases: none needed)."""
        with self._process_lock(PG_COLLECTION_LOCKS, collection_id, f"collection-{collection_id}"):
            yield

    @contextmanager
    def index_lock(self) -> Iterator[None]:
        """Hold the lock of the shared index's change-log applier (one process at a time applies
        the log to a shared vector index such as Milvus), as `collection_lock` holds its lock."""
        with self._process_lock(PG_INDEX_LOCK, 0, "index"):
            yield

    @contextmanager
    def _process_lock(self, lock_class: int, key: int, file_tag: str) -> Iterator[None]:
        if self._dialect == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:c, :k)"), {"c": lock_class, "k": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": lock_class, "k": key})
                    conn.commit()
            return
        database = self.engine.url.database or ""
        if self._dialect != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
            yield
            return
        import fcntl

        with open(f"{database}.{file_tag}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _log_lock(self, s: Session) -> None:
        """PostgreSQL: serialise log writers so seqs become visible in order (a tailer never
        skips one); taken before appending to the change log, held until the commit."""
        if self._dialect == "postgresql":
            s.execute(text("LOCK TABLE change_log IN EXCLUSIVE MODE"))

    def _log(
        self,
        s: Session,
        op: str,
        collection_id: int,
        *,
        face_id: int | None = None,
        person_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Append one change-log entry in the caller's transaction; returns its seq."""
        self._log_lock(s)
        row = DbChange(
            op=op, collection_id=collection_id, face_id=face_id, person_id=person_id, payload=payload
        )
        s.add(row)
        s.flush()
        return row.seq

    def _wipe_wal(self) -> None:
        """After a deletion (SQLite): move the write-ahead log into the database and truncate it.
        ``secure_delete`` zeroes a deleted row's bytes in the database file, but the -wal file
        still holds copies of the pages written when the row was added, until it is truncated.
        Waits for readers (busy timeout); a failure is logged: the deletion itself has committed."""
        if self._dialect != "sqlite":
            return
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception as exc:  # noqa: BLE001 - never fail a committed deletion
            _log.warning("could not truncate the SQLite write-ahead log after a deletion: %s", exc)

    # --- lookups ------------------------------------------------------------------

    def _collection(self, s: Session, ref: Ref) -> DbCollection:
        if isinstance(ref, int):
            row = s.get(DbCollection, ref)
        elif ref.startswith("col_"):
            row = s.scalar(select(DbCollection).where(DbCollection.uid == ref))
        else:
            row = s.scalar(select(DbCollection).where(DbCollection.name == ref))
        if row is None:
            raise NotFound(f"collection {ref!r} not found", details={"collection": ref})
        return row

    def _person(self, s: Session, coll: DbCollection | None, ref: Ref) -> DbPerson:
        """A person by pk or uid; within a collection also by external id (a uid wins)."""
        if isinstance(ref, int):
            row = s.get(DbPerson, ref)
        else:
            row = s.scalar(select(DbPerson).where(DbPerson.uid == ref))
            if (row is None or (coll is not None and row.collection_id != coll.id)) and coll is not None:
                row = s.scalar(
                    select(DbPerson).where(DbPerson.collection_id == coll.id, DbPerson.external_id == ref)
                )
        if row is None or (coll is not None and row.collection_id != coll.id):
            details: dict[str, Any] = {"person": ref}
            if coll is not None:
                details["collection"] = coll.name
            message = f"person {ref!r} not found"
            moved = s.get(DbRedirect, ref) if isinstance(ref, str) and ref.startswith("per_") else None
            if moved is not None and (coll is None or moved.collection_id == coll.id):
                target = s.get(DbPerson, moved.target_id)
                if target is not None:
                    details["merged_into"] = target.uid
                    message = f"person {ref!r} was merged into {target.uid!r}"
            raise NotFound(message, details=details)
        return row

    def _face(self, s: Session, coll: DbCollection | None, ref: Ref) -> DbFace:
        if isinstance(ref, int):
            row = s.get(DbFace, ref)
        else:
            row = s.scalar(select(DbFace).where(DbFace.uid == ref))
        if row is None or (coll is not None and row.collection_id != coll.id):
            details: dict[str, Any] = {"face": ref}
            if coll is not None:
                details["collection"] = coll.name
            raise NotFound(f"face {ref!r} not found", details=details)
        return row

    def _group(self, s: Session, coll: DbCollection, ref: str) -> DbGroup | None:
        col = DbGroup.uid if ref.startswith("grp_") else DbGroup.name
        return s.scalar(select(DbGroup).where(DbGroup.collection_id == coll.id, col == ref))

    def _require_group(self, s: Session, coll: DbCollection, ref: str) -> DbGroup:
        row = self._group(s, coll, ref)
        if row is None:
            raise NotFound(f"group {ref!r} not found", details={"group": ref, "collection": coll.name})
        return row

    def _groups_of(self, s: Session, person_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """Effective group names per person (``("default",)`` when in none), sorted."""
        ids = list(dict.fromkeys(person_ids))
        found: dict[int, list[str]] = {}
        for part in chunks(ids):
            rows = s.execute(
                select(DbMembership.person_id, DbGroup.name)
                .join(DbGroup, DbGroup.id == DbMembership.group_id)
                .where(DbMembership.person_id.in_(part))
            )
            for pid, name in rows:
                found.setdefault(pid, []).append(name)
        return {pid: tuple(sorted(found[pid])) if pid in found else (DEFAULT_GROUP,) for pid in ids}

    def _ensure_groups(self, s: Session, coll: DbCollection, names: Iterable[str]) -> list[DbGroup]:
        """Groups of these names (uids accepted too), creating missing ones; 'default' skipped."""
        out: dict[int, DbGroup] = {}
        for raw in check_group_count(names):
            name = check_label(raw, "groups", 100, allow_empty=False, comma=False)
            if name == DEFAULT_GROUP:
                continue
            row = self._group(s, coll, name)
            if row is None:
                if name.startswith("grp_"):
                    raise NotFound(
                        f"group {name!r} not found", details={"group": name, "collection": coll.name}
                    )
                row = DbGroup(uid=new_uid("grp_"), collection_id=coll.id, name=name)
                s.add(row)
                s.flush()
            out[row.id] = row
        return list(out.values())

    def _set_memberships(self, s: Session, person: DbPerson, groups: list[DbGroup]) -> tuple[str, ...]:
        """Replace the person's memberships; returns the new effective group list."""
        current = set(s.scalars(select(DbMembership.group_id).where(DbMembership.person_id == person.id)))
        wanted = {g.id for g in groups}
        for gid in current - wanted:
            row = s.get(DbMembership, (person.id, gid))
            if row is not None:
                s.delete(row)
        for gid in wanted - current:
            s.add(DbMembership(person_id=person.id, group_id=gid))
        s.flush()
        names = sorted(g.name for g in groups)
        return tuple(names) if names else (DEFAULT_GROUP,)

    # --- conversion ---------------------------------------------------------------

    @staticmethod
    def _to_collection(row: DbCollection, persons: int | None = 0, faces: int | None = 0) -> Collection:
        return Collection(
            id=row.uid,
            name=row.name,
            title=row.title,
            description=row.description,
            kind=row.kind,
            pack=row.pack,
            settings=dict(row.settings or {}),
            created_at=row.created_at,
            person_count=persons,
            face_count=faces,
            pk=row.id,
        )

    @staticmethod
    def _to_face(row: DbFace, person_uid: str, collection_uid: str) -> Face:
        return Face(
            id=row.uid,
            person_id=person_uid,
            collection_id=collection_uid,
            pack=row.pack,
            box=Box(row.box_left, row.box_top, row.box_width, row.box_height),
            quality=dict(row.quality or {}),
            created_at=row.created_at,
        )

    @staticmethod
    def _to_person(
        row: DbPerson, collection_uid: str, groups: tuple[str, ...], faces: tuple[Face, ...] = ()
    ) -> Person:
        return Person(
            id=row.uid,
            collection_id=collection_uid,
            external_id=row.external_id,
            name=row.name,
            metadata=dict(row.meta or {}),
            groups=groups,
            created_at=row.created_at,
            updated_at=row.updated_at,
            faces=faces,
        )

    @staticmethod
    def _to_group(row: DbGroup, collection_uid: str, persons: int = 0) -> Group:
        return Group(
            id=row.uid,
            collection_id=collection_uid,
            name=row.name,
            created_at=row.created_at,
            person_count=persons,
        )

    def _faces_of(self, s: Session, person: DbPerson, collection_uid: str) -> tuple[Face, ...]:
        rows = s.scalars(select(DbFace).where(DbFace.person_id == person.id).order_by(DbFace.id))
        return tuple(self._to_face(f, person.uid, collection_uid) for f in rows)
