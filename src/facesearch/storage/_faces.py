"""Faces, the change log and the feed for a full index rebuild."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from facesearch.domain import DEFAULT_GROUP, Box, Face, face_limit_reached
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage._base import Ref, StoreBase, check_json_object, check_text, chunks
from facesearch.storage.records import (
    OP_ADD_FACE,
    OP_REMOVE_FACE,
    OP_SET_GROUPS,
    Change,
    FaceBatch,
    NewFace,
    decode_embedding,
    decode_embeddings,
    encode_embedding,
)
from facesearch.storage.tables import (
    DbChange,
    DbCollection,
    DbFace,
    DbFaceSource,
    DbGroup,
    DbIndexCursor,
    DbMembership,
    DbPerson,
    new_uid,
    utcnow,
)


def _person_faces(s: Session, person_pk: int) -> int:
    """How many faces a person has (in the caller's transaction)."""
    return int(s.scalar(select(func.count()).where(DbFace.person_id == person_pk)) or 0)


def _same_photo(s: Session, coll_pk: int, person_pk: int | None, content_hash: str) -> list[tuple[int, Face]]:
    """The oldest face of the collection (and of the person, when given) from these image bytes,
    as ``_query_faces`` returns it (empty: none), in the caller's transaction."""
    where = [DbFace.collection_id == coll_pk, DbFace.content_hash == content_hash]
    if person_pk is not None:
        where.append(DbFace.person_id == person_pk)
    return _query_faces(s, *where, limit=1)


def _query_faces(s: Session, *where: ColumnElement[bool], limit: int | None = None) -> list[tuple[int, Face]]:
    """(primary key, face) of the faces matching ``where``, oldest first."""
    stmt = (
        select(DbFace, DbPerson.uid, DbCollection.uid)
        .join(DbPerson, DbPerson.id == DbFace.person_id)
        .join(DbCollection, DbCollection.id == DbFace.collection_id)
        .where(*where)
        .order_by(DbFace.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(face.id, StoreBase._to_face(face, p_uid, c_uid)) for face, p_uid, c_uid in s.execute(stmt)]


def _check_box(box: Any) -> Box:
    if not isinstance(box, Box):
        raise ValidationError("box must be a Box", field="box")
    if box.width <= 0 or box.height <= 0:
        raise ValidationError("box must have a positive width and height", field="box")
    return box


class FacesMixin(StoreBase):
    """Faces and the change log."""

    # --- faces --------------------------------------------------------------------

    def add_face(
        self,
        collection_id: Ref,
        person_id: Ref,
        pack: str,
        embedding: npt.ArrayLike,
        box: Box,
        quality: dict[str, Any] | None = None,
        thumbnail: bytes | None = None,
        content_hash: str | None = None,
        *,
        max_faces: int | None = None,
    ) -> Face:
        """Store a face and its 'add_face' log entry in one transaction.

        ValidationError when the pack is not the collection's or the dimension differs
        from the faces already there; FaceLimitReached when the person already has
        ``max_faces`` faces;
        Conflict when the person already has a face from the same image bytes. Both are
        checked inside the write transaction, so they hold for concurrent calls.
        """
        face = NewFace(
            pack, np.asarray(embedding, dtype=np.float32), box, quality or {}, thumbnail, content_hash
        )
        with self._write() as s:
            coll = self._collection(s, collection_id)
            person = self._person(s, coll, person_id)
            if max_faces is not None and (have := _person_faces(s, person.id)) >= max_faces:
                raise face_limit_reached(person.uid, have, max_faces)
            if content_hash is not None and _same_photo(s, coll.id, person.id, content_hash):
                raise Conflict(
                    "this photo is already enrolled for this person", details={"person": person.uid}
                )
            row = self._insert_face(s, coll, person, face)
            return self._to_face(row, person.uid, coll.uid)

    def _insert_face(self, s: Session, coll: DbCollection, person: DbPerson, face: NewFace) -> DbFace:
        """Insert a face row and its 'add_face' log entry inside the caller's transaction."""
        data, dim = encode_embedding(face.embedding)
        box = _check_box(face.box)
        qual = check_json_object(face.quality or {}, "quality")
        thumbnail = face.thumbnail
        if thumbnail is not None and not isinstance(thumbnail, bytes | bytearray | memoryview):
            raise ValidationError("thumbnail must be bytes", field="thumbnail")
        if face.content_hash is not None:
            check_text(face.content_hash, "content_hash", 64, allow_empty=False)
        pack = face.pack
        content_hash = face.content_hash
        if pack != coll.pack:
            raise ValidationError(
                f"pack {pack!r} is not the collection's pack {coll.pack!r}",
                field="pack",
                details={"collection": coll.name},
            )
        known = s.scalar(select(DbFace.dim).where(DbFace.collection_id == coll.id).limit(1))
        if known is not None and known != dim:
            raise ValidationError(
                f"embedding has {dim} values, the collection's faces have {known}",
                field="embedding",
                details={"collection": coll.name},
            )
        row = DbFace(
            uid=new_uid("fac_"),
            person_id=person.id,
            collection_id=coll.id,
            pack=pack,
            dim=dim,
            embedding=data,
            box_left=int(box.left),
            box_top=int(box.top),
            box_width=int(box.width),
            box_height=int(box.height),
            quality=qual,
            thumbnail=bytes(thumbnail) if thumbnail is not None else None,
            content_hash=content_hash,
        )
        s.add(row)
        person.updated_at = utcnow()
        s.flush()
        if face.source is not None:
            s.add(DbFaceSource(face_id=row.id, data=bytes(face.source)))
        self._log(
            s, OP_ADD_FACE, coll.id, face_id=row.id, person_id=person.id, payload={"pack": pack, "dim": dim}
        )
        return row

    def get_face(self, ref: Ref) -> Face:
        """A face by uid or primary key, any collection."""
        with self._read() as s:
            face = self._face(s, None, ref)
            return _query_faces(s, DbFace.id == face.id)[0][1]

    def face_pk(self, ref: Ref) -> int:
        """The integer primary key of a face given by uid."""
        with self._read() as s:
            return self._face(s, None, ref).id

    def get_faces_by_ids(self, ids: Iterable[int]) -> dict[int, Face]:
        """Faces by primary key, any collection; missing ids are left out."""

        def load(wanted: list[int]) -> dict[int, Face]:
            out: dict[int, Face] = {}
            with self._read() as s:
                for part in chunks(wanted):
                    out.update(_query_faces(s, DbFace.id.in_(part)))
            return out

        return self.cache.many(self._version_for_cache(), "face", (int(i) for i in ids), load)

    def get_face_thumbnail(self, ref: Ref) -> bytes:
        """The stored JPEG thumbnail of a face; NotFound when the face or its thumbnail is missing."""
        with self._read() as s:
            face = self._face(s, None, ref)
            data = s.scalar(select(DbFace.thumbnail).where(DbFace.id == face.id))
            if data is None:
                raise NotFound(f"face {ref!r} has no stored thumbnail", details={"face": ref})
            return bytes(data)

    def get_thumbnails_by_ids(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Thumbnails by face primary key; faces without one are left out."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        out: dict[int, bytes] = {}
        with self._read() as s:
            for part in chunks(wanted):
                stmt = select(DbFace.id, DbFace.thumbnail).where(
                    DbFace.id.in_(part), DbFace.thumbnail.is_not(None)
                )
                out.update((fid, bytes(data)) for fid, data in s.execute(stmt) if data is not None)
        return out

    def delete_face(self, collection_id: Ref, ref: Ref) -> None:
        """Delete one face of the collection; logs one 'remove_face'."""
        with self._write(erases=True) as s:
            coll = self._collection(s, collection_id)
            face = self._face(s, coll, ref)
            fid, pid = face.id, face.person_id
            s.delete(face)
            person = s.get(DbPerson, pid)
            if person is not None:
                person.updated_at = utcnow()
            s.flush()
            self._log(s, OP_REMOVE_FACE, coll.id, face_id=fid, person_id=pid)

    def face_count(self, collection_id: Ref) -> int:
        """How many faces the collection holds."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            return int(s.scalar(select(func.count()).where(DbFace.collection_id == coll.id)) or 0)

    def person_face_count(self, person_id: Ref) -> int:
        """How many faces the person (uid or primary key) has."""
        with self._read() as s:
            return _person_faces(s, self._person(s, None, person_id).id)

    def person_embeddings(self, person_id: Ref) -> npt.NDArray[np.float32]:
        """The person's face embeddings, oldest first, as an (n, dim) float32 matrix."""
        with self._read() as s:
            person = self._person(s, None, person_id)
            rows = s.execute(
                select(DbFace.dim, DbFace.embedding).where(DbFace.person_id == person.id).order_by(DbFace.id)
            ).all()
        if not rows:
            return np.empty((0, 0), dtype=np.float32)
        return decode_embeddings([r[1] for r in rows], int(rows[0][0]))

    def embeddings_by_person(self, person_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float32]]:
        """Each person's face embeddings (primary keys; an (n, dim) matrix, oldest first); persons
        without faces are left out."""
        wanted = list(dict.fromkeys(int(p) for p in person_ids))
        found: dict[int, list[bytes]] = {}
        dims: dict[int, int] = {}
        with self._read() as s:
            for part in chunks(wanted):
                stmt = (
                    select(DbFace.person_id, DbFace.dim, DbFace.embedding)
                    .where(DbFace.person_id.in_(part))
                    .order_by(DbFace.id)
                )
                for pid, dim, emb in s.execute(stmt):
                    found.setdefault(pid, []).append(emb)
                    dims[pid] = int(dim)
        return {pid: decode_embeddings(blobs, dims[pid]) for pid, blobs in found.items()}

    def face_embedding(self, ref: Ref) -> npt.NDArray[np.float32]:
        """The embedding of one stored face (uid or primary key)."""
        with self._read() as s:
            face = self._face(s, None, ref)
            return decode_embedding(s.scalar(select(DbFace.embedding).where(DbFace.id == face.id)) or b"")

    def find_face_by_hash(self, collection_id: Ref, person_id: Ref | None, content_hash: str) -> Face | None:
        """The oldest face of the collection (and of the person, when given) from the same image bytes."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            person = self._person(s, coll, person_id).id if person_id is not None else None
            found = _same_photo(s, coll.id, person, content_hash)
            return found[0][1] if found else None

    # --- change log ---------------------------------------------------------------

    def changes_since(self, seq: int, limit: int = 10000) -> list[Change]:
        """Log entries after ``seq``, in order, at most ``limit`` (add_face with its embedding)."""
        if limit < 1:
            raise ValidationError("limit must be positive", field="limit")
        stmt = (
            select(DbChange, DbFace.embedding)
            .outerjoin(DbFace, and_(DbChange.op == OP_ADD_FACE, DbFace.id == DbChange.face_id))
            .where(DbChange.seq > seq)
            .order_by(DbChange.seq)
            .limit(limit)
        )
        with self._read() as s:
            rows = s.execute(stmt).all()
            adders = [c.person_id for c, emb in rows if emb is not None and c.person_id is not None]
            current = self._groups_of(s, adders)
        out: list[Change] = []
        for change, emb in rows:
            groups: tuple[str, ...] | None = None
            if change.op == OP_SET_GROUPS and change.payload is not None:
                groups = tuple(change.payload.get("groups", ()))
            elif emb is not None and change.person_id is not None:
                groups = current[change.person_id]
            out.append(
                Change(
                    seq=change.seq,
                    op=change.op,
                    collection_id=change.collection_id,
                    face_id=change.face_id,
                    person_id=change.person_id,
                    payload=dict(change.payload) if change.payload is not None else None,
                    embedding=decode_embedding(emb) if emb is not None else None,
                    groups=groups,
                )
            )
        return out

    def last_seq(self) -> int:
        """The newest log seq (0 for an empty log)."""
        with self._read() as s:
            return int(s.scalar(select(func.max(DbChange.seq))) or 0)

    def index_cursor(self, name: str) -> tuple[int, str] | None:
        """(seq, generation) a shared index named ``name`` has applied, or None (never)."""
        with self._read() as s:
            row = s.get(DbIndexCursor, name)
            return (int(row.seq), row.generation) if row is not None else None

    def set_index_cursor(self, name: str, seq: int, generation: str) -> None:
        """Record how far the shared index ``name`` (data ``generation``) applied the log."""
        with self._write() as s:
            row = s.get(DbIndexCursor, name)
            if row is None:
                s.add(DbIndexCursor(name=name, seq=int(seq), generation=generation))
            else:
                row.seq, row.generation = int(seq), generation

    def all_faces_for_index(
        self, batch_size: int = 10000, collection_id: Ref | None = None
    ) -> Iterator[FaceBatch]:
        """Every face, in batches of one collection and one dimension, for a full rebuild.

        Each batch is read in its own short transaction. For a consistent rebuild, take
        ``last_seq()`` first, load every batch, then replay ``changes_since`` that seq
        (replaying is idempotent).
        """
        if batch_size < 1:
            raise ValidationError("batch_size must be positive", field="batch_size")
        only: int | None = None
        if collection_id is not None:
            with self._read() as s:
                only = self._collection(s, collection_id).id
        last = (-1, -1)
        while True:
            stmt = select(
                DbFace.collection_id, DbFace.id, DbFace.person_id, DbFace.dim, DbFace.embedding
            ).where(
                or_(
                    DbFace.collection_id > last[0],
                    and_(DbFace.collection_id == last[0], DbFace.id > last[1]),
                )
            )
            if only is not None:
                stmt = stmt.where(DbFace.collection_id == only)
            with self._read() as s:
                rows = s.execute(stmt.order_by(DbFace.collection_id, DbFace.id).limit(batch_size)).all()
            if not rows:
                return
            start = 0
            for i in range(1, len(rows) + 1):
                if i == len(rows) or (rows[i][0], rows[i][3]) != (rows[start][0], rows[start][3]):
                    run = rows[start:i]
                    yield FaceBatch(
                        collection_id=int(run[0][0]),
                        face_ids=np.array([r[1] for r in run], dtype=np.int64),
                        person_ids=np.array([r[2] for r in run], dtype=np.int64),
                        vectors=decode_embeddings([r[4] for r in run], int(run[0][3])),
                    )
                    start = i
            last = (int(rows[-1][0]), int(rows[-1][1]))
            if len(rows) < batch_size:
                return

    def all_person_groups(self, collection_id: Ref | None = None) -> dict[int, tuple[str, ...]]:
        """Every person's effective groups (``("default",)`` when in none), by primary key."""
        with self._read() as s:
            persons = select(DbPerson.id)
            links = select(DbMembership.person_id, DbGroup.name).join(
                DbGroup, DbGroup.id == DbMembership.group_id
            )
            if collection_id is not None:
                cid = self._collection(s, collection_id).id
                persons = persons.where(DbPerson.collection_id == cid)
                links = links.where(DbGroup.collection_id == cid)
            found: dict[int, list[str]] = {pid: [] for pid in s.scalars(persons.order_by(DbPerson.id))}
            for pid, name in s.execute(links):
                if pid in found:
                    found[pid].append(name)
        return {pid: tuple(sorted(names)) if names else (DEFAULT_GROUP,) for pid, names in found.items()}
