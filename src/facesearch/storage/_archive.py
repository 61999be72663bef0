"""A collection as rows for an archive, and back: read in one snapshot, written in one transaction.

``export_rows`` yields the collection, its groups, persons, faces (with embeddings and thumbnails),
negatives, different-people pairs and merged-person redirects, all read inside one transaction
that sees one consistent state while the server keeps writing (SQLite's WAL snapshot; PostgreSQL
REPEATABLE READ). ``import_rows`` writes such rows as a new collection inside one write transaction
(with the change-log entries the index follows): a failure part-way, a bad checksum found by the
reader included, leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facesearch.domain import Box, Collection, check_collection_name
from facesearch.errors import Conflict, ValidationError
from facesearch.storage._base import Ref, StoreBase
from facesearch.storage._faces import _check_box as check_box
from facesearch.storage.records import OP_ADD_FACE, encode_embedding
from facesearch.storage.tables import (
    DbChange,
    DbCollection,
    DbDistinct,
    DbFace,
    DbFaceSource,
    DbGroup,
    DbMembership,
    DbNegative,
    DbPerson,
    DbRedirect,
    new_uid,
)

Row = tuple[str, dict[str, Any]]
_BATCH = 1000


def _iso(value: datetime) -> str:
    return value.isoformat()


def _when(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"not a time: {value!r}", field="archive") from None


class ArchiveMixin(StoreBase):
    """Export and import of whole collections (see the module docstring)."""

    @contextmanager
    def _snapshot(self) -> Iterator[Session]:
        """One read transaction that sees one state from its first statement to its last."""
        with self._sessions.begin() as session:
            if self._dialect == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    def export_rows(self, collection_id: Ref) -> Iterator[Row]:
        """Every row of one collection, in one snapshot (module docstring): ("collection", ...)
        first, then "group", "person", "face", "negative", "distinct" and "redirect" rows."""
        with self._snapshot() as s:
            coll = self._collection(s, collection_id)
            faces = int(s.scalar(select(func.count()).where(DbFace.collection_id == coll.id)) or 0)
            persons = int(s.scalar(select(func.count()).where(DbPerson.collection_id == coll.id)) or 0)
            yield (
                "collection",
                {
                    "id": coll.uid,
                    "name": coll.name,
                    "title": coll.title,
                    "description": coll.description,
                    "kind": coll.kind,
                    "pack": coll.pack,
                    "settings": dict(coll.settings or {}),
                    "created_at": _iso(coll.created_at),
                    "counts": {"persons": persons, "faces": faces},
                },
            )
            for g in s.scalars(select(DbGroup).where(DbGroup.collection_id == coll.id).order_by(DbGroup.id)):
                yield "group", {"id": g.uid, "name": g.name, "created_at": _iso(g.created_at)}
            members: dict[int, list[str]] = {}
            links = (
                select(DbMembership.person_id, DbGroup.name)
                .join(DbGroup, DbGroup.id == DbMembership.group_id)
                .where(DbGroup.collection_id == coll.id)
            )
            for pid, gname in s.execute(links):
                members.setdefault(pid, []).append(gname)
            uids: dict[int, str] = {}
            stmt = select(DbPerson).where(DbPerson.collection_id == coll.id).order_by(DbPerson.id)
            for p in s.scalars(stmt.execution_options(yield_per=_BATCH)):
                uids[p.id] = p.uid
                yield (
                    "person",
                    {
                        "id": p.uid,
                        "external_id": p.external_id,
                        "name": p.name,
                        "metadata": dict(p.meta or {}),
                        "groups": sorted(members.get(p.id, [])),
                        "created_at": _iso(p.created_at),
                        "updated_at": _iso(p.updated_at),
                    },
                )
            cols = (
                DbFace.uid,
                DbFace.person_id,
                DbFace.pack,
                DbFace.dim,
                DbFace.embedding,
                DbFace.thumbnail,
                DbFace.box_left,
                DbFace.box_top,
                DbFace.box_width,
                DbFace.box_height,
                DbFace.quality,
                DbFace.content_hash,
                DbFace.created_at,
            )
            stmt_f = (
                select(*cols, DbFaceSource.data.label("source"))
                .outerjoin(DbFaceSource, DbFaceSource.face_id == DbFace.id)
                .where(DbFace.collection_id == coll.id)
                .order_by(DbFace.id)
            )
            for r in s.execute(stmt_f.execution_options(yield_per=_BATCH)):
                yield (
                    "face",
                    {
                        "id": r.uid,
                        "person_id": uids[r.person_id],
                        "pack": r.pack,
                        "dim": r.dim,
                        "embedding": bytes(r.embedding),
                        "thumbnail": bytes(r.thumbnail) if r.thumbnail is not None else None,
                        "box": [r.box_left, r.box_top, r.box_width, r.box_height],
                        "quality": dict(r.quality or {}),
                        "content_hash": r.content_hash,
                        "created_at": _iso(r.created_at),
                        "source": bytes(r.source) if r.source is not None else None,
                    },
                )
            stmt_n = select(DbNegative).where(DbNegative.collection_id == coll.id).order_by(DbNegative.id)
            for n in s.scalars(stmt_n.execution_options(yield_per=_BATCH)):
                yield (
                    "negative",
                    {
                        "id": n.uid,
                        "person_id": uids[n.person_id],
                        "pack": n.pack,
                        "dim": n.dim,
                        "embedding": bytes(n.embedding),
                        "thumbnail": bytes(n.thumbnail) if n.thumbnail is not None else None,
                        "source_face": n.source_face,
                        "created_at": _iso(n.created_at),
                    },
                )
            for d in s.scalars(select(DbDistinct).where(DbDistinct.collection_id == coll.id)):
                yield (
                    "distinct",
                    {"persons": [uids[d.person_a], uids[d.person_b]], "created_at": _iso(d.created_at)},
                )
            for rd in s.scalars(select(DbRedirect).where(DbRedirect.collection_id == coll.id)):
                yield (
                    "redirect",
                    {"id": rd.uid, "target": uids[rd.target_id], "created_at": _iso(rd.created_at)},
                )

    def import_rows(
        self, rows: Iterator[Row], *, name: str | None = None, keep_ids: bool = True
    ) -> Collection:
        """Write exported rows as a new collection in one transaction; ``name`` renames it;
        ``keep_ids`` keeps every id of the archive (Conflict when one is taken here: import with
        new ids instead). Any exception from ``rows`` (a bad checksum) rolls everything back."""
        first = next(rows, None)
        if first is None or first[0] != "collection":
            raise ValidationError("the archive does not start with its collection", field="archive")
        try:
            return self._import(first[1], rows, name, keep_ids)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(
                f"a malformed archive row ({type(exc).__name__}: {exc})", field="archive"
            ) from None

    def _import(
        self, meta: dict[str, Any], rows: Iterator[Row], name: str | None, keep_ids: bool
    ) -> Collection:
        with self._write() as s:
            coll_name = check_collection_name(name or meta["name"])
            if s.scalar(select(DbCollection.id).where(DbCollection.name == coll_name)) is not None:
                raise Conflict(
                    f"collection {coll_name!r} already exists: import under another name (--name)",
                    details={"collection": coll_name},
                )

            def uid(kept: str, prefix: str, table: Any) -> str:
                if not keep_ids:
                    return new_uid(prefix)
                if s.scalar(select(table.uid).where(table.uid == kept)) is not None:
                    raise Conflict(
                        f"id {kept!r} of the archive is taken in this database: import with new ids",
                        details={"id": kept, "reason": "ID_TAKEN"},
                    )
                return kept

            coll = DbCollection(
                uid=uid(meta["id"], "col_", DbCollection),
                name=coll_name,
                title=meta.get("title", ""),
                description=meta.get("description", ""),
                kind=meta.get("kind", "internal"),
                pack=meta["pack"],
                settings=dict(meta.get("settings") or {}),
                created_at=_when(meta["created_at"]),
            )
            s.add(coll)
            s.flush()
            groups: dict[str, DbGroup] = {}
            persons: dict[str, DbPerson] = {}
            person_groups: dict[int, tuple[str, ...]] = {}
            pending: list[DbChange] = []
            for kind, row in rows:
                if kind == "group":
                    g = DbGroup(
                        uid=uid(row["id"], "grp_", DbGroup),
                        collection_id=coll.id,
                        name=row["name"],
                        created_at=_when(row["created_at"]),
                    )
                    s.add(g)
                    s.flush()
                    groups[g.name] = g
                elif kind == "person":
                    p = DbPerson(
                        uid=uid(row["id"], "per_", DbPerson),
                        collection_id=coll.id,
                        external_id=row["external_id"],
                        name=row.get("name", ""),
                        meta=dict(row.get("metadata") or {}),
                        created_at=_when(row["created_at"]),
                        updated_at=_when(row["updated_at"]),
                    )
                    s.add(p)
                    s.flush()
                    persons[row["id"]] = p
                    names = [g for g in row.get("groups", []) if g in groups]
                    for g in names:
                        s.add(DbMembership(person_id=p.id, group_id=groups[g].id))
                    person_groups[p.id] = tuple(sorted(names)) or ("default",)
                elif kind == "face":
                    p = persons[row["person_id"]]
                    if row["pack"] != coll.pack:
                        raise ValidationError(f"a face of pack {row['pack']!r} in a {coll.pack!r} collection")
                    data, dim = encode_embedding(_vector(row["embedding"]))
                    left, top, width, height = (int(v) for v in row["box"])
                    check_box(Box(left, top, width, height))
                    f = DbFace(
                        uid=uid(row["id"], "fac_", DbFace),
                        person_id=p.id,
                        collection_id=coll.id,
                        pack=row["pack"],
                        dim=dim,
                        embedding=data,
                        box_left=left,
                        box_top=top,
                        box_width=width,
                        box_height=height,
                        quality=dict(row.get("quality") or {}),
                        thumbnail=row.get("thumbnail"),
                        content_hash=row.get("content_hash"),
                        created_at=_when(row["created_at"]),
                    )
                    s.add(f)
                    s.flush()
                    if row.get("source") is not None:
                        s.add(DbFaceSource(face_id=f.id, data=row["source"]))
                    payload = {"pack": f.pack, "dim": dim}
                    pending.append(
                        DbChange(
                            op=OP_ADD_FACE,
                            collection_id=coll.id,
                            face_id=f.id,
                            person_id=p.id,
                            payload=payload,
                        )
                    )
                elif kind == "negative":
                    p = persons[row["person_id"]]
                    data, dim = encode_embedding(_vector(row["embedding"]))
                    s.add(
                        DbNegative(
                            uid=uid(row["id"], "neg_", DbNegative),
                            person_id=p.id,
                            collection_id=coll.id,
                            pack=row["pack"],
                            dim=dim,
                            embedding=data,
                            thumbnail=row.get("thumbnail"),
                            source_face=row.get("source_face"),
                            created_at=_when(row["created_at"]),
                        )
                    )
                elif kind == "distinct":
                    a, b = (persons[u].id for u in row["persons"])
                    s.add(
                        DbDistinct(
                            person_a=min(a, b),
                            person_b=max(a, b),
                            collection_id=coll.id,
                            created_at=_when(row["created_at"]),
                        )
                    )
                elif kind == "redirect":
                    rid = uid(row["id"], "per_", DbPerson) if not keep_ids else row["id"]
                    if s.get(DbRedirect, rid) is None:
                        s.add(DbRedirect(uid=rid, collection_id=coll.id, target_id=persons[row["target"]].id))
                else:
                    raise ValidationError(f"unknown archive row {kind!r}", field="archive")
                if len(pending) >= _BATCH:
                    self._flush_log(s, pending)
            for pid, effective in person_groups.items():
                self._log_groups(s, coll.id, pid, effective)
            self._flush_log(s, pending)
            s.flush()
            return self._to_collection(coll, len(persons), None)

    def _flush_log(self, s: Session, pending: list[DbChange]) -> None:
        """The add_face log entries of imported faces, in order (one lock on PostgreSQL)."""
        if not pending:
            return
        self._log_lock(s)
        s.add_all(pending)
        s.flush()
        pending.clear()


def _vector(data: Any) -> Any:
    import numpy as np

    if not isinstance(data, bytes | bytearray) or len(data) % 4:
        raise ValidationError("an embedding in the archive is not float32 bytes", field="archive")
    return np.frombuffer(data, dtype="<f4")
