"""Faces, the change log and the feed for a full index rebuild."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from facesearch.domain import DEFAULT_GROUP, Box, Face, check_label, face_limit_reached
from facesearch.errors import Conflict, FaceSearchError, NotFound, ValidationError
from facesearch.storage._base import NO_SYNC, Ref, StoreBase, check_json_object, check_text, chunks
from facesearch.storage.records import (
    OP_ADD_FACE,
    OP_REMOVE_FACE,
    OP_SET_GROUPS,
    Change,
    FaceBatch,
    NewFace,
    PersonFace,
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
        source: bytes | None = None,
    ) -> Face:
        """Store a face (with its sealed ``source`` when given) and its 'add_face' log entry in one
        transaction.

        ValidationError when the pack is not the collection's or the dimension differs
        from the faces already there; FaceLimitReached when the person already has
        ``max_faces`` faces;
        Conflict when the person already has a face from the same image bytes. Both are
        checked inside the write transaction, so they hold for concurrent calls.
        """
        face = NewFace(
            pack, np.asarray(embedding, dtype=np.float32), box, quality or {}, thumbnail, content_hash, source
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

    def enroll_faces(
        self, collection_id: Ref, items: Sequence[PersonFace], *, max_faces: int | None = None
    ) -> list[Face | FaceSearchError | None]:
        """Store faces of persons named by external id in ONE write transaction, creating a person
        (in no group) at its first stored face: what ``create_person`` and ``add_face`` do one
        request at a time, for a folder enrolled in bulk (``facesearch enroll``).

        Every rule is checked in order before anything is written, against the data read in this
        transaction plus the faces before it in ``items``: a face refused (FaceLimitReached at
        ``max_faces``, a ValidationError) is returned in its place and not written; None in its
        place means the person already has a face from the same image bytes (nothing written).
        Then the persons, faces and change-log entries are inserted in bulk (a few statements per
        batch instead of about twenty per face): all of them commit, or none does.
        """
        out: list[Face | FaceSearchError | None] = [None] * len(items)
        with self._write() as s:
            coll = self._collection(s, collection_id)
            dim = s.scalar(select(DbFace.dim).where(DbFace.collection_id == coll.id).limit(1))
            persons: dict[str, tuple[int, str]] = {}  # external id -> (pk, uid), existing persons
            for part in chunks(list(dict.fromkeys(item.external_id for item in items))):
                stmt = select(DbPerson.external_id, DbPerson.id, DbPerson.uid).where(
                    DbPerson.collection_id == coll.id, DbPerson.external_id.in_(part)
                )
                persons.update((ext, (pk, uid)) for ext, pk, uid in s.execute(stmt))
            by_pk = {pk: ext for ext, (pk, _) in persons.items()}
            counts: dict[str, int] = dict.fromkeys(persons, 0)
            hashes: dict[str, set[str]] = {ext: set() for ext in persons}
            for pks in chunks(list(by_pk)):
                stmt2 = select(DbFace.person_id, DbFace.content_hash).where(DbFace.person_id.in_(pks))
                for pk, digest in s.execute(stmt2):
                    counts[by_pk[pk]] += 1
                    if digest is not None:
                        hashes[by_pk[pk]].add(digest)
            created: dict[str, dict[str, Any]] = {}  # external id -> the new person's row
            planned: list[tuple[int, str, dict[str, Any]]] = []  # item index, external id, face row
            for i, item in enumerate(items):
                ext, face = item.external_id, item.face
                try:
                    if ext not in persons and ext not in created:
                        created[ext] = {
                            "uid": new_uid("per_"),
                            "collection_id": coll.id,
                            "external_id": check_label(ext, "external_id", 255, allow_empty=False),
                            "name": check_label(item.name, "name", 255),
                            "meta": {},
                        }
                        counts[ext], hashes[ext] = 0, set()
                    values = self._face_values(coll, face, dim)
                    if face.content_hash is not None and face.content_hash in hashes[ext]:
                        continue  # this very photo is already the person's: None
                    if max_faces is not None and counts[ext] >= max_faces:
                        uid = persons[ext][1] if ext in persons else created[ext]["uid"]
                        raise face_limit_reached(uid, counts[ext], max_faces)
                except FaceSearchError as exc:
                    out[i] = exc
                    continue
                counts[ext] += 1
                if face.content_hash is not None:
                    hashes[ext].add(face.content_hash)
                dim = values["dim"]
                planned.append((i, ext, values))
            if planned:
                self._insert_planned(s, coll, items, persons, created, planned, out)
        return out

    def _insert_planned(
        self,
        s: Session,
        coll: DbCollection,
        items: Sequence[PersonFace],
        persons: dict[str, tuple[int, str]],
        created: dict[str, dict[str, Any]],
        planned: list[tuple[int, str, dict[str, Any]]],
        out: list[Face | FaceSearchError | None],
    ) -> None:
        """The bulk inserts of ``enroll_faces``: new persons (with their 'set_groups' entries,
        before any of their faces), faces, sealed sources, then one 'add_face' entry per face."""
        now = utcnow()
        used = {ext for _, ext, _ in planned}
        new_rows = [dict(row, created_at=now, updated_at=now) for ext, row in created.items() if ext in used]
        self._log_lock(s)
        if new_rows:
            new_ids = s.scalars(
                insert(DbPerson).returning(DbPerson.id, sort_by_parameter_order=True), new_rows
            ).all()
            for row, pk in zip(new_rows, new_ids, strict=True):
                persons[row["external_id"]] = (int(pk), row["uid"])
            groups = {"groups": [DEFAULT_GROUP]}
            log = [
                {"op": OP_SET_GROUPS, "collection_id": coll.id, "person_id": int(pk), "payload": groups}
                for pk in new_ids
            ]
            s.execute(insert(DbChange), [dict(entry, created_at=now) for entry in log])
        face_rows = [
            dict(values, person_id=persons[ext][0], collection_id=coll.id, created_at=now)
            for _, ext, values in planned
        ]
        face_ids = s.scalars(
            insert(DbFace).returning(DbFace.id, sort_by_parameter_order=True), face_rows
        ).all()
        sources = [
            {"face_id": int(fid), "data": bytes(source), "created_at": now}
            for fid, (i, _, _) in zip(face_ids, planned, strict=True)
            if (source := items[i].face.source) is not None
        ]
        if sources:
            s.execute(insert(DbFaceSource), sources)
        s.execute(
            update(DbPerson).where(DbPerson.id.in_({persons[ext][0] for ext in used})).values(updated_at=now),
            execution_options=NO_SYNC,
        )
        s.execute(
            insert(DbChange),
            [
                {
                    "op": OP_ADD_FACE,
                    "collection_id": coll.id,
                    "face_id": int(fid),
                    "person_id": row["person_id"],
                    "payload": {"pack": row["pack"], "dim": row["dim"]},
                    "created_at": now,
                }
                for fid, row in zip(face_ids, face_rows, strict=True)
            ],
        )
        for i, ext, values in planned:
            out[i] = self._to_face(DbFace(**values, created_at=now), persons[ext][1], coll.uid)

    def _face_values(self, coll: DbCollection, face: NewFace, dim: int | None) -> dict[str, Any]:
        """A face row's values (no person yet), checked: the pack is the collection's, the
        dimension is ``dim`` (the collection's faces'; None when it has none yet), a positive box,
        a JSON quality record, thumbnail bytes, a content hash of at most 64 characters."""
        data, got = encode_embedding(face.embedding)
        box = _check_box(face.box)
        qual = check_json_object(face.quality or {}, "quality")
        thumbnail = face.thumbnail
        if thumbnail is not None and not isinstance(thumbnail, bytes | bytearray | memoryview):
            raise ValidationError("thumbnail must be bytes", field="thumbnail")
        if face.content_hash is not None:
            check_text(face.content_hash, "content_hash", 64, allow_empty=False)
        if face.pack != coll.pack:
            raise ValidationError(
                f"pack {face.pack!r} is not the collection's pack {coll.pack!r}",
                field="pack",
                details={"collection": coll.name},
            )
        if dim is not None and dim != got:
            raise ValidationError(
                f"embedding has {got} values, the collection's faces have {dim}",
                field="embedding",
                details={"collection": coll.name},
            )
        return {
            "uid": new_uid("fac_"),
            "pack": face.pack,
            "dim": got,
            "embedding": data,
            "box_left": int(box.left),
            "box_top": int(box.top),
            "box_width": int(box.width),
            "box_height": int(box.height),
            "quality": qual,
            "thumbnail": bytes(thumbnail) if thumbnail is not None else None,
            "content_hash": face.content_hash,
        }

    def _insert_face(self, s: Session, coll: DbCollection, person: DbPerson, face: NewFace) -> DbFace:
        """Insert a face row and its 'add_face' log entry inside the caller's transaction."""
        known = s.scalar(select(DbFace.dim).where(DbFace.collection_id == coll.id).limit(1))
        row = DbFace(person_id=person.id, collection_id=coll.id, **self._face_values(coll, face, known))
        s.add(row)
        person.updated_at = utcnow()
        s.flush()
        if face.source is not None:
            s.add(DbFaceSource(face_id=row.id, data=bytes(face.source)))
        self._log(
            s,
            OP_ADD_FACE,
            coll.id,
            face_id=row.id,
            person_id=person.id,
            payload={"pack": row.pack, "dim": row.dim},
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

    def photo_hashes(self, collection_id: Ref, external_id: str) -> set[str] | None:
        """The content hashes of the faces of the person with this external id (None: no such
        person in the collection): one query where ``find_face_by_hash`` takes one per photo."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            pk = s.scalar(
                select(DbPerson.id).where(
                    DbPerson.collection_id == coll.id, DbPerson.external_id == external_id
                )
            )
            if pk is None:
                return None
            stmt = select(DbFace.content_hash).where(DbFace.person_id == pk, DbFace.content_hash.is_not(None))
            return {str(h) for h in s.scalars(stmt)}

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
