"""Unknown faces: faces that searches matched to nobody, kept for a while (collection setting
``remember_unknown``) so that people seen again and again can be found and named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from facesearch.domain import Box, Person, UnknownFace, check_label, check_metadata, face_limit_reached
from facesearch.errors import NotFound, ValidationError
from facesearch.storage._base import NO_SYNC, Ref, StoreBase, check_json_object, chunks
from facesearch.storage.records import (
    NewFace,
    decode_cursor,
    decode_embeddings,
    encode_cursor,
    encode_embedding,
)
from facesearch.storage.tables import DbFace, DbPerson, DbUnknown, new_uid, utcnow

#: At most this many unknown faces are named in one call that turns them into a person.
MAX_UNKNOWNS_PER_CALL = 1000
#: At most this many unknown faces are kept per collection: past it the oldest are forgotten first.
MAX_UNKNOWNS_PER_COLLECTION = 100_000


@dataclass(frozen=True, eq=False)
class NewUnknown:
    """An unrecognised face to remember: what the pipeline measured of it."""

    pack: str
    embedding: npt.NDArray[np.float32]
    box: Box
    quality: dict[str, Any]
    thumbnail: bytes | None
    source: str
    request_id: str | None = None


@dataclass(frozen=True)
class UnknownSet:
    """Remembered unknown faces of a collection, newest first, for clustering."""

    ids: list[str]
    seen: list[datetime]
    vectors: npt.NDArray[np.float32]


class UnknownsMixin(StoreBase):
    """Remembered unknown faces: add (with purge), read for clustering, name, delete."""

    @staticmethod
    def _to_unknown(row: DbUnknown, collection_uid: str) -> UnknownFace:
        box = Box(row.box_left, row.box_top, row.box_width, row.box_height)
        return UnknownFace(
            row.uid, collection_uid, box, dict(row.quality or {}), row.source, row.request_id, row.seen_at
        )

    def add_unknowns(self, collection_id: Ref, faces: Sequence[NewUnknown], retention_days: int) -> list[str]:
        """Remember these faces (one transaction) and forget the collection's faces older than
        ``retention_days``; returns the new ids."""
        with self._write(bump=False) as s:
            coll = self._collection(s, collection_id)
            self._purge(s, coll.id, retention_days)
            out: list[str] = []
            for face in faces:
                data, dim = encode_embedding(face.embedding)
                row = DbUnknown(
                    uid=new_uid("unk_"),
                    collection_id=coll.id,
                    pack=face.pack,
                    dim=dim,
                    embedding=data,
                    thumbnail=face.thumbnail,
                    box_left=int(face.box.left),
                    box_top=int(face.box.top),
                    box_width=int(face.box.width),
                    box_height=int(face.box.height),
                    quality=check_json_object(face.quality, "quality"),
                    source=face.source,
                    request_id=face.request_id,
                )
                s.add(row)
                out.append(row.uid)
            s.flush()
            self._cap(s, coll.id)
            return out

    @staticmethod
    def _cap(s: Session, collection_pk: int) -> None:
        """Forget the oldest unknown faces past MAX_UNKNOWNS_PER_COLLECTION (inside the write)."""
        keep_from = s.scalar(
            select(DbUnknown.id)
            .where(DbUnknown.collection_id == collection_pk)
            .order_by(DbUnknown.id.desc())
            .offset(MAX_UNKNOWNS_PER_COLLECTION)
            .limit(1)
        )
        if keep_from is not None:
            s.execute(
                delete(DbUnknown).where(DbUnknown.collection_id == collection_pk, DbUnknown.id <= keep_from),
                execution_options=NO_SYNC,
            )

    @staticmethod
    def _purge(s: Session, collection_pk: int, retention_days: int) -> int:
        cutoff = utcnow() - timedelta(days=retention_days)
        result = s.execute(
            delete(DbUnknown).where(DbUnknown.collection_id == collection_pk, DbUnknown.seen_at < cutoff),
            execution_options=NO_SYNC,
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def purge_unknowns(self, collection_id: Ref, retention_days: int) -> int:
        """Forget the collection's unknown faces older than ``retention_days``; how many."""
        with self._write(erases=True, bump=False) as s:
            return self._purge(s, self._collection(s, collection_id).id, retention_days)

    def unknown_count(self, collection_id: Ref | None = None) -> int:
        """How many unknown faces are remembered (in one collection, or in all)."""
        with self._read() as s:
            stmt = select(func.count()).select_from(DbUnknown)
            if collection_id is not None:
                stmt = stmt.where(DbUnknown.collection_id == self._collection(s, collection_id).id)
            return int(s.scalar(stmt) or 0)

    def unknowns_for_clustering(self, collection_id: Ref, limit: int) -> UnknownSet:
        """The newest ``limit`` unknown faces of the collection with their embeddings."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            rows = s.execute(
                select(DbUnknown.uid, DbUnknown.seen_at, DbUnknown.dim, DbUnknown.embedding)
                .where(DbUnknown.collection_id == coll.id)
                .order_by(DbUnknown.id.desc())
                .limit(limit)
            ).all()
        if not rows:
            return UnknownSet([], [], np.empty((0, 0), dtype=np.float32))
        return UnknownSet(
            [r[0] for r in rows],
            [r[1] for r in rows],
            decode_embeddings([r[3] for r in rows], int(rows[0][2])),
        )

    def list_unknowns(
        self, collection_id: Ref, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[UnknownFace], str | None]:
        """One page of the collection's unknown faces, newest first, and the next page's cursor."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError("limit must be from 1 to 1000", field="limit")
        with self._read() as s:
            coll = self._collection(s, collection_id)
            stmt = select(DbUnknown).where(DbUnknown.collection_id == coll.id)
            if cursor:
                stmt = stmt.where(DbUnknown.id < decode_cursor(cursor))
            rows = list(s.scalars(stmt.order_by(DbUnknown.id.desc()).limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
            page = [self._to_unknown(r, coll.uid) for r in rows]
            return page, encode_cursor(rows[-1].id) if more else None

    def unknown_thumbnail(self, collection_id: Ref, unknown: str) -> bytes:
        """The thumbnail of a remembered unknown face; NotFound when gone."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            stmt = select(DbUnknown.thumbnail).where(
                DbUnknown.collection_id == coll.id, DbUnknown.uid == unknown
            )
            data = s.scalar(stmt)
            if data is None:
                raise NotFound(f"unknown face {unknown!r} not found", details={"unknown": unknown})
            return bytes(data)

    def delete_unknowns(self, collection_id: Ref, ids: Sequence[str]) -> int:
        """Forget these unknown faces of the collection; how many were there."""
        with self._write(erases=True, bump=False) as s:
            coll = self._collection(s, collection_id)
            gone = 0
            for part in chunks(list(dict.fromkeys(ids))):
                result = s.execute(
                    delete(DbUnknown).where(DbUnknown.collection_id == coll.id, DbUnknown.uid.in_(part)),
                    execution_options=NO_SYNC,
                )
                gone += int(getattr(result, "rowcount", 0) or 0)
            return gone

    def name_unknowns(
        self,
        collection_id: Ref,
        ids: Sequence[str],
        *,
        person: Ref | None = None,
        external_id: str | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        groups: Sequence[str] = (),
        max_faces: int,
    ) -> tuple[Person, int]:
        """Turn remembered unknown faces into faces of ``person`` (or of a new person), in one
        transaction, and forget them. When they are more than the person has room for, the
        largest faces are kept. Returns the person and how many faces were added."""
        if not isinstance(ids, list | tuple) or not ids:
            raise ValidationError("name at least one unknown face", field="unknowns")
        if len(ids) > MAX_UNKNOWNS_PER_CALL:
            raise ValidationError(f"at most {MAX_UNKNOWNS_PER_CALL} unknown faces per call", field="unknowns")
        wanted = list(dict.fromkeys(str(i) for i in ids))
        with self._write(erases=True) as s:
            coll = self._collection(s, collection_id)
            rows: list[DbUnknown] = []
            for part in chunks(wanted):
                stmt = select(DbUnknown).where(DbUnknown.collection_id == coll.id, DbUnknown.uid.in_(part))
                rows.extend(s.scalars(stmt))
            missing = sorted(set(wanted) - {r.uid for r in rows})
            if missing:
                raise NotFound(
                    f"unknown face {missing[0]!r} not found (it may have been named or purged)",
                    details={"unknown": missing[0], "missing": len(missing)},
                )
            if person is not None:
                target = self._person(s, coll, person)
                groups_now = self._groups_of(s, [target.id])[target.id]
            else:
                uid = new_uid("per_")
                ext = check_label(external_id, "external_id", 255) if external_id else uid
                self._external_id_taken(s, coll, ext or uid)
                target = DbPerson(
                    uid=uid,
                    collection_id=coll.id,
                    external_id=ext or uid,
                    name=check_label(name, "name", 255),
                    meta=check_metadata(metadata or {}, "metadata"),
                )
                s.add(target)
                s.flush()
                groups_now = self._set_memberships(s, target, self._ensure_groups(s, coll, groups))
                self._log_groups(s, coll.id, target.id, groups_now)
            have = int(s.scalar(select(func.count()).where(DbFace.person_id == target.id)) or 0)
            room = max_faces - have
            if room <= 0:
                raise face_limit_reached(target.uid, have, max_faces)
            rows.sort(key=lambda r: (min(r.box_width, r.box_height), r.id), reverse=True)
            added = 0
            for row in rows[:room]:
                new = NewFace(
                    pack=row.pack,
                    embedding=np.frombuffer(row.embedding, dtype="<f4").astype(np.float32),
                    box=Box(row.box_left, row.box_top, row.box_width, row.box_height),
                    quality={**(row.quality or {}), "from_unknown": row.uid},
                    thumbnail=row.thumbnail,
                )
                self._insert_face(s, coll, target, new)
                added += 1
            for pks in chunks([r.id for r in rows]):
                s.execute(delete(DbUnknown).where(DbUnknown.id.in_(pks)), execution_options=NO_SYNC)
            s.flush()
            person_out = self._to_person(target, coll.uid, groups_now, self._faces_of(s, target, coll.uid))
            return person_out, added
